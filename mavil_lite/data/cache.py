"""The feature cache: every clip decoded once, in parallel, into compact shards that training reads instead.

Decoding (container parsing, H.264, AAC, resampling, the fbank) costs far more than reading back its result, and an
epoch would otherwise pay it for every clip again. `prepare_cache` decodes a manifest once and writes

    OUT_DIR/meta.json      feature spec, preset, frame format, classes, modalities, normalisation statistics, sizes
    OUT_DIR/clips.csv      one row per usable clip: file, split, labels, shard, position, has_audio, has_video
    OUT_DIR/report.csv     every clip of the manifest: file, status (ok / partial / failed), reason, video_decoder
    OUT_DIR/shards/*.pt    about `shard_size` clips each, a dict of tensors (torch.save; read back memory-mapped)

What a shard holds, per clip:
- the log-mel fbank of the sound itself as float16, without its zero padding (a 3 s clip stores 300 frames, not
  1024), and not normalised: the statistics live in meta.json, so `mavil-lite stats --write` can change them;
- the window's frames, either raw uint8 (`frames`: small presets, fastest to read) or one JPEG of the clip's
  frames stacked top to bottom (`jpeg`: the paper's 8 x 224 x 224 x 3 = 1.2 MB of pixels shrink to about a
  twentieth). One image rather than one per frame decodes 1.3x faster (measured); every preset's frame size is a
  multiple of 16, JPEG's block height, so no block spans two frames.

Bytes per clip (shard bytes / clips, measured on GRID's 3 s clips; a 10 s clip's fbank is 3.4x the 3 s one):

    preset  frames  fbank (float16)               frames                         GRID, measured  10 s clip
    tiny    raw     <= 384 x 64 x 2 = 49 kB       4 x 64 x 64 x 3 = 49 kB        87 kB           ~98 kB
    paper   jpeg    <= 1024 x 128 x 2 = 262 kB    one 224 x 1792 JPEG, ~58 kB    135 kB          ~320 kB
    paper   raw     <= 1024 x 128 x 2 = 262 kB    8 x 224 x 224 x 3 = 1.2 MB     1281 kB         ~1.5 MB

meta.json is written last, so a directory without it is an unfinished cache and is refused by the readers.
"""
from __future__ import annotations

import csv
import io
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from .clip_check import MODALITIES, CheckedClip, check_clip
from .dataset import assign_splits, manifest_columns, read_manifest
from .media import FEATURES, FeatureSpec
from .report import REPORT_NAME, StrictCheck, dataset_modalities, report_rows, status_counts, summary_line, write_report
from .workers import parallel_map, single_torch_thread, worker_pool

CACHE_VERSION = 2  # 2: one JPEG per clip (1 had one per frame)
PREPARE_PRESETS = {"tiny": "tiny", "paper": "base"}  # `prepare --preset` name -> media.FEATURES key
DEFAULT_FRAME_FORMAT = {"tiny": "raw", "paper": "jpeg"}
INDEX_COLUMNS = ("file", "split", "labels", "shard", "position", "has_audio", "has_video")
JPEG_QUALITY = 90  # [choice: jpeg-quality] visually lossless for the model at 224 px; about 10 kB a frame


@dataclass
class PrepareResult:
    out_dir: Path
    counts: dict[str, int]   # {'ok': N, 'partial': M, 'failed': K}
    summary: str             # 'N ok, M partial, K failed'
    modalities: tuple[str, ...]
    bytes_per_clip: float    # shard bytes per usable clip
    seconds: float

    @property
    def usable(self) -> int:
        return self.counts["ok"] + self.counts["partial"]


def preset_spec(preset: str) -> FeatureSpec:
    """The FeatureSpec of a `prepare` preset ('tiny' or 'paper')."""
    if preset not in PREPARE_PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose from {list(PREPARE_PRESETS)}")
    return FEATURES[PREPARE_PRESETS[preset]]


def encode_jpeg(frames: np.ndarray) -> np.ndarray:
    """(T, H, W, 3) uint8 RGB -> one JPEG of the frames stacked top to bottom, its bytes as a (bytes,) uint8
    array (Pillow: libjpeg-turbo, 4:2:0)."""
    buffer = io.BytesIO()
    stacked = frames.reshape(-1, *frames.shape[2:])  # (T, H, W, 3) -> (T*H, W, 3)
    Image.fromarray(stacked).save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return np.frombuffer(buffer.getvalue(), dtype=np.uint8)


