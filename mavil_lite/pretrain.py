"""Pre-training: stage 1 (raw reconstruction + contrast) or stage 2 (regress a frozen teacher).

This module only says what one pre-training step computes; the loop (DDP, accumulation, schedule,
checkpoints, resume, logging) is :func:`mavil_lite.engine.train`. The masks of a step are drawn for the
global batch from the step's generator, so one process and N processes mask the same clips the same way.
"""
from __future__ import annotations

from pathlib import Path

import torch

from .dataset import ClipTensors
from .distributed import DistributedContext
from .engine import Step, TrainConfig, TrainResult, train
from .masking import rows_of_batch
from .model import MAViL


def pretrain_step_fn(model: MAViL, data: ClipTensors, device: str, teacher: MAViL | None = None):
    """The loss of one micro-batch: ``fn(runner, step) -> {term: scalar}``; ``runner`` may wrap ``model`` (DDP)."""

    def loss_fn(runner, step: Step) -> dict[str, torch.Tensor]:
        audio, video, _ = data.batch(step.index)
        global_noise = model.mask_noise(step.global_batch, step.generator)  # (views * G, N) per modality
        noise = {m: rows_of_batch(n, step.global_batch, step.offset, len(step.index)) for m, n in global_noise.items()}
        out = runner(audio.to(device), video.to(device), teacher=teacher, noise=noise)
        return {k: v for k, v in out.items() if torch.is_tensor(v) and v.dim() == 0}

    return loss_fn


def pretrain(
    model: MAViL,
    data: ClipTensors,
    config: TrainConfig,
    teacher: MAViL | None = None,
    checkpoint: str | Path | None = None,
    device: str = "cpu",
    ctx: DistributedContext | None = None,
    log_path: str | Path | None = None,
    progress: bool = True,
    desc: str = "pretrain",
) -> TrainResult:
    """Pre-train ``model`` on every clip of ``data`` (labels unused).

    Stage 2 when ``teacher`` is given: the teacher is frozen and run without gradients. With
    ``checkpoint``, the run saves its state as it goes and resumes from what it finds there (a finished
    run returns at once with its stored history and wall time).
    """
    ctx = ctx or DistributedContext(device=device)
    if teacher is not None:
        teacher.to(ctx.device).eval().requires_grad_(False)
    return train(model, len(data), pretrain_step_fn(model, data, ctx.device, teacher), config,
                 checkpoint=checkpoint, ctx=ctx, log_path=log_path, progress=progress, desc=desc)
