"""How MAViL's gains grow with pre-training compute: a scaling study of the full stage-1 model.

Row 4 of the ablation (joint AV-MAE with inter- and intra-modal contrast) is pre-trained from scratch at several
budgets (epochs over the same pre-training clips, each with its own full schedule), and at each budget measured
the way the ablation measures it:

- the fine-tuned gain over row 0 (the same fine-tuning from random initialisation), audio and video;
- A->V and V->A retrieval R@1 among the test clips in the inter-modal space, against chance.

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
from .ablation import finetune_percent, pretraining_clips
from .presets import RunPreset

MODALITIES = ("audio", "video")


def full_stage1_overrides(preset: RunPreset) -> dict[str, float]:
    """Row 4's model: both contrasts at the preset's weights."""
    return dict(inter_contrast_weight=preset.inter_contrast_weight, intra_contrast_weight=preset.intra_contrast_weight)


def scaling_study(data: ClipTensors, preset: RunPreset, epochs: list[int], out_dir: str | Path, seed: int = 0,
                  device: str = "cpu", progress: bool = True) -> dict[str, Any]:
    """Pre-train row 4 for each number of ``epochs``, fine-tune and diagnose it; fine-tune row 0 once.

    Finished runs found in ``out_dir/checkpoints`` are reused.

    Returns ``{"floor": {modality: score}, "budgets": [{"epochs", "steps", "flops", "wall_s", "audio", "video",
    "audio_gain", "video_gain", "retrieval"}, ...], "chance_r1"}``, scores in percent, retrieval as
    `mavil_lite.evaluate.diagnostics.retrieval_diagnostics` gives it.
    """
    if not epochs or any(e < 1 for e in epochs):
        raise ValueError(f"epochs must be a non-empty list of positive budgets, got {epochs}")
    checkpoints = Path(out_dir) / "checkpoints"
    pool, train, test = pretraining_clips(data), data.subset("train"), data.subset("test")
    config = preset.model_config(**full_stage1_overrides(preset))

    torch.manual_seed(seed)
    untrained = MAViL(preset.model_config())  # row 0 exactly as the ablation builds it
    floor = {m: finetune_percent(untrained, m, train, test, preset, seed, device,
                                 checkpoints / f"finetune_random_init_{m}.pt") for m in MODALITIES}
    budgets = []
    for num_epochs in sorted(epochs):
        schedule = replace(preset.pretrain, epochs=num_epochs, seed=seed)
        torch.manual_seed(seed)
        model = MAViL(config)
        result = pretrain(model, pool, schedule, checkpoint=checkpoints / f"av_inter_intra_{num_epochs}ep.pt",
                          device=device, progress=progress, desc=f"{num_epochs} epochs")
        scores = {m: finetune_percent(model, m, train, test, preset, seed, device,
                                      checkpoints / f"finetune_{num_epochs}ep_{m}.pt") for m in MODALITIES}
        budget = {"epochs": num_epochs, "steps": result.steps,
                  "flops": float(sum(step_flops(config, schedule.batch_size).values())) * result.steps,
                  "wall_s": result.wall_s, **scores, **{f"{m}_gain": scores[m] - floor[m] for m in MODALITIES},
                  "retrieval": retrieval_diagnostics(model, test, device)}
        budgets.append(budget)
        if progress:
            print(f"{num_epochs} epochs ({budget['flops']:.2e} FLOPs): fine-tuned gain audio "
                  f"{budget['audio_gain']:+.1f} / video {budget['video_gain']:+.1f}, A->V R@1 "
                  f"{100 * budget['retrieval']['a2v']['R@1']:.1f}% (chance {100 * budget['retrieval']['chance']['R@1']:.1f}%)")
    return {"floor": floor, "budgets": budgets, "chance_r1": budgets[0]["retrieval"]["chance"]["R@1"]}


def measure(budget: dict, name: str) -> float:
    """One measure of a budget: ``audio_gain``, ``video_gain``, ``a2v_r1`` or ``v2a_r1`` (R@1 as a fraction)."""
    if name.endswith("_r1"):
        return budget["retrieval"][name[:3]]["R@1"]
    return budget[name]


def extrapolate(budgets: list[dict], name: str, target: float | None = None) -> dict[str, float | None]:
    """Least-squares fit ``measure = intercept + slope * log10(flops)`` over the budgets, and the compute at which the
    fit reaches ``target``: ``{"slope", "intercept", "target", "flops_at_target", "reached"}``.

    ``flops_at_target`` is None without a target, or when the fit does not rise (slope <= 0): no compute reaches
    the target on that trend. ``reached`` says whether a measured budget already reaches it.
    """
    if len(budgets) < 2:
        raise ValueError("a trend needs at least two budgets")
    log_flops = np.log10([b["flops"] for b in budgets])
    values = np.array([measure(b, name) for b in budgets])
    slope, intercept = np.polyfit(log_flops, values, 1)
    if target is None:
        return {"slope": float(slope), "intercept": float(intercept), "target": None, "flops_at_target": None,
                "reached": False}
    flops_at_target = 10 ** ((target - intercept) / slope) if slope > 0 else math.inf
    return {"slope": float(slope), "intercept": float(intercept), "target": float(target),
            "flops_at_target": None if math.isinf(flops_at_target) else float(flops_at_target),
            "reached": bool((values >= target).any())}


def budget_epochs(preset: RunPreset, multiples: list[float]) -> list[int]:
    """Epoch budgets as multiples of the preset's pre-training epochs (at least 1 epoch each, no repeats)."""
    return sorted({max(1, round(multiple * preset.pretrain.epochs)) for multiple in multiples})


