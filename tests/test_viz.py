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
