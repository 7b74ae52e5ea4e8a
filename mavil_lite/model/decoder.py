"""An MAE decoder for one modality: fused visible tokens + mask tokens -> a prediction for every patch.

MAViL has one per modality. The audio decoder receives the audio part of the fusion encoder's output,
so what it predicts for a masked audio patch can draw on the video through the fusion attention.
In stage 1 the decoder predicts raw patches (``out_dim`` = pixels per patch); in stage 2 it predicts the
teacher's fused token features (``out_dim`` = encoder width). The decoder is thrown away after pre-training.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .encoder import sincos_pos_embed, vit_blocks


class MAEDecoder(nn.Module):
    def __init__(
        self,
        grid_size: Sequence[int],
        encoder_dim: int,
        dim: int,
        depth: int,
        num_heads: int,
        out_dim: int,
        mlp_ratio: float = 4.0,
    ):
        super().__init__()
        self.num_patches = int(torch.tensor(grid_size).prod())
        # The encoders and the fusion have no final norm (as in the public checkpoint), so normalise here.
        self.input_norm = nn.LayerNorm(encoder_dim, eps=1e-6)
        self.embed = nn.Linear(encoder_dim, dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(sincos_pos_embed(grid_size, dim), requires_grad=False)
        self.blocks = vit_blocks(dim, depth, num_heads, mlp_ratio)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pred = nn.Linear(dim, out_dim)
        nn.init.normal_(self.mask_token, std=0.02)

    def forward(self, tokens: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        """tokens ``(B, 1 + n_visible, encoder_dim)`` with CLS first; ids_restore ``(B, N)`` -> ``(B, N, out_dim)``."""
        x = self.embed(self.input_norm(tokens))  # (B, 1 + n, dim)
        batch, num_tokens = ids_restore.shape
        n_mask = num_tokens - (x.shape[1] - 1)
        mask_tokens = self.mask_token.expand(batch, n_mask, -1)  # (B, N - n, dim)
        patches = torch.cat([x[:, 1:], mask_tokens], dim=1)  # (B, N, dim) in shuffled order
        patches = torch.gather(patches, 1, ids_restore.unsqueeze(-1).expand(-1, -1, x.shape[-1]))  # unshuffle
        x = torch.cat([x[:, :1], patches], dim=1) + self.pos_embed  # (B, 1 + N, dim)
        for block in self.blocks:
            x = block(x)
        return self.pred(self.norm(x))[:, 1:]  # (B, N, out_dim), CLS dropped
