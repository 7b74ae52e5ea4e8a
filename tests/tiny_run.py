"""A very small pre-training run shared by the engine tests; `python tests/tiny_run.py CKPT` trains it
with a checkpoint after every step (the SIGKILL resume test runs it as a child process)."""
import sys

import torch

from mavil_lite.data.dataset import ClipTensors
from mavil_lite.model.mavil import create_model
from mavil_lite.train.engine import TrainConfig
from mavil_lite.train.pretrain import pretrain

MINI = dict(audio_size=(64, 32), video_size=(4, 32, 32), dim=48, audio_depth=1, video_depth=1, num_heads=2,
            fusion_depth=1, decoder_dim=48, decoder_depth=1, decoder_heads=2, contrast_dim=16,
            inter_contrast_weight=0.1, intra_contrast_weight=0.1)
CONFIG = TrainConfig(epochs=2, batch_size=8, base_lr=0.05, warmup_epochs=1)
LONG = TrainConfig(epochs=30, batch_size=4, base_lr=0.02, warmup_epochs=1, checkpoint_every=1)


def clips(n: int = 16, partial: bool = False) -> ClipTensors:
    """n random clips; with ``partial``, every third clip lacks its video and every fifth its audio."""
    g = torch.Generator().manual_seed(0)
    has_video, has_audio = torch.arange(n) % 3 != 0, torch.arange(n) % 5 != 1
    return ClipTensors(
        audio=torch.randn(n, 1, 64, 32, generator=g),
        video=torch.randint(0, 255, (n, 4, 32, 32, 3), generator=g, dtype=torch.uint8),
        targets=torch.zeros(n, 2), classes=["a", "b"], splits=["train"] * n, files=[f"{i}.mp4" for i in range(n)],
        has_audio=has_audio if partial else None, has_video=has_video if partial else None,
    )


def model(**overrides):
    torch.manual_seed(0)
    return create_model("tiny", **{**MINI, **overrides})


if __name__ == "__main__":
    torch.set_num_threads(1)
    pretrain(model(), clips(), LONG, checkpoint=sys.argv[1], progress=False)
