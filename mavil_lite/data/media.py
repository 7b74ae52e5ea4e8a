"""One clip in, model tensors out: MAViL's input pipeline for a single audio-video file.

Audio (as AudioMAE and MAViL): the soundtrack is mixed down to mono, resampled to 16 kHz explicitly (giving the
fbank another sample rate would only move its mel range, not resample), its DC offset removed, and turned into a
Kaldi-compatible log-mel filterbank (25 ms Hanning window, 10 ms shift, htk_compat, no energy, no dither),
zero-padded or cropped to a fixed number of frames (1024 = 10.24 s in the paper). The model sees it normalised
as (fbank - mean) / (2 * std), with the AudioSet statistics by default.

Video (as MAViL's public inference code): `video_frames` frames sampled at `video_fps` (8 frames at 2 fps = 4 s),
resized to frame_size x frame_size without cropping, scaled to [0, 1] and normalised with the ImageNet statistics.
A clip shorter than the window is repeated until the window is full.

Only the frames that are used are decoded (decord seeks to them, each distinct frame once, in file order), which
matters for long clips. Frames are picked by their presentation timestamps (read from the container's index, no
decoding), so a variable frame rate samples the right moments. Training draws a random window inside the clip;
evaluation uses the window at `start_s` (0 by default, as the public inference code).

decord is the decoder; where it cannot open or seek in a video (AV1 in Matroska, WebM without a duration), PyAV
reads the frames instead (`pyav_video`), at the same times and scaled the same way. `Video.decoder` says which.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import decord
import numpy as np
import torch
import torchaudio
from torch import Tensor

from .pyav_video import decode_frames, frame_stamps

AUDIOSET_MEAN = -4.2677393
AUDIOSET_STD = 4.5689974
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
FBANK_WINDOW_SAMPLES_AT_16K = 400  # 25 ms: the shortest waveform that yields one fbank frame
FBANK_SHIFT_SAMPLES_AT_16K = 160  # 10 ms between fbank frames


@dataclass
class FeatureSpec:
    """What the model is fed; the defaults are the paper's."""
    sample_rate: int = 16000
    audio_frames: int = 1024  # fbank frames at 10 ms shift
    mel_bins: int = 128
    video_frames: int = 8
    video_fps: float = 2.0
    frame_size: int = 224
    audio_mean: float = AUDIOSET_MEAN
    audio_std: float = AUDIOSET_STD


def _to_numpy(array) -> np.ndarray:
    """decord returns its own NDArray, or a torch tensor if someone set decord's bridge: accept both."""
    return array.asnumpy() if hasattr(array, "asnumpy") else np.asarray(array)


def _existing(path: str | Path) -> Path:
    """The path, checked up front: decord's own message for a missing file is cryptic."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    return path


def _explain_failure(path: Path, stream_type: str, error: Exception) -> ValueError:
    """Turn a decord failure into an error that names the file and says what is wrong with it."""
    try:
        with av.open(str(path)) as container:
            if len(container.streams) == 0:
                return ValueError(f"{path}: not an audio or video file (no streams found)")
            streams = container.streams.audio if stream_type == "audio" else container.streams.video
            if len(streams) == 0:
                return ValueError(f"{path}: has no {stream_type} stream")
    except av.error.FFmpegError as probe_error:
        return ValueError(f"{path}: not a readable media file ({probe_error})")
    return ValueError(f"{path}: could not decode its {stream_type} stream ({error})")


def load_waveform(path: str | Path, sample_rate: int = 16000) -> Tensor:
    """Read a file's soundtrack (mp4, wav, ...) as (1, samples) float32: mono, at `sample_rate`, DC removed."""
    path = _existing(path)
    try:
        # decord resamples (libswresample) and mixes the channels down while decoding
        reader = decord.AudioReader(str(path), sample_rate=sample_rate, mono=True)
        # the decoded (1, samples) array itself: the public reader[:] first builds a list of every sample index
        samples = reader._array if isinstance(getattr(reader, "_array", None), np.ndarray) else _to_numpy(reader[:])
    except (decord.DECORDError, RuntimeError) as error:
        raise _explain_failure(path, "audio", error) from None
    if samples.shape[-1] == 0:
        raise ValueError(f"{path}: its audio stream is empty")
    waveform = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))
    return waveform - waveform.mean()


