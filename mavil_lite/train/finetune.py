"""Fine-tuning and linear probing: a pre-trained MAViL with an A, V or A+V classification head.

The heads follow the public MAViL-Base code: audio or video alone mean-pools that encoder's patch
tokens, then LayerNorm and Linear; A+V mean-pools the audio part and the video part of the fusion
output, concatenates them (2 x width), then LayerNorm and Linear (``fc_norm_av`` / ``head_av``).

The recipe follows AudioMAE's fine-tuning [AudioMAE]: AdamW with layer-wise lr decay (timm's
grouping), cosine schedule, drop-path, BCE for multi-label and cross-entropy for single-label targets,
mixup, SpecAugment (torchaudio's masking transforms) and balanced sampling for imbalanced multi-label
sets. Mixup mixes the two clips' waveforms and computes the fbank of the mix, as AudioMAE does, when the
clips carry their waveforms (``decode_manifest(keep_waveforms=True)``, which ``run_finetune`` asks for); clips
read from a feature cache have none, and then the normalised fbanks are mixed instead [choice: fbank-mixup]. Frames are
mixed as pixels either way.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path

import scipy.stats
import torch
import torch.nn.functional as F
import torchaudio
from timm.optim import param_groups_layer_decay
from torch import nn
from torch.utils.data import DistributedSampler

from ..data.dataset import ClipTensors
from ..data.media import normalize_fbank, waveform_to_fbank
from ..distributed import DistributedContext, gather_rows, global_mean, is_distributed, rank, world_size
from ..evaluate.metrics import is_multilabel
from ..model.mavil import MAViL
from .engine import Step, TrainConfig, TrainResult, no_weight_decay_names, train

MODALITY_CHOICES = ("audio", "video", "av")
HEAD_NORMS = ("layer", "batch")


@dataclass
class FinetuneConfig:
    modality: str = "audio"  # audio | video | av
    linear_probe: bool = False  # freeze the backbone, train the head only
    layer_decay: float = 0.75  # [AudioMAE]
    drop_path: float = 0.1  # [public-ckpt] [AudioMAE]
    mixup: float = 0.5  # probability of mixing a batch [AudioMAE uses 0.5]
    mixup_alpha: float = 10.0  # Beta(alpha, alpha) mixing weights [AudioMAE]
    freq_mask: int = 48  # SpecAugment widths for a 128-bin, 1024-frame fbank [AudioMAE]
    time_mask: int = 192
    balanced_sampling: bool = False  # for imbalanced multi-label sets such as AS-2M [AudioMAE]
    head_norm: str = "layer"  # "layer" [AudioMAE] or "batch" (MAE's linear-probe BatchNorm) [choice: ft-head-norm]


@dataclass
class ClassifierConfig:
    backbone: dict  # MAViLConfig fields
    modality: str
    num_classes: int
    head_norm: str = "layer"  # checkpoints written before the choice existed have a LayerNorm

    def to_dict(self) -> dict:
        return asdict(self)


def head_modalities(modality: str) -> tuple[str, ...]:
    """The inputs a ``modality`` head reads: ``("audio", "video")`` for A+V, else the one it names."""
    if modality not in MODALITY_CHOICES:
        raise ValueError(f"modality must be one of {MODALITY_CHOICES}, got {modality!r}")
    return ("audio", "video") if modality == "av" else (modality,)


def head_backbone(backbone: MAViL, modality: str, drop_path: float | None = None) -> MAViL:
    """A copy of the part of ``backbone`` that a ``modality`` head reads: the encoders of its modalities and, for A+V,
    the fusion blocks; not the other encoder, the decoders, the contrastive projections nor a public A+V head.
    ``drop_path`` sets the copy's stochastic depth for fine-tuning (by default the backbone's).

    DDP needs a gradient for every parameter of the model it trains in every step. A copy rather than the caller's
    modules, so that heads built from one backbone train independently.
    """
    needed = head_modalities(modality)
    if not set(needed) <= set(backbone.modalities):
        raise ValueError(f"a {modality} head needs a backbone with {needed}, this one has {backbone.modalities}")
    c = backbone.config
    config = replace(c, modalities=tuple(m for m in c.modalities if m in needed), with_decoders=False,
                     fusion_depth=c.fusion_depth if modality == "av" else 0, inter_contrast_weight=0.0,
                     intra_contrast_weight=0.0, num_classes=0,
                     drop_path=c.drop_path if drop_path is None else drop_path)
    with torch.random.fork_rng(devices=[]):  # its random init is overwritten: leave the RNG to the head's init
        part = MAViL(config)
    kept = part.state_dict()
    part.load_state_dict({name: value for name, value in backbone.state_dict().items() if name in kept})
    return part.to(next(backbone.parameters()).device)


class MAViLClassifier(nn.Module):
    """What one classification head reads of a MAViL (see `head_backbone`), and the head."""

    def __init__(self, backbone: MAViL, modality: str, num_classes: int, drop_path: float | None = None,
                 head_norm: str = "layer"):
        super().__init__()
        if head_norm not in HEAD_NORMS:
            raise ValueError(f"head_norm must be one of {HEAD_NORMS}, got {head_norm!r}")
        self.backbone = head_backbone(backbone, modality, drop_path)
        self.modality, self.num_classes, self.head_norm = modality, num_classes, head_norm
        width = backbone.config.dim * (2 if modality == "av" else 1)
        # "batch" subtracts what every clip's pooled features share, which LayerNorm (per clip) keeps: in a small model
        # early in training that shared part dwarfs the differences between clips [choice: ft-head-norm]
        self.fc_norm = (nn.LayerNorm(width, eps=1e-6) if head_norm == "layer"
                        else nn.BatchNorm1d(width, affine=False, eps=1e-6))
        self.head = nn.Linear(width, num_classes)
        nn.init.trunc_normal_(self.head.weight, std=2e-5)  # [MAE] fine-tuning head init
        nn.init.zeros_(self.head.bias)

    @property
    def config(self) -> "ClassifierConfig":
        """Everything needed to rebuild this classifier from a checkpoint (the engine stores it)."""
        return ClassifierConfig(self.backbone.config.to_dict(), self.modality, self.num_classes, self.head_norm)

    def features(self, audio: torch.Tensor | None, video: torch.Tensor | None) -> torch.Tensor:
        """Pooled features ``(B, width)`` or ``(B, 2 * width)`` for A+V."""
        if self.modality == "av":
            return self.backbone.encode(audio, video)["fusion_pooled"]
        x = audio if self.modality == "audio" else video
        return self.backbone.encoders[self.modality](x)[:, 1:].mean(dim=1)

    def forward(self, audio: torch.Tensor | None = None, video: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.fc_norm(self.features(audio, video)))  # (B, num_classes) logits

    def group_matcher(self, coarse: bool = False) -> dict:
        """timm's layer grouping for layer-wise lr decay: the stems, then encoder block i of both
        modalities together, then the fusion blocks; the head (unmatched) comes last."""
        return dict(
            stem=r"^backbone\.encoders\.\w+\.(?:cls_token|pos_embed|patch_embed)",
            blocks=[(r"^backbone\.encoders\.\w+\.blocks\.(\d+)", None)],
            fusion=[(r"^backbone\.fusion\.(\d+)", None)],  # a later key: after every encoder block
        )


def classifier_param_groups(model: MAViLClassifier, config: TrainConfig, layer_decay: float) -> list[dict]:
    return param_groups_layer_decay(model, config.weight_decay, no_weight_decay_list=no_weight_decay_names(model),
                                    layer_decay=layer_decay)


def spec_augment(fbank: torch.Tensor, freq_mask: int, time_mask: int) -> torch.Tensor:
    """SpecAugment on ``(B, 1, T, F)`` fbanks: one frequency band and one time span masked per clip."""
    x = fbank.transpose(2, 3)  # (B, 1, F, T): torchaudio's masking expects (..., freq, time)
    x = torchaudio.transforms.FrequencyMasking(freq_mask, iid_masks=True)(x)
    x = torchaudio.transforms.TimeMasking(time_mask, iid_masks=True)(x)
    return x.transpose(2, 3)


def balanced_sample_weights(targets: torch.Tensor) -> torch.Tensor:
    """Per-clip sampling weights ``(N,)``: the sum over its labels of 1 / label frequency [AudioMAE]."""
    frequency = targets.sum(dim=0).clamp(min=1)  # (C,)
    weights = (targets / frequency).sum(dim=1)
    return torch.where(weights > 0, weights, weights[weights > 0].min() if (weights > 0).any() else 1.0)


def classification_loss(logits: torch.Tensor, targets: torch.Tensor, multilabel: bool,
                        reduction: str = "mean") -> torch.Tensor:
    """BCE for multi-label targets, cross-entropy otherwise (soft targets after mixup are fine for both);
    ``reduction="none"`` gives one value per clip ``(B,)``."""
    if multilabel:
        loss = F.binary_cross_entropy_with_logits(logits, targets, reduction=reduction)
        return loss.mean(dim=1) if reduction == "none" else loss
    return F.cross_entropy(logits, targets, reduction=reduction)


def mix_audio(data: ClipTensors, index, audio: torch.Tensor, lam: float) -> torch.Tensor:
    """Mixup of the batch's sound: clip i with clip B-1-i (the batch reversed), weights ``lam`` and ``1 - lam``.

    With waveforms (AudioMAE's way) the mix is of the sounds, the partner cut or zero-padded to the clip's own
    length, and the fbank is computed from it; otherwise, and for a clip without audio, the normalised fbanks
    ``audio`` (B, 1, T, F) are mixed. Returns (B, 1, T, F) normalised.
    """
    mixed_features = lam * audio + (1 - lam) * audio.flip(0)
    if data.waveforms is None:
        return mixed_features
    spec = data.features
    waveforms, lengths = data.waveforms[index], data.waveform_lengths[index]  # (B, S), (B,)
    sounds = lam * waveforms + (1 - lam) * waveforms.flip(0)  # zeros past a partner's end: its zero-padding
    for row, length in enumerate(lengths.tolist()):
        if length > 0:
            fbank = waveform_to_fbank(sounds[row:row + 1, :length], spec)  # (T, F)
            mixed_features[row, 0] = normalize_fbank(fbank, spec.audio_mean, spec.audio_std)
    return mixed_features


def finetune(
    classifier: MAViLClassifier,
    data: ClipTensors,
    train_config: TrainConfig,
    config: FinetuneConfig,
    checkpoint: str | Path | None = None,
    ctx: DistributedContext | None = None,
    log_path: str | Path | None = None,
    progress: bool = True,
) -> TrainResult:
    """Fine-tune (or linear-probe) ``classifier`` on the labelled clips of ``data`` (in memory or streamed).

    A clip lacking a modality the head reads (``data.has_audio`` / ``has_video``) gets no loss, nor does its mixup
    partner."""
    ctx = ctx or DistributedContext()
    if config.head_norm != classifier.head_norm:
        raise ValueError(f"the classifier's head has head_norm={classifier.head_norm!r} but the fine-tuning config says "
                         f"{config.head_norm!r}: build it with MAViLClassifier(..., head_norm=config.head_norm)")
    if classifier.head_norm == "batch" and train_config.batch_size < 2:
        raise ValueError("a BatchNorm head (head_norm='batch') needs at least 2 clips per batch, got batch_size "
                         f"{train_config.batch_size}")
    multilabel = is_multilabel(data.targets)
    if config.linear_probe:
        classifier.backbone.requires_grad_(False)
    groups = classifier_param_groups(classifier, train_config, 1.0 if config.linear_probe else config.layer_decay)
    weights = balanced_sample_weights(data.targets) if config.balanced_sampling else None
    scale_freq = classifier.backbone.config.audio_size[1] / 128  # SpecAugment widths are for 128 bins
    scale_time = classifier.backbone.config.audio_size[0] / 1024
    # a clip lacking what the head reads gets no loss; only a dataset with such clips pays for the masking. A stream
    # of media files learns which clips lack a modality only as it reads them (`flags_known`), so it always masks.
    needs = head_modalities(config.modality)

    def usable(index) -> torch.Tensor:  # (B,) bool, read after data.batch(index), which a stream updates
        return torch.stack([(data.has_audio if m == "audio" else data.has_video)[index] for m in needs]).all(dim=0)

    partial = not data.flags_known or not bool(usable(slice(None)).all())

    def loss_fn(runner, step: Step) -> dict[str, torch.Tensor]:
        audio, video, targets = data.batch(step.index)
        keep = usable(step.index)  # (B,)
        # one mixing decision and weight per global batch, drawn from the step's generator
        if config.mixup and not config.linear_probe and torch.rand(1, generator=step.generator).item() < config.mixup:
            u = torch.rand(1, generator=step.generator).item()
            lam = float(scipy.stats.beta.ppf(u, config.mixup_alpha, config.mixup_alpha))
            audio = mix_audio(data, step.index, audio, lam)
            video, targets = lam * video + (1 - lam) * video.flip(0), lam * targets + (1 - lam) * targets.flip(0)
            keep = keep & keep.flip(0)  # a mix with a clip lacking the modality is half zeros
        audio, video, targets = audio.to(ctx.device), video.to(ctx.device), targets.to(ctx.device)
        if not config.linear_probe:
            audio = spec_augment(audio, int(config.freq_mask * scale_freq), int(config.time_mask * scale_time))
        logits = runner(audio, video)
        if not partial:
            return {"loss": classification_loss(logits, targets, multilabel)}
        per_clip = classification_loss(logits, targets, multilabel, reduction="none")  # (B,)
        keep = keep.to(per_clip.device)
        return {"loss": global_mean((per_clip * keep).sum(), keep.sum())}

    return train(classifier, len(data), loss_fn, train_config, param_groups=groups, checkpoint=checkpoint,
                 ctx=ctx, sample_weights=weights, log_path=log_path, progress=progress,
                 desc=f"{'linprobe' if config.linear_probe else 'finetune'} {config.modality}",
                 prefetch=getattr(data, "prefetch", None))


@torch.no_grad()
def predict(classifier: MAViLClassifier, data: ClipTensors, batch_size: int = 64, device: str = "cpu") -> torch.Tensor:
    """Logits ``(N, C)`` for every clip of ``data``, in order.

    Under torch.distributed each process scores the shard a :class:`DistributedSampler` gives it (which
    pads the last round with repeats) and the rows are gathered back with the padding cut off, so every
    clip is counted exactly once.
    """
    classifier.to(device).eval()
    shard = list(DistributedSampler(range(len(data)), world_size(), rank(), shuffle=False)) if is_distributed() \
        else list(range(len(data)))
    outputs = []
    for start in range(0, len(shard), batch_size):
        audio, video, _ = data.batch(torch.tensor(shard[start:start + batch_size]))
        outputs.append(classifier(audio.to(device), video.to(device)).float())
    return gather_rows(torch.cat(outputs), len(data)).cpu()
