"""What the teaching notebooks measure beyond the losses: stage-2 target sources and baselines, reconstruction
in another modality's context, de-normalisation from visible patches, and the fusion blocks' attention shares."""
import pytest
import torch
import torch.nn.functional as F

from mavil_lite.model.losses import normalize_patches
from mavil_lite.train.engine import TrainConfig
from mavil_lite.train.pretrain import all_teacher_targets, pretrain
from mavil_lite.teach.fusion_attention import attention_weights, cross_modal_attention
from mavil_lite.teach.reconstruction import denormalize_with_visible, evaluate_reconstruction
from mavil_lite.teach.stage2_targets import between_clip_share, collect_targets, evaluate_student, position_means

from test_reconstruction import clips, mini


def test_distillation_targets_come_from_the_fused_or_the_encoder_tokens():
    model = mini()
    audio, video, _ = clips(3).batch(slice(0, 3))
    fused, encoder = (model.distillation_targets(audio, video, source=s) for s in ("fused", "encoder"))
    with torch.no_grad():
        own = {m: model.encoders[m](x) for m, x in (("audio", audio), ("video", video))}  # (B, 1 + N, dim)
        joint = model.forward_fusion(own)
    for m in ("audio", "video"):
        assert torch.allclose(encoder[m], F.layer_norm(own[m][:, 1:], (model.config.dim,)), atol=1e-5)
        assert torch.allclose(fused[m], F.layer_norm(joint[m][:, 1:], (model.config.dim,)), atol=1e-5)
        assert torch.equal(fused[m], model.fused_targets(audio, video)[m])
        assert not torch.allclose(fused[m], encoder[m], atol=1e-3)  # the fusion block changes them
    with pytest.raises(ValueError, match="source must be one of"):
        model.distillation_targets(audio, video, source="pixels")


def test_a_student_trains_on_encoder_targets_and_is_scored_against_the_position_mean():
    data = clips(6)
    teacher, student = mini(), mini(target="teacher")
    targets = all_teacher_targets(teacher, data, "cpu", progress=False, source="encoder")
    assert torch.allclose(targets["audio"], teacher.distillation_targets(*data.batch(slice(0, 6))[:2],
                                                                         source="encoder")["audio"], atol=1e-5)
    result = pretrain(student, data, TrainConfig(epochs=2, batch_size=3, base_lr=1e-3, warmup_epochs=0),
                      teacher=teacher, target_source="encoder", progress=False)
    assert len(result.history["loss"]) == 4 and all(torch.isfinite(torch.tensor(result.history["loss"])))
    collected = collect_targets(teacher, data, source="encoder")
    scores = evaluate_student(student, data, collected, position_means(collected))
    for m, s in scores.items():
        assert s["zero"] == pytest.approx(1.0, abs=1e-3)  # layer-normed targets: mean square 1 per token
        assert s["position mean"] < s["zero"]  # the per-position mean knows the positional part
        assert s["tokens"] > 0 and s["student"] > 0


def test_between_clip_share_is_zero_for_identical_clips_and_near_one_for_independent_ones():
    same = torch.randn(1, 5, 8).expand(10, 5, 8)
    assert between_clip_share(same) == pytest.approx(0.0, abs=1e-6)
    assert between_clip_share(torch.randn(2000, 5, 8)) == pytest.approx(1.0, abs=0.02)
    shifted = torch.randn(2000, 5, 8) + 3.0  # a fixed offset everywhere: 1 / (1 + 9) varies between clips
    assert between_clip_share(shifted) == pytest.approx(0.1, abs=0.01)


def test_denormalize_with_visible_uses_the_visible_patches_statistics_only():
    target = torch.cat([torch.randn(1, 3, 64) * 2 + 5, torch.randn(1, 1, 64) * 9 - 4], dim=1)  # last patch differs
    mask = torch.tensor([[0, 0, 0, 1]])
    shown = denormalize_with_visible(normalize_patches(target), target, mask)
    visible_mean = target[:, :3].mean(-1).mean()
    assert shown[0, 3].mean() == pytest.approx(float(visible_mean), abs=1e-3)  # not the hidden patch's own -4
    assert shown[0, 3].std() == pytest.approx(float(target[:, :3].var(-1).mean().sqrt()), rel=1e-2)


def test_reconstruction_error_depends_on_the_other_modality_through_the_fusion():
    model, data = mini(), clips(6)
    errors = {c: evaluate_reconstruction(model, data, 0.75, seed=0, context=c) for c in ("own", "other", "zeros")}
    assert errors["own"]["audio"]["patches"] == errors["other"]["audio"]["patches"]  # same masks
    assert errors["own"]["audio"]["mean"] == pytest.approx(errors["zeros"]["audio"]["mean"])  # same targets
    assert errors["own"]["audio"]["model"] != pytest.approx(errors["other"]["audio"]["model"], rel=1e-6)
    assert errors["own"]["video"]["model"] != pytest.approx(errors["zeros"]["video"]["model"], rel=1e-6)
    with pytest.raises(ValueError, match="context must be one of"):
        evaluate_reconstruction(model, data, 0.75, context="swap")


def test_attention_weights_reproduce_the_blocks_attention_and_the_shares_are_fractions():
    model = mini()
    audio, video, _ = clips(2).batch(slice(0, 2))
    block = model.fusion[0]
    x = torch.randn(2, 7, model.config.dim)
    weights = attention_weights(block, x)  # (B, heads, N, N)
    assert torch.allclose(weights.sum(-1), torch.ones(2, block.attn.num_heads, 7), atol=1e-5)
    attn = block.attn
    v = attn.qkv(block.norm1(x)).reshape(2, 7, 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4)[2]
    by_hand = attn.proj((weights @ v).transpose(1, 2).reshape(2, 7, -1))  # (B, N, dim)
    with torch.no_grad():
        assert torch.allclose(by_hand, attn(block.norm1(x)), atol=1e-5)
    shares = cross_modal_attention(model, audio, video)
    assert len(shares) == model.config.fusion_depth
    for s in shares:
        assert 0 < s["audio->video"] < 1 and 0 < s["video->audio"] < 1
        assert s["uniform audio->video"] + s["uniform video->audio"] == pytest.approx(1.0)
