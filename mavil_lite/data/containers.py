"""Look before decoding: what a media file holds, read from its container header with PyAV.

Real datasets contain files that are missing, empty, not media at all, silent films, soundtracks without
pictures, 6-channel 48 kHz audio, variable frame rates and extra streams (a second language, subtitles, cover
art). decord decodes, but it either fails with an unhelpful message or silently picks something. Opening the
container first (it reads the header, no sample is decoded) turns each of these into a plain sentence that
names the file, and tells the decoder what it will find. It also gives the durations the container declares, so a
stream that stops early (a truncated download) can be told apart from a short clip.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import av

TARGET_CHANNELS = 1


class BadClipError(ValueError):
    """A clip that cannot be used as it is; the message names the file and says why."""

    def __init__(self, path: str | Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = str(path), reason


@dataclass
class AudioStreamInfo:
    codec: str
    sample_rate: int
    channels: int
    duration_s: float | None  # as declared by the container; None when it does not say


@dataclass
class VideoStreamInfo:
    codec: str
    width: int
    height: int
    average_fps: float | None
    duration_s: float | None


@dataclass
class MediaInfo:
    """The streams of one file: the audio and video ones a model can use, and how many others there are."""
    path: str
    size_bytes: int
    audio: list[AudioStreamInfo] = field(default_factory=list)
    video: list[VideoStreamInfo] = field(default_factory=list)
    other_streams: list[str] = field(default_factory=list)  # e.g. ["subtitle", "cover picture"]
    duration_s: float | None = None  # the container's own duration

    @property
    def stream_count(self) -> int:
        return len(self.audio) + len(self.video) + len(self.other_streams)

    def declared_duration_s(self, kind: str) -> float | None:
        """How long the first stream of `kind` ('audio' / 'video') should last, or the container's duration."""
        streams = self.audio if kind == "audio" else self.video
        if streams and streams[0].duration_s:
            return streams[0].duration_s
        return self.duration_s

    def notes(self, sample_rate: int) -> list[str]:
        """What decoding will silently fix for this file: conversions and the choice of one stream among several."""
        notes = []
        if self.stream_count > 1 and (len(self.audio) > 1 or len(self.video) > 1 or self.other_streams):
            parts = [f"{len(self.audio)} audio", f"{len(self.video)} video"] + self.other_streams
            notes.append(f"{self.stream_count} streams ({', '.join(parts)}): used the default audio and video stream")
        if self.audio:
            first = self.audio[0]
            changes = []
            if first.sample_rate != sample_rate:
                changes.append(f"resampled {first.sample_rate} Hz -> {sample_rate} Hz")
            if first.channels != TARGET_CHANNELS:
                changes.append(f"mixed {first.channels} channels down to mono")
            if changes:
                notes.append("audio " + " and ".join(changes))
        return notes


def _seconds(stream: av.stream.Stream) -> float | None:
    """The stream's declared duration: from its header, or from the DURATION tag Matroska/WebM muxers write."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    tag = stream.metadata.get("DURATION") or stream.metadata.get("duration")  # e.g. "00:00:04.000000000"
    try:
        hours, minutes, seconds = tag.split(":")
        return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    except (AttributeError, ValueError):
        return None


def inspect_media(path: str | Path) -> MediaInfo:
    """Read a file's container header: its streams, their formats and declared durations.

    Raises BadClipError (naming the file) when the file is missing, empty, not a readable container, or holds no
    audio and no video stream.
    """
    path = Path(path)
    if not path.is_file():
        raise BadClipError(path, "missing file")
    size = path.stat().st_size
    if size == 0:
        raise BadClipError(path, "empty file (0 bytes)")
    info = MediaInfo(path=str(path), size_bytes=size)
    try:
        with av.open(str(path)) as container:
            if container.duration is not None:
                info.duration_s = container.duration / av.time_base
            for stream in container.streams:
                if stream.type == "audio":
                    context = stream.codec_context
                    info.audio.append(AudioStreamInfo(context.name, context.sample_rate, context.channels,
                                                      _seconds(stream)))
                elif stream.type == "video" and stream.disposition & av.stream.Disposition.attached_pic:
                    info.other_streams.append("cover picture")  # an album cover is not a video
                elif stream.type == "video":
                    rate = stream.average_rate or stream.guessed_rate
                    info.video.append(VideoStreamInfo(stream.codec_context.name, stream.codec_context.width,
                                                      stream.codec_context.height, float(rate) if rate else None,
                                                      _seconds(stream)))
                else:
                    info.other_streams.append(stream.type)
    except (av.error.FFmpegError, UnicodeDecodeError) as error:
        # the message without the file name, which PyAV appends and report.csv has in its own column
        raise BadClipError(path, f"unreadable container ({getattr(error, 'strerror', None) or error})") from None
    if not info.audio and not info.video:
        raise BadClipError(path, "no audio or video stream")
    return info
