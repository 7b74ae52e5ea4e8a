"""Never die on one bad clip: decode a clip modality by modality, and say what was wrong with it.

`check_clip` inspects the container (`containers.inspect_media`), then decodes the audio and the video separately,
so a clip with a broken soundtrack still gives its frames and vice versa. Every outcome is a `CheckedClip`:
the features that could be decoded, the problem that cost each missing modality, and notes on what was fixed on
the way (resampling, mixing down, looping a short clip, picking frames by timestamp at a variable frame rate,
choosing one stream among several).

Whether a clip is `ok`, `partial` or `failed` depends on the dataset: a wav file has no video stream, which is
fine in an audio-only dataset (FSDD) and costs a modality in an audio-video one. `CheckedClip.status` therefore
takes the dataset's modalities.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
from torch import Tensor

from .containers import BadClipError, inspect_media
from .media import FeatureSpec, kaldi_fbank, load_waveform, open_video, random_window_start

MODALITIES = ("audio", "video")
STATUSES = ("ok", "partial", "failed")
# A stream that decodes to less than this share of its declared duration (minus codec padding) stopped early.
TRUNCATION_TOLERANCE = 0.9
CODEC_SLACK_S = 0.1  # AAC priming and frame rounding make decoded and declared lengths differ by a few frames


@dataclass
class CheckedClip:
    """One clip after a checked decode. Features are None for a modality that could not be decoded."""
    file: str
    fbank: Tensor | None = None          # (frames, F) float32 log-mel of the sound itself, not padded or normalised
    waveform: Tensor | None = None       # (1, samples) float32 at 16 kHz, mono, DC removed: what the fbank was made of
    frames: Tensor | None = None         # (video_frames, H, W, 3) uint8
    problems: dict[str, str] = field(default_factory=dict)  # modality -> why it is unusable; "file" for the clip
    notes: list[str] = field(default_factory=list)          # what was fixed; the clip is still usable
    decoded: list[str] = field(default_factory=list)        # modalities that decoded (kept without the features)
    video_decoder: str = ""  # what read the frames: 'decord', or 'pyav' where decord cannot; '' without frames

    def usable(self, modalities: tuple[str, ...] = MODALITIES) -> tuple[str, ...]:
        """The modalities among `modalities` that decoded."""
        return tuple(modality for modality in modalities if modality in self.decoded)

    def without_features(self) -> "CheckedClip":
        """The same outcome without the decoded tensors (for the report, once they are stored elsewhere)."""
        return CheckedClip(self.file, problems=self.problems, notes=self.notes, decoded=self.decoded,
                           video_decoder=self.video_decoder)

    def status(self, modalities: tuple[str, ...] = MODALITIES) -> str:
        """'ok' when every modality of the dataset decoded, 'partial' for some, 'failed' for none."""
        usable = self.usable(modalities)
        return "ok" if len(usable) == len(modalities) else "partial" if usable else "failed"

    def reason(self, modalities: tuple[str, ...] = MODALITIES) -> str:
        """One line for report.csv: what cost the clip which modality, then what was fixed."""
        usable = self.usable(modalities)
        lost = [self.problems.get(modality, f"no {modality}") for modality in modalities if modality not in usable]
        if "file" in self.problems:
            lost = [self.problems["file"]]
        elif lost and usable:
            lost[-1] += f": usable for {' and '.join(usable)} only"
        return "; ".join(lost + self.notes)


def _check_audio(path: str, spec: FeatureSpec, declared_s: float | None, clip: CheckedClip) -> None:
    """Decode the soundtrack into clip.fbank, or record why not."""
    try:
        waveform = load_waveform(path, spec.sample_rate)  # (1, samples)
    except (ValueError, RuntimeError) as error:
        clip.problems["audio"] = _decoder_problem(error, path, "audio")
        return
    decoded_s = waveform.shape[-1] / spec.sample_rate
    if declared_s and decoded_s < TRUNCATION_TOLERANCE * declared_s - CODEC_SLACK_S:
        clip.problems["audio"] = f"audio stream corrupt partway: decoded {decoded_s:.2f} s of {declared_s:.2f} s"
        return
    clip.fbank, clip.waveform = kaldi_fbank(waveform, spec), waveform  # (frames, F), (1, samples)
    clip.decoded.append("audio")
    window_s = spec.audio_frames / 100  # the fbank shifts by 10 ms
    if decoded_s < window_s - 1.0:
        clip.notes.append(f"audio {decoded_s:.2f} s shorter than the {window_s:.2f} s window: zero-padded")


def _check_video(path: str, spec: FeatureSpec, declared_s: float | None, start_s: float,
                 rng: np.random.Generator | None, num_threads: int, clip: CheckedClip) -> None:
    """Decode the window's frames into clip.frames, or record why not."""
    try:
        video = open_video(path, spec, num_threads)
        if declared_s and video.timing.duration_s < TRUNCATION_TOLERANCE * declared_s - CODEC_SLACK_S:
            clip.problems["video"] = (f"video stream corrupt partway: {video.timing.duration_s:.2f} s of frames "
                                      f"for {declared_s:.2f} s declared")
            return
        if rng is not None:
            start_s = random_window_start(video.timing.duration_s, spec, rng)
        clip.frames = video.read_window(start_s)  # (video_frames, H, W, 3)
        clip.decoded.append("video")
        clip.video_decoder = video.decoder
    except (ValueError, RuntimeError) as error:
        clip.problems["video"] = _decoder_problem(error, path, "video")
        return
    timing = video.timing  # PyAV's, if decord failed while reading
    if not timing.seekable:
        clip.notes.append("no frame timestamps to seek by: frames decoded in order up to the window's last")
    if timing.is_variable_rate:
        rates = 1.0 / timing.frame_durations_s
        clip.notes.append(f"variable frame rate ({rates.min():.1f}-{rates.max():.1f} fps): frames picked by timestamp")
    window_s = spec.video_frames / spec.video_fps
    if timing.duration_s < window_s:
        clip.notes.append(f"video {timing.duration_s:.2f} s shorter than the {window_s:.2f} s window: looped")


