"""Teaching figures: built without pyplot, labelled with units, drawing what they are given."""
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from mavil_lite.teach import viz

T, F = 96, 32
FRAMES = np.random.default_rng(0).integers(0, 255, (4, 32, 32, 3), dtype=np.uint8)
FBANK = torch.randn(T, F)
TIMES = [0.0, 1.0, 2.0, 3.0]


def labels(fig):
    return {(ax.get_xlabel(), ax.get_ylabel()) for ax in fig.axes}


def xlabels(fig):
    return " ".join(ax.get_xlabel() for ax in fig.axes)


def ylabels(fig):
    return " ".join(ax.get_ylabel() for ax in fig.axes)


def test_audio_features_share_a_time_axis_in_seconds():
    fig = viz.plot_audio_features(torch.randn(1, 16000), 16000, FBANK, FBANK / 2)
    assert isinstance(fig, Figure)
    main = [ax for ax in fig.axes if ax.get_xlabel() == "time (s)"]
    assert len(main) == 3 and "mel bin" in ylabels(fig) and "amplitude" in ylabels(fig)
    spectrogram = main[1].images[0]
    assert spectrogram.get_extent()[:2] == [0, T * 0.01]  # 10 ms per fbank frame
    assert spectrogram.get_array().shape == (F, T)  # frequency up, time across


def test_normalization_histograms_mark_both_statistics():
    fig = viz.plot_normalization(FBANK, FBANK / 2, (-3.0, 4.0), (-4.27, 4.57))
    assert "log mel energy" in xlabels(fig) and "count" in ylabels(fig)
    assert len(fig.axes[0].get_legend().get_texts()) == 2


def test_frame_rows_show_index_time_and_grey_hidden_pixels():
    mask = np.zeros((4, 32, 32))
    mask[:, :16] = 1
    fig = viz.plot_frame_rows([("original", FRAMES, None), ("masked", FRAMES, mask)], TIMES, title="x")
    assert len(fig.axes) == 8
    assert "t = 2.00 s" in xlabels(fig) and "frame 3" in {ax.get_title() for ax in fig.axes}
    hidden = fig.axes[4].images[0].get_array()
    assert (np.asarray(hidden)[:16] == viz.MASK_GREY).all() and (np.asarray(hidden)[16:] == FRAMES[0, 16:]).all()


def test_spectrogram_rows_and_combined_audio_video():
    mask = torch.zeros(T, F)
    mask[:16] = 1
    fig = viz.plot_audio_video([("a", FBANK, None), ("b", FBANK, mask)], [("v", FRAMES, None)], TIMES)
    assert "time (s)" in xlabels(fig) and "mel bin" in ylabels(fig)
    masked_image = [ax for ax in fig.axes if ax.get_title() == "b"][0].images[0].get_array()
    assert np.ma.getmaskarray(masked_image)[:, :16].all() and not np.ma.getmaskarray(masked_image)[:, 16:].any()


def test_patch_and_tubelet_grids_number_the_tokens():
    fig = viz.plot_patch_grid(FBANK, (16, 16))
    assert "12 patches" in fig.axes[0].get_title()  # 6 x 2
    assert {t.get_text() for t in fig.axes[0].texts} == {str(i) for i in range(12)}
    fig = viz.plot_tubelet_grid(FRAMES, (2, 16, 16), TIMES)
    numbers = {t.get_text() for ax in fig.axes for t in ax.texts}
    assert numbers == {str(i) for i in range(8)}  # 2 slices x 2 x 2


def test_similarity_bars_lines_and_ranked_list():
    fig = viz.plot_similarity({"before": np.eye(4), "after": -np.eye(4)}, "video clip", "audio clip", "cosine")
    assert labels(fig) >= {("video clip", "audio clip")}
    fig = viz.plot_metric_bars({"a": {"m1": 1.0, "m2": 2.0}, "b": {"m1": 3.0}}, "percent", "t")
    assert fig.axes[0].get_ylabel() == "percent" and len(fig.axes[0].patches) == 4
    fig = viz.plot_lines([0.1, 0.5], {"x": [1, 2]}, "ratio", "error", "t", vline=0.8)
    assert fig.axes[0].get_xlabel() == "ratio"
    fig = viz.plot_ranked_list(FBANK, "query", [{"frame": FRAMES[0], "caption": "c", "match": True}] * 3)
    assert "time (s)" in xlabels(fig) and sum(ax.get_title().startswith("rank") for ax in fig.axes) == 3


