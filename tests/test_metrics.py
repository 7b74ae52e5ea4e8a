"""Tests for mavil_lite.evaluate.metrics: mAP, accuracy and retrieval on hand-computed and random cases."""

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score

from mavil_lite.evaluate.metrics import (
    accuracy,
    audio_video_retrieval,
    is_multilabel,
    mean_average_precision,
    retrieval_metrics,
    retrieval_ranks,
)


def test_map_hand_computed_example_drops_class_without_positives():
    scores = np.array([[0.9, 0.2, 0.5], [0.8, 0.7, 0.1], [0.3, 0.6, 0.4], [0.1, 0.4, 0.9]])
    targets = np.array([[1, 0, 0], [0, 1, 0], [1, 0, 0], [0, 0, 0]])
    # Class 0: positives ranked 1st and 3rd -> AP = (1/1 + 2/3) / 2 = 5/6. Class 1: positive ranked 1st -> 1.
    # Class 2 has no positive and is dropped.
    value, dropped = mean_average_precision(scores, targets)
    assert value == pytest.approx((5 / 6 + 1.0) / 2)
    assert dropped == 1


def test_map_matches_sklearn_macro_on_random_data_and_accepts_tensors():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(60, 7))
    targets = (rng.random((60, 7)) < 0.3).astype(int)
    targets[:, 4] = 0
    expected = average_precision_score(targets[:, [0, 1, 2, 3, 5, 6]], scores[:, [0, 1, 2, 3, 5, 6]], average="macro")
    value, dropped = mean_average_precision(torch.from_numpy(scores).float(), torch.from_numpy(targets))
    assert value == pytest.approx(expected, abs=1e-6)
    assert dropped == 1


def test_map_perfect_scores_give_one():
    targets = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
    assert mean_average_precision(targets * 2.0 - 1.0, targets) == (pytest.approx(1.0), 0)


def test_map_rejects_bad_input():
    with pytest.raises(ValueError, match="same shape"):
        mean_average_precision(np.zeros((4, 3)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="multi-hot"):
        mean_average_precision(np.zeros((2, 2)), np.array([[2, 0], [0, 1]]))
    with pytest.raises(ValueError, match="no class"):
        mean_average_precision(np.zeros((2, 2)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="NaN"):
        mean_average_precision(np.array([[np.nan, 0.0]]), np.array([[1, 0]]))


def test_accuracy_with_integer_and_one_hot_labels():
    scores = np.array([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1], [0.2, 0.3, 0.5], [0.6, 0.3, 0.1]])
    labels = np.array([1, 0, 0, 0])
    assert accuracy(scores, labels) == pytest.approx(0.75)
    assert accuracy(torch.tensor(scores), torch.eye(3)[labels]) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="labels"):
        accuracy(scores, np.array([1, 0, 3, 0]))
    with pytest.raises(ValueError, match="4 rows"):
        accuracy(scores, np.array([1, 0]))


def test_retrieval_identity_match_is_perfect():
    embeddings = np.random.default_rng(1).normal(size=(20, 8))
    metrics = retrieval_metrics(embeddings, embeddings)
    assert metrics["R@1"] == 1.0 and metrics["R@5"] == 1.0 and metrics["R@10"] == 1.0
    assert metrics["median_rank"] == 1.0
    assert metrics["num_pairs"] == 20


def test_retrieval_known_shift_puts_true_match_second():
    # Gallery row i = 0.5 e_i + e_{i+1}: query e_i is closest to gallery row i-1 (cosine 1/|g|) and second
    # closest to its own row (0.5/|g|); every other row has cosine 0. So every rank is exactly 2.
    n = 12
    query = np.eye(n)
    gallery = 0.5 * np.eye(n) + np.roll(np.eye(n), 1, axis=1)
    np.testing.assert_array_equal(retrieval_ranks(query, gallery), np.full(n, 2))
    metrics = retrieval_metrics(query, gallery)
    assert metrics["R@1"] == 0.0
    assert metrics["R@5"] == 1.0
    assert metrics["median_rank"] == 2.0


def test_retrieval_permutation_with_fixed_points_and_pessimistic_ties():
    # Gallery is a permutation of one-hot rows with 4 fixed points out of 12. A non-fixed query has cosine 0 with
    # its true match and with 10 other rows: ties count against it, so its rank is 12.
    n = 12
    permutation = np.array([0, 1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 4])
    metrics = retrieval_metrics(np.eye(n), np.eye(n)[permutation])
    assert metrics["R@1"] == pytest.approx(4 / 12)
    assert metrics["R@10"] == pytest.approx(4 / 12)
    assert metrics["median_rank"] == 12.0


def test_collapsed_embeddings_do_not_score_perfectly():
    collapsed = np.ones((10, 4))
    metrics = retrieval_metrics(collapsed, collapsed)
    assert metrics["R@1"] == 0.0
    assert metrics["median_rank"] == 10.0


def test_audio_video_retrieval_runs_both_directions():
    rng = np.random.default_rng(2)
    audio, video = rng.normal(size=(15, 6)), rng.normal(size=(15, 6))
    both = audio_video_retrieval(torch.from_numpy(audio), torch.from_numpy(video))
    assert both["a2v"] == retrieval_metrics(audio, video)
    assert both["v2a"] == retrieval_metrics(video, audio)
    with pytest.raises(ValueError, match="same shape"):
        audio_video_retrieval(audio, video[:10])


def test_is_multilabel_counts_positives_per_row():
    assert not is_multilabel(np.eye(4)[[0, 3, 1]])
    assert is_multilabel(torch.tensor([[1.0, 1.0, 0.0], [0.0, 1.0, 0.0]]))  # a row with two labels
    assert is_multilabel(np.array([[0, 0, 0], [0, 1, 0]]))  # a row with none cannot be a class label


def test_is_multilabel_is_the_one_rule_and_refuses_soft_targets():
    """[0.5, 0.5] sums to 1 (the old fine-tuning and scoring rule: single-label) but has two positives (the old
    probe rule: multi-label); such targets are refused wherever the rule is asked."""
    from mavil_lite.evaluate import linear_probe as probe

    assert probe.is_multilabel is is_multilabel
    with pytest.raises(ValueError, match="multi-hot"):
        is_multilabel(np.array([[0.5, 0.5], [1.0, 0.0]]))
    with pytest.raises(ValueError, match=r"\(N, C\)"):
        is_multilabel(np.array([1, 0, 1]))
