"""One modality's ViT encoder: patch (or tubelet) embedding, fixed sin-cos positions, a CLS token, blocks.

MAViL has two of these, one for the audio spectrogram and one for the video clip. They are plain ViTs:
the transformer blocks are timm's, the 2-D patch embedding is timm's, and the only modality-specific
part is how the input is cut into tokens:

- audio ``(B, 1, T, F)`` is cut into 16x16 patches by a Conv2d, flattened time-major
  (1024x128 -> 64 x 8 = 512 tokens for the paper's input);
- video ``(B, 3, frames, H, W)`` is cut into 2x16x16 tubelets by a Conv3d
  (8x224x224 -> 4 x 14 x 14 = 784 tokens).

Following the public MAViL-Base checkpoint, an encoder has no final LayerNorm: whatever consumes its
tokens (the fusion encoder, a decoder, a probe head) normalises them itself.
"""
from __future__ import annotations

from functools import partial
from typing import Sequence

import torch
from timm.layers import PatchEmbed
from timm.models.vision_transformer import Block
from torch import nn


def token_grid(input_size: Sequence[int], patch_size: Sequence[int]) -> tuple[int, ...]:
    """The token grid a patch (audio) or tubelet (video) embedding cuts an input into.

    ``(1024, 128)`` by ``(16, 16)`` -> ``(64, 8)``: 512 audio tokens; ``(8, 224, 224)`` by ``(2, 16, 16)``
    -> ``(4, 14, 14)``: 784 video tokens. Raises if the input is not a whole number of patches.
    """
    if len(input_size) != len(patch_size) or any(s % p for s, p in zip(input_size, patch_size)):
        raise ValueError(f"input {tuple(input_size)} is not a whole number of patches {tuple(patch_size)}")
    return tuple(s // p for s, p in zip(input_size, patch_size))


def sincos_1d(length: int, dim: int, temperature: float = 10000.0) -> torch.Tensor:
    """MAE's 1-D sin-cos table: ``(length, dim)``, first half sines, second half cosines."""
    omega = 1.0 / temperature ** (torch.arange(dim // 2, dtype=torch.float64) / (dim / 2))  # (dim/2,)
    angles = torch.arange(length, dtype=torch.float64)[:, None] * omega[None]  # (length, dim/2)
    return torch.cat([angles.sin(), angles.cos()], dim=1).float()


def sincos_pos_embed(grid_size: Sequence[int], dim: int, cls_token: bool = True) -> torch.Tensor:
    """Fixed sin-cos position embedding over a 2-D (audio) or 3-D (video tubelet) token grid.

    Each axis gets its own 1-D table on a slice of the channels: half and half for (time, frequency);
    a quarter for time and three eighths each for (height, width), so video keeps most channels for
    space, where most of its tokens lie. timm's N-d helper splits channels evenly, which would rule out
    the 512-wide MAE decoder, hence this small composition.

    Returns ``(1, cls + prod(grid_size), dim)``; the CLS row is zeros, as in MAE.
    """
    if len(grid_size) == 2:
        splits = [dim // 2, dim // 2]
    elif len(grid_size) == 3:
        splits = [dim // 4, (dim - dim // 4) // 2, (dim - dim // 4) // 2]
    else:
        raise ValueError(f"expected a 2-D or 3-D grid, got {tuple(grid_size)}")
    if sum(splits) != dim or any(s % 2 for s in splits):
        raise ValueError(f"width {dim} cannot be split into even sin-cos parts {splits}")
    axes = torch.meshgrid(*[torch.arange(n) for n in grid_size], indexing="ij")  # each grid_size-shaped
    parts = [sincos_1d(n, s)[axis.flatten()] for n, s, axis in zip(grid_size, splits, axes)]  # (prod, s) each
    grid_embed = torch.cat(parts, dim=1)  # (prod(grid), dim), token order = row-major over the grid
    if cls_token:
        grid_embed = torch.cat([torch.zeros(1, dim), grid_embed], dim=0)  # (1 + prod(grid), dim)
    return grid_embed.unsqueeze(0)


class TubeletEmbed(nn.Module):
    """Video clip ``(B, C, frames, H, W)`` -> tubelet tokens ``(B, N, dim)`` with a Conv3d (time-major order)."""

    def __init__(self, video_size: Sequence[int], tubelet_size: Sequence[int], in_chans: int, dim: int):
        super().__init__()
        if any(s % p for s, p in zip(video_size, tubelet_size)):
            raise ValueError(f"video size {tuple(video_size)} is not divisible by tubelet {tuple(tubelet_size)}")
        self.grid_size = tuple(s // p for s, p in zip(video_size, tubelet_size))
        self.num_patches = self.grid_size[0] * self.grid_size[1] * self.grid_size[2]
        self.proj = nn.Conv3d(in_chans, dim, kernel_size=tuple(tubelet_size), stride=tuple(tubelet_size))

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        x = self.proj(video)  # (B, dim, t, h, w)
        return x.flatten(2).transpose(1, 2)  # (B, t*h*w, dim)


def vit_blocks(dim: int, depth: int, num_heads: int, mlp_ratio: float = 4.0, drop_path: float = 0.0) -> nn.ModuleList:
    """``depth`` timm ViT blocks (qkv bias, LayerNorm eps 1e-6) with a linearly rising drop-path rate."""
    rates = torch.linspace(0, drop_path, depth).tolist() if depth else []
    norm = partial(nn.LayerNorm, eps=1e-6)
    return nn.ModuleList(
        Block(dim, num_heads, mlp_ratio, qkv_bias=True, norm_layer=norm, drop_path=rate) for rate in rates
    )


class ModalityEncoder(nn.Module):
    """A ViT over one modality. ``input_size`` of length 2 means audio ``(T, F)``, of length 3 video ``(frames, H, W)``."""

    def __init__(
        self,
        input_size: Sequence[int],
        patch_size: Sequence[int],
        dim: int,
        depth: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        drop_path: float = 0.0,
    ):
        super().__init__()
        if len(input_size) == 2:
            self.patch_embed = PatchEmbed(
                img_size=tuple(input_size), patch_size=tuple(patch_size), in_chans=1, embed_dim=dim
            )
        else:
            self.patch_embed = TubeletEmbed(input_size, patch_size, in_chans=3, dim=dim)
        self.input_size = tuple(input_size)
        self.patch_size = tuple(patch_size)
        self.grid_size = tuple(self.patch_embed.grid_size)
        self.num_patches = self.patch_embed.num_patches
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        # Fixed, not learned (MAE); a Parameter so the public checkpoint's stored table loads by name.
        self.pos_embed = nn.Parameter(sincos_pos_embed(self.grid_size, dim), requires_grad=False)
        self.blocks = vit_blocks(dim, depth, num_heads, mlp_ratio, drop_path)
        nn.init.normal_(self.cls_token, std=0.02)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Input -> patch tokens with positions added, ``(B, N, dim)``; no CLS yet (masking comes first)."""
        return self.patch_embed(x) + self.pos_embed[:, 1:]

    def forward_blocks(self, patch_tokens: torch.Tensor) -> torch.Tensor:
        """``(B, n, dim)`` patch tokens (all, or the visible ones) -> ``(B, 1 + n, dim)`` with CLS first."""
        cls = (self.cls_token + self.pos_embed[:, :1]).expand(patch_tokens.shape[0], -1, -1)  # (B, 1, dim)
        x = torch.cat([cls, patch_tokens], dim=1)  # (B, 1 + n, dim)
        for block in self.blocks:
            x = block(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Unmasked input -> all tokens ``(B, 1 + N, dim)``."""
        return self.forward_blocks(self.embed(x))
