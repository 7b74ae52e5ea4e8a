"""Training from disk: clips read by DataLoader workers while the model trains, for datasets that do not fit in
memory (at the paper's feature size a clip is 1.7 MB of tensors: AudioSet-2M would need 3.4 TB).

`StreamedClips` offers what the trainers use of `ClipTensors` (`batch`, `targets`, `splits`, `subset`,
`modalities`), so `pretrain` and `finetune` take either. It reads a feature cache (`stream_cache`) or the media
files themselves (`stream_files`, with a fresh random video window in every epoch).

The engine knows the whole clip order in advance (a function of seed and epoch), so before the first step it hands
this process's schedule to `StreamedClips.prefetch`: the workers then read the next batches while the current one
trains, and `batch(index)` takes them in turn. A `batch` call outside that schedule (evaluation, the stage-2 target
pass) reads its clips in this process, with the evaluation window.

Which clips lack a modality: a cache records it, so `has_audio` / `has_video` are known before training; a media
file shows it only when decoded, so every `batch` call sets the flags of the clips it read (`flags_known` False).
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, default_collate

from .cache_reader import CachedClips
from .clip_check import check_clip
from .clip_source import MicroBatch
from .dataset import present_modalities, read_manifest, split_rows
from .media import FeatureSpec, frames_to_tensor
from .raw_clips import RawClips


class _Draws(Dataset):
    """Items addressed as (row, draw): row of the StreamedClips, draw number of the training schedule or None.
    The dataset is a `CachedClips` or a `RawClips` (anything with ``read(index, draw)``)."""

    def __init__(self, dataset: Dataset, positions: list[int]):
        self.dataset, self.positions = dataset, positions

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, address: tuple[int, int | None]) -> dict[str, Tensor]:
        row, draw = address
        position = self.positions[row]
        item = self.dataset.read(position, draw)
        return {"audio": item["audio"], "video": item["video"], "has_audio": item["has_audio"],
                "has_video": item["has_video"], "row": row}


class StreamedClips:
    """N clips on disk, read a batch at a time. ``batch(index)`` returns what `ClipTensors.batch` does: audio
    (B, 1, T, F) normalised, video (B, 3, T, H, W) normalised, targets (B, C); and sets ``has_audio[index]``,
    ``has_video[index]`` (N,) bool to what the reads found."""

    def __init__(self, dataset: Dataset, targets: Tensor, classes: list[str], splits: list[str], files: list[str],
                 has_audio: Tensor, has_video: Tensor, features: FeatureSpec, num_workers: int = 0,
                 positions: list[int] | None = None):
        """dataset: `CachedClips` or `RawClips` over every clip; positions: which of its clips these N are."""
        self.dataset, self.targets, self.classes, self.splits, self.files = dataset, targets, classes, splits, files
        self.has_audio, self.has_video, self.features, self.num_workers = has_audio, has_video, features, num_workers
        self.positions = list(range(len(files))) if positions is None else positions
        self.waveforms = None  # no sounds kept: fine-tuning's mixup mixes the fbanks (see finetune.mix_audio)
        self._ahead: Iterator[dict[str, Tensor]] | None = None  # the workers' batches, in schedule order
        self._next: dict[str, Tensor] | None = None  # the first of them, taken out to compare with a request
        self.read_here = 0  # clips read in this process, outside the read-ahead

    def __len__(self) -> int:
        return len(self.files)

    @property
    def modalities(self) -> tuple[str, ...]:
        return present_modalities(self.has_audio, self.has_video)

    @property
    def flags_known(self) -> bool:
        """Whether ``has_audio`` / ``has_video`` hold before any read: a cache records them; media files
        (`RawClips`) show a missing modality only when decoded."""
        return not isinstance(self.dataset, RawClips)

    @property
    def random_windows(self) -> bool:
        """Whether training reads cut a fresh random video window per draw (media files with video), so a clip's
        input differs between epochs and from the evaluation window."""
        return isinstance(self.dataset, RawClips) and "video" in self.dataset.modalities

    def subset(self, split: str) -> "StreamedClips":
        """The clips of one split, same classes."""
        keep = split_rows(self.splits, split)
        return StreamedClips(self.dataset, self.targets[keep], self.classes, [self.splits[r] for r in keep],
                             [self.files[r] for r in keep], self.has_audio[keep], self.has_video[keep],
                             self.features, self.num_workers, [self.positions[r] for r in keep])

    def prefetch(self, schedule: Iterator[MicroBatch] | None) -> None:
        """Start reading ``schedule``'s batches ahead in ``num_workers`` processes; None stops and frees them."""
        self._ahead, self._next = None, None  # dropping the iterator shuts its workers down
        if schedule is None:
            return
        addresses = ([(row, draw) for row, draw in zip(part.index.tolist(), part.draws.tolist())] for part in schedule)
        loader = DataLoader(_Draws(self.dataset, self.positions), batch_sampler=addresses,
                            num_workers=self.num_workers, collate_fn=default_collate,
                            prefetch_factor=4 if self.num_workers else None)
        self._ahead = iter(loader)

    def _prefetched(self, index: Tensor) -> dict[str, Tensor] | None:
        if self._next is None and self._ahead is not None:
            self._next = next(self._ahead, None)
        if self._next is not None and torch.equal(self._next["row"], index):
            items, self._next = self._next, None
            return items
        return None

    def batch(self, index) -> tuple[Tensor, Tensor, Tensor]:
        """Model-ready tensors of the clips at ``index`` (a sequence or tensor of rows)."""
        index = torch.as_tensor(index).reshape(-1)
        items = self._prefetched(index)
        if items is None:  # not the next scheduled batch: read it here, evaluation window
            items = default_collate([_Draws(self.dataset, self.positions)[(row, None)] for row in index.tolist()])
            self.read_here += len(index)
        self.has_audio[index], self.has_video[index] = items["has_audio"], items["has_video"]
        return items["audio"], frames_to_tensor(items["video"]), self.targets[index]


