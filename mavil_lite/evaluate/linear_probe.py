"""Linear probe on frozen embeddings: the kit's CPU-scale downstream evaluation.

The paper fine-tunes the whole ViT-B on AudioSet-20K (mAP) and VGGSound (accuracy). That is out of reach on a
laptop, so mavil-lite freezes the pre-trained encoders, embeds every clip once (`embed_clips`) and fits a
logistic regression on top (`linear_probe`). A probe measures how linearly separable the learned features
are, which is what the ablation rows are meant to differ in; it is a proxy, not the paper's protocol.

Multi-label data (AudioSet-style) gets one binary logistic regression per class and is scored with mAP;
single-label data (VGGSound / ESC-50-style) gets one multinomial logistic regression scored with accuracy.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sized

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from tqdm.auto import tqdm

from mavil_lite.evaluate.metrics import (
    ArrayLike,
    audio_video_retrieval,
    is_multilabel,
    mean_average_precision,
    to_numpy,
)

# Inverse L2 strength on standardised features. 1.0 is sklearn's default and is a reasonable middle ground for
# a few hundred clips x ~200 dimensions: strong enough not to memorise, weak enough not to flatten good features.
PROBE_INVERSE_REGULARISATION = 1.0
PROBE_MAX_ITER = 2000


def _single_label_classes(targets_np: np.ndarray, name: str) -> np.ndarray:
    """(N,) integer classes from (N, C) one-hot targets or already-integer (N,) labels."""
    if targets_np.ndim == 2:
        if np.any((targets_np > 0).sum(axis=1) != 1):
            raise ValueError(f"{name} has rows without exactly one positive; pass multilabel=True")
        return targets_np.argmax(axis=1)
    if targets_np.ndim == 1:
        return targets_np.astype(np.int64)
    raise ValueError(f"{name} must be (N, C) one-hot or (N,) class indices, got shape {targets_np.shape}")


def _new_logistic_regression(seed: int) -> LogisticRegression:
    return LogisticRegression(C=PROBE_INVERSE_REGULARISATION, max_iter=PROBE_MAX_ITER, random_state=seed)


def linear_probe(
    train_x: ArrayLike,
    train_y: ArrayLike,
    test_x: ArrayLike,
    test_y: ArrayLike,
    multilabel: bool,
    seed: int = 0,
    return_scores: bool = False,
) -> dict:
    """Fit StandardScaler + logistic regression on frozen training embeddings and score the test set.

    Args:
        train_x: (N_train, D) float embeddings.
        train_y: (N_train, C) multi-hot targets (one-hot when single-label; (N_train,) class ids also accepted
            when `multilabel` is False).
        test_x: (N_test, D) float embeddings.
        test_y: (N_test, C) targets in the same format as `train_y`.
        multilabel: True -> one-vs-rest binary regressions scored with mAP; False -> multinomial regression on
            the argmax class, scored with accuracy. `is_multilabel(train_y)` picks it from the data.
        seed: random state of the solver (lbfgs is deterministic; kept so the call is reproducible by contract).
        return_scores: also return the test clips' class scores, to rank, threshold or inspect them.

    Returns:
        {'metric': 'mAP' or 'accuracy', 'value': float in [0, 1], 'classes_dropped': test classes with no
         positive (mAP only; 0 for accuracy), 'n_train': N_train, 'n_test': N_test}, and with
        `return_scores` 'scores': (N_test, C) probabilities (a class never seen in training scores 0).

    Raises:
        ValueError: on inconsistent shapes, or when the training set has fewer than two classes.
    """
    train_x_np = to_numpy(train_x, "train_x")
    test_x_np = to_numpy(test_x, "test_x")
    train_y_np = to_numpy(train_y, "train_y")
    test_y_np = to_numpy(test_y, "test_y")
    if train_x_np.ndim != 2 or test_x_np.ndim != 2 or train_x_np.shape[1] != test_x_np.shape[1]:
        raise ValueError(
            f"train_x and test_x must be (N, D) with the same D, got {train_x_np.shape} and {test_x_np.shape}"
        )
    if len(train_y_np) != len(train_x_np) or len(test_y_np) != len(test_x_np):
        raise ValueError(
            f"labels and embeddings disagree on N: train {len(train_y_np)} vs {len(train_x_np)}, "
            f"test {len(test_y_np)} vs {len(test_x_np)}"
        )
    if train_y_np.ndim == 2 and test_y_np.ndim == 2 and train_y_np.shape[1] != test_y_np.shape[1]:
        raise ValueError(f"train_y has {train_y_np.shape[1]} classes but test_y has {test_y_np.shape[1]}")

    if multilabel:
        if train_y_np.ndim != 2 or test_y_np.ndim != 2:
            raise ValueError("multi-label probing needs (N, C) multi-hot train_y and test_y")
        # n_jobs stays 1: the kit's machines share few cores, and per-class fits are small.
        classifier = OneVsRestClassifier(_new_logistic_regression(seed))
        fit_targets = train_y_np.astype(np.int64)
    else:
        classifier = _new_logistic_regression(seed)
        fit_targets = _single_label_classes(train_y_np, "train_y")
        if len(np.unique(fit_targets)) < 2:
            raise ValueError("single-label probing needs at least two classes in the training set")
    model = make_pipeline(StandardScaler(), classifier)

    with warnings.catch_warnings():
        # With more dimensions than a few hundred clips can pin down, classes are often (nearly) linearly
        # separable, so lbfgs keeps inching towards a larger-norm solution and warns at max_iter even though
        # held-out scores stopped changing long before. One-vs-rest would repeat that warning per class (up to
        # 527 times), burying the notebook output, so it is silenced here and only here.
        warnings.simplefilter("ignore", category=ConvergenceWarning)
        # A training column with no positive (or all positive) becomes a constant predictor with a warning;
        # that is expected on small AudioSet subsets and its AP is dropped or uninformative anyway.
        warnings.filterwarnings("ignore", message="Label .* is present in all training examples")
        model.fit(train_x_np, fit_targets)

    if multilabel:
        scores = model.predict_proba(test_x_np)
        value, classes_dropped = mean_average_precision(scores, test_y_np)
        metric = "mAP"
    else:
        test_classes = _single_label_classes(test_y_np, "test_y")
        # Predictions come from the training classes only, so a test class unseen in training simply scores 0.
        value = accuracy_score(test_classes, model.predict(test_x_np))
        classes_dropped = 0
        metric = "accuracy"
    result = {
        "metric": metric,
        "value": float(value),
        "classes_dropped": int(classes_dropped),
        "n_train": int(len(train_x_np)),
        "n_test": int(len(test_x_np)),
    }
    if return_scores:
        if multilabel:
            result["scores"] = scores
        else:
            num_classes = test_y_np.shape[1] if test_y_np.ndim == 2 else int(max(test_y_np.max(), fit_targets.max())) + 1
            result["scores"] = np.zeros((len(test_x_np), num_classes))
            result["scores"][:, model.classes_] = model.predict_proba(test_x_np)  # columns of the seen classes
    return result


@torch.no_grad()
def embed_clips(
    embed_fn: Callable[[torch.Tensor], torch.Tensor],
    tensors: Sized,
    batch_size: int = 64,
    progress: bool = True,
) -> torch.Tensor:
    """Embed every item of a dataset in batches of indices.

    Args:
        embed_fn: maps a (B,) LongTensor of item indices to (B, D) embeddings. It owns loading, device
            placement and the choice of encoder, so this loop stays independent of the model.
        tensors: anything with `len()` (a dataset, a tensor, a list); only its length is used here.
        batch_size: indices per call of `embed_fn`.
        progress: show a tqdm bar.

    Returns:
        (N, D) float CPU tensor. Each batch is moved to CPU as it arrives so a long dataset does not
        accumulate on the accelerator, and because the probe (sklearn) needs CPU data anyway.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    num_items = len(tensors)
    if num_items == 0:
        raise ValueError("nothing to embed: the dataset is empty")
    all_indices = torch.arange(num_items, dtype=torch.long)
    batches = []
    for batch_indices in tqdm(all_indices.split(batch_size), desc="embedding", disable=not progress):
        embeddings = embed_fn(batch_indices)
        if not isinstance(embeddings, torch.Tensor) or embeddings.ndim != 2 or len(embeddings) != len(batch_indices):
            shape = tuple(embeddings.shape) if isinstance(embeddings, torch.Tensor) else type(embeddings).__name__
            raise ValueError(f"embed_fn must return a (B={len(batch_indices)}, D) tensor, got {shape}")
        batches.append(embeddings.detach().cpu())
    return torch.cat(batches)