def _decoder_problem(error: Exception, path: str, kind: str) -> str:
    """A decoding error as a report reason: without the file name (report.csv has its own column) and without
    decord's log prefix ("[16:32:21] /github/workspace/src/video/video_reader.cc:486: Error: ")."""
    message = str(error)
    message = message[len(path) + 2:] if message.startswith(f"{path}: ") else message
    message = re.sub(r"\[[\d:]+\] \S+:\d+: (ERROR |Error: )?", "", message)
    # the container's header was fine (it was inspected first), so a stream decord cannot read is damaged
    return message.replace(f"could not decode its {kind} stream", f"{kind} stream corrupt")


def _decode_directly(path: str, spec: FeatureSpec, modalities: tuple[str, ...], start_s: float,
                     rng: np.random.Generator | None, num_threads: int) -> CheckedClip | None:
    """Decode without looking at the header first; None as soon as anything goes wrong."""
    clip = CheckedClip(file=str(path))
    try:
        if "audio" in modalities:
            clip.waveform = load_waveform(path, spec.sample_rate)  # (1, samples)
            clip.fbank = kaldi_fbank(clip.waveform, spec)  # (frames, F)
            clip.decoded.append("audio")
        if "video" in modalities:
            video = open_video(path, spec, num_threads)
            if rng is not None:
                start_s = random_window_start(video.timing.duration_s, spec, rng)
            clip.frames = video.read_window(start_s)  # (video_frames, H, W, 3)
            clip.decoded.append("video")
            clip.video_decoder = video.decoder
    except (ValueError, RuntimeError, OSError):
        return None
    return clip


def check_clip(path: str, spec: FeatureSpec, modalities: tuple[str, ...] = MODALITIES, start_s: float = 0.0,
               rng: np.random.Generator | None = None, num_threads: int = 0, inspect: bool = True) -> CheckedClip:
    """Decode what can be decoded of one clip; never raises for a bad file.

    modalities: what to decode ('audio', 'video'); a modality the file lacks is recorded, not an error.
    start_s: where the video window starts; rng: draw a random window instead (training).
    num_threads: decord's video threads (0 = all cores; 1 in worker processes).
    inspect: read the container header first, for the report (stream layout, declared durations, notes on what
    was converted). Training from raw files passes False: its clips were inspected when `prepare` wrote the report,
    and the header read costs about as much as the fbank. A clip is then inspected only when its decoding fails,
    to say why, and a stream truncated partway is not noticed.
    """
    if not inspect:
        clip = _decode_directly(str(path), spec, modalities, start_s, rng, num_threads)
        if clip is not None:
            return clip
    clip = CheckedClip(file=str(path))
    try:
        info = inspect_media(path)
    except BadClipError as error:
        clip.problems["file"] = error.reason
        return clip
    clip.notes.extend(info.notes(spec.sample_rate))
    if "audio" in modalities:
        if info.audio:
            _check_audio(str(path), spec, info.declared_duration_s("audio"), clip)
        else:
            clip.problems["audio"] = "no audio stream"
    if "video" in modalities:
        if info.video:
            _check_video(str(path), spec, info.declared_duration_s("video"), start_s, rng, num_threads, clip)
        else:
            clip.problems["video"] = "no video stream"
    return clip
