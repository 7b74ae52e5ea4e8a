"""Data front-end throughput on the GRID clips: what preprocessing costs over decoding, and what the cache saves.

For each preset (tiny, paper) and each number of processes (1, 2), three rates in clips per second:

- raw decode:   decord decodes exactly the frames the window needs (native size) and the soundtrack (native rate),
                nothing else: the floor any pipeline pays;
- features:     what training from raw files does per clip (`RawClips`): decode, resize, resampling, the Kaldi
                fbank, padding and normalisation, giving the model-ready tensors (the stream inspection is done once,
                by `prepare`, and is not repeated per epoch);
- cache read:   the same tensors read back from a `prepare`d cache (`CacheReader.item`), for each frame format
                (tiny: raw uint8; paper: JPEG, the default, and raw uint8).

Targets: features cost at most 25% more than raw decode; the cache reads at least 20x faster than features.
Each process works through its share of the clips and keeps the results (the hand-over to a training process,
shared memory in a DataLoader, is not counted). Every rate is the best of `--repeats` rounds after a warm-up round
(files in the page cache, worker processes started); within a round the measurements take turns, so a neighbour's
load on a shared machine slows them alike.

    python benchmarks/bench_data.py [--clips 64] [--workers 1 2] [--presets tiny paper]

Prints a table and writes benchmarks/results/data.json with a description of the machine.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import decord
import numpy as np
import torch

from mavil_lite.data.cache import DEFAULT_FRAME_FORMAT, prepare_cache, preset_spec
from mavil_lite.data.cache_reader import CacheReader
from mavil_lite.data.clip_check import check_clip
from mavil_lite.data.media import frame_timing, normalize_fbank, pad_or_crop, window_times
from mavil_lite.data.workers import single_torch_thread, worker_pool

REPO = Path(__file__).resolve().parents[1]
GRID = REPO.parent / "shared" / "data" / "grid_s1"


def raw_decode(job: tuple[list[str], str]) -> int:
    """Decode the window's frames at native size and the whole soundtrack at its native rate; nothing more."""
    paths, preset = job
    spec = preset_spec(preset)
    for path in paths:
        reader = decord.VideoReader(path, num_threads=1)
        indices = np.unique(frame_timing(reader).indices_at(window_times(spec)))
        reader.get_batch(indices.tolist()).asnumpy()  # (distinct, H, W, 3)
        decord.AudioReader(path, sample_rate=-1, mono=False)  # decodes the whole stream on opening
    return len(paths)


def features(job: tuple[list[str], str]) -> int:
    """Model-ready tensors from the media files, as RawClips makes them."""
    paths, preset = job
    spec = preset_spec(preset)
    for path in paths:
        clip = check_clip(path, spec, num_threads=1, inspect=False)  # as RawClips: prepare did the inspection
        normalize_fbank(pad_or_crop(clip.fbank, spec.audio_frames), spec.audio_mean, spec.audio_std)  # (T, F)
    return len(paths)


def cache_read(job: tuple[str, list[int], int]) -> int:
    """Model-ready tensors from the cache, every clip of the share read `passes` times (a read is short: one pass
    would mostly time the set-up of the job)."""
    cache_dir, indices, passes = job
    reader = CacheReader(cache_dir)
    for _ in range(passes):
        for index in indices:
            reader.item(index)
    return len(indices) * passes


def best_rates(tasks: dict[str, tuple], pool, repeats: int) -> dict[str, float]:
    """Best clips per second of each task over `repeats` rounds, after a warm-up round (page cache, imports).

    tasks: {name: (function, shares)}; the shares of a task run in parallel on the pool. The tasks take turns
    within a round, so a neighbour's load on a shared machine slows them alike.
    """
    rates = {name: 0.0 for name in tasks}
    for attempt in range(repeats + 1):
        for name, (task, shares) in tasks.items():
            started = time.perf_counter()
            total = sum(pool.map(task, shares) if pool else map(task, shares))
            if attempt:
                rates[name] = max(rates[name], total / (time.perf_counter() - started))
    return rates


def machine() -> dict:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    return {"cpu": model, "cores": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "torch": torch.__version__, "decord": decord.__version__, "load_average_at_start": os.getloadavg()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--grid", type=Path, default=GRID)
    parser.add_argument("--clips", type=int, default=64)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--presets", nargs="+", default=["tiny", "paper"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cache-passes", type=int, default=5, help="reads of each clip per cache-read task")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "data.json")
    args = parser.parse_args()
    with open(args.grid / "manifest.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))[:args.clips]
    paths = [str(args.grid / row["file"]) for row in rows]
    results = {"machine": machine(), "clips": len(paths), "source": str(args.grid), "rows": []}
    with tempfile.TemporaryDirectory() as scratch:
        manifest = Path(scratch) / "manifest.csv"
        with open(manifest, "w", newline="") as handle:
            csv.writer(handle).writerows([["file"]] + [[path] for path in paths])
        for preset in args.presets:
            formats = list(dict.fromkeys([DEFAULT_FRAME_FORMAT[preset], "raw"]))  # the default, then raw uint8
            caches = {name: prepare_cache(manifest, Path(scratch) / f"{preset}_{name}", preset, frame_format=name,
                                          num_workers=max(args.workers), progress=False) for name in formats}
            for processes in args.workers:
                # one process works in this one; more are a pool of that many workers, started before timing
                with worker_pool(processes if processes > 1 else 0) as pool, single_torch_thread():
                    shares = [paths[share::processes] for share in range(processes)]
                    tasks = {"raw_decode": (raw_decode, [(share, preset) for share in shares]),
                             "features": (features, [(share, preset) for share in shares])}
                    for name, prepared in caches.items():
                        tasks[f"cache_{name}"] = (cache_read, [(str(prepared.out_dir), list(range(len(paths)))[
                            share::processes], args.cache_passes) for share in range(processes)])
                    rates = best_rates(tasks, pool, args.repeats)
                for name, prepared in caches.items():
                    row = {"preset": preset, "frames": name, "processes": processes, "raw_decode": rates["raw_decode"],
                           "features": rates["features"], "cache_read": rates[f"cache_{name}"],
                           "bytes_per_clip": prepared.bytes_per_clip}
                    row["overhead_pct"] = 100 * (row["raw_decode"] / row["features"] - 1)
                    row["cache_speedup"] = row["cache_read"] / row["features"]
                    results["rows"].append(row)
                    print(f"{preset:5s} {name:4s} {processes} proc: raw decode {row['raw_decode']:6.1f}  features "
                          f"{row['features']:6.1f} ({row['overhead_pct']:+.0f}%)  cache {row['cache_read']:7.1f} "
                          f"(x{row['cache_speedup']:.0f}) clips/s; {prepared.bytes_per_clip / 1e3:.0f} kB/clip",
                          flush=True)
    print(f"\n{len(paths)} GRID clips; {results['machine']['cpu']} ({results['machine']['cores']} cores)\n")
    print("| preset | cache frames | processes | raw decode (clips/s) | decode + features (clips/s) | overhead | "
          "cache read (clips/s) | cache speed-up | cache kB/clip |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row in results["rows"]:
        print(f"| {row['preset']} | {row['frames']} | {row['processes']} | {row['raw_decode']:.1f} | "
              f"{row['features']:.1f} | {row['overhead_pct']:+.0f}% | {row['cache_read']:.0f} | "
              f"{row['cache_speedup']:.0f}x | {row['bytes_per_clip'] / 1e3:.0f} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
