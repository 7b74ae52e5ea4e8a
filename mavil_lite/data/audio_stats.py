"""The fbank normalisation statistics of a dataset: the mean and std that `(fbank - mean) / (2 * std)` uses.

MAViL and AudioMAE normalise with AudioSet's statistics (mean -4.2677393, std 4.5689974); a dataset recorded
differently (another microphone, level or language) has its own, and a model fine-tuned on it should see them.
The statistics are taken over every (frame, mel bin) value of every clip's fbank, excluding the zero padding: a
corpus of 3 s clips padded to 10.24 s would otherwise report mostly the padding.

From a feature cache they cost a read of the stored fbanks; from a manifest, a decode of every soundtrack.
`write_statistics` stores them in a cache's meta.json, and from then on its readers normalise with them.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm.auto import tqdm

from .cache import preset_spec
from .cache_reader import CacheReader
from .clip_check import check_clip
from .dataset import read_manifest
from .media import FeatureSpec
from .workers import parallel_map, single_torch_thread, worker_pool


def _moments(fbank: np.ndarray) -> tuple[float, float, int]:
    """(sum, sum of squares, count) of an fbank's values, in float64 so millions of values add up exactly enough."""
    values = fbank.astype(np.float64)
    return float(values.sum()), float(np.square(values).sum()), values.size


def _clip_moments(job: tuple[str, FeatureSpec]) -> tuple[float, float, int] | None:
    """Worker: the moments of one clip's fbank, or None when it has no usable audio."""
    path, spec = job
    clip = check_clip(path, spec, modalities=("audio",), num_threads=1)
    return None if clip.fbank is None else _moments(clip.fbank.numpy())


def _summarise(moments: list[tuple[float, float, int] | None]) -> dict:
    usable = [moment for moment in moments if moment is not None]
    if not usable:
        raise ValueError("no clip with usable audio: no statistics")
    total, squares, count = (sum(values) for values in zip(*usable))
    mean = total / count
    return {"mean": mean, "std": float(np.sqrt(max(squares / count - mean ** 2, 0.0))), "clips": len(usable),
            "values": count, "skipped": len(moments) - len(usable)}


def dataset_statistics(source: str | Path | Sequence[str | Path], preset: str | FeatureSpec = "paper",
                       num_workers: int = 0, progress: bool = True) -> dict:
    """Mean and std of the fbank over a cache directory, a manifest CSV, or a list of media files.

    Returns {'mean', 'std', 'clips' (with audio), 'values' (frame x bin values), 'skipped' (clips without audio)}.
    preset: the features for a manifest or files (a cache has its own).
    """
    if not isinstance(source, (str, Path)):
        paths = list(source)
        if not paths:
            raise ValueError("no clips to compute fbank statistics from")
        return _statistics_of_files(paths, preset, num_workers, progress)
    source = Path(source)
    if source.is_dir():
        reader = CacheReader(source)
        clips = [index for index in range(len(reader)) if reader.raw_fbank(index).numel() > 0]
        moments = [_moments(reader.raw_fbank(index).numpy())
                   for index in tqdm(clips, desc="reading fbanks", disable=not progress)]
        return _summarise(moments) | {"skipped": len(reader) - len(clips) + reader.skipped}
    return _statistics_of_files([record["path"] for record in read_manifest(source, label_column=None)], preset,
                                num_workers, progress)


def _statistics_of_files(paths: list, preset: str | FeatureSpec, num_workers: int, progress: bool) -> dict:
    spec = preset_spec(preset) if isinstance(preset, str) else preset
    jobs = [(path, spec) for path in paths]
    with worker_pool(num_workers) as pool, single_torch_thread():
        moments = list(tqdm(parallel_map(pool, _clip_moments, jobs), total=len(jobs),
                            desc="computing fbanks", disable=not progress))
    return _summarise(moments)


def write_statistics(cache_dir: str | Path, statistics: dict) -> Path:
    """Make a cache normalise with these statistics (its meta.json's audio_mean / audio_std)."""
    meta_path = Path(cache_dir) / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["audio_mean"], meta["audio_std"] = statistics["mean"], statistics["std"]
    tmp = meta_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(meta, indent=1))
    os.replace(tmp, meta_path)
    return meta_path