def _encode_job(job: tuple[str, FeatureSpec, tuple[str, ...], float, str, int]) -> CheckedClip:
    """Worker: check_clip, then the fbank as float16 numpy and the frames as raw uint8 or JPEG bytes."""
    path, spec, modalities, start_s, frame_format, num_threads = job
    clip = check_clip(path, spec, modalities, start_s=start_s, num_threads=num_threads)
    clip.waveform = None  # the cache stores features only; no need to ship the sound back
    if clip.fbank is not None:
        clip.fbank = clip.fbank.to(torch.float16).numpy()  # (frames, F)
    if clip.frames is not None and frame_format == "jpeg":
        clip.frames = encode_jpeg(clip.frames.numpy())  # (bytes,)
    elif clip.frames is not None:
        clip.frames = clip.frames.numpy()  # (T, H, W, 3)
    return clip


class _ShardWriter:
    """Collects clips and writes them as shards of `shard_size`; returns each clip's (shard, position)."""

    def __init__(self, shard_dir: Path, shard_size: int, frame_format: str):
        self.shard_dir, self.shard_size, self.frame_format = shard_dir, shard_size, frame_format
        self.shard_dir.mkdir(parents=True, exist_ok=True)
        self.pending: list[CheckedClip] = []
        self.shards: list[str] = []
        self.bytes = 0

    def add(self, clip: CheckedClip) -> tuple[int, int]:
        self.pending.append(clip)
        where = (len(self.shards), len(self.pending) - 1)
        if len(self.pending) == self.shard_size:
            self.flush()
        return where

    def _frames(self, clips: list[CheckedClip]) -> dict[str, torch.Tensor]:
        if self.frame_format == "jpeg":
            pieces = [clip.frames for clip in clips if clip.frames is not None]
            lengths = [0 if clip.frames is None else len(clip.frames) for clip in clips]  # no bytes: no video
            return {"jpeg": torch.from_numpy(np.concatenate(pieces)) if pieces else torch.zeros(0, dtype=torch.uint8),
                    "jpeg_offsets": torch.tensor(np.concatenate([[0], np.cumsum(lengths)]), dtype=torch.int64)}
        shape = next((clip.frames.shape for clip in clips if clip.frames is not None), None)
        if shape is None:
            return {}  # an audio-only shard stores no frames at all
        frames = np.zeros((len(clips), *shape), dtype=np.uint8)  # (n, T, H, W, 3); zeros where a clip has none
        for row, clip in enumerate(clips):
            if clip.frames is not None:
                frames[row] = clip.frames
        return {"frames": torch.from_numpy(frames)}

    def flush(self) -> None:
        if not self.pending:
            return
        clips, self.pending = self.pending, []
        fbanks = [clip.fbank for clip in clips if clip.fbank is not None]
        frame_counts = [len(clip.fbank) if clip.fbank is not None else 0 for clip in clips]
        shard = {
            "fbank": torch.from_numpy(np.concatenate(fbanks)) if fbanks else torch.zeros(0, 0, dtype=torch.float16),
            "fbank_offsets": torch.tensor(np.concatenate([[0], np.cumsum(frame_counts)]), dtype=torch.int64),
            "has_audio": torch.tensor([clip.fbank is not None for clip in clips]),
            "has_video": torch.tensor([clip.frames is not None for clip in clips]),
            **self._frames(clips),
        }
        name = f"{len(self.shards):05d}.pt"
        tmp = self.shard_dir / (name + ".tmp")
        torch.save(shard, tmp)
        os.replace(tmp, self.shard_dir / name)
        self.shards.append(name)
        self.bytes += (self.shard_dir / name).stat().st_size


def _clear(out_dir: Path) -> None:
    """Remove what an earlier prepare wrote here (and only that), so no stale shard survives."""
    for name in ("meta.json", "clips.csv", REPORT_NAME):
        (out_dir / name).unlink(missing_ok=True)
    for shard in (out_dir / "shards").glob("*.pt*"):
        shard.unlink()