def kaldi_fbank(waveform: Tensor, spec: FeatureSpec) -> Tensor:
    """(1, samples) waveform at 16 kHz -> (frames, spec.mel_bins) log-mel fbank of the sound itself, no padding.

    At most spec.audio_frames frames: the waveform is cut first, so a long clip costs no more than the window.
    """
    if waveform.shape[-1] < FBANK_WINDOW_SAMPLES_AT_16K:
        # shorter than one analysis window: pad with silence so a near-empty clip still gives one frame
        waveform = torch.nn.functional.pad(waveform, (0, FBANK_WINDOW_SAMPLES_AT_16K - waveform.shape[-1]))
    return torchaudio.compliance.kaldi.fbank(
        waveform[..., :window_samples(spec)], htk_compat=True, sample_frequency=16000, use_energy=False, window_type="hanning",
        num_mel_bins=spec.mel_bins, dither=0.0, frame_shift=10)  # (frames, mel_bins)


def window_samples(spec: FeatureSpec) -> int:
    """How many 16 kHz samples the fbank of ``spec.audio_frames`` frames reads: later samples never count."""
    return FBANK_WINDOW_SAMPLES_AT_16K + (spec.audio_frames - 1) * FBANK_SHIFT_SAMPLES_AT_16K


def pad_or_crop(fbank: Tensor, num_frames: int) -> Tensor:
    """(frames, F) -> (num_frames, F): zero rows appended in time, or the end cut off."""
    missing = num_frames - fbank.shape[0]
    if missing > 0:
        fbank = torch.nn.functional.pad(fbank, (0, 0, 0, missing))
    return fbank[:num_frames]


def waveform_to_fbank(waveform: Tensor, spec: FeatureSpec) -> Tensor:
    """(1, samples) waveform at 16 kHz -> (spec.audio_frames, spec.mel_bins) log-mel fbank, not normalised."""
    return pad_or_crop(kaldi_fbank(waveform, spec), spec.audio_frames)


def normalize_fbank(fbank: Tensor, mean: float = AUDIOSET_MEAN, std: float = AUDIOSET_STD) -> Tensor:
    """Any-shape fbank -> the same shape, scaled as AudioMAE/MAViL do: (fbank - mean) / (2 * std)."""
    return (fbank - mean) / (2 * std)


def _uneven(intervals: np.ndarray) -> bool:
    """Whether frame intervals differ by more than the rounding of a container's time base."""
    if len(intervals) < 2:
        return False
    return float(intervals.max() - intervals.min()) > max(0.002, 0.1 * float(np.median(intervals)))


# What each model size eats (mavil_lite.model.mavil.MODEL_SIZES); the audio/video sizes must match the model's.
FEATURES = {
    "tiny": FeatureSpec(audio_frames=384, mel_bins=64, video_frames=4, video_fps=1.0, frame_size=64),
    "small": FeatureSpec(audio_frames=512, mel_bins=128, video_frames=8, video_fps=2.0, frame_size=112),
    "base": FeatureSpec(),  # the paper's: 1024 x 128 fbank, 8 frames at 2 fps, 224 px
}


@dataclass
class FrameTiming:
    """When a video's frames are shown, from the container's index (no frame is decoded to learn it)."""
    starts_s: np.ndarray  # (frames,) presentation time of each frame, the first at 0
    duration_s: float     # until the last frame stops being shown
    seekable: bool = True  # False when the index has no timestamps: decord's seeks then land on frame 0

    @property
    def frame_durations_s(self) -> np.ndarray:
        """(frames - 1,) how long each frame but the last is shown."""
        return np.diff(self.starts_s)

    @property
    def is_variable_rate(self) -> bool:
        """True when frames are not evenly spaced (beyond the rounding of the container's time base)."""
        return _uneven(self.frame_durations_s)

    def indices_at(self, times_s: np.ndarray) -> np.ndarray:
        """(K,) frame numbers shown at times (K,) seconds; times past the end wrap around (the clip repeats)."""
        wrapped = np.mod(times_s, self.duration_s)
        # the frame on screen at t is the last one that started at or before t (1 us absorbs float rounding)
        return np.clip(np.searchsorted(self.starts_s, wrapped + 1e-6, side="right") - 1, 0, len(self.starts_s) - 1)


