"""torch.distributed plumbing, the same code for one CPU process, one GPU, N GPUs and many nodes.

``torchrun`` sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; :func:`init_distributed` reads them and
starts a process group (NCCL on GPUs, gloo on CPU). Without them everything here degrades to a
single process: :func:`world_size` is 1 and the gathers return their input.

Two things need the whole global batch, not a process's share of it:

- contrastive losses, whose negatives are every other clip of the global batch: :func:`gather_with_grad`
  lets gradients flow back to the process that produced each embedding;
- evaluation metrics (mAP, retrieval), computed once over the whole split: :func:`gather_rows` collects
  every process's rows in dataset order and drops the padding a sampler added.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistributedContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: str = "cpu"

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def init_distributed(device: str = "auto") -> DistributedContext:
    """Join the process group ``torchrun`` describes (if any) and pick this process's device.

    ``device="auto"`` means this process's GPU when there is one, else the CPU.
    """
    use_cuda = torch.cuda.is_available() if device == "auto" else device.startswith("cuda")
    if "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1 and not is_distributed():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if use_cuda:
        torch.cuda.set_device(local_rank)
        chosen = f"cuda:{local_rank}"
    else:
        chosen = "cpu" if device == "auto" else device
    return DistributedContext(rank(), world_size(), local_rank, chosen)


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """``(B, D)`` per process -> ``(world * B, D)`` in rank order, differentiable with respect to every part."""
    if not is_distributed():
        return x
    import warnings

    from torch.distributed.nn.functional import all_gather  # autograd-aware: backward sums the gradients

    with warnings.catch_warnings():  # deprecated in favour of a private API; still the public autograd gather
        warnings.simplefilter("ignore", FutureWarning)
        return torch.cat(all_gather(x), dim=0)


@torch.no_grad()
def gather_rows(x: torch.Tensor, total: int) -> torch.Tensor:
    """Rows computed on interleaved shards (rank r holds rows r, r + world, ...) -> the first ``total`` in order.

    This is the layout of :class:`torch.utils.data.DistributedSampler` without shuffling; the sampler pads
    the last round with repeats, which ``total`` cuts off so no clip is counted twice.
    """
    if not is_distributed():
        return x[:total]
    parts = [torch.empty_like(x) for _ in range(world_size())]
    dist.all_gather(parts, x.contiguous())
    interleaved = torch.stack(parts, dim=1).flatten(0, 1)  # (n, world, ...) -> (n * world, ...) in sample order
    return interleaved[:total]


def global_mean(local_sum: torch.Tensor, local_count: torch.Tensor) -> torch.Tensor:
    """This process's share of a mean over the global batch: ``sum * world / global count``, which DDP's
    averaging of gradients (and the engine's of loss values) over processes turns into ``global sum / count``."""
    global_count = gather_with_grad(local_count.detach().float().reshape(1)).sum()  # (world,) -> ()
    return local_sum * world_size() / global_count.clamp(min=1)


def all_reduce_mean(value: float) -> float:
    if not is_distributed():
        return value
    t = torch.tensor([value], dtype=torch.float64, device="cuda" if dist.get_backend() == "nccl" else "cpu")
    dist.all_reduce(t)
    return t.item() / world_size()
