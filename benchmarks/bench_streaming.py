"""What training from disk costs against training from memory, on the GRID clips (the `cpu` preset's model).

The same pre-training run (av_inter_intra, `cpu` preset: tiny model, batch 32, tiny features) from four sources:

- in memory:       `load_cache` -> ClipTensors, the clips read once before training (not timed);
- streamed cache:  `stream_cache`, the clips read from the prepared cache as training goes, in this process
                   (0 workers) or by DataLoader workers reading ahead;
- streamed files:  `stream_files`, decoded from the mp4s as training goes (a new random window each epoch).

Prints seconds per step (median over the run's steps after the first epoch) and its ratio to the in-memory run.
The trainer runs one torch thread, so on a 2-core machine one core trains and the other reads.

    python benchmarks/bench_streaming.py [--clips 128] [--epochs 3] [--workers 0 1]
"""
from __future__ import annotations

import argparse
import csv
import json
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from mavil_lite.data.cache import prepare_cache
from mavil_lite.data.cache_reader import load_cache
from mavil_lite.data.streaming import stream_cache, stream_files
from mavil_lite.experiments.presets import get_preset
from mavil_lite.model.mavil import MAViL
from mavil_lite.train.pretrain import pretrain

REPO = Path(__file__).resolve().parents[1]
GRID = REPO.parent / "shared" / "data" / "grid_s1"


class StepTimer:
    """Wraps a data source's ``batch`` to stamp each step's start; the gaps between stamps are step times."""

    def __init__(self, data):
        self.data, self.stamps = data, []
        self.batch = self._batch

    def _batch(self, index):
        self.stamps.append(time.perf_counter())
        return self.data.batch(index)

    def __getattr__(self, name):
        return getattr(self.data, name)

    def __len__(self):
        return len(self.data)


def run(data, epochs: int, steps_per_epoch: int) -> float:
    """Median seconds per step after the first epoch (workers started, pages cached)."""
    preset = get_preset("cpu")
    torch.manual_seed(0)
    model = MAViL(preset.model_config(inter_contrast_weight=preset.inter_contrast_weight,
                                      intra_contrast_weight=preset.intra_contrast_weight))
    timed = StepTimer(data)
    pretrain(model, timed, replace(preset.pretrain, epochs=epochs, warmup_epochs=0), progress=False)
    gaps = [b - a for a, b in zip(timed.stamps, timed.stamps[1:])][steps_per_epoch - 1:]
    return statistics.median(gaps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--grid", type=Path, default=GRID)
    parser.add_argument("--clips", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "streaming.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with open(args.grid / "manifest.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))[:args.clips]
    batch = get_preset("cpu").pretrain.batch_size
    steps_per_epoch = len(rows) // batch
    results = {"clips": len(rows), "batch": batch, "epochs": args.epochs, "rows": []}
    with tempfile.TemporaryDirectory() as scratch:
        manifest = Path(scratch) / "manifest.csv"
        with open(manifest, "w", newline="") as handle:
            csv.writer(handle).writerows([["file"]] + [[str(args.grid / row["file"])] for row in rows])
        cache = prepare_cache(manifest, Path(scratch) / "cache", "tiny", num_workers=2, progress=False).out_dir
        sources = {"in memory": lambda workers: load_cache(cache, progress=False)}
        sources["streamed cache"] = lambda workers: stream_cache(cache, workers)
        sources["streamed files"] = lambda workers: stream_files(manifest, get_preset("cpu").features, None, workers)
        baseline = run(sources["in memory"](0), args.epochs, steps_per_epoch)
        results["rows"].append({"source": "in memory", "workers": 0, "step_s": baseline, "ratio": 1.0})
        for name in ("streamed cache", "streamed files"):
            for workers in args.workers:
                step_s = run(sources[name](workers), args.epochs, steps_per_epoch)
                results["rows"].append({"source": name, "workers": workers, "step_s": step_s,
                                        "ratio": step_s / baseline})
    print(f"\n{len(rows)} GRID clips, batch {batch}, {args.epochs} epochs, 1 training thread\n")
    print("| source | workers | s / step | vs in memory |")
    print("|---|---|---|---|")
    for row in results["rows"]:
        print(f"| {row['source']} | {row['workers']} | {row['step_s']:.3f} | {row['ratio']:.2f}x |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
