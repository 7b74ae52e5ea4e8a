"""What a source of clips offers training and evaluation, whichever way it reads them.

Two kinds of source meet `ClipSource`: clips decoded into memory once (`dataset.ClipTensors`, also what a cache is
read into) and clips streamed from disk by DataLoader workers (`streaming.StreamedClips`). Pre-training,
fine-tuning, probes and diagnostics are written against this protocol only. `MicroBatch` is the engine's plan of
which clips one step of this process reads; a streaming source reads the plan ahead (`prefetch`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Protocol, runtime_checkable

from torch import Tensor

from .media import FeatureSpec


@dataclass
class MicroBatch:
    """One micro-batch of this process, as the engine plans it: which clips, and each one's draw number."""

    index: Tensor  # (B,) clip indices
    draws: Tensor  # (B,) each clip's draw number in the run: epoch * num_clips + place in the epoch's order


@runtime_checkable
class ClipSource(Protocol):
    """N labelled clips, aligned across every field."""

    targets: Tensor  # (N, C) float32 multi-hot
    classes: list[str]
    splits: list[str]  # per clip: 'train', 'test', 'unlabelled', ...
    files: list[str]
    has_audio: Tensor  # (N,) bool: False where a clip has no usable audio
    has_video: Tensor  # (N,) bool
    features: FeatureSpec | None  # what the clips were decoded to
    waveforms: Tensor | None  # (N, S) the sound behind each fbank, when kept (fine-tuning's waveform mixup)

    def __len__(self) -> int: ...

    @property
    def modalities(self) -> tuple[str, ...]:
        """The modalities that at least one clip has."""

    @property
    def flags_known(self) -> bool:
        """Whether ``has_audio`` / ``has_video`` hold before any clip is read (media files show a missing modality
        only when decoded, so a stream of them sets the flags as it reads)."""

    @property
    def random_windows(self) -> bool:
        """Whether each training read cuts a fresh random video window, so a clip's input differs between epochs."""

    def subset(self, split: str | tuple[str, ...]) -> "ClipSource":
        """The clips of one split or several, with the same classes."""

    def batch(self, index) -> tuple[Tensor, Tensor, Tensor]:
        """Model-ready audio (B, 1, T, F), video (B, 3, T, H, W) and targets (B, C) for the clips at ``index``."""

    def prefetch(self, schedule: Iterator[MicroBatch] | None) -> None:
        """Read ``schedule``'s micro-batches ahead (None: stop); a source in memory has nothing to do."""
