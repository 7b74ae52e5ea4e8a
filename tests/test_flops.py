"""The analytic FLOP count (mavil_lite.model.flops) against torch's FlopCounterMode on the tiny model.

FlopCounterMode has no formula for the CPU flash-attention kernel (it counts it as zero), so the model runs
with the math attention backend here, whose matmuls it counts one by one.
"""
import pytest
import torch
from timm.models.vision_transformer import Block
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from mavil_lite.model.flops import block_flops, forward_flops, step_flops
from mavil_lite.model.mavil import MAViL, model_config

BOTH = dict(inter_contrast_weight=0.01, intra_contrast_weight=0.01)
TOLERANCE = 0.01  # the counts should agree to the FLOP; 1% leaves room for an extra small product upstream


def counted(fn) -> FlopCounterMode:
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        fn()
    return counter


def module_flops(counter: FlopCounterMode, name: str) -> int:
    return sum(counter.get_flop_counts().get(name, {}).values())


def test_block_flops_match_a_timm_block():
    block = Block(48, 3, 4.0, qkv_bias=True)
    x = torch.randn(2, 17, 48)
    expected = sum(block_flops(2, 17, 48, 3, 4.0).values())
    assert counted(lambda: block(x)).get_total_flops() == pytest.approx(expected, rel=TOLERANCE)


@pytest.mark.parametrize("name, overrides, batch, mask_ratio", [
    ("av_mae", {}, 2, None),
    ("av_inter_intra", BOTH, 3, 0.5),
    ("stage2", dict(BOTH, target="teacher"), 2, None),
])
def test_step_flops_match_flop_counter(name, overrides, batch, mask_ratio):
    torch.manual_seed(0)
    config = model_config("tiny", **overrides)
    model = MAViL(config)
    teacher = None
    if config.target == "teacher":
        # the ablation's teacher: the stage-1 model of the previous row, frozen as pretrain() freezes it
        teacher = MAViL(model_config("tiny", **BOTH)).eval().requires_grad_(False)
    audio, video = torch.randn(batch, 1, *config.audio_size), torch.randn(batch, 3, *config.video_size)

    def forward():
        return model(audio, video, teacher=teacher, mask_ratio=mask_ratio)

    forward_count = counted(forward)
    analytic = forward_flops(config, batch, mask_ratio, teacher.config if teacher else None)
    assert forward_count.get_total_flops() == pytest.approx(sum(analytic.values()), rel=TOLERANCE)
    for m in config.modalities:  # the split between parts is right too, not only the sum
        decoder = sum(flops for term, flops in analytic.items() if term.startswith(f"{m}.decoder."))
        assert module_flops(forward_count, f"MAViL.decoders.{m}") == pytest.approx(decoder, rel=TOLERANCE)

    step_count = counted(lambda: forward()["loss"].backward())
    analytic_step = sum(step_flops(config, batch, mask_ratio, teacher.config if teacher else None).values())
    assert step_count.get_total_flops() == pytest.approx(analytic_step, rel=TOLERANCE)


def test_what_each_pass_sees():
    config = model_config("base")  # 512 audio + 784 video patches, 20% visible: 102 and 156
    terms = forward_flops(config, batch=1)
    tokens = {"audio": 1 + 102, "video": 1 + 156}
    assert terms["audio.encoder.qkv"] == 12 * 2 * tokens["audio"] * 768 * 3 * 768
    assert terms["fusion.scores"] == 2 * 2 * (tokens["audio"] + tokens["video"]) ** 2 * 768
    assert terms["video.decoder.pred"] == 2 * (1 + 784) * 512 * 3 * 2 * 16 * 16
    # the second intra-modal view doubles the encoder blocks, not the patch embedding, fusion or decoders
    two_views = forward_flops(model_config("base", intra_contrast_weight=0.01), batch=1)
    assert two_views["audio.encoder.mlp"] == 2 * terms["audio.encoder.mlp"]
    assert two_views["audio.patch_embed"] == terms["audio.patch_embed"]
    assert two_views["fusion.mlp"] == terms["fusion.mlp"]
    # the stage-2 teacher sees the whole clip, forward only
    stage2 = model_config("base", target="teacher")
    forward, step = forward_flops(stage2, batch=1), step_flops(stage2, batch=1)
    assert forward["teacher.audio.encoder.qkv"] == 12 * 2 * 513 * 768 * 3 * 768
    assert step["teacher.fusion.mlp"] == forward["teacher.fusion.mlp"]
    assert step["audio.encoder.mlp"] == 3 * forward["audio.encoder.mlp"]
    assert step["audio.patch_embed"] == 2 * forward["audio.patch_embed"]
