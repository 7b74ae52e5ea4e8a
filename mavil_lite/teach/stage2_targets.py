"""Stage-2 targets, measured: how much of them is clip-specific, and how well a student predicts them.

A stage-2 student regresses a teacher's per-token features at the hidden positions (`MAViL.distillation_targets`).
After the per-token layer norm every target vector has mean 0 and variance 1, so "predicting 0 scores 1" is true
of any teacher and says nothing. The baseline that does: predict each position's mean target over the training
clips (:func:`position_means`). What is left above it is the part of the targets that differs between clips
(:func:`between_clip_share`): the only part a student can learn about a clip from its visible tokens.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..data.dataset import ClipTensors
from ..train.pretrain import all_teacher_targets


def collect_targets(teacher, clips: ClipTensors, source: str = "fused", device: str = "cpu") -> dict[str, Tensor]:
    """Every clip's targets from ``teacher``: ``{modality: (clips, tokens, dim)}`` on the CPU."""
    return all_teacher_targets(teacher, clips, device, progress=False, source=source)


def position_means(targets: dict[str, Tensor]) -> dict[str, Tensor]:
    """The per-position mean target ``{modality: (tokens, dim)}``: the predictor that knows nothing about the clip."""
    return {m: t.mean(dim=0) for m, t in targets.items()}


def between_clip_share(targets: Tensor) -> float:
    """Share of the targets' mean square that varies between clips at a fixed position and feature.

    targets ``(clips, tokens, dim)``. 0: every clip gets the same targets (a student can score perfectly without
    looking at the clip); 1: nothing about them is fixed by position alone.
    """
    between = targets.var(dim=0, unbiased=False)  # (tokens, dim): variance over clips
    return float(between.mean() / targets.pow(2).mean())


@torch.no_grad()
def evaluate_student(student, clips: ClipTensors, targets: dict[str, Tensor], means: dict[str, Tensor],
                     seed: int = 0, batch_size: int = 64, device: str = "cpu") -> dict[str, dict[str, float]]:
    """Hidden-token mean squared error of a stage-2 ``student`` against ``targets`` (from :func:`collect_targets` on
    these ``clips``), beside the per-position mean predictor (``means``, from the training clips) and zero.

    Returns ``{modality: {"student": mse, "position mean": mse, "zero": mse, "tokens": count}}``, all on the same
    masks, drawn from ``seed``.
    """
    student.eval().to(device)
    generator = torch.Generator().manual_seed(seed)
    totals = {m: {"student": 0.0, "position mean": 0.0, "zero": 0.0, "tokens": 0.0} for m in targets}
    for start in range(0, len(clips), batch_size):
        audio, video, _ = clips.batch(slice(start, start + batch_size))
        batch_targets = {m: t[start:start + len(audio)].to(device) for m, t in targets.items()}  # (B, N, dim)
        out = student(audio.to(device), video.to(device), targets=batch_targets,
                      noise=student.mask_noise(len(audio), generator))
        for m, target in batch_targets.items():
            hidden = out["mask"][m]  # (B, N), 1 = hidden
            guesses = {"student": out["preds"][m], "position mean": means[m].to(target).expand_as(target),
                       "zero": torch.zeros_like(target)}
            for name, guess in guesses.items():
                totals[m][name] += ((guess - target).pow(2).mean(-1) * hidden).sum().item()
            totals[m]["tokens"] += hidden.sum().item()
    return {m: {**{k: v / t["tokens"] for k, v in t.items() if k != "tokens"}, "tokens": int(t["tokens"])}
            for m, t in totals.items()}