def trends(study: dict, r1_target_multiple: float = 10.0) -> dict[str, dict]:
    """`extrapolate` for every measure: retrieval toward ``r1_target_multiple`` x chance; the gains' slopes only."""
    budgets = study["budgets"]
    r1_target = r1_target_multiple * study["chance_r1"]
    return {"audio_gain": extrapolate(budgets, "audio_gain"), "video_gain": extrapolate(budgets, "video_gain"),
            "a2v_r1": extrapolate(budgets, "a2v_r1", r1_target), "v2a_r1": extrapolate(budgets, "v2a_r1", r1_target)}


def scaling_markdown(study: dict, fitted: dict[str, dict]) -> str:
    """The study as a Markdown table (one line per budget), then each trend in words."""
    chance = 100 * study["chance_r1"]
    lines = [f"No pre-training (row 0), fine-tuned: audio {study['floor']['audio']:.1f}, video "
             f"{study['floor']['video']:.1f}. Retrieval chance R@1 {chance:.2f}%.", "",
             "| epochs | steps | training FLOPs | wall (s) | audio | gain | video | gain | A->V R@1 (%) | V->A R@1 (%) "
             "| A->V median rank |", "|" + "---|" * 11]
    for b in study["budgets"]:
        r = b["retrieval"]
        lines.append(f"| {b['epochs']} | {b['steps']} | {b['flops']:.2e} | {b['wall_s']:.0f} | {b['audio']:.1f} | "
                     f"{b['audio_gain']:+.1f} | {b['video']:.1f} | {b['video_gain']:+.1f} | {100 * r['a2v']['R@1']:.1f} | "
                     f"{100 * r['v2a']['R@1']:.1f} | {r['a2v']['median_rank']:.0f} |")
    lines.append("")
    largest = study["budgets"][-1]["flops"]
    for name, trend in fitted.items():
        unit = "points of R@1" if name.endswith("_r1") else "points"
        slope = 100 * trend["slope"] if name.endswith("_r1") else trend["slope"]
        if trend["target"] is not None:
            goal = f"{100 * trend['target']:.1f}% ({trend['target'] / study['chance_r1']:.0f}x chance)"
            if trend["reached"]:
                where = "reached at a measured budget"
            elif trend["flops_at_target"]:
                where = (f"the trend reaches it at {trend['flops_at_target']:.1e} FLOPs, "
                         f"{trend['flops_at_target'] / largest:.0f}x the largest budget (an extrapolation)")
            else:
                where = "the trend does not rise, so no budget reaches it on this evidence"
            lines.append(f"- {name}: {slope:+.2f} {unit} per 10x compute; {goal}: {where}.")
        else:
            lines.append(f"- {name}: {slope:+.2f} {unit} per 10x compute.")
    return "\n".join(lines)
