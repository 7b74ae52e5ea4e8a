"""Recipe runners: what ``mavil-lite pretrain | finetune | linprobe | evaluate`` do, importable by notebooks.

Each runner reads a :class:`~mavil_lite.train.recipes.Recipe`, decodes its data once, and calls the engine.
Checkpoints hold the model config, so a later step (stage 2, fine-tuning, evaluation) rebuilds the exact
model from the file alone. Under ``torchrun`` every process calls the same runner; only rank 0 writes.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from ..data.cache_reader import load_cache
from ..data.dataset import ClipTensors, decode_manifest
from ..data.streaming import StreamedClips, stream_cache, stream_files
from ..distributed import init_distributed
from ..evaluate.linear_probe import contrast_retrieval
from ..evaluate.metrics import accuracy, is_multilabel, mean_average_precision
from ..model.interop import from_public_mavil
from ..model.mavil import MAViL, MAViLConfig
from ..model.vit_checkpoints import load_vit_into_encoder
from .engine import load_checkpoint
from .finetune import MAViLClassifier, finetune, predict
from .pretrain import pretrain
from .recipes import Recipe


def load_clips(recipe: Recipe, num_workers: int = 0, progress: bool = True,
               keep_waveforms: bool = False) -> ClipTensors | StreamedClips:
    """The recipe's clips: from its feature cache (``data.cache``, made by ``mavil-lite prepare``, with that cache's
    features and labels), or else from its manifest's media files at the recipe's feature size.

    In memory (decoded once), or with ``data.stream: true`` read from disk by ``num_workers`` DataLoader workers as
    training asks for them (datasets larger than memory; from media files, a new random video window each epoch,
    leaving out the clips that ``data.report``, a `prepare` report.csv, records as failed).
    Pre-training and retrieval ignore labels, so their recipes read no label column unless they name one.
    ``keep_waveforms`` keeps each clip's sound too (fine-tuning's waveform mixup); a cache or a stream holds none.
    """
    cache, stream = recipe.data.get("cache"), bool(recipe.data.get("stream"))
    if cache:
        cache = Path(cache).expanduser()
        clips = stream_cache(cache, num_workers) if stream else load_cache(cache, progress=progress)
        expected = recipe.features()
        if (clips.features.audio_frames, clips.features.mel_bins, clips.features.video_frames) != \
                (expected.audio_frames, expected.mel_bins, expected.video_frames):
            raise ValueError(f"{cache}: cached features ({clips.features}) do not match the recipe's {expected}")
        return clips
    default_labels = None if recipe.task in ("pretrain", "retrieval") else "labels"
    label_column = recipe.data.get("label_column", default_labels)
    if stream:
        return stream_files(recipe.manifest(), recipe.features(), label_column, num_workers,
                            report=recipe.data.get("report"))
    return decode_manifest(recipe.manifest(), recipe.features(), label_column=label_column, num_workers=num_workers,
                           progress=progress, keep_waveforms=keep_waveforms)


def load_model(path: str | Path, **overrides: Any) -> MAViL:
    """A MAViL from one of the kit's checkpoints (config inside), or from a public MAViL state dict."""
    state = load_checkpoint(path)
    if "model_config" not in state or not state["model_config"]:
        return from_public_mavil(state)
    weights, config = state["model"], state["model_config"]
    if "backbone" in config:  # a fine-tuned classifier: keep its backbone
        weights = {k[len("backbone."):]: v for k, v in weights.items() if k.startswith("backbone.")}
        config = config["backbone"]
    config = MAViLConfig(**{**config, **overrides})
    model = MAViL(config)
    missing, unexpected = model.load_state_dict(weights, strict=False)
    # stage 2 / fine-tuning swap the decoders' heads or drop them: only the encoders and fusion must match
    core = [k for k in missing + unexpected if k.startswith(("encoders.", "fusion."))]
    if core:
        raise KeyError(f"{path}: encoder/fusion keys do not match this architecture: {core}")
    return model


def for_modalities(config: MAViLConfig, present: tuple[str, ...], announce: bool = True) -> MAViLConfig:
    """The config restricted to the modalities a dataset has: an audio-only set (FSDD) pre-trains an audio MAE,
    not a video encoder on zero frames and a contrast against them."""
    if set(config.modalities) <= set(present):
        return config
    kept = tuple(m for m in config.modalities if m in present)
    if not kept:
        raise ValueError(f"the data has {present} but the model wants {config.modalities}")
    if announce:
        print(f"the data has no {' or '.join(set(config.modalities) - set(kept))}: pre-training {' and '.join(kept)} only")
    single = len(kept) < 2
    return MAViLConfig(**{**config.to_dict(), "modalities": kept,
                          "inter_contrast_weight": 0.0 if single else config.inter_contrast_weight})