EMBEDDING_KINDS = ("audio", "video", "av", "audio_contrast", "video_contrast")


@torch.no_grad()
def embed_dataset(model, clips, kind: str, device: str | torch.device = "cpu", batch_size: int = 64,
                  progress: bool = False) -> torch.Tensor:
    """One embedding per clip of a :class:`~mavil_lite.data.dataset.ClipTensors`, from the frozen model: ``(N, D)``.

    kind:
        'audio' / 'video': that encoder's patch tokens, mean-pooled (the A and V heads' input), ``D = dim``;
        'av': the fusion encoder's pooled audio and video parts, concatenated (the A+V head's), ``D = 2 dim``;
        'audio_contrast' / 'video_contrast': the pooled tokens through the inter-modal projection, the space
        where InfoNCE pulled a clip's audio and video together, ``D = contrast_dim``. A model trained without
        inter-modal contrast has no such space, and then gets its pooled tokens (audio and video unaligned).
    """
    if kind not in EMBEDDING_KINDS:
        raise ValueError(f"unknown embedding kind {kind!r}; choose from {EMBEDDING_KINDS}")
    model.eval()

    def embed_fn(index: torch.Tensor) -> torch.Tensor:
        audio, video, _ = clips.batch(index)
        audio, video = audio.to(device), video.to(device)
        if kind == "av":
            return model.encode(audio, video)["fusion_pooled"].float().cpu()
        modality = kind.split("_")[0]
        pooled = model.embed(modality, audio if modality == "audio" else video)  # (B, dim)
        if kind.endswith("_contrast") and modality in getattr(model, "inter_proj", {}):
            pooled = model.inter_proj[modality](pooled)  # (B, contrast_dim)
        return pooled.float().cpu()

    return embed_clips(embed_fn, clips, batch_size=batch_size, progress=progress)


def probe_embedding(model, train, test, kind: str, device: str | torch.device = "cpu", seed: int = 0,
                    progress: bool = False) -> dict:
    """`linear_probe` on the frozen model's ``kind`` embedding (`embed_dataset`), fitted on ``train``, scored on ``test``."""
    x_train, x_test = (embed_dataset(model, clips, kind, device, progress=progress) for clips in (train, test))
    return linear_probe(x_train, train.targets, x_test, test.targets, is_multilabel(train.targets), seed=seed)


def contrast_retrieval(model, clips, device: str | torch.device = "cpu", progress: bool = False) -> dict[str, dict]:
    """`audio_video_retrieval` among ``clips``, embedded in the inter-modal space (``*_contrast`` kinds)."""
    audio, video = (embed_dataset(model, clips, f"{m}_contrast", device, progress=progress) for m in ("audio", "video"))
    return audio_video_retrieval(audio, video)
