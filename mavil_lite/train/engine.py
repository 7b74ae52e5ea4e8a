"""The training engine shared by pre-training and fine-tuning: one loop from a laptop core to many GPUs.

:func:`train` owns everything that is not the model's loss: the per-process share of each global batch,
gradient accumulation, DDP, bf16 autocast, optional ``torch.compile``, AdamW with per-step cosine
schedule (timm), gradient clipping, the divergence guard, JSON-lines / TensorBoard logging and
checkpoints that resume exactly.

Exact resume and exact N-process equivalence come from one rule: every random draw is a function of
(seed, step), not of a running RNG. The clip order of an epoch is ``randperm`` seeded by (seed, epoch);
global batch ``k`` is its ``k``-th slice, and process ``r`` takes rows ``[r * B, (r + 1) * B)`` of it;
the step's generator (masking noise, mixup) is seeded by (seed, step) and draws for the *global* batch.
A run killed at any step and resumed, or split over N processes, therefore computes the same thing.
Because the order is known in advance, a data source that reads from disk (`streaming.StreamedClips`) is handed
this process's whole schedule (`micro_batches`) before the first step and its workers read ahead.
"""
from __future__ import annotations

import json
import math
import os
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from timm.optim import param_groups_weight_decay
from timm.scheduler import CosineLRScheduler
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from ..data.clip_source import MicroBatch
from ..distributed import DistributedContext, all_reduce_mean

NO_WEIGHT_DECAY = ("cls_token", "pos_embed", "mask_token")


@dataclass
class TrainConfig:
    epochs: int = 30
    batch_size: int = 32  # per process and micro-batch
    accum_steps: int = 1  # micro-batches per optimiser step
    base_lr: float = 1.5e-4  # [MAE]; lr = base_lr * effective batch / 256
    weight_decay: float = 0.05  # [MAE]
    warmup_epochs: int = 3
    betas: tuple[float, float] = (0.9, 0.95)  # [MAE]
    clip_grad: float | None = None
    bf16: bool = False  # autocast to bfloat16 (GPUs; CPUs with AMX)
    compile: bool = False  # torch.compile the model
    seed: int = 0
    checkpoint_every: int = 0  # optimiser steps between checkpoints; 0 = at the end of every epoch
    log_every: int = 10

    def effective_batch(self, world_size: int = 1) -> int:
        return self.batch_size * self.accum_steps * world_size

    def lr(self, world_size: int = 1) -> float:
        return self.base_lr * self.effective_batch(world_size) / 256


@dataclass
class Step:
    """What a loss function needs to know about the current micro-batch."""

    index: torch.Tensor  # (B,) this process's clip indices
    offset: int  # where this process's rows start within the global micro-batch
    global_batch: int  # rows in the global micro-batch (B * world size)
    generator: torch.Generator  # seeded by (seed, step): draw for the global batch, then take your rows
    number: int  # the optimiser step


@dataclass
class TrainResult:
    history: dict[str, list[float]] = field(default_factory=dict)  # per optimiser step, each loss term
    wall_s: float = 0.0  # training time summed over every session of this run, resumes included
    steps: int = 0


LossFn = Callable[[nn.Module, Step], dict[str, torch.Tensor]]


def no_weight_decay_names(model: nn.Module) -> list[str]:
    """Full names of ``model``'s parameters named in `NO_WEIGHT_DECAY` (``encoders.audio.cls_token``, ...): timm's
    groupings match a parameter's whole name, and leave only norms and biases (1-D) undecayed by themselves."""
    return [n for n, _ in model.named_parameters() if n.split(".")[-1] in NO_WEIGHT_DECAY]


