"""Analytic FLOP count of one MAViL pre-training step, term by term, from a :class:`MAViLConfig`.

Only matrix products are counted (``2 * m * n * k`` for an ``(m, k) @ (k, n)`` product), as in MFU accounting:
norms, softmax, GELU, losses and the optimiser are a few percent of the work and mostly memory-bound. Which
tokens each part sees follows :meth:`MAViL.forward`:

- patch embedding: every patch of every clip, once (the intra-modal second view reuses the embedded patches);
- encoder blocks: ``1 + num_visible(N)`` tokens (CLS + visible), over ``2B`` clips when the intra-modal
  contrast is on (the two masked views go through the encoder as one doubled batch);
- fusion blocks: the first view only, ``sum over modalities of (1 + visible)`` tokens;
- decoder: input projection on ``1 + visible`` tokens, blocks and prediction head on ``1 + N`` (mask tokens put
  back, CLS kept until after the head);
- contrast: a LayerNorm + Linear projection of each mean-pooled view and the ``B x B`` similarity products;
- stage-2 teacher: encoders on the full clip (``1 + N`` tokens) and fusion over both, forward only.

A trained part costs three forwards (forward, gradient of the input, gradient of the weights), except the
patch embedding, whose input (the data) needs no gradient: two. The teacher runs under ``no_grad``: one.
Attention is counted without the score recomputation a flash kernel does in its backward (model FLOPs, not
hardware FLOPs), so the count does not depend on the attention kernel.
"""
from __future__ import annotations

from math import prod

from .masking import num_visible
from .mavil import MAViLConfig

TRAINED, FIRST_LAYER, FROZEN = 3, 2, 1  # forwards' worth of work per step: fwd + grad input + grad weight, ...


def matmul_flops(m: int, k: int, n: int, batch: int = 1) -> int:
    """FLOPs of ``batch`` products ``(m, k) @ (k, n)``: one multiply and one add per term."""
    return 2 * batch * m * k * n


