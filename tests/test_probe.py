"""Tests for mavil_lite.evaluate.linear_probe: the linear probe separates what is separable and nothing else."""

import numpy as np
import pytest
import torch

from mavil_lite.evaluate.linear_probe import embed_clips, is_multilabel, linear_probe

NUM_FEATURES = 16


def gaussian_clusters(num_per_class: int, num_classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, D) points around well-separated class means and (N, C) one-hot targets."""
    rng = np.random.default_rng(seed)
    means = np.random.default_rng(100).normal(scale=3.0, size=(num_classes, NUM_FEATURES))
    classes = np.repeat(np.arange(num_classes), num_per_class)
    points = means[classes] + rng.normal(size=(len(classes), NUM_FEATURES))
    return points, np.eye(num_classes)[classes]


def linear_multilabel(num_clips: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Points whose 5 labels are thresholded linear functions of the point (about 30% positives each)."""
    rng = np.random.default_rng(seed)
    directions = np.random.default_rng(200).normal(size=(NUM_FEATURES, 5))
    points = rng.normal(size=(num_clips, NUM_FEATURES))
    projections = points @ directions
    targets = (projections > np.quantile(projections, 0.7, axis=0)).astype(int)
    return points, targets


def test_is_multilabel():
    assert not is_multilabel(np.eye(4)[[0, 3, 1]])
    assert is_multilabel(np.array([[1, 1, 0], [0, 1, 0]]))
    assert is_multilabel(np.array([[0, 0, 0], [0, 1, 0]]))


def test_single_label_probe_beats_chance_on_separable_clusters():
    train_x, train_y = gaussian_clusters(50, 4, seed=0)
    test_x, test_y = gaussian_clusters(50, 4, seed=1)
    result = linear_probe(train_x, train_y, test_x, test_y, multilabel=False)
    assert result["metric"] == "accuracy"
    assert result["value"] > 0.9  # chance is 0.25
    assert result["n_train"] == 200 and result["n_test"] == 200 and result["classes_dropped"] == 0


def test_single_label_probe_is_near_chance_on_noise_labels():
    rng = np.random.default_rng(3)
    train_x, test_x = rng.normal(size=(300, NUM_FEATURES)), rng.normal(size=(400, NUM_FEATURES))
    train_y = np.eye(4)[rng.integers(0, 4, 300)]
    test_y = np.eye(4)[rng.integers(0, 4, 400)]
    result = linear_probe(train_x, train_y, test_x, test_y, multilabel=False)
    assert 0.15 < result["value"] < 0.36


def test_multilabel_probe_gets_high_map_on_linear_labels_and_chance_on_noise():
    train_x, train_y = linear_multilabel(300, seed=4)
    test_x, test_y = linear_multilabel(200, seed=5)
    result = linear_probe(torch.from_numpy(train_x), train_y, test_x, test_y, multilabel=True)
    assert result["metric"] == "mAP"
    assert result["value"] > 0.9

    shuffled_test_y = np.random.default_rng(6).permutation(test_y)
    noise = linear_probe(train_x, train_y, test_x, shuffled_test_y, multilabel=True)
    assert noise["value"] < 0.45  # random-score mAP is about the 30% prevalence


def test_multilabel_probe_counts_test_classes_without_positives():
    train_x, train_y = linear_multilabel(200, seed=7)
    test_x, test_y = linear_multilabel(100, seed=8)
    test_y[:, [1, 3]] = 0
    train_y[:, 2] = 0  # a class never seen positive in training becomes a constant predictor, not an error
    result = linear_probe(train_x, train_y, test_x, test_y, multilabel=True)
    assert result["classes_dropped"] == 2


