"""MAE random masking: each sample keeps a random subset of its tokens; the encoder sees only those.

MAViL masks each modality independently with the same ratio (0.8 in the paper). With 80% masking the
encoders process a fifth of the tokens, which is what makes MAE-style pre-training cheap.

Convention (as in MAE): ``mask`` is 1 for a masked (hidden) token and 0 for a visible one, in the
original token order; ``ids_restore`` undoes the shuffle so a decoder can put mask tokens back in place.
"""
from __future__ import annotations

from typing import NamedTuple

import torch


class Masked(NamedTuple):
    visible: torch.Tensor  # (B, n_keep, D) the kept tokens, in shuffled order
    mask: torch.Tensor  # (B, N) 1 = masked, 0 = visible, original order
    ids_restore: torch.Tensor  # (B, N) position of each original token in [visible, masked] order


def num_visible(num_tokens: int, mask_ratio: float) -> int:
    """How many of ``num_tokens`` stay visible at ``mask_ratio`` (at least one, so pooling is defined)."""
    if not 0.0 <= mask_ratio < 1.0:
        raise ValueError(f"mask_ratio must be in [0, 1), got {mask_ratio}")
    # MAE floors N * (1 - ratio); the epsilon stops float error turning 10 * 0.2 = 1.999... into 1.
    return max(1, int(num_tokens * (1 - mask_ratio) + 1e-6))


def random_masking(tokens: torch.Tensor, mask_ratio: float, generator: torch.Generator | None = None) -> Masked:
    """Keep a random ``1 - mask_ratio`` of each sample's tokens (per-sample shuffle, keep the first ones).

    tokens: ``(B, N, D)``. Returns :class:`Masked` with ``visible`` of shape ``(B, num_visible(N), D)``.
    """
    batch, num_tokens, dim = tokens.shape
    keep = num_visible(num_tokens, mask_ratio)
    noise = torch.rand(batch, num_tokens, device=tokens.device, generator=generator)  # (B, N)
    ids_shuffle = torch.argsort(noise, dim=1)  # ascending: the smallest noise is kept
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    ids_keep = ids_shuffle[:, :keep]  # (B, keep)
    visible = torch.gather(tokens, 1, ids_keep.unsqueeze(-1).expand(-1, -1, dim))  # (B, keep, D)
    mask = torch.ones(batch, num_tokens, device=tokens.device)
    mask[:, :keep] = 0
    mask = torch.gather(mask, 1, ids_restore)  # back to the original token order
    return Masked(visible, mask, ids_restore)


def unmasked(tokens: torch.Tensor) -> Masked:
    """The identity 'masking' (ratio 0, no shuffle): what a teacher or an evaluation pass sees."""
    batch, num_tokens, _ = tokens.shape
    ids = torch.arange(num_tokens, device=tokens.device).expand(batch, -1)  # (B, N)
    return Masked(tokens, torch.zeros(batch, num_tokens, device=tokens.device), ids)
