"""Did a pre-training run learn at all? Each mechanism measured against its trivial level, on held-out clips.

A downstream score alone cannot tell "this run did not learn" from "this run learned, but what it learned does
not help the probe". So every row of the ablation also reports what its own objective reached:

- :func:`reconstruction_error`: the hidden-patch error of the model against the **mean predictor** (the
  per-position mean target of the clips scored), which is what a model that learned nothing about the clip
  would reach. With per-patch normalised targets the mean predictor scores a little under 1.0.
- :func:`retrieval_diagnostics`: audio->video and video->audio R@1 and median rank among the clips, with their
  chance levels, and the label-level view: the fraction of each query's top-5 neighbours that share a label with
  it, against the fraction of all candidates that do (`label_precision_at_k`); and, where a manifest says what
  each clip lets one hear and see, the ceiling of a model that matches class cues only (`label_oracle_retrieval`).
- :func:`fused_feature_gap`: for stage 2, how far the student's fused tokens are from its teacher's, against how
  much the teacher's tokens differ between clips.
- :func:`encoder_spread`: how much each encoder's output still depends on its input. Reconstruction that has not
  got past the mean predictor can teach an encoder to give every clip about the same tokens, a worse start for
  fine-tuning than a random encoder (docs/design.md#choices-of-the-cpu-preset, after its table).

Contrastive accuracy and InfoNCE against ln(batch) come from training itself (``inter_top1`` and ``inter`` in
a run's history; see :meth:`mavil_lite.model.mavil.MAViL.forward_loss`).
"""
from __future__ import annotations

from collections import Counter

import numpy as np
import torch

from ..model.losses import normalize_patches
from .linear_probe import embed_dataset
from .metrics import audio_video_retrieval, to_numpy


def _eval_batches(clips, batch_size: int):
    """``(index, audio, video)`` batches over every clip that has both modalities, in order."""
    usable = torch.nonzero(clips.has_audio & clips.has_video).flatten()
    for index in usable.split(batch_size):
        audio, video, _ = clips.batch(index)
        yield index, audio, video


@torch.no_grad()
def reconstruction_error(model, clips, teacher=None, batch_size: int = 64, seed: int = 0,
                         device: str | torch.device = "cpu") -> dict[str, dict[str, float]]:
    """Hidden-patch MSE of ``model`` on ``clips`` against the mean predictor, per modality.

    The masks are drawn from ``seed`` (the same for every model scored with it). Stage-2 models
    (``target="teacher"``) are scored against ``teacher``'s fused targets, stage-1 models against their pixel
    targets (per-patch normalised when the model trains that way). Returns ``{modality: {"model": mse,
    "mean_predictor": mse, "ratio": model / mean_predictor}}``: a ratio near 1 means nothing was learned.
    """
    config = model.config
    stage2 = config.target == "teacher"
    if stage2 and teacher is None:
        raise ValueError("a stage-2 model is scored against its teacher's targets: pass teacher=")
    model.to(device).eval()
    if stage2:
        teacher.to(device).eval()
    generator = torch.Generator().manual_seed(seed)
    errors, targets_all, masks_all = {m: [] for m in model.modalities}, {m: [] for m in model.modalities}, \
        {m: [] for m in model.modalities}
    for _, audio, video in _eval_batches(clips, batch_size):
        inputs = {"audio": audio.to(device), "video": video.to(device)}
        noise = {m: n.to(device) for m, n in model.mask_noise(len(audio), generator).items()}
        targets = teacher.fused_targets(**inputs) if stage2 else None
        out = model(**inputs, noise=noise, targets=targets)
        for m in model.modalities:
            target = targets[m] if stage2 else model.patchify(m, inputs[m])  # (B, N, P)
            if config.norm_pix_loss and not stage2:
                target = normalize_patches(target)
            errors[m].append(((out["preds"][m] - target).pow(2).mean(dim=-1) * out["mask"][m]).sum().item())
            targets_all[m].append(target.float().cpu())
            masks_all[m].append(out["mask"][m].float().cpu())
    result = {}
    for m in model.modalities:
        target, mask = torch.cat(targets_all[m]), torch.cat(masks_all[m])  # (N_clips, N, P), (N_clips, N)
        mean_target = target.mean(dim=0, keepdim=True)  # (1, N, P): the per-position mean over the clips
        mean_error = ((target - mean_target).pow(2).mean(dim=-1) * mask).sum().item()
        hidden = mask.sum().item()
        model_mse, mean_mse = sum(errors[m]) / hidden, mean_error / hidden
        result[m] = {"model": model_mse, "mean_predictor": mean_mse, "ratio": model_mse / mean_mse}
    return result


