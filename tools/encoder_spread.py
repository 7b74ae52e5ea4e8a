"""How input-dependent the encoders of a finished ablation are, against random weights (`diagnostics.encoder_spread`).

Reads the pre-training checkpoints an ablation notebook left under ``RUN_DIR/seed*/checkpoints/`` and scores each
run's encoders on the data's train split (never the test clips), beside a random model drawn with the same seed,
as row 0 is. Prints mean ± std over the seeds and the seeds' values.

    python tools/encoder_spread.py reproduce/results/cpu-grid/table_ablation --data grid:../shared/data/grid_s1
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from mavil_lite.evaluate.diagnostics import encoder_spread
from mavil_lite.experiments.ablation import NO_PRETRAINING
from mavil_lite.experiments.presets import get_preset
from mavil_lite.experiments.reproduction import load_source, resolve_source
from mavil_lite.experiments.results import summarize
from mavil_lite.model.mavil import MAViL
from mavil_lite.train.runners import load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path, help="an ablation's out_dir, holding seed*/checkpoints/")
    parser.add_argument("--data", required=True, help="the data the ablation ran on: a dataset by name or a manifest")
    parser.add_argument("--preset", default="cpu")
    args = parser.parse_args()

    preset = get_preset(args.preset)
    seeds = sorted(args.run_dir.glob("seed*/checkpoints"))
    if not seeds:
        raise SystemExit(f"no seed*/checkpoints under {args.run_dir}")
    train = load_source(resolve_source("AS-20K", args.data), preset, num_workers=2, progress=False).subset("train")
    spreads: dict[tuple[str, str, str], list[float]] = {}
    for checkpoints in seeds:
        torch.manual_seed(int(checkpoints.parent.name.removeprefix("seed")))
        models = {NO_PRETRAINING: MAViL(preset.model_config())}
        models |= {path.stem: load_model(path) for path in sorted(checkpoints.glob("*.pt"))
                   if not path.stem.startswith("finetune_")}
        for run, model in models.items():
            for modality, spread in encoder_spread(model, train).items():
                for kind, value in spread.items():
                    spreads.setdefault((run, modality, kind), []).append(value)
    for (run, modality, kind), values in spreads.items():
        summary = summarize(values)
        print(f"{run:15s} {modality:5s} {kind:13s} {summary['mean']:.3f} ± {summary['std']:.3f}  "
              f"{[round(v, 3) for v in values]}")


if __name__ == "__main__":
    main()
