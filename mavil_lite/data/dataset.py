"""Manifest in, in-memory tensors out: a labelled clip collection decoded once, then served from memory.

A manifest is a CSV with a `file` column (paths relative to the manifest, or absolute), a label column
(space-separated class names, so one clip can carry several labels, as in AudioSet; a manifest without labels is
fine for pre-training) and optionally a `split` column (`train` / `test`). Clips without a split get one from a
hash of their file name, so the assignment is stable across runs and machines and does not depend on row order.

Small datasets fit in memory, and decoding (the slow part on a CPU) then happens once instead of every epoch:
`decode_manifest` turns every clip into a normalised fbank (N, 1, T, F) and uint8 frames (N, T, H, W, 3). Frames
stay uint8 (a quarter of the memory of float32) and are normalised per batch by `ClipTensors.batch`.

Bad clips do not stop the decoding (`clip_check`): unusable ones are left out and counted, and a clip usable for
one modality only is kept with that modality marked missing in `has_audio` / `has_video` (its tensor is zeros),
so a model or a loss can leave it out instead of learning from silence or black frames.
"""
from __future__ import annotations

import csv
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from .clip_check import MODALITIES, CheckedClip, check_clip
from .media import (
    FeatureSpec,
    frames_to_tensor,
    load_frames,
    load_waveform,
    normalize_fbank,
    pad_or_crop,
    waveform_to_fbank,
    window_samples,
)
from .report import StrictCheck, dataset_modalities, report_rows, summary_line, write_report
from .workers import parallel_map, single_torch_thread, worker_pool


def read_manifest(path: str | Path, label_column: str | None = "labels") -> list[dict]:
    """Read a manifest CSV into records with keys 'path' (absolute), 'labels' (list[str]), 'split', 'row'.

    label_column=None reads a manifest without labels (every record gets an empty label list).
    """
    path = Path(path).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such manifest")
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        if "file" not in columns:
            raise ValueError(f"{path}: no 'file' column; the columns are {columns}")
        if label_column is not None and label_column not in columns:
            raise ValueError(f"{path}: no label column {label_column!r}; the columns are {columns}")
        rows = list(reader)
    records = []
    for row in rows:
        # Path's / keeps an absolute file path as it is and anchors a relative one at the manifest's folder;
        # normpath folds "../" away, so a clip has one spelling in reports and caches
        clip_path = os.path.normpath(path.parent / row["file"])
        labels = (row.get(label_column) or "").split() if label_column else []
        records.append({"path": str(clip_path), "labels": labels,
                        "split": (row.get("split") or "").strip() or None, "row": row})
    return records


def manifest_columns(path: str | Path) -> list[str]:
    """The header of a manifest CSV."""
    with open(path, newline="") as handle:
        return next(csv.reader(handle), [])


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


def multi_hot(records: list[dict]) -> tuple[Tensor, list[str]]:
    """(N, C) float32 multi-hot targets of the records' labels, and the C class names (sorted)."""
    classes = sorted({label for record in records for label in record["labels"]})
    class_index = {name: position for position, name in enumerate(classes)}
    targets = torch.zeros(len(records), len(classes))  # (N, C)
    for row, record in enumerate(records):
        for label in record["labels"]:
            targets[row, class_index[label]] = 1.0
    return targets, classes


def _take(tensor: Tensor, index: Tensor) -> Tensor:
    """tensor[index], except that a broadcast placeholder (a modality the dataset lacks) stays one clip big."""
    if tensor.dim() > 0 and tensor.stride(0) == 0:
        return tensor[:1].expand(len(index), *tensor.shape[1:])
    return tensor[index]


def split_rows(splits: list[str], split: str | tuple[str, ...]) -> list[int]:
    """The rows whose split is ``split`` (or one of several, e.g. ``("train", "unlabelled")``); an error naming the
    splits there are when there is none."""
    wanted = (split,) if isinstance(split, str) else tuple(split)
    rows = [row for row, clip_split in enumerate(splits) if clip_split in wanted]
    if not rows:
        raise ValueError(f"no clips in split {split!r}; the splits are {sorted(set(splits))}")
    return rows


def present_modalities(has_audio: Tensor, has_video: Tensor) -> tuple[str, ...]:
    """The modalities that at least one clip has, from the (N,) flags."""
    present = {"audio": bool(has_audio.any()), "video": bool(has_video.any())}
    return tuple(modality for modality in MODALITIES if present[modality])


