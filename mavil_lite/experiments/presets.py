"""Run presets: one name picks the model size, the input features, the data scale and the schedule.

The same notebook runs at every scale by changing only ``preset``:

=========  ===========================================  ==========================================
preset     what it is for                               model / inputs
=========  ===========================================  ==========================================
smoke      the test suite: seconds, checks plumbing     tiny, 3.84 s audio x 64 mel, 4 x 64 px frames
cpu        a laptop: ~20 minutes, real learning         tiny at width 128, 8 px tubelets; 880 clips pre-train, 360 fine-tune
gpu        one GPU, a real dataset: hours               small (ViT-S), 5.12 s audio, 8 x 112 px
paper      the paper's recipe (torchrun, many GPUs)     base (ViT-B), 10.24 s x 128 mel, 8 x 224 px
=========  ===========================================  ==========================================

Values marked ``[choice: NAME]`` are not given by the paper; docs/design.md#choice-NAME says why they are what they
are, with the measurements behind them.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from ..data.media import FEATURES, FeatureSpec
from ..model.mavil import MAViLConfig, model_config
from ..train.engine import TrainConfig
from ..train.finetune import FinetuneConfig


@dataclass
class RunPreset:
    name: str
    model: str  # a size of mavil_lite.model.mavil.MODEL_SIZES
    synthetic_clips: int  # clips generated when data="synthetic"
    pretrain: TrainConfig
    # the ablation's main score: every row's encoder fine-tuned end to end on the labelled train split [paper]
    finetune: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=1, batch_size=16, base_lr=8e-3,
                                                                      warmup_epochs=0))
    finetune_recipe: FinetuneConfig = field(default_factory=lambda: FinetuneConfig(mixup=0.0))
    inter_contrast_weight: float = 0.01  # [CAV-MAE] [choice: contrast-weights]
    intra_contrast_weight: float = 0.01  # [choice: contrast-weights]
    stage2_iterations: int = 1  # the paper's row 5 is iteration 1 (stage-1 model as teacher)
    model_overrides: dict[str, Any] = field(default_factory=dict)
    # synthetic data: the test split, and the clips only pre-training sees (AS-2M against AS-20K in the paper)
    synthetic_test_fraction: float = 0.2
    synthetic_unlabelled_fraction: float = 0.0

    @property
    def features(self) -> FeatureSpec:
        return FEATURES[self.model]

    def model_config(self, **overrides: Any) -> MAViLConfig:
        return model_config(self.model, **{**self.model_overrides, **overrides})


FINETUNE_BETAS = (0.9, 0.999)  # [AudioMAE] fine-tuning (pre-training keeps MAE's 0.95)

PRESETS = {
    # the cpu preset's BatchNorm head and projections, so that the suite's notebook runs go through their code paths
    "smoke": RunPreset("smoke", "tiny", synthetic_clips=40,
                       pretrain=TrainConfig(epochs=1, batch_size=16, base_lr=8e-3, warmup_epochs=0),
                       finetune_recipe=FinetuneConfig(mixup=0.0, head_norm="batch"),
                       model_overrides=dict(contrast_norm="batch")),
    # a laptop CPU: every value below is a [choice: cpu-preset] (docs/design.md#choices-of-the-cpu-preset); the
    # fine-tuning schedule was chosen on the train split only
    "cpu": RunPreset("cpu", "tiny", synthetic_clips=1000, synthetic_test_fraction=0.12, synthetic_unlabelled_fraction=0.52,
                     pretrain=TrainConfig(epochs=4, batch_size=32, base_lr=8e-3, warmup_epochs=1),
                     finetune=TrainConfig(epochs=20, batch_size=32, base_lr=1e-2, warmup_epochs=1, betas=FINETUNE_BETAS),
                     finetune_recipe=FinetuneConfig(mixup=0.0, head_norm="batch", freq_mask=0, time_mask=0),
                     inter_contrast_weight=1.0, intra_contrast_weight=1.0,
                     model_overrides=dict(video_patch=(2, 8, 8), contrast_temperature=0.1, dim=128, num_heads=2,
                                          contrast_norm="batch")),
    "gpu": RunPreset("gpu", "small", synthetic_clips=4000,
                     pretrain=TrainConfig(epochs=100, batch_size=64, base_lr=1.5e-4 * 8, warmup_epochs=10, bf16=True),
                     finetune=TrainConfig(epochs=60, batch_size=32, base_lr=1e-3, warmup_epochs=4, betas=FINETUNE_BETAS,
                                          bf16=True),
                     finetune_recipe=FinetuneConfig(mixup=0.5)),
    # AudioMAE's AS-2M recipe (blr 2e-4, batch 512, 32 epochs, 3 warm-up) [AudioMAE] [choice: pretrain-schedule];
    # fine-tuning as the packaged recipe as20k_finetune [AudioMAE]
    "paper": RunPreset("paper", "base", synthetic_clips=20000,
                       pretrain=TrainConfig(epochs=32, batch_size=512, base_lr=2e-4, warmup_epochs=3, bf16=True),
                       finetune=TrainConfig(epochs=60, batch_size=32, base_lr=1e-3, warmup_epochs=4,
                                            betas=FINETUNE_BETAS, bf16=True),
                       finetune_recipe=FinetuneConfig(mixup=0.5)),
}


def get_preset(name: str, **pretrain_overrides: Any) -> RunPreset:
    """The named preset, optionally with some :class:`TrainConfig` fields changed (e.g. ``epochs=2``)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose from {list(PRESETS)}")
    preset = PRESETS[name]
    return replace(preset, pretrain=replace(preset.pretrain, **pretrain_overrides))