def stream_cache(cache_dir: str | Path, num_workers: int = 0) -> StreamedClips:
    """Every clip of a feature cache (made by `mavil-lite prepare`), read as training asks for it."""
    dataset = CachedClips(cache_dir)
    reader = dataset.reader
    rows = reader.rows
    return StreamedClips(dataset, reader.targets, reader.classes, [row["split"] for row in rows],
                         [row["file"] for row in rows], torch.tensor([row["has_audio"] == "1" for row in rows]),
                         torch.tensor([row["has_video"] == "1" for row in rows]), reader.spec, num_workers)


def stream_files(manifest: str | Path, spec: FeatureSpec, label_column: str | None = "labels", num_workers: int = 0,
                 report: str | Path | None = None, modalities: tuple[str, ...] | None = None,
                 test_fraction: float = 0.2, seed: int = 0) -> StreamedClips:
    """Every clip of a manifest, decoded from its media file each time training asks for it.

    report: a `prepare` report.csv whose failed clips are left out. modalities: what the clips have; None looks
    at the first clip (an audio-only manifest such as FSDD then trains no video encoder on black frames). A clip
    that turns out to lack a modality gives zeros there, with a warning; the read sets its flag (see
    `StreamedClips.batch`), so the losses of that batch leave its missing modality out.
    """
    if modalities is None:
        first = read_manifest(manifest, None)[0]["path"]
        modalities = check_clip(first, spec).decoded
        if not modalities:
            raise ValueError(f"{manifest}: its first clip, {first}, decodes neither audio nor video; pass modalities")
        print(f"{manifest}: the first clip has {' and '.join(modalities) or 'nothing usable'}: "
              f"streaming {' and '.join(modalities)}")
    dataset = RawClips(manifest, spec, label_column, report=report, modalities=tuple(modalities), strict=False,
                       test_fraction=test_fraction, seed=seed)
    count = len(dataset)
    return StreamedClips(dataset, dataset.targets, dataset.classes, [record["split"] for record in dataset.records],
                         [record["path"] for record in dataset.records],
                         torch.full((count,), "audio" in modalities), torch.full((count,), "video" in modalities),
                         spec, num_workers)