def frame_timing(reader: decord.VideoReader) -> FrameTiming:
    """The presentation times of every frame of an open decord reader: exact for variable frame rates too."""
    return timing_from_stamps(reader.get_frame_timestamp(range(len(reader))), reader.get_avg_fps())


def timing_from_stamps(stamps: np.ndarray, average_fps: float) -> FrameTiming:
    """(frames, 2) start and end second of each frame, in presentation order, and the average frame rate the
    container declares -> when each frame is shown (decord's index and PyAV's packets give the same times)."""
    starts = stamps[:, 0] - stamps[0, 0]
    later = np.diff(starts[1:])  # every interval but the first: for AVI, decord puts all later frames one frame late
    if len(later) > 0 and later.min() > 0 and not _uneven(later):
        # constant rate: an even grid at that rate (fixing the first frame's time) is what the container means
        period = float(np.median(later))
        return FrameTiming(np.arange(len(starts)) * period, len(starts) * period)
    if len(starts) > 1 and np.all(np.diff(starts) > 0):
        # the last frame lasts as long as the index says, and at least as long as the one before it (muxers often
        # give the last sample a default duration, which would make a variable-rate clip end early)
        end = float(stamps[-1, 1] - stamps[0, 0])
        return FrameTiming(starts, max(end, float(2 * starts[-1] - starts[-2])))
    # no usable timestamps (MPEG program streams, a single frame): the average rate the container declares
    fps = average_fps or 25.0
    return FrameTiming(np.arange(len(stamps)) / fps, len(stamps) / fps, seekable=len(stamps) == 1)


def window_times(spec: FeatureSpec, start_s: float = 0.0) -> np.ndarray:
    """(spec.video_frames,) the times at which the window samples a frame."""
    return start_s + np.arange(spec.video_frames) / spec.video_fps


def random_window_start(duration_s: float, spec: FeatureSpec, rng: np.random.Generator) -> float:
    """A uniformly random window start that keeps the window inside the clip (0 when the clip is shorter)."""
    window_s = spec.video_frames / spec.video_fps
    return float(rng.uniform(0.0, max(0.0, duration_s - window_s)))


@dataclass
class Video:
    """A video ready to decode: when its frames are shown, and the decoder that reads them."""
    path: Path
    spec: FeatureSpec
    timing: FrameTiming
    reader: decord.VideoReader | None  # None once decord has failed on the file: PyAV reads it
    num_threads: int = 0

    @property
    def decoder(self) -> str:
        """'decord', or 'pyav' for a video decord cannot open or seek in."""
        return "decord" if self.reader is not None else "pyav"

    def read_window(self, start_s: float) -> Tensor:
        """Decode the window's frames only: uint8 (spec.video_frames, frame_size, frame_size, 3), RGB.

        Each distinct frame is decoded once, in file order: a repeated short clip asks for the same frames again
        and going backwards would make decord seek back to a key frame.
        """
        if self.reader is not None:
            try:
                return self._window(start_s, self._decord_frames)
            except (decord.DECORDError, RuntimeError) as error:  # opened, but a seek failed: PyAV from here on
                self.reader, self.timing = None, _pyav_timing(self.path, error)
        return self._window(start_s, self._pyav_frames)

    def _window(self, start_s: float, decode) -> Tensor:
        """The window's frames, given a decoder of sorted distinct frame numbers -> (distinct, H, W, 3) frames."""
        indices = self.timing.indices_at(window_times(self.spec, start_s))  # (video_frames,)
        distinct, position = np.unique(indices, return_inverse=True)  # sorted distinct frames, where each goes
        frames = decode(distinct)  # (distinct, H, W, 3)
        return torch.from_numpy(np.ascontiguousarray(frames[position], dtype=np.uint8))

    def _decord_frames(self, distinct: np.ndarray) -> np.ndarray:
        """Sorted distinct frame numbers (D,) -> uint8 (D, H, W, 3) frames, by decord."""
        if self.timing.seekable:
            return _to_numpy(self.reader.get_batch(distinct.tolist()))  # (distinct, H, W, 3)
        # decode in order up to the last frame needed, as seeking would return frame 0
        return _to_numpy(self.reader.get_batch(list(range(distinct[-1] + 1))))[distinct]  # (distinct, H, W, 3)

    def _pyav_frames(self, distinct: np.ndarray) -> np.ndarray:
        """Sorted distinct frame numbers (D,) -> uint8 (D, H, W, 3) frames, by PyAV."""
        try:
            return decode_frames(self.path, distinct, self.spec.frame_size, self.num_threads)  # (distinct, H, W, 3)
        except av.error.FFmpegError as error:
            raise ValueError(f"{self.path}: could not decode video frames {distinct.tolist()} ({error})") from None


