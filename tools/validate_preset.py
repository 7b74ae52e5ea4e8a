"""Measure a preset choice on training data only: the way every `[choice: cpu-preset]` was measured.

One ablation run is pre-trained on the pre-training clips (train + unlabelled) minus ``--held-out`` unlabelled clips,
its audio and video encoders are fine-tuned on the labelled train split, and both are scored on the held-out clips
(mAP against the labels the synthetic manifest lists for every clip), with A->V / V->A retrieval among them where the
run has inter-modal contrast (beside the ceiling of an oracle that matches class cues only,
`diagnostics.label_oracle_retrieval`) and, before fine-tuning, how input-dependent each encoder's tokens are
(`diagnostics.encoder_spread`). The test split is never read.

    python tools/validate_preset.py --run av_inter_intra --seed 0 1 2
    python tools/validate_preset.py --run random_init --set finetune.epochs=10 --set recipe.head_norm=layer
    python tools/validate_preset.py --run av_inter_intra --set model.contrast_norm=layer --pretrain-epochs 16
    python tools/validate_preset.py --run av_mae --seed 0 1 2 --labelled 120 --set finetune.epochs=60
    python tools/validate_preset.py --run av_mae --seed 0 1 2 --set pretrain.base_lr=2e-3

``--set`` changes a field of the preset's ``model`` (MAViLConfig), ``pretrain`` / ``finetune`` (TrainConfig) or
``recipe`` (FinetuneConfig); values are parsed as YAML, as recipe overrides are. One JSON line per seed is printed
and appended to ``--out``.
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import torch

from mavil_lite.data.dataset import read_manifest, split_rows
from mavil_lite.evaluate.diagnostics import encoder_spread, label_oracle_retrieval, retrieval_diagnostics
from mavil_lite.experiments.ablation import NO_PRETRAINING, ablation_runs, finetune_percent
from mavil_lite.experiments.presets import get_preset
from mavil_lite.experiments.reproduction import load_source, resolve_source, synthetic_manifest_for
from mavil_lite.model.mavil import MAViL
from mavil_lite.train.pretrain import pretrain
from mavil_lite.train.recipes import apply_override


def parse_settings(settings: list[str]) -> dict[str, dict]:
    """``["model.mask_ratio=0.5", ...]`` -> ``{"model": {"mask_ratio": 0.5}, ...}`` (`recipes.apply_override`)."""
    parsed: dict[str, dict] = {"model": {}, "pretrain": {}, "finetune": {}, "recipe": {}}
    for setting in settings:
        section = setting.split(".", 1)[0]
        if section not in parsed or "." not in setting.split("=", 1)[0]:
            raise SystemExit(f"--set {setting!r}: expected SECTION.FIELD=VALUE with SECTION one of {list(parsed)}")
        apply_override(parsed, setting)
    return parsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--run", default="av_inter_intra",
                        help=f"an ablation run without a teacher, or {NO_PRETRAINING} (row 0)")
    parser.add_argument("--seed", type=int, nargs="+", default=[0])
    parser.add_argument("--pretrain-epochs", type=int, default=None, help="default: the preset's")
    parser.add_argument("--held-out", type=int, default=120, help="unlabelled clips kept out of pre-training")
    parser.add_argument("--labelled", type=int, default=None,
                        help="fine-tune on only the first N labelled train clips (default: all of them)")
    parser.add_argument("--set", action="append", default=[], dest="settings", metavar="SECTION.FIELD=VALUE")
    parser.add_argument("--data-dir", default="outputs/validate_preset", help="where the synthetic clips are made")
    parser.add_argument("--out", default="outputs/validate_preset/results.jsonl")
    args = parser.parse_args()

    settings = parse_settings(args.settings)
    preset = get_preset(args.preset, **settings["pretrain"])
    if args.pretrain_epochs is not None:
        preset = replace(preset, pretrain=replace(preset.pretrain, epochs=args.pretrain_epochs))
    preset = replace(preset, finetune=replace(preset.finetune, **settings["finetune"]),
                     finetune_recipe=replace(preset.finetune_recipe, **settings["recipe"]),
                     model_overrides={**preset.model_overrides, **settings["model"]})
    runs = {run.name: run for rows in ablation_runs(preset).values() for run in rows}
    if args.run != NO_PRETRAINING and (args.run not in runs or runs[args.run].teacher):
        raise SystemExit(f"--run must be {NO_PRETRAINING} or one of {[n for n, r in runs.items() if not r.teacher]}")

    manifest = synthetic_manifest_for("synthetic", Path(args.data_dir), preset, num_workers=2)
    data = load_source(resolve_source("ablation", "synthetic", synthetic_manifest=manifest), preset, num_workers=2)
    unlabelled, labelled = split_rows(data.splits, "unlabelled"), split_rows(data.splits, "train")
    if len(unlabelled) <= args.held_out:
        raise SystemExit(f"only {len(unlabelled)} unlabelled clips: cannot hold {args.held_out} out")
    held_out = data.select(torch.tensor(unlabelled[:args.held_out]))
    pool = data.select(torch.tensor(labelled + unlabelled[args.held_out:]))
    train = data.select(torch.tensor(labelled[:args.labelled]))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    # what each clip lets one hear and see, for the oracle's ceiling; read_manifest spells paths as the clips' files
    cues = {record["path"]: record["row"] for record in read_manifest(manifest)}
    held_out_cues = [cues[f] for f in held_out.files]
    oracle = label_oracle_retrieval([set(row["audible"].split()) for row in held_out_cues],
                                    [set(row["visible"].split()) for row in held_out_cues])

    for seed in args.seed:
        torch.manual_seed(seed)
        overrides = {} if args.run == NO_PRETRAINING else runs[args.run].overrides
        model = MAViL(preset.model_config(**overrides))
        start = time.time()
        if args.run != NO_PRETRAINING:
            pretrain(model, pool, replace(preset.pretrain, seed=seed), progress=False)
        record = {"run": args.run, "seed": seed, "settings": args.settings, "pretrain_epochs": preset.pretrain.epochs,
                  "labelled": len(train),
                  "pretrain_s": round(time.time() - start, 1)}
        for modality, spread in encoder_spread(model, held_out).items():
            record.update({f"{modality}_{k}": round(v, 3) for k, v in spread.items()})
        if model.config.inter_contrast_weight:
            retrieval = retrieval_diagnostics(model, held_out)
            record.update({f"{d}_R@1": round(100 * retrieval[d]["R@1"], 2) for d in ("a2v", "v2a")})
            record.update({"a2v_median_rank": retrieval["a2v"]["median_rank"],
                           "a2v_label_P@5": round(retrieval["a2v"]["label"]["P@5"], 3),
                           "a2v_R@1_label_oracle": round(100 * oracle["R@1"], 2),
                           "a2v_median_rank_label_oracle": oracle["median_rank"]})
        for modality in model.modalities:
            record[f"{modality}_mAP"] = round(finetune_percent(model, modality, train, held_out, preset, seed), 1)
        print(json.dumps(record))
        with open(args.out, "a") as handle:
            handle.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