def test_probe_rejects_inconsistent_input():
    train_x, train_y = gaussian_clusters(10, 3, seed=0)
    with pytest.raises(ValueError, match="same D"):
        linear_probe(train_x, train_y, train_x[:, :5], train_y, multilabel=False)
    with pytest.raises(ValueError, match="disagree on N"):
        linear_probe(train_x, train_y[:5], train_x, train_y, multilabel=False)
    with pytest.raises(ValueError, match="multilabel=True"):
        linear_probe(train_x, np.ones_like(train_y), train_x, train_y, multilabel=False)
    with pytest.raises(ValueError, match="two classes"):
        linear_probe(train_x, np.eye(3)[np.zeros(30, dtype=int)], train_x, train_y, multilabel=False)


def test_embed_clips_batches_indices_in_order():
    features = torch.arange(10, dtype=torch.float32)[:, None] * torch.ones(1, 3)
    seen_batches = []

    def embed_fn(indices: torch.Tensor) -> torch.Tensor:
        seen_batches.append(indices.tolist())
        return features[indices]

    embeddings = embed_clips(embed_fn, features, batch_size=4, progress=False)
    assert torch.equal(embeddings, features)
    assert seen_batches == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_embed_clips_rejects_bad_embed_fn_and_empty_data():
    with pytest.raises(ValueError, match="B=2"):
        embed_clips(lambda indices: torch.zeros(3, 4), [0, 1], progress=False)
    with pytest.raises(ValueError, match="empty"):
        embed_clips(lambda indices: torch.zeros(len(indices), 4), [], progress=False)


def test_probe_returns_test_scores_that_reproduce_its_metric():
    from mavil_lite.evaluate.metrics import accuracy, mean_average_precision

    train_x, train_y = gaussian_clusters(30, 3, seed=1)
    test_x, test_y = gaussian_clusters(10, 3, seed=2)
    single = linear_probe(train_x, train_y, test_x, test_y, multilabel=False, return_scores=True)
    assert single["scores"].shape == test_y.shape
    assert single["value"] == pytest.approx(accuracy(single["scores"], test_y))
    train_x, train_y = linear_multilabel(200, seed=3)
    test_x, test_y = linear_multilabel(80, seed=4)
    multi = linear_probe(train_x, train_y, test_x, test_y, multilabel=True, return_scores=True)
    assert multi["value"] == pytest.approx(mean_average_precision(multi["scores"], test_y)[0])
    assert "scores" not in linear_probe(train_x, train_y, test_x, test_y, multilabel=True)


def test_embed_dataset_kinds_have_the_heads_widths():
    from mavil_lite.data.dataset import ClipTensors
    from mavil_lite.evaluate.linear_probe import embed_dataset
    from mavil_lite.model.mavil import create_model

    torch.manual_seed(0)
    sizes = dict(audio_size=(64, 32), video_size=(4, 32, 32), dim=48, audio_depth=1, video_depth=1, num_heads=2,
                 fusion_depth=1, decoder_dim=48, decoder_depth=1, decoder_heads=2, contrast_dim=16)
    clips = ClipTensors(audio=torch.randn(5, 1, 64, 32), video=torch.randint(0, 255, (5, 4, 32, 32, 3), dtype=torch.uint8),
                        targets=torch.eye(5), classes=list("abcde"), splits=["test"] * 5, files=[str(i) for i in range(5)])
    contrastive = create_model("tiny", **sizes, inter_contrast_weight=0.01)
    widths = {"audio": 48, "video": 48, "av": 96, "audio_contrast": 16, "video_contrast": 16}
    for kind, width in widths.items():
        assert embed_dataset(contrastive, clips, kind, batch_size=2).shape == (5, width), kind
    audio, video, _ = clips.batch(slice(0, 5))
    expected = contrastive.inter_proj["audio"](contrastive.embed("audio", audio))
    assert torch.allclose(embed_dataset(contrastive, clips, "audio_contrast"), expected, atol=1e-5)
    plain = create_model("tiny", **sizes)  # no inter-modal projection: the pooled tokens themselves
    assert embed_dataset(plain, clips, "video_contrast").shape == (5, 48)
    with pytest.raises(ValueError, match="unknown embedding kind"):
        embed_dataset(plain, clips, "text")
