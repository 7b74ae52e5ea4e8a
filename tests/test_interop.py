"""Public MAViL-Base checkpoint interop: the golden reference outputs, key naming, clear errors."""
import pytest
import torch

from mavil_lite import from_public_mavil
from mavil_lite.model.interop import public_to_ours
from mavil_lite.model.mavil import create_model


def load_golden(shared_dir):
    return torch.load(shared_dir / "reference" / "golden_encoder_fusion.pt", weights_only=True)


def golden_model(golden, state_dict=None):
    c = golden["config"]
    return from_public_mavil(state_dict if state_dict is not None else golden["state_dict"],
                             num_heads=c["heads"], audio_size=c["audio"], video_size=c["video"])


def test_golden_encoder_and_fusion_outputs(shared_dir):
    golden = load_golden(shared_dir)
    model = golden_model(golden)
    assert not model.training
    with torch.no_grad():
        out = model.encode(golden["audio"], golden["video"])
    assert set(golden["expected"]) <= set(out)
    for name, expected in golden["expected"].items():
        assert out[name].shape == expected.shape, name
        assert (out[name] - expected).abs().max().item() <= 1e-4, name


def test_architecture_is_inferred_from_the_tensors(shared_dir):
    golden = load_golden(shared_dir)
    c = golden["config"]
    config = golden_model(golden).config
    assert (config.dim, config.audio_depth, config.video_depth, config.fusion_depth) == (c["dim"], c["depth"], c["depth"], c["depth_av"])
    assert config.num_classes == 0 and not config.with_decoders


def read_tsv(path):
    rows = [line.split("\t") for line in path.read_text().splitlines()[1:] if line]
    return {key: tuple(int(s) for s in shape.split("x")) for key, shape in rows}


@pytest.mark.parametrize("tsv, fusion_depth, num_classes", [
    ("mavil_base_pretrained.tsv", 2, 0), ("mavil_base_finetuned_av.tsv", 3, 527)])
def test_base_model_has_exactly_the_public_parameters(shared_dir, tsv, fusion_depth, num_classes):
    public = read_tsv(shared_dir / "reference" / "public_checkpoint_keys" / tsv)
    model = create_model("base", fusion_depth=fusion_depth, num_classes=num_classes, with_decoders=False)
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    mapped = {public_to_ours(k): shape for k, shape in public.items()}
    assert mapped == ours
    fake = {k: torch.zeros(shape) for k, shape in public.items()}
    loaded = from_public_mavil(fake)
    assert loaded.config.fusion_depth == fusion_depth and loaded.config.num_classes == num_classes


def test_logits_from_the_av_head(shared_dir):
    golden = load_golden(shared_dir)
    dim = golden["config"]["dim"]
    sd = dict(golden["state_dict"])
    sd["fc_norm_av.weight"], sd["fc_norm_av.bias"] = torch.ones(2 * dim), torch.zeros(2 * dim)
    sd["head_av.weight"], sd["head_av.bias"] = torch.randn(5, 2 * dim), torch.zeros(5)
    out = golden_model(golden, sd).encode(golden["audio"], golden["video"])
    pooled = torch.nn.functional.layer_norm(golden["expected"]["fusion_pooled"], (2 * dim,), eps=1e-6)
    torch.testing.assert_close(out["logits"], pooled @ sd["head_av.weight"].t(), atol=1e-4, rtol=1e-4)


def test_errors_name_the_offending_keys(shared_dir):
    golden = load_golden(shared_dir)
    sd = dict(golden["state_dict"])
    with pytest.raises(KeyError, match="decoder_pred.weight"):
        golden_model(golden, {**sd, "decoder_pred.weight": torch.zeros(1)})
    without = {k: v for k, v in sd.items() if k != "blocks_v.1.attn.proj.bias"}
    with pytest.raises(KeyError, match=r"encoders\.video\.blocks\.1\.attn\.proj\.bias"):
        golden_model(golden, without)
    with pytest.raises(ValueError, match="pos_embed"):
        from_public_mavil(sd, num_heads=4, audio_size=(256, 64), video_size=golden["config"]["video"])


def test_a_kit_model_exported_to_the_public_format_loads_back_unchanged():
    from mavil_lite.model.interop import ours_to_public, to_public_state_dict

    torch.manual_seed(0)
    model = create_model("tiny", audio_size=(64, 32), video_size=(4, 32, 32), dim=48, audio_depth=2, video_depth=1,
                         num_heads=2, fusion_depth=1, decoder_dim=48, decoder_depth=1, decoder_heads=2,
                         inter_contrast_weight=0.01, num_classes=5).eval()
    exported = to_public_state_dict(model)
    assert "blocks_av.0.attn.qkv.weight" in exported and "head_av.weight" in exported and "cls_token_v" in exported
    assert not any(k.startswith(("decoders", "inter_proj")) for k in exported)  # not part of the public format
    assert all(public_to_ours(ours_to_public(k)) == k for k in model.state_dict() if ours_to_public(k))
    loaded = from_public_mavil(exported, num_heads=2, audio_size=(64, 32), video_size=(4, 32, 32))
    audio, video = torch.randn(2, 1, 64, 32), torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        ours, theirs = model.encode(audio, video), loaded.encode(audio, video)
    for key in ("audio_tokens", "video_tokens", "fusion_tokens", "fusion_pooled", "logits"):
        assert torch.equal(ours[key], theirs[key]), key


def test_the_base_model_exports_exactly_the_public_keys(shared_dir):
    from mavil_lite.model.interop import to_public_state_dict

    public = read_tsv(shared_dir / "reference" / "public_checkpoint_keys" / "mavil_base_pretrained.tsv")
    model = create_model("base", fusion_depth=2, with_decoders=False)
    assert {k: tuple(v.shape) for k, v in to_public_state_dict(model).items()} == public