def label_precision_at_k(query_emb, gallery_emb, targets, k: int = 5) -> dict[str, float]:
    """The fraction of each query's ``k`` nearest gallery items (cosine) that share a label with the query.

    query_emb, gallery_emb: ``(N, D)``, row i of both is clip i; targets ``(N, C)`` multi-hot or ``(N,)`` class
    indices. ``chance`` is the same fraction over the whole gallery: what a random ranking gives on average.
    """
    query, gallery = to_numpy(query_emb, "query_emb"), to_numpy(gallery_emb, "gallery_emb")
    labels = to_numpy(targets, "targets")
    if labels.ndim == 1:
        labels = np.eye(int(labels.max()) + 1)[labels.astype(np.int64)]  # (N,) -> (N, C) one-hot
    shares = (labels @ labels.T) > 0  # (N, N): clip i and clip j have a label in common
    query = query / np.maximum(np.linalg.norm(query, axis=1, keepdims=True), 1e-12)
    gallery = gallery / np.maximum(np.linalg.norm(gallery, axis=1, keepdims=True), 1e-12)
    k = min(k, len(gallery))
    nearest = np.argsort(-(query @ gallery.T), axis=1, kind="stable")[:, :k]  # (N, k)
    return {f"P@{k}": float(np.take_along_axis(shares, nearest, axis=1).mean()), "chance": float(shares.mean()), "k": k}


def retrieval_diagnostics(model, clips, device: str | torch.device = "cpu", k: int = 5) -> dict[str, dict]:
    """A->V and V->A retrieval among ``clips`` in the inter-modal space (`linear_probe.embed_dataset`'s ``*_contrast``
    kinds; a model without inter-modal contrast is embedded by its unaligned pooled tokens, the control), with
    chance levels, plus `label_precision_at_k` in both directions."""
    usable = torch.nonzero(clips.has_audio & clips.has_video).flatten()
    clips = clips.select(usable) if len(usable) < len(clips) else clips
    audio, video = (embed_dataset(model, clips, f"{m}_contrast", device) for m in ("audio", "video"))
    result = audio_video_retrieval(audio, video)
    n = len(clips)
    for direction, (query, gallery) in {"a2v": (audio, video), "v2a": (video, audio)}.items():
        result[direction]["label"] = label_precision_at_k(query, gallery, clips.targets, k)
    result["chance"] = {"R@1": 1 / n, "R@10": min(10, n) / n, "median_rank": (n + 1) / 2, "num_pairs": n}
    return result


def label_oracle_retrieval(audible: list[set[str]], visible: list[set[str]]) -> dict[str, float]:
    """A->V retrieval by an oracle that knows which classes each clip's audio and video show, and nothing else.

    audible, visible: per clip (row i of both is clip i), the classes heard / seen in it (the synthetic manifest's
    ``audible`` and ``visible`` columns). The oracle ranks first the videos that show exactly the classes the query's
    audio shares with video (those heard and seen somewhere in the clips), in random order, then the rest. Its
    expected R@1 and median rank bound what any model reading class cues alone can reach; a model that also matches
    when things happen (onsets, envelopes) can go beyond it.
    """
    if len(audible) != len(visible) or not audible:
        raise ValueError(f"need the same, non-zero number of audible and visible sets, got {len(audible)} and {len(visible)}")
    shared = set().union(*audible) & set().union(*visible)
    heard = [frozenset(s) & shared for s in audible]
    seen = [frozenset(s) & shared for s in visible]
    n = len(heard)
    group_sizes = Counter(seen)  # videos per set of shared cues
    first_hits, expected_ranks = [], []
    for query, match in zip(heard, seen):
        group = group_sizes[query]  # 0 where no video shows the query's cues
        if match == query:  # the true video is in the group, at a uniformly random place within it
            first_hits.append(1 / group)
            expected_ranks.append((group + 1) / 2)
        else:  # the oracle ranks the true video after the whole group
            first_hits.append(0.0)
            expected_ranks.append(group + (n - group + 1) / 2)
    return {"R@1": float(np.mean(first_hits)), "median_rank": float(np.median(expected_ranks)),
            "cue_sets": len(group_sizes), "chance_R@1": 1 / n}