def weight_decay_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """No weight decay on norms, biases, tokens and position tables (timm's grouping plus MAE's names)."""
    return param_groups_weight_decay(model, weight_decay, no_weight_decay_list=no_weight_decay_names(model))


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write to a temporary file, then rename: a crash mid-write never leaves a truncated checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def make_optimizer(param_groups, lr: float, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW over ``param_groups`` (timm's scheduler later applies any group's ``lr_scale``).

    Fused: one kernel updates every tensor, where the default loops over them; on a CPU that loop costs about as
    much as a tiny model's forward and backward (``benchmarks/run_all.py`` section b).
    """
    return torch.optim.AdamW(param_groups, lr=lr, betas=config.betas, fused=True)


def load_checkpoint(path: str | Path, mmap: bool = False) -> dict[str, Any]:
    """Tensors, numbers and strings only: ``weights_only`` refuses a file that would run pickled code.

    ``mmap`` maps the tensors instead of reading them, for a caller that only looks at the small entries.
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as error:  # the unpickler's own message does not say which file
        raise type(error)(f"{path}: refused or unreadable checkpoint ({error})") from error


def _seed(*parts: int) -> int:
    value = 0
    for part in parts:
        value = (value * 1_000_003 + part) % (2**63)
    return value


@dataclass
class _Plan:
    """What a run will do: its length in optimisation steps, its optimiser and its learning-rate schedule."""

    steps_per_epoch: int
    total_steps: int
    lr: float
    optimizer: torch.optim.Optimizer
    scheduler: CosineLRScheduler


def _plan(model: nn.Module, num_clips: int, config: TrainConfig, param_groups: list[dict] | None,
          ctx: DistributedContext) -> _Plan:
    """Steps from the clips and the global batch; AdamW over ``param_groups`` (default: `weight_decay_groups`);
    cosine decay after a linear warm-up, stepped per optimisation step."""
    global_batch = config.batch_size * ctx.world_size
    steps_per_epoch = num_clips // (global_batch * config.accum_steps)
    if steps_per_epoch == 0:
        raise ValueError(f"{num_clips} clips is fewer than one batch of {global_batch * config.accum_steps}")
    total_steps, lr = config.epochs * steps_per_epoch, config.lr(ctx.world_size)
    groups = param_groups if param_groups is not None else weight_decay_groups(model, config.weight_decay)
    optimizer = make_optimizer(groups, lr, config)
    scheduler = CosineLRScheduler(optimizer, t_initial=total_steps, warmup_t=config.warmup_epochs * steps_per_epoch,
                                  warmup_lr_init=lr * 1e-3, lr_min=lr * 1e-2, t_in_epochs=False)
    return _Plan(steps_per_epoch, total_steps, lr, optimizer, scheduler)


def _resume(model: nn.Module, plan: _Plan, checkpoint: Path | None) -> TrainResult:
    """The run so far: empty, or the checkpoint's model, optimiser state, history and wall time."""
    if checkpoint is None or not checkpoint.exists():
        return TrainResult()
    state = load_checkpoint(checkpoint)
    model.load_state_dict(state["model"])
    plan.optimizer.load_state_dict(state["optimizer"])
    return TrainResult(state["history"], state["wall_s"], state["step"])


def _save(checkpoint: Path, model: nn.Module, plan: _Plan, result: TrainResult, config: TrainConfig,
          epochs_done: int) -> None:
    """Everything a resume needs, written atomically."""
    save_checkpoint(checkpoint, {
        "model": model.state_dict(), "optimizer": plan.optimizer.state_dict(), "step": result.steps,
        "epoch": epochs_done, "history": result.history, "wall_s": result.wall_s, "train_config": asdict(config),
        "model_config": model.config.to_dict() if hasattr(model, "config") else {},
    })


def _step(step: int, batches: Iterator[MicroBatch], loss_fn: LossFn, runner: nn.Module, ddp: nn.Module,
          plan: _Plan, config: TrainConfig, ctx: DistributedContext, autocast) -> dict[str, float]:
    """One optimisation step over ``config.accum_steps`` micro-batches: each loss term's mean over the step and
    over every process (the update itself is identical on every process)."""
    plan.scheduler.step_update(step)
    torch.manual_seed(_seed(config.seed, step, ctx.rank))  # drop-path etc.: a function of the step too
    plan.optimizer.zero_grad(set_to_none=True)
    terms_sum: dict[str, float] = {}
    global_batch = config.batch_size * ctx.world_size
    for micro in range(config.accum_steps):
        index = next(batches).index
        generator = torch.Generator().manual_seed(_seed(config.seed, step, micro))
        # gradients are all-reduced once per step, on its last micro-batch
        context = ddp.no_sync() if ctx.world_size > 1 and micro < config.accum_steps - 1 else nullcontext()
        with context:
            with autocast:
                terms = loss_fn(runner, Step(index, ctx.rank * config.batch_size, global_batch, generator, step))
            (terms["loss"] / config.accum_steps).backward()
        for k, v in terms.items():
            terms_sum[k] = terms_sum.get(k, 0.0) + v.item() / config.accum_steps
    terms_mean = {k: all_reduce_mean(v) for k, v in terms_sum.items()}
    bad = [k for k, v in terms_mean.items() if not math.isfinite(v)]
    if bad:
        raise FloatingPointError(f"non-finite loss term(s) {bad} at step {step}")
    if config.clip_grad:
        torch.nn.utils.clip_grad_norm_(ddp.parameters(), config.clip_grad)
    plan.optimizer.step()
    return terms_mean


def train(
    model: nn.Module,
    num_clips: int,
    loss_fn: LossFn,
    config: TrainConfig,
    param_groups: list[dict] | None = None,
    checkpoint: str | Path | None = None,
    ctx: DistributedContext = DistributedContext(),
    sample_weights: torch.Tensor | None = None,
    log_path: str | Path | None = None,
    tensorboard_dir: str | Path | None = None,
    progress: bool = True,
    desc: str = "train",
    prefetch: Callable[[Iterator[MicroBatch] | None], None] | None = None,
) -> TrainResult:
    """Optimise ``loss_fn`` over ``num_clips`` clips for ``config.epochs`` epochs: `_plan`, `_resume`, then
    `_step` after `_step`, with `_save` at every epoch's end (or every ``config.checkpoint_every`` steps).

    ``loss_fn(model, step)`` returns scalar terms including ``loss``. ``sample_weights`` ``(num_clips,)``
    switches from shuffling to weighted sampling with replacement (balanced sampling). With
    ``checkpoint``, the state is saved atomically and a run that finds a checkpoint resumes from it.
    ``prefetch`` (a data source's, e.g. ``StreamedClips.prefetch``) receives the micro-batches this process
    will ask for, from the first step still to run, then ``None`` when training stops.
    """
    world = ctx.world_size
    model.to(ctx.device).train()
    plan = _plan(model, num_clips, config, param_groups, ctx)
    checkpoint = Path(checkpoint) if checkpoint else None
    result = _resume(model, plan, checkpoint)
    start_step = result.steps
    if start_step >= plan.total_steps:
        return result
    if ctx.is_main and progress and start_step == 0:
        print(f"{desc}: {world} process(es) x batch {config.batch_size} x {config.accum_steps} accumulation = "
              f"effective batch {config.effective_batch(world)}; lr = {config.base_lr:g} x "
              f"{config.effective_batch(world)} / 256 = {plan.lr:.3g}; {plan.total_steps} steps")
    ddp = DistributedDataParallel(model, device_ids=[ctx.local_rank] if ctx.device.startswith("cuda") else None) \
        if world > 1 else model
    runner = torch.compile(ddp) if config.compile else ddp
    autocast = torch.autocast(torch.device(ctx.device).type, dtype=torch.bfloat16, enabled=config.bf16)
    logger = _Logger(log_path if ctx.is_main else None, tensorboard_dir if ctx.is_main else None)
    bar = tqdm(total=plan.total_steps, initial=start_step, desc=desc, disable=not (progress and ctx.is_main))
    schedule = (num_clips, config, ctx, plan.steps_per_epoch, start_step, plan.total_steps, sample_weights)
    batches = micro_batches(*schedule)
    if prefetch is not None:  # its own copy of the same schedule, to read ahead with
        prefetch(micro_batches(*schedule))
    try:
        session_started, earlier_sessions_s = time.perf_counter(), result.wall_s
        for step in range(start_step, plan.total_steps):
            epoch, step_in_epoch = divmod(step, plan.steps_per_epoch)
            try:
                terms_mean = _step(step, batches, loss_fn, runner, ddp, plan, config, ctx, autocast)
            except FloatingPointError as error:
                raise FloatingPointError(f"{desc}: {error} (epoch {epoch}); the last good state is in "
                                         f"{checkpoint or 'no checkpoint (none was set)'}") from None
            for k, v in terms_mean.items():
                result.history.setdefault(k, []).append(v)
            result.steps = step + 1
            result.wall_s = earlier_sessions_s + time.perf_counter() - session_started
            if step % config.log_every == 0 or step + 1 == plan.total_steps:
                # the head's lr: under layer-wise decay every other group's is scaled down from it
                logger.log(step, epoch, max(group["lr"] for group in plan.optimizer.param_groups), terms_mean)
            bar.update()
            bar.set_postfix(loss=f"{terms_mean['loss']:.3f}", epoch=epoch)
            end_of_epoch = step_in_epoch + 1 == plan.steps_per_epoch
            due = (step + 1) % config.checkpoint_every == 0 if config.checkpoint_every else end_of_epoch
            if checkpoint and ctx.is_main and (due or step + 1 == plan.total_steps):
                _save(checkpoint, model, plan, result, config, epoch + end_of_epoch)
    finally:
        if prefetch is not None:
            prefetch(None)
        bar.close()
        logger.close()
    return result


def micro_batches(num_clips: int, config: TrainConfig, ctx: DistributedContext, steps_per_epoch: int,
                  start_step: int, total_steps: int,
                  sample_weights: torch.Tensor | None = None) -> Iterator[MicroBatch]:
    """This process's micro-batches from ``start_step`` to the end of the run, in training order.

    Global micro-batch k of an epoch is slice k of the epoch's order; process r takes its rows
    ``[r * B, (r + 1) * B)``. A draw number is the same for one process or N and after a resume, so a
    random choice seeded by it (a clip's training window in `raw_clips.RawClips`) is too.
    """
    global_batch = config.batch_size * ctx.world_size
    order_epoch, order = -1, None
    for step in range(start_step, total_steps):
        epoch, step_in_epoch = divmod(step, steps_per_epoch)
        if epoch != order_epoch:
            order, order_epoch = _epoch_order(num_clips, config.seed, epoch, sample_weights), epoch
        for micro in range(config.accum_steps):
            first = (step_in_epoch * config.accum_steps + micro) * global_batch + ctx.rank * config.batch_size
            places = torch.arange(first, first + config.batch_size)  # (B,) places in the epoch's order
            yield MicroBatch(order[places], epoch * num_clips + places)


def _epoch_order(num_clips: int, seed: int, epoch: int, sample_weights: torch.Tensor | None) -> torch.Tensor:
    generator = torch.Generator().manual_seed(_seed(seed, 10_000 + epoch))
    if sample_weights is None:
        return torch.randperm(num_clips, generator=generator)
    return torch.multinomial(sample_weights, num_clips, replacement=True, generator=generator)


class _Logger:
    """JSON lines (one object per logged step) and, optionally, TensorBoard scalars."""

    def __init__(self, log_path, tensorboard_dir):
        self.file = None
        if log_path:
            Path(log_path).parent.mkdir(parents=True, exist_ok=True)
            self.file = open(log_path, "a")
        self.writer = None
        if tensorboard_dir:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as error:
                raise ImportError("tensorboard logging needs `pip install tensorboard`") from error
            self.writer = SummaryWriter(str(tensorboard_dir))

    def log(self, step: int, epoch: int, lr: float, terms: dict[str, float]) -> None:
        if self.file:
            self.file.write(json.dumps({"step": step, "epoch": epoch, "lr": lr, **terms}) + "\n")
            self.file.flush()
        if self.writer:
            for k, v in {"lr": lr, **terms}.items():
                self.writer.add_scalar(k, v, step)

    def close(self) -> None:
        if self.file:
            self.file.close()
        if self.writer:
            self.writer.close()
