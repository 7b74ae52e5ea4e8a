"""The ablation's diagnostics: each measured against a value worked out independently, and a planted
audio-video link that inter-modal contrast must find (retrieval far above chance) while an untrained model does not."""
import numpy as np
import pytest
import torch

from mavil_lite.data.dataset import ClipTensors
from mavil_lite.evaluate.diagnostics import (
    encoder_spread,
    fused_feature_gap,
    label_oracle_retrieval,
    label_precision_at_k,
    reconstruction_error,
    retrieval_diagnostics,
)
from mavil_lite.model.losses import normalize_patches
from mavil_lite.model.mavil import MAViL, model_config
from mavil_lite.train.engine import TrainConfig
from mavil_lite.train.pretrain import pretrain

SMALL = dict(audio_size=(64, 32), video_size=(2, 32, 32), dim=64, audio_depth=1, video_depth=1, num_heads=2,
             fusion_depth=1, decoder_dim=32, decoder_depth=1, decoder_heads=2)


def planted_clips(num_clips: int, seed: int) -> ClipTensors:
    """Clips whose audio and video carry the same hidden 4-d code z, each through its own fixed random patterns
    repeated in every patch (so any visible patch reveals z), plus independent noise."""
    rng = np.random.default_rng(seed)
    patterns = np.random.default_rng(99)  # the same patterns for every call: train and test share the link
    audio_patterns, video_patterns = patterns.normal(size=(4, 16, 16)), patterns.normal(size=(4, 2, 16, 16, 3))
    z = rng.normal(size=(num_clips, 4))
    audio = np.einsum("nk,kpq->npq", z, audio_patterns)  # (N, 16, 16): one patch's worth
    audio = np.tile(audio, (1, 4, 2))[:, None] + 0.3 * rng.normal(size=(num_clips, 1, 64, 32))  # (N, 1, 64, 32)
    video = np.einsum("nk,ktpqc->ntpqc", z, video_patterns)  # (N, 2, 16, 16, 3)
    video = np.tile(video, (1, 1, 2, 2, 1)) + 0.3 * rng.normal(size=(num_clips, 2, 32, 32, 3))
    frames = np.clip(128 + 25 * video, 0, 255).astype(np.uint8)  # (N, T, H, W, 3) as decoded clips are stored
    targets = torch.eye(2)[torch.from_numpy((z[:, 0] > 0).astype(np.int64))]
    return ClipTensors(torch.from_numpy(audio).float(), torch.from_numpy(frames), targets, ["neg", "pos"],
                       ["train"] * num_clips, [f"clip{i}" for i in range(num_clips)])


@pytest.mark.parametrize("contrast_norm", ["layer", "batch"])
def test_a_planted_audio_video_link_is_found_by_inter_modal_contrast_and_not_without_it(contrast_norm):
    train, test = planted_clips(64, seed=0), planted_clips(32, seed=1)
    torch.manual_seed(0)
    model = MAViL(model_config("tiny", **SMALL, mask_ratio=0.5, inter_contrast_weight=1.0, contrast_temperature=0.1,
                               contrast_norm=contrast_norm))
    before = retrieval_diagnostics(model, test)
    result = pretrain(model, train, TrainConfig(epochs=25, batch_size=32, base_lr=2e-2, warmup_epochs=2),
                      progress=False)
    after = retrieval_diagnostics(model, test)
    chance = after["chance"]["R@1"]
    assert chance == pytest.approx(1 / 32) and after["chance"]["median_rank"] == pytest.approx(16.5)
    assert before["a2v"]["R@1"] <= 4 * chance  # random projections do not align the modalities
    assert after["a2v"]["R@1"] >= 10 * chance and after["v2a"]["R@1"] >= 10 * chance
    assert after["a2v"]["median_rank"] <= 3
    history = result.history
    assert history["inter"][-1] < 0.5 * np.log(32) and history["inter_top1"][-1] > 0.5  # chance: ln 32, 1/32


def test_label_precision_at_k_on_a_crafted_example():
    # 4 clips, labels {a}, {a}, {b}, {a, b}; query i's nearest gallery items are fixed by the embeddings
    targets = torch.tensor([[1, 0], [1, 0], [0, 1], [1, 1]], dtype=torch.float32)
    gallery = torch.eye(4)
    query = torch.tensor([[0, 1.0, 0, 0], [0, 0, 1.0, 0], [0, 0, 1.0, 0], [1.0, 0, 0, 0]])
    result = label_precision_at_k(query, gallery, targets, k=1)
    # clip 0 -> clip 1 (shares a), clip 1 -> clip 2 (no), clip 2 -> itself (yes), clip 3 -> clip 0 (shares a)
    assert result["P@1"] == pytest.approx(3 / 4)
    shares = np.array([[1, 1, 0, 1], [1, 1, 0, 1], [0, 0, 1, 1], [1, 1, 1, 1]])
    assert result["chance"] == pytest.approx(shares.mean())
    assert label_precision_at_k(query, gallery, torch.tensor([0, 0, 1, 1]), k=1)["P@1"] == pytest.approx(2 / 4)