@dataclass
class ClipTensors:
    """A decoded dataset held in memory, N clips aligned across all fields."""
    audio: Tensor      # (N, 1, T, F) float32, normalised fbank
    video: Tensor      # (N, T, H, W, 3) uint8
    targets: Tensor    # (N, C) float32 multi-hot
    classes: list[str]
    splits: list[str]
    files: list[str]
    has_audio: Tensor | None = None  # (N,) bool: False where the clip has no usable audio (audio is zeros there)
    has_video: Tensor | None = None  # (N,) bool: the same for the video
    # kept only when asked (fine-tuning's waveform mixup): the sound the fbank was computed from, 16 kHz
    waveforms: Tensor | None = None         # (N, S) float32, zero after each clip's length; S covers the fbank window
    waveform_lengths: Tensor | None = None  # (N,) int64 samples
    features: FeatureSpec | None = None     # the feature spec of `audio` (and of `waveforms`, when kept)

    def __post_init__(self):
        if self.has_audio is None:
            self.has_audio = torch.ones(len(self.files), dtype=torch.bool)
        if self.has_video is None:
            self.has_video = torch.ones(len(self.files), dtype=torch.bool)

    def __len__(self) -> int:
        return len(self.files)

    @property
    def modalities(self) -> tuple[str, ...]:
        return present_modalities(self.has_audio, self.has_video)

    flags_known = True  # decoded already: every clip's modality flags are known (`clip_source.ClipSource`)
    random_windows = False  # one window per clip, decoded once

    def prefetch(self, schedule) -> None:
        """Nothing to read ahead: the clips are in memory."""

    def subset(self, split: str | tuple[str, ...]) -> "ClipTensors":
        """The clips of one split ('train' / 'test' / 'unlabelled') or several, same classes (so targets stay
        comparable)."""
        return self.select(torch.tensor(split_rows(self.splits, split)))

    def select(self, index: Tensor) -> "ClipTensors":
        """The clips at ``index`` (a 1-D tensor of row numbers), in that order, same classes."""
        positions = index.tolist()
        waveforms = (None, None) if self.waveforms is None else (self.waveforms[index], self.waveform_lengths[index])
        return ClipTensors(_take(self.audio, index), _take(self.video, index), self.targets[index],
                           list(self.classes), [self.splits[i] for i in positions], [self.files[i] for i in positions],
                           self.has_audio[index], self.has_video[index], *waveforms, self.features)

    def batch(self, index) -> tuple[Tensor, Tensor, Tensor]:
        """Model-ready tensors for the clips at `index` (indices, a slice or a boolean mask).

        Returns audio (B, 1, T, F), video (B, 3, T, H, W) float normalised, targets (B, C).
        Which clips lack a modality: `has_audio[index]`, `has_video[index]`.
        """
        if isinstance(index, int):
            index = [index]
        return self.audio[index], frames_to_tensor(self.video[index]), self.targets[index]


def decode_clip(path: str, spec: FeatureSpec) -> tuple[np.ndarray, np.ndarray]:
    """One clip -> normalised fbank (1, T, F) float32 and frames (T, H, W, 3) uint8, as numpy; raises if bad.

    Numpy rather than tensors: worker processes then return plain pickled buffers instead of torch
    shared-memory handles, which would exhaust file descriptors over thousands of clips.
    """
    fbank = waveform_to_fbank(load_waveform(path, spec.sample_rate), spec)  # (T, F)
    fbank = normalize_fbank(fbank, spec.audio_mean, spec.audio_std).unsqueeze(0)  # (T, F) -> (1, T, F): one channel
    return fbank.numpy(), load_frames(path, spec).numpy()


def _decode_job(job: tuple[str, FeatureSpec, tuple[str, ...], int, bool]) -> CheckedClip:
    """check_clip, with the fbank normalised and padded and everything as numpy (cheap to pickle)."""
    path, spec, modalities, num_threads, keep_waveform = job
    clip = check_clip(path, spec, modalities, num_threads=num_threads)
    clip.waveform = clip.waveform[0, :window_samples(spec)].numpy() if keep_waveform and clip.fbank is not None else None
    if clip.fbank is not None:
        fbank = normalize_fbank(pad_or_crop(clip.fbank, spec.audio_frames), spec.audio_mean, spec.audio_std)
        clip.fbank = fbank.unsqueeze(0).numpy()  # (T, F) -> (1, T, F): one channel
    if clip.frames is not None:
        clip.frames = clip.frames.numpy()
    return clip


