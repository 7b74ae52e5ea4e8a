"""How MAViL's gains grow with pre-training compute: a scaling study of two rows of the ablation.

Row 2 (joint AV-MAE, reconstruction only) and row 4 (with inter- and intra-modal contrast) are pre-trained from
scratch at several budgets (epochs over the same pre-training clips, each with its own full schedule), and at each
budget measured the way the ablation measures them:

- the fine-tuned gain over row 0 (the same fine-tuning from random initialisation), audio and video;
- A->V and V->A retrieval R@1 among the test clips, against chance (row 4 in its inter-modal space; row 2 has
  none, so its unaligned pooled tokens are the control).

`extrapolate` fits each measure linearly in log10(compute) and says at what compute the fit would reach a target
(e.g. R@1 at 10x chance). Compute is the analytic training FLOPs of `mavil_lite.model.flops.step_flops` times the
steps taken, so budgets are comparable across machines; the wall time is recorded beside it.
"""
from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.dataset import ClipTensors
from ..evaluate.diagnostics import retrieval_diagnostics
from ..model.flops import step_flops
from ..model.mavil import MAViL
from ..train.pretrain import pretrain
from .ablation import ablation_runs, finetune_percent, pretraining_clips
from .presets import RunPreset

MODALITIES = ("audio", "video")
SCALED_ROWS = (2, 4)  # reconstruction alone, and with both contrasts
MEASURES = ("audio_gain", "video_gain", "a2v_r1", "v2a_r1")
FURTHEST_EXTRAPOLATION = 1000  # beyond this multiple of the largest budget a fitted line says nothing useful


def scaling_study(data: ClipTensors, preset: RunPreset, epochs: list[int], out_dir: str | Path, seed: int = 0,
                  rows: tuple[int, ...] = SCALED_ROWS, device: str = "cpu", progress: bool = True) -> dict[str, Any]:
    """Pre-train each of ``rows`` for each number of ``epochs``, fine-tune and diagnose it; fine-tune row 0 once.

    Finished runs found in ``out_dir/checkpoints`` are reused.

    Returns ``{"floor": {modality: score}, "rows": {row: [budget, ...]}, "chance_r1"}``, a budget being
    ``{"run", "epochs", "steps", "flops", "wall_s", "audio", "video", "audio_gain", "video_gain", "retrieval"}``:
    scores in percent, retrieval as `mavil_lite.evaluate.diagnostics.retrieval_diagnostics` gives it.
    """
    if not epochs or any(e < 1 for e in epochs):
        raise ValueError(f"epochs must be a non-empty list of positive budgets, got {epochs}")
    checkpoints = Path(out_dir) / "checkpoints"
    pool, train, test = pretraining_clips(data), data.subset("train"), data.subset("test")
    torch.manual_seed(seed)
    untrained = MAViL(preset.model_config())  # row 0 exactly as the ablation builds it
    floor = {m: finetune_percent(untrained, m, train, test, preset, seed, device,
                                 checkpoints / f"finetune_random_init_{m}.pt") for m in MODALITIES}
    runs = ablation_runs(preset)
    measured: dict[int, list[dict]] = {}
    for row in rows:
        run = runs[row][0]
        config = preset.model_config(**run.overrides)
        for num_epochs in sorted(epochs):
            schedule = replace(preset.pretrain, epochs=num_epochs, seed=seed)
            name = f"{run.name}_{num_epochs}ep"
            torch.manual_seed(seed)
            model = MAViL(config)
            result = pretrain(model, pool, schedule, checkpoint=checkpoints / f"{name}.pt", device=device,
                              progress=progress, desc=f"row {row}, {num_epochs} epochs")
            scores = {m: finetune_percent(model, m, train, test, preset, seed, device,
                                          checkpoints / f"finetune_{name}_{m}.pt") for m in MODALITIES}
            budget = {"run": run.name, "epochs": num_epochs, "steps": result.steps,
                      "flops": float(sum(step_flops(config, schedule.batch_size).values())) * result.steps,
                      "wall_s": result.wall_s, **scores, **{f"{m}_gain": scores[m] - floor[m] for m in MODALITIES},
                      "retrieval": retrieval_diagnostics(model, test, device)}
            measured.setdefault(row, []).append(budget)
            if progress:
                print(f"row {row}, {num_epochs} epochs ({budget['flops']:.2e} FLOPs): fine-tuned gain audio "
                      f"{budget['audio_gain']:+.1f} / video {budget['video_gain']:+.1f}, A->V R@1 "
                      f"{100 * measure(budget, 'a2v_r1'):.1f}%")
    chance = next(iter(measured.values()))[0]["retrieval"]["chance"]["R@1"]
    return {"floor": floor, "rows": measured, "chance_r1": chance}


def measure(budget: dict, name: str) -> float:
    """One of `MEASURES` for a budget: a fine-tuned gain in points, or an R@1 as a fraction."""
    if name.endswith("_r1"):
        return budget["retrieval"][name[:3]]["R@1"]
    return budget[name]