def test_reconstruction_error_against_the_mean_predictor_computed_by_hand():
    clips = planted_clips(12, seed=2)
    torch.manual_seed(0)
    model = MAViL(model_config("tiny", **SMALL))
    result = reconstruction_error(model, clips, batch_size=5, seed=3)
    generator = torch.Generator().manual_seed(3)
    audio, video, _ = clips.batch(torch.arange(12))
    targets, masks, errors = [], [], []
    for index in torch.arange(12).split(5):  # the same batches and the same mask draws
        noise = model.mask_noise(len(index), generator)
        out = model(audio[index], video[index], noise=noise)
        target = normalize_patches(model.patchify("audio", audio[index]))
        errors.append(((out["preds"]["audio"] - target) ** 2).mean(-1)[out["mask"]["audio"].bool()])
        targets.append(target), masks.append(out["mask"]["audio"].bool())
    target, mask = torch.cat(targets), torch.cat(masks)
    mean_error = ((target - target.mean(0, keepdim=True)) ** 2).mean(-1)[mask]
    assert result["audio"]["model"] == pytest.approx(torch.cat(errors).mean().item(), rel=1e-5)
    assert result["audio"]["mean_predictor"] == pytest.approx(mean_error.mean().item(), rel=1e-5)
    assert result["audio"]["ratio"] > 1  # an untrained decoder is worse than the mean
    with pytest.raises(ValueError, match="teacher"):
        reconstruction_error(MAViL(model_config("tiny", **SMALL, target="teacher")), clips)


def test_a_student_equal_to_its_teacher_has_no_gap():
    clips = planted_clips(6, seed=3)
    torch.manual_seed(0)
    teacher = MAViL(model_config("tiny", **SMALL))
    gap = fused_feature_gap(teacher, teacher, clips)
    for modality in ("audio", "video"):
        assert gap[modality]["mse"] == 0.0 and gap[modality]["cosine"] == pytest.approx(1.0)
        assert gap[modality]["teacher_variance"] > 0
    other = MAViL(model_config("tiny", **SMALL))
    assert fused_feature_gap(other, teacher, clips)["audio"]["mse"] > 0.1


def test_encoder_spread_matches_a_hand_computation_and_is_zero_for_an_encoder_that_ignores_its_input():
    clips = planted_clips(7, seed=4)
    torch.manual_seed(0)
    model = MAViL(model_config("tiny", **SMALL))
    spread = encoder_spread(model, clips, batch_size=3)  # batches of 3, 3, 1 clips
    audio, video, _ = clips.batch(slice(None))
    with torch.no_grad():
        tokens = model.encoders["audio"](audio)[:, 1:]  # (7, N, D)
    pooled = tokens.mean(dim=1)  # (7, D)
    by_hand_between = ((pooled - pooled.mean(dim=0)).norm(dim=-1).mean() / pooled.mean(dim=0).norm()).item()
    by_hand_within = ((tokens - tokens.mean(dim=1, keepdim=True)).norm(dim=-1).sum() / tokens.norm(dim=-1).sum()).item()
    assert spread["audio"]["between_clips"] == pytest.approx(by_hand_between, rel=1e-5)
    assert spread["audio"]["within_clip"] == pytest.approx(by_hand_within, rel=1e-5)
    for modality in ("audio", "video"):
        assert spread[modality]["between_clips"] > 0.01 and spread[modality]["within_clip"] > 0.05

    # no input and no position reach the blocks: every token of every clip is the same vector
    with torch.no_grad():
        for encoder in model.encoders.values():
            for parameter in encoder.patch_embed.parameters():
                parameter.zero_()
            encoder.pos_embed.zero_()
    collapsed = encoder_spread(model, clips)
    for modality in ("audio", "video"):
        assert collapsed[modality]["between_clips"] < 1e-4 and collapsed[modality]["within_clip"] < 1e-4


def test_label_oracle_retrieval_matches_a_hand_count():
    # "x" is only ever heard and "y" only ever seen, so neither can link audio to video
    audible = [{"a"}, {"a"}, {"b", "x"}, set()]
    oracle = label_oracle_retrieval(audible, [{"a"}, {"a", "y"}, {"b"}, set()])
    # groups by shared cues: {a} x 2, {b}, {}: R@1 = (1/2 + 1/2 + 1 + 1) / 4; expected ranks 1.5, 1.5, 1, 1
    assert oracle == {"R@1": 0.75, "median_rank": 1.25, "cue_sets": 3, "chance_R@1": 0.25}
    # clip 3 shows "b" but its audio reveals nothing: the oracle ranks its video after the empty group, by chance
    oracle = label_oracle_retrieval(audible, [{"a"}, {"a"}, {"b"}, {"b"}])
    assert oracle["R@1"] == pytest.approx((0.5 + 0.5 + 0.5 + 0) / 4)
    assert oracle["median_rank"] == pytest.approx(np.median([1.5, 1.5, 1.5, 2.5]))
    distinct = [{str(i)} for i in range(5)]
    assert label_oracle_retrieval(distinct, distinct)["R@1"] == 1.0
    with pytest.raises(ValueError, match="same, non-zero number"):
        label_oracle_retrieval(audible, audible[:2])
