"""Interoperability with the public MAViL-Base checkpoints (AV-SUPERB release of the paper's authors).

The public state dicts name the audio encoder's parameters at the top level (``cls_token``,
``pos_embed``, ``patch_embed.proj``, ``blocks.N``), the video encoder's with a ``_v`` suffix
(``cls_token_v``, ``patch_embed_v.proj``, ``blocks_v.N``), the fusion blocks ``blocks_av.N`` and the
fine-tuned A+V head ``fc_norm_av`` / ``head_av``. This module maps those names onto :class:`MAViL`'s
and infers the architecture from the tensors, so no config file is needed. The kit never downloads a
checkpoint: load the file yourself (``torch.load(path, weights_only=True)``) and pass the state dict.
"""
from __future__ import annotations

import re

import torch

from .mavil import MAViL, MAViLConfig

# public-name regex -> our name; the first group is the rest of the key.
_PUBLIC_TO_OURS = [
    (r"^cls_token$", "encoders.audio.cls_token"),
    (r"^pos_embed$", "encoders.audio.pos_embed"),
    (r"^patch_embed\.(.+)$", "encoders.audio.patch_embed.{}"),
    (r"^blocks\.(.+)$", "encoders.audio.blocks.{}"),
    (r"^cls_token_v$", "encoders.video.cls_token"),
    (r"^pos_embed_v$", "encoders.video.pos_embed"),
    (r"^patch_embed_v\.(.+)$", "encoders.video.patch_embed.{}"),
    (r"^blocks_v\.(.+)$", "encoders.video.blocks.{}"),
    (r"^blocks_av\.(.+)$", "fusion.{}"),
    (r"^(fc_norm_av\..+|head_av\..+)$", "{}"),
]


def public_to_ours(key: str) -> str | None:
    """Our parameter name for a public checkpoint key, or None when the key is not part of the format."""
    for pattern, template in _PUBLIC_TO_OURS:
        match = re.match(pattern, key)
        if match:
            return template.format(*match.groups())
    return None


def _depth(state_dict: dict[str, torch.Tensor], prefix: str) -> int:
    indices = {int(m.group(1)) for k in state_dict if (m := re.match(rf"^{re.escape(prefix)}\.(\d+)\.", k))}
    return max(indices) + 1 if indices else 0


def infer_public_config(
    state_dict: dict[str, torch.Tensor], num_heads: int, audio_size=(1024, 128), video_size=(8, 224, 224)
) -> MAViLConfig:
    """Width, depths, fusion depth, patch sizes, MLP ratio and the optional head, read off the tensors."""
    required = ["cls_token", "patch_embed.proj.weight", "patch_embed_v.proj.weight", "blocks.0.mlp.fc1.weight"]
    absent = [k for k in required if k not in state_dict]
    if absent:
        raise KeyError(f"not a MAViL checkpoint: missing {absent}")
    dim = state_dict["cls_token"].shape[-1]
    audio_patch = tuple(state_dict["patch_embed.proj.weight"].shape[2:])  # (dim, 1, p, q)
    video_patch = tuple(state_dict["patch_embed_v.proj.weight"].shape[2:])  # (dim, 3, pt, ph, pw)
    head = state_dict.get("head_av.weight")
    return MAViLConfig(
        audio_size=tuple(audio_size),
        audio_patch=audio_patch,
        video_size=tuple(video_size),
        video_patch=video_patch,
        dim=dim,
        audio_depth=_depth(state_dict, "blocks"),
        video_depth=_depth(state_dict, "blocks_v"),
        num_heads=num_heads,
        mlp_ratio=state_dict["blocks.0.mlp.fc1.weight"].shape[0] / dim,
        fusion_depth=_depth(state_dict, "blocks_av"),
        num_classes=0 if head is None else head.shape[0],
        with_decoders=False,
    )


def from_public_mavil(
    state_dict: dict[str, torch.Tensor], num_heads: int = 12, audio_size=(1024, 128), video_size=(8, 224, 224)
) -> MAViL:
    """Build an inference :class:`MAViL` (eval mode) from a public MAViL state dict.

    The stored position embeddings are used as they are. Keys that are not part of the format, model
    parameters the state dict lacks, and shapes that do not fit ``audio_size`` / ``video_size`` raise
    an error naming them.
    """
    state_dict = state_dict.get("model", state_dict)  # the released files wrap the weights in {"model": ...}
    unknown = sorted(k for k in state_dict if public_to_ours(k) is None)
    if unknown:
        raise KeyError(f"unknown keys in the MAViL state dict: {unknown}")
    model = MAViL(infer_public_config(state_dict, num_heads, audio_size, video_size))
    ours = {public_to_ours(k): v for k, v in state_dict.items()}
    expected = model.state_dict()
    missing = sorted(k for k in expected if k not in ours)
    if missing:
        raise KeyError(f"missing keys for this architecture: {missing}")
    mismatched = [f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(expected[k].shape)}"
                  for k, v in ours.items() if v.shape != expected[k].shape]
    if mismatched:
        raise ValueError("shape mismatch (check audio_size / video_size):\n  " + "\n  ".join(mismatched))
    model.load_state_dict(ours, strict=True)
    return model.eval()


# our-name regex -> public name: the inverse of _PUBLIC_TO_OURS, for the parts the public format has.
_OURS_TO_PUBLIC = [
    (r"^encoders\.audio\.cls_token$", "cls_token"),
    (r"^encoders\.audio\.pos_embed$", "pos_embed"),
    (r"^encoders\.audio\.patch_embed\.(.+)$", "patch_embed.{}"),
    (r"^encoders\.audio\.blocks\.(.+)$", "blocks.{}"),
    (r"^encoders\.video\.cls_token$", "cls_token_v"),
    (r"^encoders\.video\.pos_embed$", "pos_embed_v"),
    (r"^encoders\.video\.patch_embed\.(.+)$", "patch_embed_v.{}"),
    (r"^encoders\.video\.blocks\.(.+)$", "blocks_v.{}"),
    (r"^fusion\.(.+)$", "blocks_av.{}"),
    (r"^(fc_norm_av\..+|head_av\..+)$", "{}"),
]


def ours_to_public(key: str) -> str | None:
    """The public checkpoint key for one of our parameter names, or None for parts the format lacks
    (decoders and contrastive projections, which only pre-training uses)."""
    for pattern, template in _OURS_TO_PUBLIC:
        match = re.match(pattern, key)
        if match:
            return template.format(*match.groups())
    return None


def to_public_state_dict(model: MAViL) -> dict[str, torch.Tensor]:
    """Export a model's encoders, fusion blocks and A+V head under the public MAViL key names.

    The result loads with :func:`from_public_mavil` (given the model's ``num_heads`` and input sizes), so a
    kit-trained model travels in the same format as the released MAViL-Base checkpoints. Needs both
    modalities: the public format has no single-modality variant.
    """
    if set(model.modalities) != {"audio", "video"}:
        raise ValueError(f"the public format holds an audio-video model; this one has {model.modalities}")
    exported = {}
    for key, value in model.state_dict().items():
        public = ours_to_public(key)
        if public is not None:
            exported[public] = value.detach().clone()
    return exported