def _pyav_timing(path: Path, decord_error: Exception) -> FrameTiming:
    """The frame times PyAV reads from the file's packets; decord's failure explained when PyAV fails too."""
    try:
        return timing_from_stamps(*frame_stamps(path))
    except (av.error.FFmpegError, ValueError):
        raise _explain_failure(path, "video", decord_error) from None


def open_video(path: str | Path, spec: FeatureSpec, num_threads: int = 0) -> Video:
    """The file's video, scaled to the spec's size while decoding (full-size frames never exist): read by decord,
    or by PyAV where decord cannot open it.

    num_threads: decoder threads, 0 = as many as cores; give 1 in worker processes, which are the parallelism.
    """
    path = _existing(path)
    try:
        reader = decord.VideoReader(str(path), width=spec.frame_size, height=spec.frame_size, num_threads=num_threads)
        return Video(path, spec, frame_timing(reader), reader, num_threads)
    except (decord.DECORDError, RuntimeError, AssertionError) as error:
        return Video(path, spec, _pyav_timing(path, error), None, num_threads)


def load_frames(path: str | Path, spec: FeatureSpec, start_s: float = 0.0, rng: np.random.Generator | None = None,
                num_threads: int = 0) -> Tensor:
    """Decode the sampled frames only: uint8 (spec.video_frames, frame_size, frame_size, 3), RGB.

    Frames are picked by their timestamps, so a variable frame rate still samples the right moments. The window
    starts at start_s, or at a random time inside the clip when rng is given (training windows).
    """
    video = open_video(path, spec, num_threads)
    if rng is not None:
        start_s = random_window_start(video.timing.duration_s, spec, rng)
    return video.read_window(start_s)


def frames_to_tensor(frames: Tensor) -> Tensor:
    """uint8 frames (T, H, W, 3) -> float32 (3, T, H, W), or a batch (B, T, H, W, 3) -> (B, 3, T, H, W).

    Scaled to [0, 1] and normalised with the ImageNet mean and std, channel-first as Conv3d expects.
    """
    if frames.dim() not in (4, 5) or frames.shape[-1] != 3:
        raise ValueError(f"expected (T, H, W, 3) or (B, T, H, W, 3) frames, got shape {tuple(frames.shape)}")
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1, 1)  # (3, 1, 1, 1): broadcasts over T, H, W
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1, 1)
    channels_first = frames.movedim(-1, -4)  # (..., T, H, W, 3) -> (..., 3, T, H, W)
    return (channels_first.float() / 255.0 - mean) / std


def tensor_to_frames(video: Tensor) -> Tensor:
    """Inverse of :func:`frames_to_tensor`, for looking at model inputs and outputs.

    float (3, T, H, W) -> uint8 (T, H, W, 3), or a batch (B, 3, T, H, W) -> (B, T, H, W, 3). Values are
    un-normalised with the ImageNet statistics and clipped to [0, 255] (a reconstruction may overshoot).
    """
    if video.dim() not in (4, 5) or video.shape[-4] != 3:
        raise ValueError(f"expected (3, T, H, W) or (B, 3, T, H, W) video, got shape {tuple(video.shape)}")
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1, 1)
    pixels = (video.detach().float().cpu() * std + mean) * 255.0
    return pixels.round().clamp(0, 255).to(torch.uint8).movedim(-4, -1)  # (..., 3, T, H, W) -> (..., T, H, W, 3)


def sampled_frame_times(path: str | Path, spec: FeatureSpec, start_s: float = 0.0) -> list[float]:
    """When each frame that ``load_frames(path, spec, start_s)`` returns is shown in the source video, in seconds.

    The presentation times of the frames the window picks (:meth:`FrameTiming.indices_at`), so a short clip
    that wraps around shows its repeated times, and a variable frame rate its real ones.
    """
    timing = open_video(path, spec).timing
    indices = timing.indices_at(window_times(spec, start_s))  # (video_frames,)
    return [float(timing.starts_s[index]) for index in indices]