def run_pretrain(recipe: Recipe, out_dir: str | Path, teacher: str | Path | None = None, device: str = "auto",
                 num_workers: int = 0, progress: bool = True, init: dict[str, str | Path] | None = None) -> Path:
    """Stage 1, or stage 2 with ``teacher`` (a checkpoint): returns the checkpoint path (resumes if present).

    ``init`` maps a modality to a ViT checkpoint (MAE / timm / AudioMAE) that initialises its encoder,
    e.g. ``{"video": "mae_pretrain_vit_base.pth"}`` for the paper's IN-SSL variant.
    """
    ctx = init_distributed(device)
    out_dir = Path(out_dir)
    data = load_clips(recipe, num_workers, progress and ctx.is_main)
    split = recipe.data.get("pretrain_split", "train")  # keep the test clips unseen, unless told otherwise
    data = data if split == "all" else data.subset(split)
    config = for_modalities(recipe.model_config(), data.modalities, announce=ctx.is_main)
    teacher_model = None
    if teacher is not None:
        teacher_model = load_model(teacher)
        config = MAViLConfig(**{**config.to_dict(), "target": "teacher"})
    torch.manual_seed(recipe.train_config().seed)
    model = MAViL(config)
    for modality, path in (init or {}).items():
        report = load_vit_into_encoder(model, load_checkpoint(path), modality)
        if ctx.is_main:
            print(f"{modality} encoder from {path}: {report}")
    checkpoint = out_dir / "checkpoint.pt"
    pretrain(model, data, recipe.train_config(), teacher=teacher_model, checkpoint=checkpoint, ctx=ctx,
             log_path=out_dir / "log.jsonl", progress=progress)
    return checkpoint


def run_finetune(recipe: Recipe, init: str | Path, out_dir: str | Path, modality: str | None = None,
                 linear_probe: bool | None = None, device: str = "auto", num_workers: int = 0,
                 progress: bool = True) -> dict[str, Any]:
    """Fine-tune (or probe) on the train split, score the test split; writes ``metrics.json``."""
    ctx = init_distributed(device)
    config = recipe.finetune_config()
    if modality is not None:
        config.modality = modality
    if linear_probe is not None:
        config.linear_probe = linear_probe
    mixes_waveforms = bool(config.mixup) and not config.linear_probe  # AudioMAE mixes sounds, not features
    data = load_clips(recipe, num_workers, progress and ctx.is_main, keep_waveforms=mixes_waveforms)
    train_split, test_split = data.subset("train"), data.subset("test")
    backbone = load_model(init, drop_path=0.0 if config.linear_probe else config.drop_path, with_decoders=False,
                          target="pixels")
    classifier = MAViLClassifier(backbone, config.modality, num_classes=len(data.classes), head_norm=config.head_norm)
    out_dir = Path(out_dir)
    finetune(classifier, train_split, recipe.train_config(), config, checkpoint=out_dir / "checkpoint.pt", ctx=ctx,
             log_path=out_dir / "log.jsonl", progress=progress)
    metrics = score_classifier(classifier, test_split, ctx.device)
    if ctx.is_main:
        (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def load_classifier(path: str | Path) -> MAViLClassifier:
    """A fine-tuned classifier (backbone + head) from its checkpoint."""
    state = load_checkpoint(path)
    config = state.get("model_config", {})
    if "backbone" not in config:
        raise ValueError(f"{path}: not a fine-tuned classifier checkpoint (no head); use load_model")
    backbone = MAViL(MAViLConfig(**{**config["backbone"], "with_decoders": False}))
    classifier = MAViLClassifier(backbone, config["modality"], config["num_classes"],
                                 head_norm=config.get("head_norm", "layer"))
    classifier.load_state_dict(state["model"])
    return classifier.eval()


def score_classifier(classifier: MAViLClassifier, data: ClipTensors, device: str = "cpu") -> dict[str, Any]:
    """mAP for multi-label data, accuracy for single-label data."""
    logits = predict(classifier, data, device=device)
    if is_multilabel(data.targets):
        value, dropped = mean_average_precision(logits.sigmoid(), data.targets)
        return {"metric": "mAP", "value": value, "classes_dropped": dropped, "n_test": len(data)}
    return {"metric": "accuracy", "value": accuracy(logits, data.targets), "n_test": len(data)}


def run_retrieval(recipe: Recipe, ckpt: str | Path, split: str = "test", device: str = "cpu",
                  num_workers: int = 0, progress: bool = True) -> dict[str, dict[str, float]]:
    """Audio-to-video and video-to-audio retrieval between the clips of one split (R@1/5/10, median rank).

    Embeddings live in the inter-modal contrastive space when the model has one, else they are the
    mean-pooled encoder tokens (see :func:`~mavil_lite.evaluate.linear_probe.embed_dataset`).
    """
    model = load_model(ckpt).to(device).eval()
    clips = load_clips(recipe, num_workers, progress).subset(split)
    return contrast_retrieval(model, clips, device, progress)
