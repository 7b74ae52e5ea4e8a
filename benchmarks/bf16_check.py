"""Does bf16 autocast train as well as fp32? One pre-training run in each precision, the same seed and data,
compared on the final loss and on linear probes of both encoders.

    python benchmarks/bf16_check.py [--data grid:DIR|synthetic] [--preset cpu] [--run av_inter_intra]
                                    [--fp32-checkpoint seed0/checkpoints/av_inter_intra.pt]

``--fp32-checkpoint`` reuses a finished fp32 run of the same preset, seed and data (a reproduction notebook's)
instead of training it again. Prints a table and writes benchmarks/results/bf16_check.json. Whether the
difference is within seed noise is for the reader to judge against the spread between seeds reported by the
reproduction tables; the script prints both numbers, not a verdict.
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import torch

from mavil_lite.experiments.ablation import ablation_runs
from mavil_lite.experiments.presets import get_preset
from mavil_lite.experiments.reproduction import load_source, probe_percent, resolve_source, synthetic_manifest_for
from mavil_lite.model.mavil import MAViL
from mavil_lite.train.engine import load_checkpoint
from mavil_lite.train.pretrain import pretrain
from mavil_lite.train.runners import load_model

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="grid:" + str(Path(__file__).resolve().parents[2] / "shared" / "data" / "grid_s1"),
                        help="synthetic | a public dataset by name (grid:DIR) | a manifest; default: the team's GRID copy")
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--run", default="av_inter_intra", help="an ablation run without a teacher")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fp32-checkpoint", type=Path, help="a finished fp32 run to reuse")
    parser.add_argument("--work-dir", type=Path, default=Path("outputs/bf16_check"))
    args = parser.parse_args()

    preset = get_preset(args.preset)
    runs = {run.name: run for row in ablation_runs(preset).values() for run in row}
    overrides = runs[args.run].overrides
    synthetic = synthetic_manifest_for(args.data, args.work_dir, preset)
    source = resolve_source("AS-20K", args.data, synthetic_manifest=synthetic)
    clips = load_source(source, preset)
    train, test = clips.subset("train"), clips.subset("test")

    results = {}
    for precision in ("fp32", "bf16"):
        if precision == "fp32" and args.fp32_checkpoint:
            model, state = load_model(args.fp32_checkpoint), load_checkpoint(args.fp32_checkpoint)
            history, wall_s = state["history"], state["wall_s"]
        else:
            torch.manual_seed(args.seed)
            model = MAViL(preset.model_config(**overrides))
            config = replace(preset.pretrain, seed=args.seed, bf16=precision == "bf16")
            started = time.perf_counter()
            result = pretrain(model, train, config, checkpoint=args.work_dir / f"{precision}.pt", desc=precision)
            history, wall_s = result.history, time.perf_counter() - started
        last = history["loss"][-20:]
        results[precision] = {"final_loss": sum(last) / len(last), "wall_s": wall_s,
                              **{m: probe_percent(model.eval(), train, test, m, seed=args.seed)[0] for m in model.modalities}}
        print(precision, results[precision], flush=True)

    print(f"\n{args.preset} preset, {args.run}, seed {args.seed}, {source.description}")
    print(f"{'':6}{'final loss (mean of last 20 steps)':>36}{'audio probe':>14}{'video probe':>14}{'wall s':>10}")
    for precision, r in results.items():
        print(f"{precision:6}{r['final_loss']:36.4f}{r.get('audio', float('nan')):14.1f}{r.get('video', float('nan')):14.1f}"
              f"{r['wall_s']:10.0f}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bf16_check.json").write_text(json.dumps({"preset": args.preset, "run": args.run, "seed": args.seed,
                                                         "data": source.description, "results": results}, indent=2))


if __name__ == "__main__":
    main()
