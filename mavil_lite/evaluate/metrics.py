"""Evaluation metrics: mAP, accuracy and audio-video retrieval recall.

The paper reports AudioSet results as mAP (per-class average precision averaged over the classes that have
at least one positive), VGGSound / ESC-50 / Speech Commands as top-1 accuracy, and MSR-VTT / YouCook as
audio-to-video retrieval R@1. This module computes all three on numpy arrays or torch tensors.

Per-class AP and accuracy come from scikit-learn so that the numbers match what other codebases report.
Retrieval has no ready-made sklearn equivalent with the tie rule we want, so ranks are computed here.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import accuracy_score, average_precision_score

ArrayLike = np.ndarray | torch.Tensor

RECALL_CUTOFFS = (1, 5, 10)


def to_numpy(values: ArrayLike, name: str) -> np.ndarray:
    """Return `values` as a float64 numpy array (detached and on CPU if it was a tensor).

    Raises:
        TypeError: if `values` is neither a numpy array, a torch tensor nor a nested list.
        ValueError: if it contains NaN or infinity (sklearn would fail later with a less clear message).
    """
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().to(torch.float64).numpy()
    elif not isinstance(values, (np.ndarray, list, tuple)):
        raise TypeError(f"{name} must be a numpy array or torch tensor, got {type(values).__name__}")
    array = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return array


def is_multilabel(targets: ArrayLike) -> bool:
    """Whether (N, C) multi-hot targets are multi-label: some row has a number of positives other than one (a row
    without any cannot be a class label). The one rule behind fine-tuning's loss (BCE or cross-entropy), its score
    (mAP or accuracy) and the probe's choice, so that they cannot disagree.

    Raises:
        ValueError: if `targets` is not (N, C), or holds values other than 0 and 1 (soft targets have no count of
            positives: [0.5, 0.5] sums to one, yet has two).
    """
    targets = torch.as_tensor(targets)  # not `to_numpy`: no float64 copy of AS-2M's (2M, 527) targets
    if targets.ndim != 2:
        raise ValueError(f"targets must be (N, C), got shape {tuple(targets.shape)}")
    if not ((targets == 0) | (targets == 1)).all():
        raise ValueError("targets must be multi-hot (only 0 and 1)")
    return bool((targets.sum(dim=1) != 1).any())


def mean_average_precision(scores: ArrayLike, targets: ArrayLike) -> tuple[float, int]:
    """Mean over classes of the average precision, skipping classes without any positive.

    Args:
        scores: (N, C) real-valued scores (logits or probabilities; AP only depends on their order per class).
        targets: (N, C) multi-hot labels, 0 or 1.

    Returns:
        (mAP in [0, 1], number of classes dropped because they had no positive in `targets`).
        AP is undefined for a class without positives, which is common on small AudioSet subsets; it is
        dropped rather than counted as 0 so that the mAP does not depend on how many absent classes exist.

    Raises:
        ValueError: on shape mismatch, non-binary targets, or when no class has a positive.
    """
    scores_np = to_numpy(scores, "scores")
    targets_np = to_numpy(targets, "targets")
    if scores_np.ndim != 2 or scores_np.shape != targets_np.shape:
        raise ValueError(
            f"scores and targets must both be (N, C) with the same shape, got {scores_np.shape} and {targets_np.shape}"
        )
    if not np.isin(targets_np, (0.0, 1.0)).all():
        raise ValueError("targets must be multi-hot (only 0 and 1)")
    has_positive = targets_np.sum(axis=0) > 0
    if not has_positive.any():
        raise ValueError("no class has a positive target: mAP is undefined")
    per_class_ap = average_precision_score(targets_np[:, has_positive], scores_np[:, has_positive], average=None)
    classes_dropped = int((~has_positive).sum())
    return float(np.mean(per_class_ap)), classes_dropped


def accuracy(scores: ArrayLike, labels: ArrayLike) -> float:
    """Top-1 accuracy in [0, 1].

    Args:
        scores: (N, C) class scores; the prediction is the argmax over C.
        labels: (N,) integer class indices, or (N, C) one-hot (the label is the argmax of each row).

    Raises:
        ValueError: on shape mismatch or integer labels outside [0, C).
    """
    scores_np = to_numpy(scores, "scores")
    labels_np = to_numpy(labels, "labels")
    if scores_np.ndim != 2:
        raise ValueError(f"scores must be (N, C), got shape {scores_np.shape}")
    num_clips, num_classes = scores_np.shape
    if labels_np.ndim == 2:
        if labels_np.shape != scores_np.shape:
            raise ValueError(f"one-hot labels must match scores' shape {scores_np.shape}, got {labels_np.shape}")
        labels_np = labels_np.argmax(axis=1)
    elif labels_np.ndim == 1:
        if len(labels_np) != num_clips:
            raise ValueError(f"got {len(labels_np)} labels for {num_clips} rows of scores")
        if np.any(labels_np != np.round(labels_np)) or labels_np.min() < 0 or labels_np.max() >= num_classes:
            raise ValueError(f"integer labels must lie in [0, {num_classes})")
    else:
        raise ValueError(f"labels must be (N,) or (N, C), got shape {labels_np.shape}")
    return float(accuracy_score(labels_np.astype(np.int64), scores_np.argmax(axis=1)))


def retrieval_ranks(query_emb: ArrayLike, gallery_emb: ArrayLike) -> np.ndarray:
    """1-based rank of each query's true match (gallery row i for query row i) under cosine similarity.

    Args:
        query_emb: (N, D) embeddings.
        gallery_emb: (N, D) embeddings; row i is the positive for query row i.

    Returns:
        (N,) int array of ranks. Ties count against the query: the rank is the number of gallery items scoring
        at least as high as the true match, so a collapsed encoder (all embeddings equal) gets rank N, not 1.
    """
    query_np = to_numpy(query_emb, "query_emb")
    gallery_np = to_numpy(gallery_emb, "gallery_emb")
    if query_np.ndim != 2 or query_np.shape != gallery_np.shape:
        raise ValueError(
            f"query and gallery embeddings must both be (N, D) with the same shape, "
            f"got {query_np.shape} and {gallery_np.shape}"
        )
    if len(query_np) == 0:
        raise ValueError("retrieval needs at least one pair")
    # The epsilon keeps an all-zero embedding from turning the whole row into NaN.
    query_unit = query_np / np.maximum(np.linalg.norm(query_np, axis=1, keepdims=True), 1e-12)
    gallery_unit = gallery_np / np.maximum(np.linalg.norm(gallery_np, axis=1, keepdims=True), 1e-12)
    similarity = query_unit @ gallery_unit.T
    true_match_similarity = np.diag(similarity)[:, None]
    return (similarity >= true_match_similarity).sum(axis=1)


def retrieval_metrics(query_emb: ArrayLike, gallery_emb: ArrayLike) -> dict[str, float]:
    """Recall at 1, 5, 10 and median rank for paired embeddings (row i of query matches row i of gallery).

    Args:
        query_emb: (N, D) query embeddings.
        gallery_emb: (N, D) gallery embeddings.

    Returns:
        {'R@1', 'R@5', 'R@10': fractions in [0, 1], 'median_rank': 1-based, 'num_pairs': N}.
        With N < 10 the larger cutoffs are trivially 1.0; they are still reported so the keys stay fixed.
    """
    ranks = retrieval_ranks(query_emb, gallery_emb)
    metrics: dict[str, float] = {f"R@{k}": float(np.mean(ranks <= k)) for k in RECALL_CUTOFFS}
    metrics["median_rank"] = float(np.median(ranks))
    metrics["num_pairs"] = int(len(ranks))
    return metrics


def audio_video_retrieval(audio_emb: ArrayLike, video_emb: ArrayLike) -> dict[str, dict[str, float]]:
    """Retrieval in both directions between paired clip embeddings.

    Args:
        audio_emb: (N, D) audio embeddings of N clips.
        video_emb: (N, D) video embeddings of the same N clips, in the same order.

    Returns:
        {'a2v': audio queries against the video gallery (the direction the paper reports),
         'v2a': video queries against the audio gallery}, each as returned by `retrieval_metrics`.
    """
    return {
        "a2v": retrieval_metrics(audio_emb, video_emb),
        "v2a": retrieval_metrics(video_emb, audio_emb),
    }
