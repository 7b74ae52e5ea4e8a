"""MAViL: masked audio-video learner, one model for every row of the paper's ablation.

Forward pass of pre-training (shapes for the paper's input, B clips):

1. ``patchify`` / embed: audio ``(B, 1, 1024, 128)`` -> 512 tokens; video ``(B, 3, 8, 224, 224)`` -> 784.
2. ``random_masking``: each modality keeps 20% of its tokens (102 and 156).
3. ``forward_encoder``: a ViT per modality over its visible tokens (+ CLS).
4. ``forward_fusion``: joint blocks over ``[audio tokens, video tokens]`` (no modality embedding).
5. ``forward_decoder``: per-modality MAE decoders predict every patch from the fused tokens.
6. ``forward_loss``: masked reconstruction (stage 1: raw patches; stage 2: a frozen teacher's fused
   tokens), plus inter-modal InfoNCE (audio vs video of the same clip) and intra-modal InfoNCE (two
   masked views of the same clip), each switched on by its weight in :class:`MAViLConfig`.

The ablation rows differ only in configuration: ``modalities=("audio",)`` is A-MAE, the weights turn the
contrastive terms on, and ``target="teacher"`` with a teacher model is stage 2.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from .decoder import MAEDecoder
from .encoder import ModalityEncoder, vit_blocks
from .losses import contrastive_top1, info_nce, masked_reconstruction_loss, teacher_targets
from .masking import Masked, random_masking, unmasked

MODALITIES = ("audio", "video")
DISTILLATION_SOURCES = ("fused", "encoder")  # where a stage-2 teacher's targets come from: distillation_targets


@dataclass
class MAViLConfig:
    """Architecture and objective. Defaults are MAViL-Base as in the paper, with the contrastive terms off (their weights make the
    ablation rows); sources and choices in docs/design.md."""

    audio_size: tuple[int, int] = (1024, 128)  # (fbank frames, mel bins)
    audio_patch: tuple[int, int] = (16, 16)
    video_size: tuple[int, int, int] = (8, 224, 224)  # (frames, height, width)
    video_patch: tuple[int, int, int] = (2, 16, 16)  # tubelet
    dim: int = 768
    audio_depth: int = 12
    video_depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    fusion_depth: int = 2
    decoder_dim: int = 512  # [MAE] [choice: decoder-size]
    decoder_depth: int = 8  # [MAE] [choice: decoder-size]
    decoder_heads: int = 16
    drop_path: float = 0.0
    modalities: tuple[str, ...] = MODALITIES  # ("audio",) / ("video",) give the single-modality MAE baselines
    mask_ratio: float = 0.8
    norm_pix_loss: bool = True  # per-patch normalised targets [MAE] [choice: norm-pix]
    inter_contrast_weight: float = 0.0  # 0.01 in CAV-MAE; MAViL's value is not public [choice: contrast-weights]
    intra_contrast_weight: float = 0.0  # [choice: contrast-weights]
    contrast_temperature: float = 0.05  # [CAV-MAE] [choice: contrast-temperature]
    contrast_dim: int = 256  # projection width for the InfoNCE embeddings [choice: contrast-projection]
    contrast_norm: str = "layer"  # the projection's input norm: "layer" or "batch" [choice: contrast-projection]
    target: str = "pixels"  # "pixels" (stage 1) or "teacher" (stage 2)
    num_classes: int = 0  # >0 adds the public checkpoint's A+V head (fc_norm_av, head_av)
    with_decoders: bool = True  # False for an inference-only model (the public checkpoints have none)

    def __post_init__(self):
        self.audio_size, self.audio_patch = tuple(self.audio_size), tuple(self.audio_patch)
        self.video_size, self.video_patch = tuple(self.video_size), tuple(self.video_patch)
        self.modalities = tuple(self.modalities)
        if not self.modalities or set(self.modalities) - set(MODALITIES):
            raise ValueError(f"modalities must be a non-empty subset of {MODALITIES}, got {self.modalities}")
        if self.target not in ("pixels", "teacher"):
            raise ValueError(f"target must be 'pixels' or 'teacher', got {self.target!r}")
        if self.contrast_norm not in ("layer", "batch"):
            raise ValueError(f"contrast_norm must be 'layer' or 'batch', got {self.contrast_norm!r}")
        if self.inter_contrast_weight and len(self.modalities) < 2:
            raise ValueError("inter-modal contrast needs both modalities")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class MAViL(nn.Module):
    def __init__(self, config: MAViLConfig):
        super().__init__()
        self.config = c = config
        self.modalities = c.modalities
        sizes = {"audio": (c.audio_size, c.audio_patch, c.audio_depth), "video": (c.video_size, c.video_patch, c.video_depth)}
        self.encoders = nn.ModuleDict()
        self.decoders = nn.ModuleDict()
        for m in self.modalities:
            size, patch, depth = sizes[m]
            encoder = ModalityEncoder(size, patch, c.dim, depth, c.num_heads, c.mlp_ratio, c.drop_path)
            self.encoders[m] = encoder
            if c.with_decoders:
                out_dim = c.dim if c.target == "teacher" else self.patch_pixels(m)
                self.decoders[m] = MAEDecoder(encoder.grid_size, c.dim, c.decoder_dim, c.decoder_depth, c.decoder_heads, out_dim, c.mlp_ratio)
        self.fusion = vit_blocks(c.dim, c.fusion_depth, c.num_heads, c.mlp_ratio, c.drop_path)

        def projection() -> nn.Module:  # mean-pooled encoder tokens -> contrastive embedding
            # "batch" removes what all clips of a batch share, which LayerNorm (per clip) keeps: at initialisation that
            # shared part makes every pair of clips look alike (cosine ~0.98) and InfoNCE starts from a flat softmax
            norm = nn.LayerNorm(c.dim, eps=1e-6) if c.contrast_norm == "layer" else nn.BatchNorm1d(c.dim, eps=1e-6)
            return nn.Sequential(norm, nn.Linear(c.dim, c.contrast_dim))

        self.inter_proj = nn.ModuleDict({m: projection() for m in self.modalities} if c.inter_contrast_weight else {})
        self.intra_proj = nn.ModuleDict({m: projection() for m in self.modalities} if c.intra_contrast_weight else {})
        if c.num_classes:
            self.fc_norm_av = nn.LayerNorm(2 * c.dim, eps=1e-6)
            self.head_av = nn.Linear(2 * c.dim, c.num_classes)
        self.apply(_init_weights)

    # ----------------------------------------------------------------------------------- patches
    def patch_pixels(self, modality: str) -> int:
        """Values per patch: 16*16 for audio, 3*2*16*16 for a video tubelet."""
        c = self.config
        return int(torch.tensor(c.audio_patch).prod()) if modality == "audio" else 3 * int(torch.tensor(c.video_patch).prod())

    def patchify(self, modality: str, x: torch.Tensor) -> torch.Tensor:
        """Input -> ``(B, N, patch_pixels)`` in the encoder's token order (time-major)."""
        if modality == "audio":
            p, q = self.config.audio_patch
            b, _, t, f = x.shape
            x = x.reshape(b, 1, t // p, p, f // q, q)  # (B, 1, t, p, f, q)
            return torch.einsum("bcipjq->bijpqc", x).reshape(b, (t // p) * (f // q), p * q)  # (B, N, p*q)
        pt, ph, pw = self.config.video_patch
        b, ch, t, h, w = x.shape
        x = x.reshape(b, ch, t // pt, pt, h // ph, ph, w // pw, pw)  # (B, C, t, pt, h, ph, w, pw)
        x = torch.einsum("bctuhpwq->bthwupqc", x)  # (B, t, h, w, pt, ph, pw, C)
        return x.reshape(b, (t // pt) * (h // ph) * (w // pw), pt * ph * pw * ch)  # (B, N, pt*ph*pw*C)

    def unpatchify(self, modality: str, patches: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`patchify`: ``(B, N, patch_pixels)`` -> the input's shape."""
        b = patches.shape[0]
        if modality == "audio":
            (t, f), (p, q) = self.config.audio_size, self.config.audio_patch
            x = patches.reshape(b, t // p, f // q, p, q, 1)  # (B, t, f, p, q, C)
            return torch.einsum("bijpqc->bcipjq", x).reshape(b, 1, t, f)
        (t, h, w), (pt, ph, pw) = self.config.video_size, self.config.video_patch
        x = patches.reshape(b, t // pt, h // ph, w // pw, pt, ph, pw, 3)  # (B, t, h, w, pt, ph, pw, C)
        return torch.einsum("bthwupqc->bctuhpwq", x).reshape(b, 3, t, h, w)

    # ----------------------------------------------------------------------------------- steps
    def mask_noise(self, batch_size: int, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Masking scores for a batch: ``(views * B, N)`` per modality, views = 2 with intra-modal contrast.

        Rows ``[0, B)`` mask the first view and ``[B, 2B)`` the second; a distributed run draws them for
        the global batch and gives each process its rows with :func:`~mavil_lite.model.masking.rows_of_batch`.
        """
        views = 2 if self.config.intra_contrast_weight else 1
        return {m: torch.rand(views, batch_size, self.encoders[m].num_patches, generator=generator).flatten(0, 1)
                for m in self.modalities}  # (views, B, N) -> (views * B, N)

    def forward_encoder(
        self, inputs: dict[str, torch.Tensor], mask_ratio: float, two_views: bool = False,
        noise: dict[str, torch.Tensor] | None = None,
    ) -> tuple[dict[str, torch.Tensor], dict[str, Masked], dict[str, torch.Tensor]]:
        """Mask and encode each modality.

        Returns (tokens, masking, second-view tokens): tokens ``(B, 1 + n_visible, dim)`` per modality;
        with ``two_views`` a second, independently masked view is encoded in the same batched pass
        (the batch is doubled rather than running the encoder twice) for the intra-modal loss.
        ``noise`` (see :meth:`mask_noise`) fixes the masks; by default they are drawn at random.
        """
        tokens, masking, second_view = {}, {}, {}
        for m, x in inputs.items():
            patches = self.encoders[m].embed(x)  # (B, N, dim)
            batch = patches.shape[0]
            if two_views:
                patches = torch.cat([patches, patches], dim=0)  # (2B, N, dim): two masks, one pass
            m_noise = None if noise is None else noise[m].to(patches.device)
            masked = random_masking(patches, mask_ratio, m_noise) if mask_ratio > 0 else unmasked(patches)
            encoded = self.encoders[m].forward_blocks(masked.visible)  # (B or 2B, 1 + n, dim)
            tokens[m] = encoded[:batch]
            masking[m] = Masked(*(t[:batch] for t in masked))
            if two_views:
                second_view[m] = encoded[batch:]
        return tokens, masking, second_view

    def forward_fusion(self, tokens: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Joint blocks over ``[audio tokens, video tokens]``; returns the fused tokens split back per modality."""
        lengths = [tokens[m].shape[1] for m in tokens]
        x = torch.cat(list(tokens.values()), dim=1)  # (B, sum of lengths, dim)
        for block in self.fusion:
            x = block(x)
        return dict(zip(tokens, x.split(lengths, dim=1)))

    def forward_decoder(self, fused: dict[str, torch.Tensor], masking: dict[str, Masked]) -> dict[str, torch.Tensor]:
        """Per-modality prediction for every patch: ``(B, N, patch_pixels)`` or ``(B, N, dim)`` in stage 2."""
        return {m: self.decoders[m](fused[m], masking[m].ids_restore) for m in fused}

    def forward_loss(
        self,
        inputs: dict[str, torch.Tensor],
        preds: dict[str, torch.Tensor],
        masking: dict[str, Masked],
        tokens: dict[str, torch.Tensor],
        second_view: dict[str, torch.Tensor],
        targets: dict[str, torch.Tensor] | None = None,
        present: dict[str, torch.Tensor] | None = None,
    ) -> dict[str, torch.Tensor]:
        """Every active loss term by name, plus ``loss``: their weighted sum, and ``inter_top1`` / ``intra_<m>_top1``:
        the contrastive accuracies (`losses.contrastive_top1`, chance 1 / global batch), which take no part in it.

        ``present`` ``{modality: (B,) bool}`` marks the clips that lack a modality (False): no term uses that
        modality of them (its zero input still passes through the joint blocks with the other modality's tokens).
        """
        c = self.config
        has = present or {}
        terms: dict[str, torch.Tensor] = {}
        diagnostics: dict[str, torch.Tensor] = {}  # contrastive top-1 accuracies: logged, never optimised
        for m in preds:
            target = targets[m] if c.target == "teacher" else self.patchify(m, inputs[m])
            terms[f"recon_{m}"] = masked_reconstruction_loss(preds[m], target, masking[m].mask,
                                                             c.norm_pix_loss and c.target != "teacher", has.get(m))
        loss = sum(terms.values())
        pooled = {m: t[:, 1:].mean(dim=1) for m, t in tokens.items()}  # (B, dim): mean over visible patches
        if c.inter_contrast_weight:
            a, v = (self.inter_proj[m](pooled[m]) for m in MODALITIES)
            both = None if present is None else present["audio"] & present["video"]
            terms["inter"] = info_nce(a, v, c.contrast_temperature, both)
            loss = loss + c.inter_contrast_weight * terms["inter"]
            diagnostics["inter_top1"] = contrastive_top1(a, v, both)
        if c.intra_contrast_weight:
            for m in second_view:
                view2 = self.intra_proj[m](second_view[m][:, 1:].mean(dim=1))
                query = self.intra_proj[m](pooled[m])
                terms[f"intra_{m}"] = info_nce(query, view2, c.contrast_temperature, has.get(m))
                loss = loss + c.intra_contrast_weight * terms[f"intra_{m}"]
                diagnostics[f"intra_{m}_top1"] = contrastive_top1(query, view2, has.get(m))
        terms["loss"] = loss
        return {**terms, **diagnostics}

    def forward(
        self,
        audio: torch.Tensor | None = None,
        video: torch.Tensor | None = None,
        teacher: "MAViL | None" = None,
        mask_ratio: float | None = None,
        noise: dict[str, torch.Tensor] | None = None,
        targets: dict[str, torch.Tensor] | None = None,
        present: dict[str, torch.Tensor] | None = None,
    ) -> dict[str, Any]:
        """One pre-training step's forward: audio ``(B, 1, T, F)``, video ``(B, 3, frames, H, W)``.

        Stage 2 takes either the ``teacher`` or its ``targets`` for these clips, computed beforehand with
        ``teacher.fused_targets`` (``(B, N, dim)`` per modality). ``present`` marks clips lacking a modality
        (see `forward_loss`). Returns the loss terms (``loss`` is the total), and under ``preds`` / ``mask`` the
        per-modality predictions ``(B, N, P)`` and masks ``(B, N)``.
        """
        inputs = self._inputs(audio, video)
        if not self.config.with_decoders:
            raise RuntimeError("this model was built without decoders (inference only): use encode() or embed()")
        self.check_teacher(given=teacher is not None or targets is not None)
        if targets is None and teacher is not None:
            targets = teacher.fused_targets(**inputs)
        ratio = self.config.mask_ratio if mask_ratio is None else mask_ratio
        tokens, masking, second_view = self.forward_encoder(inputs, ratio, bool(self.config.intra_contrast_weight), noise)
        fused = self.forward_fusion(tokens)
        preds = self.forward_decoder(fused, masking)
        out: dict[str, Any] = self.forward_loss(inputs, preds, masking, tokens, second_view, targets, present)
        out["preds"] = preds
        out["mask"] = {m: masking[m].mask for m in masking}
        return out

    def check_teacher(self, given: bool) -> None:
        """Stage 2 (target='teacher') needs a teacher or its targets; stage 1 refuses one rather than ignore it."""
        if self.config.target == "teacher" and not given:
            raise ValueError("a stage-2 model (target='teacher') needs a teacher model or its targets")
        if self.config.target == "pixels" and given:
            raise ValueError("a teacher was given to a model that reconstructs pixels (target='pixels'), which would "
                             "ignore it: build the stage-2 student with target='teacher'")

    # ----------------------------------------------------------------------------------- inference
    def encode(self, audio: torch.Tensor | None = None, video: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Full (unmasked) clip -> ``audio_tokens`` ``(B, 1 + Na, dim)``, ``video_tokens``, ``fusion_tokens``
        ``(B, 2 + Na + Nv, dim)``, ``fusion_pooled`` ``(B, 2 * dim)`` (mean of each modality's fused patch
        tokens, concatenated) and ``logits`` when the A+V head exists. Matches the public inference code.
        """
        inputs = self._inputs(audio, video)
        tokens = {m: self.encoders[m](x) for m, x in inputs.items()}
        fused = self.forward_fusion(tokens)
        out = {f"{m}_tokens": t for m, t in tokens.items()}
        out["fusion_tokens"] = torch.cat(list(fused.values()), dim=1)
        out["fusion_pooled"] = torch.cat([f[:, 1:].mean(dim=1) for f in fused.values()], dim=1)
        if self.config.num_classes:
            out["logits"] = self.head_av(self.fc_norm_av(out["fusion_pooled"]))
        return out

    @torch.no_grad()
    def fused_targets(self, audio: torch.Tensor | None = None, video: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """As a stage-2 teacher: normalised fused patch tokens of the full clip, ``(B, N, dim)`` per modality."""
        return self.distillation_targets(audio, video, source="fused")

    @torch.no_grad()
    def distillation_targets(self, audio: torch.Tensor | None = None, video: torch.Tensor | None = None,
                             source: str = "fused") -> dict[str, torch.Tensor]:
        """A teacher's per-token targets for the full clip, ``(B, N, dim)`` per modality, normalised per token.

        ``source="fused"`` (MAViL's stage 2): the joint blocks' outputs, aligned and contextualised by the other
        modality. ``source="encoder"``: each modality encoder's own outputs, before fusion: the unimodal
        alternative that notebook 05 trains a student on, to measure what the fusion adds.
        """
        if source not in DISTILLATION_SOURCES:
            raise ValueError(f"source must be one of {DISTILLATION_SOURCES}, got {source!r}")
        inputs = self._inputs(audio, video)
        tokens = {m: self.encoders[m](x) for m, x in inputs.items()}  # (B, 1 + N, dim) per modality
        chosen = self.forward_fusion(tokens) if source == "fused" else tokens
        return {m: teacher_targets(t[:, 1:]) for m, t in chosen.items()}  # CLS dropped: (B, N, dim)

    @torch.no_grad()
    def embed(self, modality: str, x: torch.Tensor) -> torch.Tensor:
        """Downstream feature of one modality alone: the encoder's patch tokens mean-pooled, ``(B, dim)``."""
        return self.encoders[modality](x)[:, 1:].mean(dim=1)

    def _inputs(self, audio, video) -> dict[str, torch.Tensor]:
        given = {"audio": audio, "video": video}
        missing = [m for m in self.modalities if given[m] is None]
        if missing:
            raise ValueError(f"this model expects {self.modalities} but {missing} was not given")
        return {m: given[m] for m in self.modalities}


def _init_weights(module: nn.Module) -> None:
    """MAE's initialisation: xavier-uniform linears and patch projections, zero biases, unit LayerNorms."""
    if isinstance(module, (nn.Linear, nn.Conv2d, nn.Conv3d)):
        w = module.weight.data
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))  # conv patch embeddings initialised as linears
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


# --------------------------------------------------------------------------------------- sizes
MODEL_SIZES: dict[str, dict[str, Any]] = {
    # CPU teaching / smoke model: ViT-Ti width on short clips and small frames.
    "tiny": dict(audio_size=(384, 64), video_size=(4, 64, 64), dim=192, audio_depth=4, video_depth=4, num_heads=3,
                 fusion_depth=1, decoder_dim=96, decoder_depth=2, decoder_heads=3),
    # ViT-S encoders on half-length audio and 112 px frames: one GPU, hours.
    "small": dict(audio_size=(512, 128), video_size=(8, 112, 112), dim=384, audio_depth=12, video_depth=12,
                  num_heads=6, fusion_depth=2, decoder_dim=256, decoder_depth=4, decoder_heads=8),
    # The paper's MAViL-Base.
    "base": dict(),
}


def model_config(size: str = "base", **overrides: Any) -> MAViLConfig:
    """The :class:`MAViLConfig` of a named size, with any field overridden."""
    if size not in MODEL_SIZES:
        raise ValueError(f"unknown model size {size!r}; choose from {sorted(MODEL_SIZES)}")
    return MAViLConfig(**{**MODEL_SIZES[size], **overrides})


def create_model(size: str = "base", **overrides: Any) -> MAViL:
    return MAViL(model_config(size, **overrides))


def mavil_tiny(**overrides: Any) -> MAViL:
    return create_model("tiny", **overrides)


def mavil_small(**overrides: Any) -> MAViL:
    return create_model("small", **overrides)


def mavil_base(**overrides: Any) -> MAViL:
    return create_model("base", **overrides)
