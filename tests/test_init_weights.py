"""Initialisation from MAE / timm / AudioMAE ViT checkpoints: adaptation and an exact report."""
import pytest
import timm
import torch

from mavil_lite.model.mavil import create_model
from mavil_lite.model.vit_checkpoints import load_vit_into_encoder

SMALL = dict(dim=192, audio_depth=2, video_depth=2, num_heads=3, with_decoders=False)


def timm_vit_state(depth=2):
    vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, depth=depth)  # (1, 197, 192) pos_embed
    return vit.state_dict()


def test_image_vit_initialises_the_video_encoder_with_inflated_tubelets():
    model = create_model("tiny", **SMALL)
    state = timm_vit_state()
    report = load_vit_into_encoder(model, {"model": state}, "video", keep_pos_embed=True)
    weight = model.encoders["video"].patch_embed.proj.weight  # (D, 3, 2, 16, 16)
    torch.testing.assert_close(weight.sum(dim=2), state["patch_embed.proj.weight"])
    torch.testing.assert_close(model.encoders["video"].blocks[1].mlp.fc2.weight, state["blocks.1.mlp.fc2.weight"])
    assert any("inflated to 2-frame" in a for a in report.adapted)
    assert any("interpolated (14, 14) -> (4, 4), repeated over 2" in a for a in report.adapted)
    assert "norm.weight" in report.ignored and "head.weight" in report.ignored
    assert report.initialised == []
    # a static clip gives the image's patch response
    image = torch.randn(1, 3, 64, 64)
    clip = image.unsqueeze(2).repeat(1, 1, 4, 1, 1)
    conv2d = torch.nn.functional.conv2d(image, state["patch_embed.proj.weight"], stride=16)
    torch.testing.assert_close(model.encoders["video"].patch_embed.proj(clip)[:, :, 0] - model.encoders["video"].patch_embed.proj.bias.view(1, -1, 1, 1),
                               conv2d, atol=1e-5, rtol=1e-4)


def test_rgb_weights_are_averaged_for_audio_and_sincos_kept_by_default():
    model = create_model("tiny", **SMALL)
    pos_before = model.encoders["audio"].pos_embed.clone()
    state = timm_vit_state()
    report = load_vit_into_encoder(model, state, "audio")
    torch.testing.assert_close(model.encoders["audio"].patch_embed.proj.weight,
                               state["patch_embed.proj.weight"].mean(dim=1, keepdim=True))
    assert torch.equal(model.encoders["audio"].pos_embed, pos_before) and "pos_embed" in report.ignored
    assert any("RGB averaged" in a for a in report.adapted)


def test_missing_blocks_are_reported_and_bad_shapes_fail():
    model = create_model("tiny", **{**SMALL, "audio_depth": 3})
    report = load_vit_into_encoder(model, timm_vit_state(depth=2), "audio")
    assert any(name.startswith("encoders.audio.blocks.2.") for name in report.initialised)
    wide = timm.create_model("vit_small_patch16_224", pretrained=False, depth=2).state_dict()
    with pytest.raises(ValueError, match="cannot be adapted"):
        load_vit_into_encoder(model, wide, "audio")
