"""Masked reconstruction, looked at: a stage-1 model's predictions back in input space, and how good they are.

A stage-1 decoder predicts every patch in the loss's target space: raw values, or (``norm_pix_loss``, MAE's
default) each patch normalised to zero mean and unit variance. To look at a prediction as a spectrogram or
as frames, :func:`reconstruct` puts it back into input space and pastes the predicted (hidden) patches
between the visible ones. :func:`evaluate_reconstruction` measures the masked-patch error of the model
beside the error of predicting the mean, the trivial predictor any learning has to beat:

- normalised targets: a patch's mean, which is 0 in normalised units (error about 1: each patch's variance);
- raw targets: the training set's mean value of each input position (:func:`dataset_mean_patches`).
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..data.dataset import ClipTensors
from ..model.losses import normalize_patches

CONTEXTS = ("own", "other", "zeros")  # what the other modality shows in evaluate_reconstruction


def denormalize_patches(pred: Tensor, reference: Tensor, eps: float = 1e-6) -> Tensor:
    """Undo :func:`~mavil_lite.model.losses.normalize_patches` with the mean and variance of ``reference``.

    pred, reference: ``(B, N, P)``. This is how MAE shows a normalised-target reconstruction: it borrows
    each hidden patch's true mean and variance, which the model never predicted (only the shape within
    the patch is the model's), so the picture flatters the model on coarse brightness.
    """
    mean = reference.mean(dim=-1, keepdim=True)
    var = reference.var(dim=-1, keepdim=True)
    return pred * (var + eps) ** 0.5 + mean


def denormalize_with_visible(pred: Tensor, target: Tensor, mask: Tensor, eps: float = 1e-6) -> Tensor:
    """Undo the per-patch normalisation with statistics the model could know: the clip's visible patches.

    pred, target ``(B, N, P)``, mask ``(B, N)`` (1 = hidden). Every patch gets the average mean and variance of
    the clip's *visible* patches, so a hidden patch's brightness and contrast come from its surroundings, not from
    its own true values as in :func:`denormalize_patches`. The gap between the two pictures is what the usual one
    borrows from the answer.
    """
    visible = (1 - mask).unsqueeze(-1).to(target.dtype)  # (B, N, 1)
    count = visible.sum(dim=1, keepdim=True).clamp(min=1)  # (B, 1, 1)
    mean = (target.mean(dim=-1, keepdim=True) * visible).sum(dim=1, keepdim=True) / count  # (B, 1, 1)
    var = (target.var(dim=-1, keepdim=True) * visible).sum(dim=1, keepdim=True) / count  # (B, 1, 1)
    return pred * (var + eps) ** 0.5 + mean


@torch.no_grad()
def reconstruct(model, modality: str, x: Tensor, pred: Tensor, mask: Tensor) -> dict[str, Tensor]:
    """A stage-1 model's prediction in input space.

    x: the input, audio ``(B, 1, T, F)`` or video ``(B, 3, frames, H, W)``; pred ``(B, N, P)`` and mask
    ``(B, N)`` (1 = hidden) from the model's forward (``out["preds"][modality]``, ``out["mask"][modality]``).

    Returns input-shaped tensors: 'prediction' (the decoder's output for every patch, de-normalised with
    each patch's true statistics when the model uses normalised targets), 'pasted' (visible patches from
    ``x``, hidden ones predicted), 'mask' (1 where hidden); with normalised targets also 'target_normalized'
    and 'prediction_normalized', the per-patch normalised input and the raw decoder output: what the loss
    actually compares, and 'prediction_visible_stats', the output de-normalised with the visible patches'
    statistics (:func:`denormalize_with_visible`).
    """
    if model.config.target != "pixels":
        raise ValueError("only a stage-1 model (target='pixels') predicts inputs; a stage-2 model predicts features")
    target = model.patchify(modality, x)  # (B, N, P)
    shown = denormalize_patches(pred, target) if model.config.norm_pix_loss else pred
    hidden = mask.unsqueeze(-1).to(target.dtype)  # (B, N, 1)
    out = {
        "prediction": model.unpatchify(modality, shown),
        "pasted": model.unpatchify(modality, target * (1 - hidden) + shown * hidden),
        "mask": model.unpatchify(modality, hidden.expand_as(target)),
    }
    if model.config.norm_pix_loss:
        out["target_normalized"] = model.unpatchify(modality, normalize_patches(target))
        out["prediction_normalized"] = model.unpatchify(modality, pred)
        out["prediction_visible_stats"] = model.unpatchify(modality, denormalize_with_visible(pred, target, mask))
    return out


@torch.no_grad()
def dataset_mean_patches(model, clips: ClipTensors, batch_size: int = 64) -> dict[str, Tensor]:
    """The mean input over ``clips``, patchified: ``{modality: (N, P)}``, the raw-target mean predictor."""
    sums: dict[str, Tensor] = {}
    for start in range(0, len(clips), batch_size):
        audio, video, _ = clips.batch(slice(start, start + batch_size))
        for m, x in (("audio", audio), ("video", video)):
            if m in model.modalities:
                patches = model.patchify(m, x).sum(dim=0)  # (N, P)
                sums[m] = sums[m] + patches if m in sums else patches
    return {m: total / len(clips) for m, total in sums.items()}


@torch.no_grad()
def evaluate_reconstruction(
    model,
    clips: ClipTensors,
    mask_ratio: float | None = None,
    seed: int = 0,
    mean_patches: dict[str, Tensor] | None = None,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    context: str = "own",
) -> dict[str, dict[str, float]]:
    """Masked-patch mean squared error of the model and of the mean predictor, over all hidden patches.

    Both errors are in the loss's target space (normalised units with ``norm_pix_loss``) and on the same
    masks, drawn from ``seed``. Returns ``{modality: {"model": mse, "mean": mse, "patches": count}}``.
    ``mean_patches`` (from :func:`dataset_mean_patches` on the training clips) is needed for raw targets.

    ``context`` is what the *other* modality shows while one is scored: ``"own"`` (the clip's own), ``"other"``
    (the next clip's: audio with a wrong video and video with a wrong audio) or ``"zeros"`` (a blank input).
    The gap between them is how much reconstruction uses the other modality, through the fusion blocks.
    """
    if context not in CONTEXTS:
        raise ValueError(f"context must be one of {CONTEXTS}, got {context!r}")
    if model.config.target != "pixels":
        raise ValueError("reconstruction error is defined for stage-1 models (target='pixels')")
    if not model.config.norm_pix_loss and mean_patches is None:
        raise ValueError("raw targets: pass mean_patches=dataset_mean_patches(model, train_clips)")
    model.eval().to(device)
    generator = torch.Generator().manual_seed(seed)
    totals = {m: {"model": 0.0, "mean": 0.0, "patches": 0.0} for m in model.modalities}
    for start in range(0, len(clips), batch_size):
        audio, video, _ = clips.batch(slice(start, start + batch_size))
        inputs = {"audio": audio.to(device), "video": video.to(device)}
        noise = model.mask_noise(len(audio), generator)
        out = None
        for m in model.modalities:
            if out is None or context != "own":  # the own context scores both modalities from one pass
                out = model(**_with_context(inputs, m, context, model.modalities), mask_ratio=mask_ratio, noise=noise)
            target = model.patchify(m, inputs[m])  # (B, N, P)
            if model.config.norm_pix_loss:
                target = normalize_patches(target)
                baseline = torch.zeros_like(target)  # every patch's mean, in normalised units
            else:
                baseline = mean_patches[m].to(target).expand_as(target)
            hidden = out["mask"][m]  # (B, N)
            totals[m]["model"] += ((out["preds"][m] - target).pow(2).mean(-1) * hidden).sum().item()
            totals[m]["mean"] += ((baseline - target).pow(2).mean(-1) * hidden).sum().item()
            totals[m]["patches"] += hidden.sum().item()
    return {m: {"model": t["model"] / t["patches"], "mean": t["mean"] / t["patches"], "patches": int(t["patches"])}
            for m, t in totals.items()}


def _with_context(inputs: dict[str, Tensor], scored: str, context: str, modalities) -> dict[str, Tensor]:
    """The model's inputs while ``scored`` is evaluated: the other modality kept, rolled by one clip or zeroed."""
    given = {}
    for m in modalities:
        x = inputs[m]
        if m != scored and context == "other":
            x = x.roll(1, dims=0)  # each clip gets its neighbour's input
        elif m != scored and context == "zeros":
            x = torch.zeros_like(x)
        given[m] = x
    return given
