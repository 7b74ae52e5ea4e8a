"""Real media files made on the spot for the tests: any container, codec, rate, layout, stream count or timing.

Frames are flat and their brightness encodes their number, so a test can read back which source frame was
sampled; sounds are pure tones, so a test can read back the pitch.
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

LEVEL_STEP, LEVEL_OFFSET = 7, 10  # frame n has brightness 10 + 7 n: up to 35 frames stay apart after H.264


def numbered_frames(count: int, size: int = 48) -> np.ndarray:
    """(count, size, size, 3) uint8 flat frames whose brightness encodes their number."""
    levels = (np.arange(count) * LEVEL_STEP + LEVEL_OFFSET).astype(np.uint8)
    return np.broadcast_to(levels[:, None, None, None], (count, size, size, 3)).copy()


def frame_numbers(frames) -> list[int]:
    """The numbers of decoded numbered frames (T, H, W, 3) (a torch tensor or an array)."""
    means = np.asarray(frames, dtype=np.float64).mean(axis=(1, 2, 3))
    return [int(round((mean - LEVEL_OFFSET) / LEVEL_STEP)) for mean in means]


def tone(hz: float, seconds: float, sample_rate: int = 16000, channels: int = 1, amplitude: float = 0.3) -> np.ndarray:
    """(channels, samples) float32 sine, the same in every channel."""
    times = np.arange(int(round(seconds * sample_rate))) / sample_rate
    return np.repeat((amplitude * np.sin(2 * np.pi * hz * times))[None], channels, axis=0).astype(np.float32)


LAYOUTS = {1: "mono", 2: "stereo", 6: "5.1"}


class _Pipe:
    """A write-only stream that cannot seek, as a pipe or a live download: the muxer cannot go back to fill in
    its header, so a Matroska/WebM file gets no duration and no seek index (cues)."""

    def __init__(self, path: Path):
        self.handle = open(path, "wb")

    def write(self, data) -> int:
        return self.handle.write(data)

    def close(self) -> None:
        self.handle.close()


AV1_ENCODERS = ("libsvtav1", "libaom-av1", "librav1e")


def av1_encoder() -> str | None:
    """The first AV1 encoder this PyAV build has, or None."""
    return next((codec for codec in AV1_ENCODERS if codec in av.codecs_available), None)


def write_media(path: str | Path, frames: np.ndarray | None = None, fps: float = 8,
                audio: list[np.ndarray] | None = None, sample_rate: int = 16000, video_codec: str = "libx264",
                audio_codec: str = "aac", frame_times: list[float] | None = None, options: dict | None = None,
                container_format: str | None = None, seekable: bool = True) -> Path:
    """Write a file with one video stream (frames (T, H, W, 3) uint8) and one audio stream per entry of `audio`
    ((channels, samples) float each). frame_times: each frame's presentation time in seconds (variable rate).
    options: muxer options, e.g. {"movflags": "faststart"}. seekable=False writes through a pipe (see `_Pipe`);
    it needs container_format, as a pipe has no file name to tell the format by."""
    path = Path(path)
    target = str(path) if seekable else _Pipe(path)
    with av.open(target, "w", format=container_format, options=options or {}) as container:
        video = None
        if frames is not None:
            video = container.add_stream(video_codec, rate=Fraction(fps).limit_denominator(1000))
            video.height, video.width = frames.shape[1:3]
            video.pix_fmt = "yuv420p"
            if frame_times is not None:
                video.codec_context.time_base = Fraction(1, 1000)  # millisecond timestamps
        audio_streams = [container.add_stream(audio_codec, rate=sample_rate, layout=LAYOUTS[len(waveform)])
                         for waveform in audio or []]
        if video is not None:
            for index, frame in enumerate(frames):
                picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24").reformat(
                    format="yuv420p")
                picture.pts = index if frame_times is None else int(round(frame_times[index] * 1000))
                if frame_times is not None:
                    picture.time_base = Fraction(1, 1000)
                container.mux(video.encode(picture))
            container.mux(video.encode())
        for stream, waveform in zip(audio_streams, audio or []):
            for start in range(0, waveform.shape[1], 1024):
                chunk = av.AudioFrame.from_ndarray(np.ascontiguousarray(waveform[:, start:start + 1024]),
                                                   format="fltp", layout=LAYOUTS[len(waveform)])
                chunk.sample_rate, chunk.pts = sample_rate, start
                container.mux(stream.encode(chunk))
            container.mux(stream.encode())
    if not seekable:
        target.close()
    return path


def write_wav(path: str | Path, waveform: np.ndarray, sample_rate: int, codec: str = "pcm_s16le") -> Path:
    """(channels, samples) float -> an audio-only file (wav, flac, ...) by its extension."""
    return write_media(path, audio=[waveform], sample_rate=sample_rate, audio_codec=codec)


def truncate(path: str | Path, fraction: float) -> Path:
    """Cut a file to `fraction` of its bytes, as an interrupted download leaves it."""
    path = Path(path)
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * fraction)])
    return path
