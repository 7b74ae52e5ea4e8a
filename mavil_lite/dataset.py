"""Manifest in, in-memory tensors out: a labelled clip collection decoded once, then served from memory.

A manifest is a CSV with a `file` column (paths relative to the manifest, or absolute), a label column
(space-separated class names, so one clip can carry several labels, as in AudioSet) and optionally a `split`
column (`train` / `test`). Clips without a split get one from a hash of their file name, so the assignment is
stable across runs and machines and does not depend on row order.

Small datasets fit in memory, and decoding (the slow part on a CPU) then happens once instead of every epoch:
`decode_manifest` turns every clip into a normalised fbank (N, 1, T, F) and uint8 frames (N, T, H, W, 3). Frames
stay uint8 (a quarter of the memory of float32) and are normalised per batch by `ClipTensors.batch`.
"""
from __future__ import annotations

import csv
import hashlib
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from mavil_lite.media import FeatureSpec, frames_to_tensor, load_frames, load_waveform, normalize_fbank, \
    waveform_to_fbank


def read_manifest(path: str | Path, label_column: str = "labels") -> list[dict]:
    """Read a manifest CSV into records with keys 'path' (absolute), 'labels' (list[str]), 'split', 'row'."""
    path = Path(path).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such manifest")
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        if "file" not in columns:
            raise ValueError(f"{path}: no 'file' column; the columns are {columns}")
        if label_column not in columns:
            raise ValueError(f"{path}: no label column {label_column!r}; the columns are {columns}")
        rows = list(reader)
    records = []
    for row in rows:
        # Path's / keeps an absolute file path as it is and anchors a relative one at the manifest's folder
        clip_path = path.parent / row["file"]
        records.append({"path": str(clip_path), "labels": (row.get(label_column) or "").split(),
                        "split": (row.get("split") or "").strip() or None, "row": row})
    return records


def _hash_fraction(name: str, seed: int) -> float:
    """A number in [0, 1) fixed by (name, seed): the same on every machine, unlike Python's hash()."""
    digest = hashlib.sha1(f"{seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2 ** 64


def assign_splits(records: list[dict], test_fraction: float = 0.2, seed: int = 0) -> list[dict]:
    """Give every record without a 'split' one ('test' for about test_fraction of them); returns the records."""
    for record in records:
        if not record.get("split"):
            is_test = _hash_fraction(Path(record["path"]).name, seed) < test_fraction
            record["split"] = "test" if is_test else "train"
    return records


@dataclass
class ClipTensors:
    """A decoded dataset held in memory, N clips aligned across all fields."""
    audio: Tensor      # (N, 1, T, F) float32, normalised fbank
    video: Tensor      # (N, T, H, W, 3) uint8
    targets: Tensor    # (N, C) float32 multi-hot
    classes: list[str]
    splits: list[str]
    files: list[str]

    def __len__(self) -> int:
        return len(self.files)

    def subset(self, split: str) -> "ClipTensors":
        """The clips of one split ('train' / 'test'), same classes (so targets stay comparable)."""
        keep = [index for index, clip_split in enumerate(self.splits) if clip_split == split]
        if not keep:
            raise ValueError(f"no clips in split {split!r}; the splits are {sorted(set(self.splits))}")
        return self._select(torch.tensor(keep))

    def _select(self, index: Tensor) -> "ClipTensors":
        positions = index.tolist()
        return ClipTensors(self.audio[index], self.video[index], self.targets[index], list(self.classes),
                           [self.splits[i] for i in positions], [self.files[i] for i in positions])

    def batch(self, index) -> tuple[Tensor, Tensor, Tensor]:
        """Model-ready tensors for the clips at `index` (indices, a slice or a boolean mask).

        Returns audio (B, 1, T, F), video (B, 3, T, H, W) float normalised, targets (B, C).
        """
        if isinstance(index, int):
            index = [index]
        return self.audio[index], frames_to_tensor(self.video[index]), self.targets[index]


def decode_clip(path: str, spec: FeatureSpec) -> tuple[np.ndarray, np.ndarray]:
    """One clip -> normalised fbank (1, T, F) float32 and frames (T, H, W, 3) uint8, as numpy.

    Numpy rather than tensors: worker processes then return plain pickled buffers instead of torch
    shared-memory handles, which would exhaust file descriptors over thousands of clips.
    """
    fbank = waveform_to_fbank(load_waveform(path, spec.sample_rate), spec)  # (T, F)
    fbank = normalize_fbank(fbank, spec.audio_mean, spec.audio_std).unsqueeze(0)  # (T, F) -> (1, T, F): one channel
    return fbank.numpy(), load_frames(path, spec).numpy()


@contextmanager
def _single_torch_thread():
    """One clip's fbank is too small to split across threads: on a busy CPU, waiting for the other threads
    made it 40x slower (0.12 s instead of 3 ms). Parallelism comes from worker processes instead."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _decode_job(job: tuple[str, FeatureSpec]) -> tuple[np.ndarray, np.ndarray]:
    return decode_clip(*job)


def decode_manifest(manifest_path: str | Path, spec: FeatureSpec, label_column: str = "labels",
                    num_workers: int = 0, progress: bool = True, test_fraction: float = 0.2,
                    seed: int = 0) -> ClipTensors:
    """Decode every clip of a manifest once into a `ClipTensors` (classes: sorted union of all labels).

    Clips without a split are assigned one with `assign_splits(records, test_fraction, seed)`.
    """
    records = assign_splits(read_manifest(manifest_path, label_column), test_fraction, seed)
    if not records:
        raise ValueError(f"{manifest_path}: the manifest lists no clips")
    classes = sorted({label for record in records for label in record["labels"]})
    jobs = [(record["path"], spec) for record in records]
    bar = dict(total=len(jobs), desc="decoding clips", disable=not progress)
    audio = video = None
    # spawn, not fork: forking a process that already runs torch threads can deadlock
    pool = ProcessPoolExecutor(num_workers, mp_context=get_context("spawn"), initializer=torch.set_num_threads,
                               initargs=(1,)) if num_workers > 0 else nullcontext()
    with pool, _single_torch_thread():
        decoded = pool.map(_decode_job, jobs, chunksize=4) if num_workers > 0 else map(_decode_job, jobs)
        for row, (fbank, frames) in enumerate(tqdm(decoded, **bar)):
            if audio is None:
                # filled in place: stacking a list of clips would hold the whole dataset in memory twice
                audio = torch.empty((len(jobs), *fbank.shape))  # (N, 1, T, F)
                video = torch.empty((len(jobs), *frames.shape), dtype=torch.uint8)  # (N, T, H, W, 3)
            audio[row], video[row] = torch.from_numpy(fbank), torch.from_numpy(frames)
    class_index = {name: position for position, name in enumerate(classes)}
    targets = torch.zeros(len(records), len(classes))  # (N, C) multi-hot
    for row, record in enumerate(records):
        for label in record["labels"]:
            targets[row, class_index[label]] = 1.0
    return ClipTensors(audio=audio, video=video, targets=targets, classes=classes,
                       splits=[record["split"] for record in records], files=[record["path"] for record in records])