def block_flops(batch: int, tokens: int, dim: int, num_heads: int, mlp_ratio: float, depth: int = 1) -> dict[str, int]:
    """Forward FLOPs of ``depth`` timm ViT blocks on ``(batch, tokens, dim)``, by part.

    ``scores`` is ``q @ k^T`` and ``attn_v`` is ``softmax(scores) @ v``, over all heads: both grow with
    ``tokens ** 2``; everything else grows linearly with ``tokens``.
    """
    attn_dim = (dim // num_heads) * num_heads  # timm's head_dim * heads
    hidden = int(dim * mlp_ratio)
    rows = batch * tokens
    per_block = {
        "qkv": matmul_flops(rows, dim, 3 * attn_dim),
        "scores": matmul_flops(tokens, attn_dim, tokens, batch),  # heads split attn_dim: the sum is the same
        "attn_v": matmul_flops(tokens, tokens, attn_dim, batch),
        "proj": matmul_flops(rows, attn_dim, dim),
        "mlp": matmul_flops(rows, dim, hidden) + matmul_flops(rows, hidden, dim),
    }
    return {name: depth * flops for name, flops in per_block.items()}


def num_patches(config: MAViLConfig, modality: str) -> int:
    """Tokens a modality's input is cut into: 512 audio and 784 video patches for MAViL-Base."""
    if modality == "audio":
        return prod(s // p for s, p in zip(config.audio_size, config.audio_patch))
    return prod(s // p for s, p in zip(config.video_size, config.video_patch))


def patch_values(config: MAViLConfig, modality: str) -> int:
    """Input values per patch: 16 * 16 for audio, 3 * 2 * 16 * 16 for a video tubelet."""
    return prod(config.audio_patch) if modality == "audio" else 3 * prod(config.video_patch)


def _terms(config: MAViLConfig, batch: int, mask_ratio: float | None, teacher: MAViLConfig | None):
    """``(name, forward FLOPs, forwards' worth per step)`` for every counted product of one step."""
    c = config
    ratio = c.mask_ratio if mask_ratio is None else mask_ratio
    views = 2 if c.intra_contrast_weight else 1
    terms: list[tuple[str, int, int]] = []

    def blocks(prefix: str, rows: int, tokens: int, dim: int, heads: int, depth: int, passes: int) -> None:
        for part, flops in block_flops(rows, tokens, dim, heads, c.mlp_ratio, depth).items():
            terms.append((f"{prefix}.{part}", flops, passes))

    visible = {m: num_visible(num_patches(c, m), ratio) if ratio > 0 else num_patches(c, m) for m in c.modalities}
    for m in c.modalities:
        n = num_patches(c, m)
        terms.append((f"{m}.patch_embed", matmul_flops(batch * n, patch_values(c, m), c.dim), FIRST_LAYER))
        depth = c.audio_depth if m == "audio" else c.video_depth
        blocks(f"{m}.encoder", views * batch, 1 + visible[m], c.dim, c.num_heads, depth, TRAINED)
    blocks("fusion", batch, sum(1 + visible[m] for m in c.modalities), c.dim, c.num_heads, c.fusion_depth, TRAINED)
    out_dim = {m: c.dim if c.target == "teacher" else patch_values(c, m) for m in c.modalities}
    for m in c.modalities:
        n = num_patches(c, m)
        terms.append((f"{m}.decoder.embed", matmul_flops(batch * (1 + visible[m]), c.dim, c.decoder_dim), TRAINED))
        blocks(f"{m}.decoder", batch, 1 + n, c.decoder_dim, c.decoder_heads, c.decoder_depth, TRAINED)
        terms.append((f"{m}.decoder.pred", matmul_flops(batch * (1 + n), c.decoder_dim, out_dim[m]), TRAINED))
    # InfoNCE: each pooled view is projected once; each loss scores B x B pairs in both directions
    similarity = 2 * matmul_flops(batch, c.contrast_dim, batch)
    if c.inter_contrast_weight:
        terms.append(("contrast.inter_proj", len(c.modalities) * matmul_flops(batch, c.dim, c.contrast_dim), TRAINED))
        terms.append(("contrast.inter_similarity", similarity, TRAINED))
    if c.intra_contrast_weight:
        projections = 2 * len(c.modalities)  # both views of each modality
        terms.append(("contrast.intra_proj", projections * matmul_flops(batch, c.dim, c.contrast_dim), TRAINED))
        terms.append(("contrast.intra_similarity", len(c.modalities) * similarity, TRAINED))
    if teacher is not None:
        t = teacher
        seen = [m for m in t.modalities if m in c.modalities]  # the teacher is given the student's inputs
        for m in seen:
            n = num_patches(t, m)
            terms.append((f"teacher.{m}.patch_embed", matmul_flops(batch * n, patch_values(t, m), t.dim), FROZEN))
            depth = t.audio_depth if m == "audio" else t.video_depth
            blocks(f"teacher.{m}.encoder", batch, 1 + n, t.dim, t.num_heads, depth, FROZEN)
        blocks("teacher.fusion", batch, sum(1 + num_patches(t, m) for m in seen), t.dim, t.num_heads, t.fusion_depth,
               FROZEN)
    return terms


def _resolve_teacher(config: MAViLConfig, teacher: MAViLConfig | None) -> MAViLConfig | None:
    # the ablation's stage-2 teacher is the same architecture as the student
    return teacher if teacher is not None or config.target != "teacher" else config


def forward_flops(
    config: MAViLConfig, batch: int, mask_ratio: float | None = None, teacher: MAViLConfig | None = None
) -> dict[str, int]:
    """FLOPs of one ``model(audio, video, teacher)`` call, by term (``{"audio.encoder.qkv": ..., ...}``).

    ``mask_ratio`` defaults to the config's; ``teacher`` defaults to the student's architecture when
    ``config.target == "teacher"`` (stage 2), and is ignored otherwise unless given.
    """
    return {name: flops for name, flops, _ in _terms(config, batch, mask_ratio, _resolve_teacher(config, teacher))}


def step_flops(
    config: MAViLConfig, batch: int, mask_ratio: float | None = None, teacher: MAViLConfig | None = None
) -> dict[str, int]:
    """FLOPs of one training step (forward + backward), by term: three forwards for trained parts, two for the
    patch embedding (no gradient for the data), one for the frozen teacher. The optimiser is not counted."""
    return {name: flops * passes
            for name, flops, passes in _terms(config, batch, mask_ratio, _resolve_teacher(config, teacher))}
