"""One clip in, model tensors out: MAViL's input pipeline for a single audio-video file.

Audio (as AudioMAE and MAViL): the soundtrack is mixed down to mono, resampled to 16 kHz explicitly (giving the
fbank another sample rate would only move its mel range, not resample), its DC offset removed, and turned into a
Kaldi-compatible log-mel filterbank (25 ms Hanning window, 10 ms shift, htk_compat, no energy, no dither),
zero-padded or cropped to a fixed number of frames (1024 = 10.24 s in the paper). The model sees it normalised
as (fbank - mean) / (2 * std), with the AudioSet statistics by default.

Video (as MAViL's public inference code): `video_frames` frames sampled at `video_fps` (8 frames at 2 fps = 4 s),
resized to frame_size x frame_size without cropping, scaled to [0, 1] and normalised with the ImageNet statistics.
A clip shorter than the window is repeated until the window is full.

Only the frames that are used are decoded (decord seeks to them), which matters for long clips.
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

AUDIOSET_MEAN = -4.2677393
AUDIOSET_STD = 4.5689974
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
FBANK_WINDOW_SAMPLES_AT_16K = 400  # 25 ms: the shortest waveform that yields one fbank frame


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
        samples = _to_numpy(reader[:])  # (1, samples)
    except (decord.DECORDError, RuntimeError) as error:
        raise _explain_failure(path, "audio", error) from None
    if samples.shape[-1] == 0:
        raise ValueError(f"{path}: its audio stream is empty")
    waveform = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))
    return waveform - waveform.mean()


def waveform_to_fbank(waveform: Tensor, spec: FeatureSpec) -> Tensor:
    """(1, samples) waveform at 16 kHz -> (spec.audio_frames, spec.mel_bins) log-mel fbank, not normalised."""
    if waveform.shape[-1] < FBANK_WINDOW_SAMPLES_AT_16K:
        # shorter than one analysis window: pad with silence so a near-empty clip still gives a (padded) fbank
        waveform = torch.nn.functional.pad(waveform, (0, FBANK_WINDOW_SAMPLES_AT_16K - waveform.shape[-1]))
    fbank = torchaudio.compliance.kaldi.fbank(
        waveform, htk_compat=True, sample_frequency=16000, use_energy=False, window_type="hanning",
        num_mel_bins=spec.mel_bins, dither=0.0, frame_shift=10)  # (frames, mel_bins)
    missing = spec.audio_frames - fbank.shape[0]
    if missing > 0:
        fbank = torch.nn.functional.pad(fbank, (0, 0, 0, missing))  # zero rows appended in time
    return fbank[:spec.audio_frames]


def normalize_fbank(fbank: Tensor, mean: float = AUDIOSET_MEAN, std: float = AUDIOSET_STD) -> Tensor:
    """Any-shape fbank -> the same shape, scaled as AudioMAE/MAViL do: (fbank - mean) / (2 * std)."""
    return (fbank - mean) / (2 * std)


def frame_indices(num_source_frames: int, source_fps: float, spec: FeatureSpec, start_s: float = 0.0) -> list[int]:
    """The source frame numbers of the spec.video_frames frames taken at spec.video_fps from start_s.

    Indices past the end wrap around, so a short clip repeats (as MAViL's public inference code does).
    """
    if num_source_frames <= 0:
        raise ValueError("the video has no frames")
    times = start_s + np.arange(spec.video_frames) / spec.video_fps
    indices = np.floor(times * source_fps + 1e-6).astype(int)  # the frame being shown at each time
    return [int(index) for index in np.mod(indices, num_source_frames)]


def load_frames(path: str | Path, spec: FeatureSpec, start_s: float = 0.0) -> Tensor:
    """Decode the sampled frames only: uint8 (spec.video_frames, frame_size, frame_size, 3), RGB."""
    path = _existing(path)
    try:
        # decord scales while decoding, so full-size frames are never materialised
        reader = decord.VideoReader(str(path), width=spec.frame_size, height=spec.frame_size)
        indices = frame_indices(len(reader), reader.get_avg_fps(), spec, start_s)
        frames = _to_numpy(reader.get_batch(indices))  # (video_frames, frame_size, frame_size, 3)
    except (decord.DECORDError, RuntimeError) as error:
        raise _explain_failure(path, "video", error) from None
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
    return torch.from_numpy(np.ascontiguousarray(frames, dtype=np.uint8))


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