def resolve_label_column(manifest: str | Path, label_column: str | None) -> str | None:
    """The label column to read, or None for an unlabelled manifest (valid for pre-training).

    The default column 'labels' may be absent (then there are no labels); a column asked for by another name must
    exist, so a typo is an error rather than a silently unlabelled dataset.
    """
    if label_column == "labels" and "labels" not in manifest_columns(manifest):
        print(f"{manifest}: no 'labels' column: preparing without labels (enough for pre-training)")
        return None
    return label_column


def prepare_cache(manifest: str | Path, out_dir: str | Path, preset: str | FeatureSpec = "tiny",
                  label_column: str | None = "labels", num_workers: int = 0, strict: bool = False,
                  modalities: tuple[str, ...] | None = None, frame_format: str | None = None, start_s: float = 0.0,
                  shard_size: int = 256, test_fraction: float = 0.2, seed: int = 0,
                  progress: bool = True) -> PrepareResult:
    """Decode every clip of `manifest` once into a feature cache in `out_dir` (layout: module docstring).

    preset: 'tiny', 'paper' or a FeatureSpec. frame_format: 'raw' (uint8) or 'jpeg'; default: raw for tiny,
    jpeg for paper. start_s: where the stored video window starts (the evaluation window; 0 as in the public
    inference code). Bad clips are recorded in report.csv and never stop the run, unless `strict`, where the first
    one raises BadClipError naming the file. modalities: None = those that decode in at least one clip.
    """
    started = time.perf_counter()
    spec = preset_spec(preset) if isinstance(preset, str) else preset
    preset_name = preset if isinstance(preset, str) else "custom"
    frame_format = frame_format or DEFAULT_FRAME_FORMAT.get(preset_name, "raw")
    if frame_format not in ("raw", "jpeg"):
        raise ValueError(f"frame_format must be 'raw' or 'jpeg', got {frame_format!r}")
    label_column = resolve_label_column(manifest, label_column)
    records = assign_splits(read_manifest(manifest, label_column), test_fraction, seed)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _clear(out_dir)
    writer = _ShardWriter(out_dir / "shards", shard_size, frame_format)
    jobs = [(record["path"], spec, modalities or MODALITIES, start_s, frame_format, 1 if num_workers > 0 else 0)
            for record in records]
    checked, index_rows = [], []
    strict_check = StrictCheck(modalities) if strict else None
    with worker_pool(num_workers) as pool, single_torch_thread():
        encoded = parallel_map(pool, _encode_job, jobs)
        for record, clip in zip(records, tqdm(encoded, total=len(jobs), desc="preparing clips", disable=not progress)):
            if strict_check:
                strict_check.check(clip)
            if clip.usable():
                shard, position = writer.add(clip)
                index_rows.append({"file": record["path"], "split": record["split"],
                                   "labels": " ".join(record["labels"]), "shard": shard, "position": position,
                                   "has_audio": int(clip.fbank is not None), "has_video": int(clip.frames is not None)})
            checked.append(clip.without_features())  # the features are in the shard now
    writer.flush()
    modalities = dataset_modalities(checked, modalities)
    rows = report_rows(checked, modalities)
    write_report(out_dir / REPORT_NAME, rows)
    with open(out_dir / "clips.csv", "w", newline="") as handle:
        csv_writer = csv.DictWriter(handle, fieldnames=list(INDEX_COLUMNS))
        csv_writer.writeheader()
        csv_writer.writerows(index_rows)
    bytes_per_clip = writer.bytes / max(1, len(index_rows))
    meta = {"version": CACHE_VERSION, "manifest": str(Path(manifest).resolve()), "preset": preset_name,
            "spec": asdict(spec), "frame_format": frame_format, "jpeg_quality": JPEG_QUALITY, "start_s": start_s,
            "label_column": label_column, "classes": sorted({label for row in index_rows
                                                             for label in row["labels"].split()}),
            "modalities": list(modalities), "audio_mean": spec.audio_mean, "audio_std": spec.audio_std,
            "shards": writer.shards, "counts": status_counts(rows), "bytes_per_clip": bytes_per_clip}
    tmp = out_dir / "meta.json.tmp"
    tmp.write_text(json.dumps(meta, indent=1))
    os.replace(tmp, out_dir / "meta.json")
    return PrepareResult(out_dir, status_counts(rows), summary_line(rows), modalities, bytes_per_clip,
                         time.perf_counter() - started)
