"""Pre-training loop: stage 1 (raw reconstruction + contrast) or stage 2 (regress a frozen teacher).

One function, :func:`pretrain`, trains one model on in-memory clips with AdamW (no weight decay on
norms, biases, tokens and position tables), a per-step cosine schedule with warm-up (timm's), and
optional bf16 autocast. It checkpoints atomically after every epoch and resumes from the last one, so
an interrupted notebook picks up where it stopped. The learning rate follows MAE's rule
``lr = base_lr * batch_size / 256``.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from timm.optim import param_groups_weight_decay
from timm.scheduler import CosineLRScheduler
from tqdm.auto import tqdm

from .dataset import ClipTensors
from .model import MAViL

NO_WEIGHT_DECAY = ("cls_token", "pos_embed", "mask_token")


@dataclass
class PretrainConfig:
    epochs: int = 30
    batch_size: int = 32
    base_lr: float = 1.5e-4  # [MAE]; lr = base_lr * batch_size / 256
    weight_decay: float = 0.05  # [MAE]
    warmup_epochs: int = 3
    betas: tuple[float, float] = (0.9, 0.95)  # [MAE]
    clip_grad: float | None = None
    bf16: bool = False  # autocast to bfloat16 (GPU, or CPUs with AMX)
    seed: int = 0

    @property
    def lr(self) -> float:
        return self.base_lr * self.batch_size / 256


@dataclass
class PretrainResult:
    history: dict[str, list[float]]  # per optimisation step, every loss term ("loss" is the total)
    wall_s: float  # training time summed over all sessions of this run, resumes included


def build_optimizer(model: MAViL, config: PretrainConfig) -> torch.optim.Optimizer:
    no_decay = [n for n, _ in model.named_parameters() if n.split(".")[-1] in NO_WEIGHT_DECAY]
    groups = param_groups_weight_decay(model, config.weight_decay, no_weight_decay_list=no_decay)
    return torch.optim.AdamW(groups, lr=config.lr, betas=config.betas)


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write to a temporary file, then rename: a crash mid-write never leaves a truncated checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Tensors, numbers and strings only: ``weights_only`` refuses anything that would run pickled code."""
    return torch.load(path, map_location="cpu", weights_only=True)


def pretrain(
    model: MAViL,
    data: ClipTensors,
    config: PretrainConfig,
    teacher: MAViL | None = None,
    checkpoint: str | Path | None = None,
    device: str | torch.device = "cpu",
    progress: bool = True,
    desc: str = "pretrain",
) -> PretrainResult:
    """Train ``model`` on every clip of ``data`` (labels unused).

    With ``checkpoint``, the state is saved after every epoch and a run that finds a checkpoint there
    continues from it (a finished run returns at once with its stored history and wall time).
    """
    steps_per_epoch = len(data) // config.batch_size
    if steps_per_epoch == 0:
        raise ValueError(f"{len(data)} clips is fewer than one batch of {config.batch_size}")
    model.to(device).train()
    if teacher is not None:
        teacher.to(device).eval().requires_grad_(False)
    optimizer = build_optimizer(model, config)
    total_steps = config.epochs * steps_per_epoch
    scheduler = CosineLRScheduler(
        optimizer, t_initial=total_steps, warmup_t=config.warmup_epochs * steps_per_epoch, warmup_lr_init=config.lr * 1e-3,
        lr_min=config.lr * 1e-2, t_in_epochs=False,
    )
    history: dict[str, list[float]] = {}
    start_epoch, wall_s = 0, 0.0
    checkpoint = Path(checkpoint) if checkpoint else None
    if checkpoint and checkpoint.exists():
        state = load_checkpoint(checkpoint)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"])
        history, start_epoch, wall_s = state["history"], state["epoch"], state["wall_s"]

    autocast = torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=config.bf16)
    bar = tqdm(total=total_steps, initial=start_epoch * steps_per_epoch, desc=desc, disable=not progress)
    for epoch in range(start_epoch, config.epochs):
        epoch_started = time.perf_counter()
        # Shuffle from (seed, epoch) alone, so a resumed run sees the same order as an uninterrupted one.
        order = torch.randperm(len(data), generator=torch.Generator().manual_seed(config.seed * 10_000 + epoch))
        for i in range(steps_per_epoch):
            step = epoch * steps_per_epoch + i
            scheduler.step_update(step)
            audio, video, _ = data.batch(order[i * config.batch_size:(i + 1) * config.batch_size])
            with autocast:
                out = model(audio.to(device), video.to(device), teacher=teacher)
            terms = {k: v.item() for k, v in out.items() if torch.is_tensor(v) and v.dim() == 0}
            bad = [k for k, v in terms.items() if not math.isfinite(v)]
            if bad:
                raise FloatingPointError(f"{desc}: non-finite loss term(s) {bad} at step {step} (epoch {epoch}); "
                                         f"the last good state is in {checkpoint or 'no checkpoint'}")
            optimizer.zero_grad(set_to_none=True)
            out["loss"].backward()
            if config.clip_grad:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip_grad)
            optimizer.step()
            for k, v in terms.items():
                history.setdefault(k, []).append(v)
            bar.update()
            bar.set_postfix(loss=f"{terms['loss']:.3f}", epoch=epoch)
        wall_s += time.perf_counter() - epoch_started
        if checkpoint:
            save_checkpoint(checkpoint, {
                "model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch + 1,
                "history": history, "wall_s": wall_s, "rng": torch.get_rng_state(),
                "model_config": model.config.to_dict(), "pretrain_config": asdict(config),
            })
    bar.close()
    return PretrainResult(history, wall_s)