def extrapolate(budgets: list[dict], name: str, target: float | None = None) -> dict[str, float | None]:
    """Least-squares fit ``measure = intercept + slope * log10(flops)`` over the budgets, and the compute at which the
    fit reaches ``target``: ``{"slope", "intercept", "target", "flops_at_target", "reached"}``.

    ``log10_flops_at_target`` (and ``flops_at_target``, when it is a float) is None without a target, or when the
    fit does not rise (slope <= 0): no compute reaches the target on that trend. ``reached`` says whether a measured
    budget already reaches it.
    """
    if len(budgets) < 2:
        raise ValueError("a trend needs at least two budgets")
    log_flops = np.log10([b["flops"] for b in budgets])
    values = np.array([measure(b, name) for b in budgets])
    slope, intercept = np.polyfit(log_flops, values, 1)
    if target is None:
        return {"slope": float(slope), "intercept": float(intercept), "target": None, "flops_at_target": None,
                "log10_flops_at_target": None, "reached": False}
    log10_at_target = (target - intercept) / slope if slope > 0 else None
    return {"slope": float(slope), "intercept": float(intercept), "target": float(target),
            "flops_at_target": 10.0 ** log10_at_target if log10_at_target is not None and log10_at_target < 300 else None,
            "log10_flops_at_target": None if log10_at_target is None else float(log10_at_target),
            "reached": bool((values >= target).any())}


def budget_epochs(preset: RunPreset, multiples: list[float]) -> list[int]:
    """Epoch budgets as multiples of the preset's pre-training epochs (at least 1 epoch each, no repeats)."""
    return sorted({max(1, round(multiple * preset.pretrain.epochs)) for multiple in multiples})


def trends(study: dict, r1_target_multiple: float = 10.0) -> dict[int, dict[str, dict]]:
    """`extrapolate` for every row and measure: retrieval toward ``r1_target_multiple`` x chance, gains as slopes."""
    target = r1_target_multiple * study["chance_r1"]
    return {row: {name: extrapolate(budgets, name, target if name.endswith("_r1") else None) for name in MEASURES}
            for row, budgets in study["rows"].items()}


def scaling_markdown(study: dict, fitted: dict[int, dict[str, dict]]) -> str:
    """The study as Markdown: one table line per row and budget, then each trend in words."""
    chance = 100 * study["chance_r1"]
    lines = [f"No pre-training (row 0), fine-tuned: audio {study['floor']['audio']:.1f}, video "
             f"{study['floor']['video']:.1f}. Retrieval chance R@1 {chance:.2f}%: among this many clips R@1 moves in "
             f"steps of {chance:.2f} points, so a few hits either way are noise; the median rank shows the trend "
             "better.", "",
             "| row | run | epochs | steps | training FLOPs | wall (s) | audio | gain | video | gain | A->V R@1 (%) "
             "| V->A R@1 (%) | A->V median rank |", "|" + "---|" * 13]
    for row, budgets in study["rows"].items():
        for b in budgets:
            r = b["retrieval"]
            lines.append(f"| {row} | {b['run']} | {b['epochs']} | {b['steps']} | {b['flops']:.2e} | {b['wall_s']:.0f} | "
                         f"{b['audio']:.1f} | {b['audio_gain']:+.1f} | {b['video']:.1f} | {b['video_gain']:+.1f} | "
                         f"{100 * r['a2v']['R@1']:.1f} | {100 * r['v2a']['R@1']:.1f} | {r['a2v']['median_rank']:.0f} |")
    lines.append("")
    for row, by_measure in fitted.items():
        largest = study["rows"][row][-1]["flops"]
        for name, trend in by_measure.items():
            if trend["target"] is None:
                lines.append(f"- row {row}, {name}: {trend['slope']:+.2f} points per 10x compute.")
                continue
            goal = f"{100 * trend['target']:.1f}% ({trend['target'] / study['chance_r1']:.0f}x chance)"
            log10_at = trend["log10_flops_at_target"]
            if trend["reached"]:
                where = "reached at a measured budget"
            elif log10_at is None:
                where = "the trend does not rise, so no budget reaches it on this evidence"
            elif log10_at - math.log10(largest) <= math.log10(FURTHEST_EXTRAPOLATION):
                where = (f"the trend reaches it at {10 ** log10_at:.1e} FLOPs, "
                         f"{10 ** (log10_at - math.log10(largest)):.0f}x the largest budget (an extrapolation)")
            else:
                where = (f"the trend is too flat to say: it would need more than {FURTHEST_EXTRAPOLATION}x the "
                         "largest budget")
            lines.append(f"- row {row}, {name}: {100 * trend['slope']:+.2f} points of R@1 per 10x compute; "
                         f"{goal}: {where}.")
    return "\n".join(lines)
