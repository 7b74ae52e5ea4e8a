"""Training straight from the media files: a torch Dataset that decodes each clip when it is asked for.

The alternative to the feature cache: no preparation step and no extra disk, at the price of decoding every clip
every epoch (use DataLoader workers). It is also the only way to random video windows: the cache stores one
window per clip (the evaluation window), while `RawClips(train=True)` draws a new 4 s window inside the clip for
every item, as training does; `read(index, draw)` draws the window from the training schedule's draw number
instead, so that a run streamed by `streaming.stream_files` sees the same windows in any process and after a resume.
The audio is always the clip's first `audio_frames` x 10 ms.

Bad clips: the ones a `prepare` run recorded as failed in its report.csv are skipped up front (and counted); a
clip that fails later, or a missing modality, gives zeros with `has_audio` / `has_video` False, so a batch never
breaks; `strict=True` raises `BadClipError` naming the file instead.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from .clip_check import MODALITIES, check_clip
from .containers import BadClipError
from .dataset import assign_splits, multi_hot, read_manifest
from .media import FeatureSpec, normalize_fbank, pad_or_crop
from .report import read_report


class RawClips(Dataset):
    """Item dicts like `CachedClips`: audio (1, T, F) float32 normalised, video (T, H, W, 3) uint8, target (C,),
    has_audio, has_video, index; decoded from the media file on every access."""

    def __init__(self, manifest: str | Path, spec: FeatureSpec, label_column: str | None = "labels",
                 split: str | None = None, train: bool = False, report: str | Path | None = None,
                 modalities: tuple[str, ...] = MODALITIES, strict: bool = False, start_s: float = 0.0,
                 test_fraction: float = 0.2, seed: int = 0):
        """train: a random video window per item (else the window at start_s). report: a report.csv whose
        failed clips are skipped. modalities: what the dataset has (a clip lacking one of them is partial)."""
        records = assign_splits(read_manifest(manifest, label_column), test_fraction, seed)
        failed = set()
        if report is not None:
            failed = {file for file, entry in read_report(report).items() if entry["status"] == "failed"}
        usable = [record for record in records if record["path"] not in failed]
        if len(usable) < len(records):
            print(f"{manifest}: skipped {len(records) - len(usable)} clip(s) recorded as failed in {report}")
        self.records = [record for record in usable if split is None or record["split"] == split]
        self.targets, self.classes = multi_hot(self.records)  # (N, C)
        self.spec, self.train, self.modalities, self.strict, self.start_s = spec, train, modalities, strict, start_s
        self.seed, self.draws = seed, 0

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        """A random window in training (a new one per access: torch's per-worker seed makes workers differ)."""
        if not self.train:
            return self.read(index)
        self.draws += 1
        return self.read(index, (self.draws, torch.initial_seed() % 2 ** 32))

    def read(self, index: int, draw: int | tuple[int, ...] | None = None) -> dict[str, Tensor]:
        """The clip with its video window at `start_s` (draw None), or a random window seeded by (seed, index,
        draw): the same draw gives the same window in any process (`engine.micro_batches` numbers them)."""
        rng = None if draw is None else np.random.default_rng([self.seed, index, *np.atleast_1d(draw)])
        path, spec = self.records[index]["path"], self.spec
        clip = check_clip(path, spec, self.modalities, start_s=self.start_s, rng=rng, num_threads=1,
                          inspect=False)  # prepare inspected the clips; a failing one is inspected then
        status = clip.status(self.modalities)
        if status != "ok":
            if self.strict:
                raise BadClipError(path, clip.reason(self.modalities))
            warnings.warn(f"{path}: {status}: {clip.reason(self.modalities)}", stacklevel=2)
        audio = torch.zeros(spec.audio_frames, spec.mel_bins) if clip.fbank is None else \
            normalize_fbank(pad_or_crop(clip.fbank, spec.audio_frames), spec.audio_mean, spec.audio_std)  # (T, F)
        video = clip.frames if clip.frames is not None else \
            torch.zeros(spec.video_frames, spec.frame_size, spec.frame_size, 3, dtype=torch.uint8)
        return {"audio": audio.unsqueeze(0), "video": video, "target": self.targets[index],  # (T, F) -> (1, T, F)
                "has_audio": torch.tensor(clip.fbank is not None), "has_video": torch.tensor(clip.frames is not None),
                "index": index}