class _ClipStack:
    """Decoded clips copied, as they arrive, into preallocated (N, ...) tensors, so the dataset is never held twice.

    A modality's tensor is allocated when its first clip arrives; one that never arrives ends as a broadcast zero
    clip (one clip of memory for an audio-only or video-only dataset).
    """

    def __init__(self, capacity: int, spec: FeatureSpec, keep_waveforms: bool = False):
        self.capacity, self.count = capacity, 0
        self.waveforms = torch.zeros(capacity, window_samples(spec)) if keep_waveforms else None  # (capacity, S)
        self.waveform_lengths = torch.zeros(capacity, dtype=torch.int64)  # 0 where a clip has no audio
        self.audio_shape = (1, spec.audio_frames, spec.mel_bins)
        self.video_shape = (spec.video_frames, spec.frame_size, spec.frame_size, 3)
        self.audio: Tensor | None = None  # (capacity, 1, T, F) float32
        self.video: Tensor | None = None  # (capacity, T, H, W, 3) uint8
        self.has_audio = torch.zeros(capacity, dtype=torch.bool)
        self.has_video = torch.zeros(capacity, dtype=torch.bool)

    def add(self, fbank: np.ndarray | None, frames: np.ndarray | None, waveform: np.ndarray | None = None) -> None:
        if waveform is not None and self.waveforms is not None:
            self.waveforms[self.count, :len(waveform)] = torch.from_numpy(waveform)
            self.waveform_lengths[self.count] = len(waveform)
        if fbank is not None:
            if self.audio is None:
                self.audio = torch.zeros((self.capacity, *self.audio_shape))
            self.audio[self.count], self.has_audio[self.count] = torch.from_numpy(fbank), True
        if frames is not None:
            if self.video is None:
                self.video = torch.zeros((self.capacity, *self.video_shape), dtype=torch.uint8)
            self.video[self.count], self.has_video[self.count] = torch.from_numpy(frames), True
        self.count += 1

    def tensors(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """audio (N, 1, T, F), video (N, T, H, W, 3), has_audio (N,), has_video (N,) for the N clips added."""
        n = self.count
        audio = self.audio[:n] if self.audio is not None else torch.zeros(1, *self.audio_shape).expand(n, -1, -1, -1)
        video = self.video[:n] if self.video is not None else \
            torch.zeros(1, *self.video_shape, dtype=torch.uint8).expand(n, -1, -1, -1, -1)
        return audio, video, self.has_audio[:n], self.has_video[:n]

    def waveform_tensors(self) -> tuple[Tensor | None, Tensor | None]:
        """waveforms (N, S) and their lengths (N,) when kept, else (None, None)."""
        if self.waveforms is None:
            return None, None
        return self.waveforms[:self.count], self.waveform_lengths[:self.count]


def decode_manifest(manifest_path: str | Path, spec: FeatureSpec, label_column: str | None = "labels",
                    num_workers: int = 0, progress: bool = True, test_fraction: float = 0.2, seed: int = 0,
                    strict: bool = False, modalities: tuple[str, ...] | None = None,
                    report_path: str | Path | None = None, keep_waveforms: bool = False) -> ClipTensors:
    """Decode every usable clip of a manifest once into a `ClipTensors` (classes: sorted union of all labels).

    Clips without a split are assigned one with `assign_splits(records, test_fraction, seed)`. Unusable clips are
    left out and counted (their reasons go to `report_path` when given); with `strict`, the first clip that is
    not fully usable raises `BadClipError` naming it. modalities: ('audio',), ('video',), both, or None for the
    modalities that decode in at least one clip. keep_waveforms: also keep each clip's 16 kHz waveform (the part
    the fbank window covers), for fine-tuning's waveform mixup.
    """
    records = assign_splits(read_manifest(manifest_path, label_column), test_fraction, seed)
    if not records:
        raise ValueError(f"{manifest_path}: the manifest lists no clips")
    jobs = [(record["path"], spec, modalities or MODALITIES, 1 if num_workers > 0 else 0, keep_waveforms)
            for record in records]
    checked, kept, stack = [], [], _ClipStack(len(jobs), spec, keep_waveforms)
    strict_check = StrictCheck(modalities) if strict else None
    with worker_pool(num_workers) as pool, single_torch_thread():
        decoded = parallel_map(pool, _decode_job, jobs)
        for position, clip in enumerate(tqdm(decoded, total=len(jobs), desc="decoding clips", disable=not progress)):
            if strict_check:
                strict_check.check(clip)
            if clip.usable():  # a clip is unusable only when no modality decoded
                stack.add(clip.fbank, clip.frames, clip.waveform)
                kept.append(position)
            checked.append(clip.without_features())  # copied into the stack; the outcome stays for the report
    rows = report_rows(checked, dataset_modalities(checked, modalities))
    if report_path is not None:
        write_report(report_path, rows)
    if not kept:
        raise ValueError(f"{manifest_path}: no usable clip ({summary_line(rows)}); "
                         f"first reason: {rows[0]['file']}: {rows[0]['reason']}")
    if progress or len(kept) < len(records):
        print(f"{manifest_path}: {summary_line(rows)}; skipped {len(records) - len(kept)} unusable clip(s)"
              + (f", reasons in {report_path}" if report_path else ""))
    audio, video, has_audio, has_video = stack.tensors()
    kept_records = [records[position] for position in kept]
    targets, classes = multi_hot(kept_records)
    waveforms, waveform_lengths = stack.waveform_tensors()
    return ClipTensors(audio=audio, video=video, targets=targets, classes=classes,
                       splits=[record["split"] for record in kept_records],
                       files=[record["path"] for record in kept_records], has_audio=has_audio, has_video=has_video,
                       waveforms=waveforms, waveform_lengths=waveform_lengths, features=spec)
