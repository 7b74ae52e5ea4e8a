"""Reading the feature cache back: clip by clip for training (`CachedClips`, a torch Dataset), or all at once into
memory for small presets (`load_cache` -> `ClipTensors`, what the ablation notebook trains on).

Shards are opened memory-mapped (`torch.load(mmap=True)`) the first time one of their clips is asked for, once per
process: a DataLoader worker touches only the bytes of the clips it serves, and the operating system's page
cache keeps hot shards in memory across epochs. Clips that `prepare` recorded as failed are not in the cache; the
readers say how many were skipped.

Both readers give the same tensors as decoding the media files (`RawClips`, `decode_manifest`), up to the float16
rounding of the stored fbank (below 1e-3 after normalisation) and, for the JPEG format, the JPEG compression of the
frames.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from .dataset import ClipTensors, multi_hot
from .media import FeatureSpec, normalize_fbank, pad_or_crop

SUPPORTED_VERSIONS = (2,)


class CacheReader:
    """Random access to the clips of a feature cache directory (see `mavil_lite.data.cache` for the layout)."""

    def __init__(self, cache_dir: str | Path):
        self.cache_dir = Path(cache_dir)
        meta_path = self.cache_dir / "meta.json"
        if not meta_path.is_file():
            raise FileNotFoundError(f"{self.cache_dir}: not a finished feature cache (no meta.json); "
                                    f"run `mavil-lite prepare MANIFEST {self.cache_dir}`")
        self.meta = json.loads(meta_path.read_text())
        if self.meta.get("version") not in SUPPORTED_VERSIONS:
            raise ValueError(f"{meta_path}: cache version {self.meta.get('version')} is not one of "
                             f"{SUPPORTED_VERSIONS}; prepare the cache again")
        self.spec = FeatureSpec(**self.meta["spec"])
        with open(self.cache_dir / "clips.csv", newline="") as handle:
            self.rows = list(csv.DictReader(handle))
        records = [{"labels": row["labels"].split()} for row in self.rows]
        self.targets, self.classes = multi_hot(records)  # (N, C)
        self.skipped = self.meta["counts"]["failed"]
        self._shards: dict[int, dict[str, Tensor]] = {}

    def __len__(self) -> int:
        return len(self.rows)

    def __getstate__(self) -> dict:
        # a DataLoader worker maps the shards itself: pickling mapped tensors would copy them into the message
        return {**self.__dict__, "_shards": {}}

    def _shard(self, number: int) -> dict[str, Tensor]:
        if number not in self._shards:
            path = self.cache_dir / "shards" / self.meta["shards"][number]
            self._shards[number] = torch.load(path, mmap=True, weights_only=True, map_location="cpu")
        return self._shards[number]

    def _locate(self, index: int) -> tuple[dict[str, Tensor], int]:
        row = self.rows[index]
        return self._shard(int(row["shard"])), int(row["position"])

    def raw_fbank(self, index: int) -> Tensor:
        """(frames, F) float16 stored fbank of the sound itself: no padding, not normalised (empty if no audio)."""
        shard, position = self._locate(index)
        offsets = shard["fbank_offsets"]
        return shard["fbank"][offsets[position]:offsets[position + 1]]

    def audio(self, index: int) -> Tensor:
        """(1, T, F) float32 normalised fbank, padded as the model expects (zeros if no audio)."""
        raw = self.raw_fbank(index)
        if raw.numel() == 0:  # no audio: zeros, as in decode_manifest
            return torch.zeros(1, self.spec.audio_frames, self.spec.mel_bins)
        fbank = pad_or_crop(raw.float(), self.spec.audio_frames)  # (T, F)
        return normalize_fbank(fbank, self.meta["audio_mean"], self.meta["audio_std"]).unsqueeze(0)  # (1, T, F)

    def video(self, index: int) -> Tensor:
        """(T, H, W, 3) uint8 frames (zeros if the clip has no video)."""
        shard, position = self._locate(index)
        spec = self.spec
        empty = torch.zeros(spec.video_frames, spec.frame_size, spec.frame_size, 3, dtype=torch.uint8)
        if not bool(shard["has_video"][position]):
            return empty
        if "frames" in shard:
            return shard["frames"][position]
        start, stop = shard["jpeg_offsets"][position:position + 2].tolist()
        stacked = np.array(Image.open(io.BytesIO(shard["jpeg"][start:stop].numpy().tobytes())))  # (T*H, W, 3)
        return torch.from_numpy(stacked.reshape(-1, spec.frame_size, spec.frame_size, 3))  # (T, H, W, 3)

    def item(self, index: int) -> dict[str, Tensor]:
        """One clip as the training loop takes it: audio, video, target, has_audio, has_video, index."""
        shard, position = self._locate(index)
        return {"audio": self.audio(index), "video": self.video(index), "target": self.targets[index],
                "has_audio": shard["has_audio"][position].clone(), "has_video": shard["has_video"][position].clone(),
                "index": index}

    def indices(self, split: str | None = None) -> list[int]:
        """The clips of one split, or all."""
        return [index for index, row in enumerate(self.rows) if split is None or row["split"] == split]

    def skip_message(self) -> str:
        return (f"{self.cache_dir}: skipped {self.skipped} clip(s) recorded as failed in "
                f"{self.cache_dir / 'report.csv'}")


class CachedClips(Dataset):
    """A torch Dataset over a feature cache: item dicts of audio (1, T, F) float32, video (T, H, W, 3) uint8,
    target (C,), has_audio, has_video, index. Batch the video with `frames_to_tensor` (on the device)."""

    def __init__(self, cache_dir: str | Path, split: str | None = None):
        self.reader = CacheReader(cache_dir)
        self.clips = self.reader.indices(split)
        self.classes = self.reader.classes
        if self.reader.skipped:
            print(self.reader.skip_message())

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        return self.reader.item(self.clips[index])

    def read(self, index: int, draw: int | None = None) -> dict[str, Tensor]:
        """As `RawClips.read`; the draw changes nothing: a cache holds one window per clip."""
        return self[index]


def load_cache(cache_dir: str | Path, split: str | None = None, progress: bool = True) -> ClipTensors:
    """A whole feature cache (or one split of it) in memory, as decode_manifest would have returned it."""
    reader = CacheReader(cache_dir)
    if reader.skipped:
        print(reader.skip_message())
    chosen = reader.indices(split)
    if not chosen:
        raise ValueError(f"{cache_dir}: no clips in split {split!r}")
    spec, count, modalities = reader.spec, len(chosen), reader.meta["modalities"]
    audio_shape = (1, spec.audio_frames, spec.mel_bins)
    video_shape = (spec.video_frames, spec.frame_size, spec.frame_size, 3)
    # a modality the dataset lacks is one broadcast zero clip, as in decode_manifest
    audio = torch.zeros(count, *audio_shape) if "audio" in modalities else \
        torch.zeros(1, *audio_shape).expand(count, *audio_shape)  # (N, 1, T, F)
    video = torch.zeros(count, *video_shape, dtype=torch.uint8) if "video" in modalities else \
        torch.zeros(1, *video_shape, dtype=torch.uint8).expand(count, *video_shape)  # (N, T, H, W, 3)
    has_audio, has_video = torch.zeros(count, dtype=torch.bool), torch.zeros(count, dtype=torch.bool)
    for row, index in enumerate(tqdm(chosen, desc="reading cache", disable=not progress)):
        item = reader.item(index)
        has_audio[row], has_video[row] = item["has_audio"], item["has_video"]
        if "audio" in modalities:
            audio[row] = item["audio"]
        if "video" in modalities:
            video[row] = item["video"]
    return ClipTensors(audio=audio, video=video, targets=reader.targets[chosen], classes=reader.classes,
                       splits=[reader.rows[index]["split"] for index in chosen],
                       files=[reader.rows[index]["file"] for index in chosen], has_audio=has_audio, has_video=has_video,
                       features=reader.spec)
