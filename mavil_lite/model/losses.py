"""MAViL's training objectives, each a pure function of tensors.

- :func:`masked_reconstruction_loss`: MSE between predicted and target patches, on masked patches only
  (stage 1: raw patches, optionally per-patch normalised; stage 2: the teacher's fused token features).
- :func:`info_nce`: symmetric InfoNCE between two batches of embeddings, the other clips of the batch
  being the negatives. Inter-modal contrast pairs a clip's audio with its video; intra-modal contrast
  pairs two differently masked views of the same clip in one modality.
- :func:`teacher_targets`: the stage-2 regression targets, per-token normalised teacher outputs.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..distributed import gather_with_grad, global_mean, rank


def normalize_patches(patches: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Per-patch zero mean, unit variance (MAE's ``norm_pix_loss`` target). ``(B, N, P)`` -> same shape."""
    mean = patches.mean(dim=-1, keepdim=True)
    var = patches.var(dim=-1, keepdim=True)
    return (patches - mean) / (var + eps) ** 0.5


def masked_reconstruction_loss(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, normalize_target: bool = False,
    present: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean squared error over the masked patches only.

    pred, target: ``(B, N, P)``; mask: ``(B, N)`` with 1 = masked. Visible patches contribute nothing:
    reconstructing what the encoder saw would teach it nothing. ``present`` ``(B,)`` bool leaves out the clips
    that lack this modality (their input is zeros); the mean is then over the global batch's masked patches of
    the clips that have it, so that N processes still compute what one does.
    """
    if normalize_target:
        target = normalize_patches(target)
    per_patch = (pred - target).pow(2).mean(dim=-1)  # (B, N)
    if present is None:
        return (per_patch * mask).sum() / mask.sum().clamp(min=1)
    mask = mask * present[:, None]  # (B, N): no target where the clip has no such input
    return global_mean((per_patch * mask).sum(), mask.sum())


def _cross_similarities(query: torch.Tensor, key: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Cosine similarities of this process's rows against the global batch, both ways, in float32:
    ``(query -> every key, key -> every query)``, each ``(B, world * B)``, and each row's own column ``(B,)``."""
    query, key = F.normalize(query.float(), dim=-1), F.normalize(key.float(), dim=-1)
    all_queries, all_keys = gather_with_grad(query), gather_with_grad(key)  # (world * B, D)
    labels = rank() * query.shape[0] + torch.arange(query.shape[0], device=query.device)
    return query @ all_keys.t(), key @ all_queries.t(), labels


def info_nce(query: torch.Tensor, key: torch.Tensor, temperature: float,
             valid: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric InfoNCE: row i of ``query`` should match row i of ``key`` among all rows of the batch.

    query, key: ``(B, D)``. Both directions (query->key and key->query) are averaged, so for the
    inter-modal loss audio->video and video->audio count equally. Under torch.distributed the
    negatives are the whole global batch: each process scores its own rows against every process's
    rows, and averaging over processes gives exactly the single-process loss of the global batch.
    ``valid`` ``(B,)`` bool: False leaves a row out (a clip lacking a modality), as if it were not in the batch.
    The logits are computed in float32 even under autocast (as open_clip does): bfloat16's 8-bit mantissa,
    scaled by 1 / temperature, would blur the similarities that the softmax ranks.
    """
    with torch.autocast(query.device.type, enabled=False):
        query_to_key, key_to_query, labels = _cross_similarities(query, key)  # (B, world * B) cosines, (B,)
        query_to_key, key_to_query = query_to_key / temperature, key_to_query / temperature
        if valid is None:
            return 0.5 * (F.cross_entropy(query_to_key, labels) + F.cross_entropy(key_to_query, labels))
        all_valid = gather_with_grad(valid.float()) > 0  # (world * B,)
        rows = valid.bool()
        per_row = [F.cross_entropy(scores[rows].masked_fill(~all_valid, float("-inf")), labels[rows],
                                   reduction="sum")
                   for scores in (query_to_key, key_to_query)]  # left-out rows are neither scored nor negatives
        return global_mean(0.5 * (per_row[0] + per_row[1]), rows.sum())


def teacher_targets(teacher_tokens: torch.Tensor) -> torch.Tensor:
    """Stage-2 targets: per-token LayerNorm (no affine) of the teacher's fused outputs ``(B, N, D)``.

    The normalisation is a choice (the paper does not say); it follows data2vec / MaskFeat practice and
    keeps the regression scale independent of the teacher's activation scale across iterations.
    """
    return F.layer_norm(teacher_tokens, teacher_tokens.shape[-1:])


@torch.no_grad()
def contrastive_top1(query: torch.Tensor, key: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """How often row i of ``query`` scores its own ``key`` highest among the global batch, both directions averaged.

    The accuracy of the classification that `info_nce` trains (query, key ``(B, D)``; ``valid`` as there); chance is
    1 / global batch. A diagnostic: it takes no part in the loss.
    """
    query_to_key, key_to_query, labels = _cross_similarities(query, key)  # (B, world * B), (B,)
    rows = torch.ones_like(labels, dtype=torch.bool) if valid is None else valid.bool()
    all_valid = None if valid is None else gather_with_grad(valid.float()) > 0
    hits = 0.0
    for scores in (query_to_key, key_to_query):
        if all_valid is not None:
            scores = scores.masked_fill(~all_valid, float("-inf"))
        hits = hits + (scores.argmax(dim=1) == labels)[rows].float().sum()
    return global_mean(0.5 * hits, rows.sum())