@torch.no_grad()
def fused_feature_gap(student, teacher, clips, batch_size: int = 64, device: str | torch.device = "cpu",
                      ) -> dict[str, dict[str, float]]:
    """How far a stage-2 student's fused tokens are from its teacher's, on whole (unmasked) clips.

    Both sides are the normalised fused patch tokens that stage 2 regresses (`MAViL.fused_targets`). Per
    modality: ``mse`` between student and teacher, ``teacher_variance`` (the teacher's tokens around their
    per-position mean over the clips: the part of the target that differs between clips), and ``cosine``,
    the mean cosine similarity of matching tokens.
    """
    student.to(device).eval(), teacher.to(device).eval()
    sums: dict[str, list] = {}
    for _, audio, video in _eval_batches(clips, batch_size):
        inputs = {"audio": audio.to(device), "video": video.to(device)}
        ours, theirs = student.fused_targets(**inputs), teacher.fused_targets(**inputs)
        for m in theirs:
            sums.setdefault(m, []).append((ours[m].float().cpu(), theirs[m].float().cpu()))
    result = {}
    for m, pairs in sums.items():
        ours, theirs = torch.cat([p[0] for p in pairs]), torch.cat([p[1] for p in pairs])  # (N_clips, N, D)
        result[m] = {
            "mse": (ours - theirs).pow(2).mean().item(),
            "teacher_variance": (theirs - theirs.mean(dim=0, keepdim=True)).pow(2).mean().item(),
            "cosine": torch.nn.functional.cosine_similarity(ours, theirs, dim=-1).mean().item(),
        }
    return result


@torch.no_grad()
def encoder_spread(model, clips, batch_size: int = 64, device: str | torch.device = "cpu") -> dict[str, dict[str, float]]:
    """How input-dependent each encoder's patch tokens are, on whole (unmasked) clips; per modality:

    - ``between_clips``: the mean distance of a clip's pooled tokens (their mean, what fine-tuning's head reads) from
      the mean over clips, divided by the norm of that mean;
    - ``within_clip``: the mean distance of a token from its clip's mean token, divided by the mean token norm.

    Both are scale-free. Near 0 means the encoder maps every clip (or every patch) to about the same vector: it has
    collapsed. Random ``cpu``-preset encoders give about 0.1-0.3 between clips and 0.3-0.6 within a clip on the kit's
    synthetic clips and on GRID.
    """
    model.to(device).eval()
    pooled: dict[str, list] = {m: [] for m in model.modalities}
    spread_sum, norm_sum = {m: 0.0 for m in model.modalities}, {m: 0.0 for m in model.modalities}
    for _, audio, video in _eval_batches(clips, batch_size):
        inputs = {"audio": audio.to(device), "video": video.to(device)}
        for m in model.modalities:
            tokens = model.encoders[m](inputs[m])[:, 1:].float()  # (B, N, D), the cls token dropped
            clip_mean = tokens.mean(dim=1, keepdim=True)  # (B, 1, D)
            spread_sum[m] += (tokens - clip_mean).norm(dim=-1).sum().item()
            norm_sum[m] += tokens.norm(dim=-1).sum().item()
            pooled[m].append(clip_mean.squeeze(1).cpu())
    result = {}
    for m in model.modalities:
        clip_features = torch.cat(pooled[m])  # (N_clips, D)
        centre = clip_features.mean(dim=0)  # (D,)
        result[m] = {"between_clips": ((clip_features - centre).norm(dim=-1).mean() / centre.norm()).item(),
                     "within_clip": spread_sum[m] / norm_sum[m]}
    return result
