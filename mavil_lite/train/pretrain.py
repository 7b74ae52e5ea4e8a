"""Pre-training: stage 1 (raw reconstruction + contrast) or stage 2 (regress a frozen teacher).

This module only says what one pre-training step computes; the loop (DDP, accumulation, schedule,
checkpoints, resume, logging) is :func:`mavil_lite.train.engine.train`. The masks of a step are drawn for the
global batch from the step's generator, so one process and N processes mask the same clips the same way.
"""
from __future__ import annotations

from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..data.dataset import ClipTensors
from ..distributed import DistributedContext
from ..model.masking import rows_of_batch
from ..model.mavil import MAViL
from .engine import Step, TrainConfig, TrainResult, load_checkpoint, train


def _finished(checkpoint: str | Path | None, config: TrainConfig) -> bool:
    """Whether ``checkpoint`` holds a run that already did all ``config.epochs`` (nothing left to compute)."""
    if checkpoint is None or not Path(checkpoint).is_file():
        return False
    return load_checkpoint(checkpoint, mmap=True).get("epoch", 0) >= config.epochs  # train() reads it in full


TEACHER_TARGETS_MAX_BYTES = 2**31  # above this, stage 2 runs the teacher every step instead of once per clip


def teacher_target_bytes(teacher: MAViL, num_clips: int) -> int:
    """Memory that every clip's stage-2 targets take in float32: ``num_clips x tokens x dim x 4``."""
    c = teacher.config
    tokens = sum(teacher.encoders[m].num_patches for m in c.modalities)
    return num_clips * tokens * c.dim * 4


@torch.no_grad()
def all_teacher_targets(teacher: MAViL, data: ClipTensors, device: str, batch_size: int = 64,
                        progress: bool = True, source: str = "fused") -> dict[str, torch.Tensor]:
    """The frozen teacher's targets for every clip, once: ``{modality: (N, tokens, dim)}`` on the CPU.

    The teacher sees the full, unaugmented clip, so its targets are the same in every epoch; computing them
    once saves the teacher's forward pass in every step after the first epoch. ``source``: see
    `MAViL.distillation_targets`.
    """
    parts: dict[str, list[torch.Tensor]] = {}
    for start in tqdm(range(0, len(data), batch_size), desc="teacher targets", disable=not progress):
        audio, video, _ = data.batch(torch.arange(start, min(start + batch_size, len(data))))
        for m, t in teacher.distillation_targets(audio.to(device), video.to(device), source).items():
            parts.setdefault(m, []).append(t.float().cpu())
    return {m: torch.cat(chunks) for m, chunks in parts.items()}


def pretrain_step_fn(model: MAViL, data: ClipTensors, device: str, teacher: MAViL | None = None,
                     targets: dict[str, torch.Tensor] | None = None, target_source: str = "fused"):
    """The loss of one micro-batch: ``fn(runner, step) -> {term: scalar}``; ``runner`` may wrap ``model`` (DDP).

    Stage 2 gets its targets from ``targets`` (every clip's, from `all_teacher_targets`) when given, else from
    running ``teacher`` on the batch (``target_source``: see `MAViL.distillation_targets`). A clip that lacks a
    modality (``data.has_audio`` / ``has_video``) gets no loss term from it.
    """

    has = {"audio": data.has_audio, "video": data.has_video}
    # only a dataset where some clip lacks a modality pays for the masks (and their gathers under DDP); a stream
    # of media files learns which do only as it reads them
    flags_known = data.flags_known
    partial = [m for m in model.modalities if not flags_known or not bool(has[m].all())]

    def loss_fn(runner, step: Step) -> dict[str, torch.Tensor]:
        audio, video, _ = data.batch(step.index)  # a stream sets has[m][step.index] here, so read before the masks
        audio, video = audio.to(device), video.to(device)  # once: the teacher and the student read the same batch
        global_noise = model.mask_noise(step.global_batch, step.generator)  # (views * G, N) per modality
        noise = {m: rows_of_batch(n, step.global_batch, step.offset, len(step.index)) for m, n in global_noise.items()}
        if targets is not None:
            batch_targets = {m: t[step.index].to(device) for m, t in targets.items()}
        elif teacher is not None:
            batch_targets = teacher.distillation_targets(audio, video, target_source)
        else:
            batch_targets = None
        present = {m: has[m][step.index].to(device) for m in model.modalities} if partial else None
        out = runner(audio, video, noise=noise, targets=batch_targets,
                     present=present)
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
    cache_teacher_targets: bool | None = None,
    target_source: str = "fused",
) -> TrainResult:
    """Pre-train ``model`` on every clip of ``data`` (labels unused): a `ClipTensors` in memory, or a
    `streaming.StreamedClips` read from disk as training goes.

    Stage 2 when ``teacher`` is given: the teacher is frozen and run without gradients; its targets are its
    fused tokens (MAViL), or with ``target_source="encoder"`` its encoders' tokens before fusion. With
    ``checkpoint``, the run saves its state as it goes and resumes from what it finds there (a finished
    run returns at once with its stored history and wall time).

    ``cache_teacher_targets``: compute the teacher's targets for every clip once (`all_teacher_targets`) instead
    of in every step; by default, when they fit in `TEACHER_TARGETS_MAX_BYTES` and every epoch feeds a clip the
    same input. A stream of media files cuts a new random video window for each read, so there the teacher runs
    on each batch as read (targets computed once would be for the evaluation window, not the one the student sees).
    """
    ctx = ctx or DistributedContext(device=device)
    targets = None
    if teacher is not None:
        model.check_teacher(given=True)  # before the teacher's pass over every clip
        teacher.to(ctx.device).eval().requires_grad_(False)
        random_windows = data.random_windows
        if cache_teacher_targets and random_windows:
            raise ValueError("cache_teacher_targets=True, but this stream reads a new random video window for each "
                             "clip in every epoch: targets computed once would be for another window than the "
                             "student sees; leave cache_teacher_targets unset to run the teacher on each batch")
        if cache_teacher_targets is None:
            cache_teacher_targets = not random_windows and \
                teacher_target_bytes(teacher, len(data)) <= TEACHER_TARGETS_MAX_BYTES
        if cache_teacher_targets and not _finished(checkpoint, config):
            targets = all_teacher_targets(teacher, data, ctx.device, progress=progress and ctx.is_main,
                                          source=target_source)
            teacher = None
    return train(model, len(data), pretrain_step_fn(model, data, ctx.device, teacher, targets, target_source), config,
                 checkpoint=checkpoint, ctx=ctx, log_path=log_path, progress=progress, desc=desc,
                 prefetch=getattr(data, "prefetch", None))