def test_token_pca_colours_tokens_of_both_modalities():
    rng = np.random.default_rng(1)
    colours = viz.pca_colours(rng.normal(size=(50, 8)))
    assert colours.shape == (50, 3) and colours.min() >= 0 and colours.max() <= 1
    fig = viz.plot_token_pca(FBANK, rng.normal(size=(12, 8)), (6, 2), FRAMES, rng.normal(size=(8, 8)), (2, 2, 2), TIMES)
    assert "mel bin" in ylabels(fig) and "t = 0.00 s" in xlabels(fig)
    with pytest.raises(ValueError):
        viz.plot_token_pca(FBANK, rng.normal(size=(12, 8)), (5, 2), FRAMES, rng.normal(size=(8, 8)), (2, 2, 2))


def test_no_pyplot_state():
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    viz.plot_patch_grid(FBANK, (16, 16))
    assert plt.get_fignums() == before


def tick_labels_overlap(fig) -> list[tuple[str, str]]:
    """Pairs of x tick labels of the first Axes whose rendered boxes overlap."""
    from itertools import combinations

    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig).draw()
    ticks = [t for t in fig.axes[0].get_xticklabels() if t.get_text()]
    return [(a.get_text(), b.get_text()) for a, b in combinations(ticks, 2)
            if a.get_window_extent().overlaps(b.get_window_extent())]


def test_metric_bar_labels_are_wrapped_and_never_overlap():
    four = {"audio: distance (patches)": 1.2, "video: distance (patches)": 0.9, "audio: copy MSE": 0.4,
            "video: copy MSE": 0.3}
    fig = viz.plot_metric_bars({"random": four, "structured (time-freq / tube)": four}, "value", "t")
    assert "audio: distance\n(patches)" in [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert tick_labels_overlap(fig) == []
    six = {f"{name}: a fairly long metric name, number {i}": float(i) for i, name in
           enumerate(["audio probe mAP", "video probe mAP", "A->V R@1", "V->A R@1", "audio fine-tuned", "video"])}
    fig = viz.plot_metric_bars({"random init": six, "av_mae": six, "av_inter_intra": six}, "percent", "t")
    assert len(fig.axes[0].get_xticklabels()) == 6 and tick_labels_overlap(fig) == []


def test_lines_with_a_right_axis_share_one_legend():
    fig = viz.plot_lines([0.1, 0.5, 0.8], {"audio": [1, 2, 3], "video": [1, 1.5, 2]}, "ratio", "distance", "t",
                         vline=0.8, right_series={"audio: copy MSE": [0.1, 0.2, 0.3], "video: copy MSE": [0.2, 0.3, 0.4],
                                                  "predict each patch's mean": [0.5, 0.5, 0.5]},
                         right_ylabel="hidden-patch MSE")
    left, right = fig.axes
    assert right.get_ylabel() == "hidden-patch MSE" and len(right.get_lines()) == 3
    assert all(line.get_linestyle() == "--" for line in right.get_lines())
    colours = [line.get_color() for ax in (left, right) for line in ax.get_lines() if line.get_label()[0] != "_"]
    assert len(set(colours)) == 5  # the right series continue the left's colours
    assert len(fig.legends) == 1 and left.get_legend() is None and right.get_legend() is None
    assert [t.get_text() for t in fig.legends[0].get_texts()] == [
        "audio", "video", "audio: copy MSE", "video: copy MSE", "predict each patch's mean"]


def test_similarity_sorted_by_label_with_class_boundaries():
    matrix = np.arange(16.0).reshape(4, 4)  # row r, column c holds 4 r + c: any permutation is visible
    fig = viz.plot_similarity({"m": matrix}, "video clip", "audio clip", "cosine", labels=["b", "a", "b", "a"])
    ax = fig.axes[0]
    order = [1, 3, 0, 2]  # the "a" clips first, each class in its original order
    assert np.array_equal(ax.images[0].get_array(), matrix[np.ix_(order, order)])
    boundaries = {(tuple(line.get_xdata()), tuple(line.get_ydata())) for line in ax.get_lines()}
    assert ((1.5, 1.5), (0, 1)) in boundaries and ((0, 1), (1.5, 1.5)) in boundaries  # vertical and horizontal
    assert list(ax.get_xticks()) == [0.5, 2.5] and [t.get_text() for t in ax.get_yticklabels()] == ["a", "b"]
    diagonal = [p for p in ax.patches if p.get_width() == 1]
    assert [p.get_xy() for p in diagonal] == [(k - 0.5, k - 0.5) for k in range(4)]
    with pytest.raises(ValueError, match="one label per row"):
        viz.plot_similarity({"m": matrix}, "x", "y", "v", labels=["a", "b"])


def test_similarity_class_names_thin_out_instead_of_overlapping():
    labels = [f"class {i:03d}" for i in range(120)]
    fig = viz.plot_similarity({"m": np.eye(120)}, "x", "y", "v", labels=labels)
    assert 0 < len(fig.axes[0].get_yticks()) < 120
    assert viz.label_order([3, 1, 2, 1]).tolist() == [1, 3, 2, 0]
