"""Initialise MAViL's encoders from public single-modality checkpoints (a file you already have).

The paper's best model starts from ImageNet self-supervised MAE weights ("IN-SSL"). Supported layouts:

- MAE ViT (official ``{"model": ...}`` files and timm's ``vit_*_patch16_*.mae``): ``cls_token``,
  ``pos_embed``, ``patch_embed.proj.*``, ``blocks.N.*`` (+ ``norm``, ``fc_norm``, ``head``, ``decoder_*``);
- AudioMAE: the same names, with a 1-channel patch embedding and a 513-row position table;
- the public MAViL checkpoints: use :func:`mavil_lite.from_public_mavil`, or ``target="mavil"`` here.

Adaptations, each reported: RGB patch weights are averaged into the 1-channel audio patch embedding;
2-D patch weights are inflated to 2x16x16 tubelets (repeated over time and divided by its length, so a
static clip gives the image's response); position tables are interpolated to the target grid (timm's
``resample_abs_pos_embed``; for video, spatially, then repeated over time). Anything else that does not
fit raises an error naming the key.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch
from timm.layers import resample_abs_pos_embed

from .encoder import ModalityEncoder
from .mavil import MAViL

ENCODER_KEY = re.compile(r"^(cls_token|pos_embed|patch_embed\.proj\.(weight|bias)|blocks\.\d+\..+)$")


@dataclass
class LoadReport:
    loaded: list[str] = field(default_factory=list)  # our parameter names filled from the checkpoint
    adapted: list[str] = field(default_factory=list)  # "name: how" for reshaped tensors
    ignored: list[str] = field(default_factory=list)  # checkpoint keys with no place in the model
    initialised: list[str] = field(default_factory=list)  # our encoder parameters left as initialised

    def __str__(self) -> str:
        return (f"loaded {len(self.loaded)}, adapted {len(self.adapted)} ({'; '.join(self.adapted)}), "
                f"ignored {len(self.ignored)} ({', '.join(self.ignored[:8])}{'...' if len(self.ignored) > 8 else ''}), "
                f"newly initialised {len(self.initialised)} ({', '.join(self.initialised[:8])})")


def _adapt(name: str, value: torch.Tensor, target: torch.Tensor, encoder: ModalityEncoder) -> tuple[torch.Tensor, str]:
    """Make ``value`` fit ``target``'s shape, or raise; returns the tensor and how it was changed ('' if not)."""
    if value.shape == target.shape:
        return value, ""
    if name == "patch_embed.proj.weight":
        how = []
        if value.shape[1] == 3 and target.shape[1] == 1:
            value = value.mean(dim=1, keepdim=True)  # (D, 3, p, q) -> (D, 1, p, q)
            how.append("RGB averaged to 1 channel")
        if value.dim() == 4 and target.dim() == 5:
            frames = target.shape[2]
            value = value.unsqueeze(2).repeat(1, 1, frames, 1, 1) / frames  # (D, C, p, q) -> (D, C, t, p, q)
            how.append(f"inflated to {frames}-frame tubelets")
        if value.shape == target.shape:
            return value, ", ".join(how)
    if name == "pos_embed" and value.shape[-1] == target.shape[-1]:
        grid = encoder.grid_size
        source_tokens = value.shape[1] - 1
        side = int(round(source_tokens ** 0.5))
        source_grid = (side, side) if side * side == source_tokens else None
        if source_grid and len(grid) == 3:  # image table -> each time step of a tubelet grid
            spatial = resample_abs_pos_embed(value, list(grid[1:]), list(source_grid), num_prefix_tokens=1)
            cls, patches = spatial[:, :1], spatial[:, 1:]  # (1, 1, D), (1, h*w, D)
            value = torch.cat([cls, patches.repeat(1, grid[0], 1)], dim=1)  # (1, 1 + t*h*w, D)
            return value, f"interpolated {source_grid} -> {grid[1:]}, repeated over {grid[0]} time steps"
        if source_grid and len(grid) == 2:
            value = resample_abs_pos_embed(value, list(grid), list(source_grid), num_prefix_tokens=1)
            return value, f"interpolated {source_grid} -> {grid}"
    raise ValueError(f"checkpoint {name} {tuple(value.shape)} cannot be adapted to {tuple(target.shape)}")


@torch.no_grad()
def load_vit_into_encoder(model: MAViL, state_dict: dict[str, torch.Tensor], modality: str,
                          keep_pos_embed: bool = False) -> LoadReport:
    """Copy a MAE / timm / AudioMAE ViT's encoder weights into ``model.encoders[modality]``.

    ``keep_pos_embed=False`` (the default) keeps the kit's fixed sin-cos table, as MAViL trains with;
    ``True`` interpolates the checkpoint's table instead.
    """
    state_dict = state_dict.get("model", state_dict)
    encoder = model.encoders[modality]
    ours = dict(encoder.named_parameters())
    report = LoadReport()
    for key, value in state_dict.items():
        if not ENCODER_KEY.match(key) or key not in ours or (key == "pos_embed" and not keep_pos_embed):
            report.ignored.append(key)
            continue
        value, how = _adapt(key, value, ours[key], encoder)
        ours[key].copy_(value)
        report.loaded.append(f"encoders.{modality}.{key}")
        if how:
            report.adapted.append(f"{key}: {how}")
    loaded = {name.split(".", 2)[2] for name in report.loaded}
    report.initialised = [f"encoders.{modality}.{k}" for k in ours if k not in loaded]
    return report
