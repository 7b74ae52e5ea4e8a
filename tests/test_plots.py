"""Tests for mavil_lite.teach.plots: figures have the expected panels, labels and files."""

import matplotlib

matplotlib.use("Agg")  # tests only: the package never selects a backend

import pytest
from matplotlib.figure import Figure

from mavil_lite.teach.plots import PAPER_LABEL, SHORT_ROW_NAMES, plot_ablation, plot_loss_curves, save_figure

RESULTS = [
    {"row": row, "method": f"method {row}", "audio": 5.0 + row, "video": 3.0 + row, "metric": "mAP", "wall_s": 1.0}
    for row in range(1, 6)
]


def assert_labelled(ax) -> None:
    assert ax.get_xlabel() and ax.get_ylabel() and ax.get_title()


def test_plot_ablation_has_two_labelled_panels_with_paper_bars_on_twin_axes():
    fig = plot_ablation(RESULTS)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 4  # audio, its paper twin, video, its paper twin
    for (ours_ax, paper_ax), modality in zip((fig.axes[0:2], fig.axes[2:4]), ("audio", "video")):
        assert_labelled(ours_ax)
        assert modality in ours_ax.get_ylabel() and "%" in ours_ax.get_ylabel()
        assert "paper" in paper_ax.get_ylabel()
        assert [tick.get_text() for tick in ours_ax.get_xticklabels()] == list(SHORT_ROW_NAMES.values())
        legend_texts = [text.get_text() for text in ours_ax.get_legend().get_texts()]
        assert any(PAPER_LABEL in text for text in legend_texts)
        assert len(ours_ax.patches) == 5 and len(paper_ax.patches) == 5
    # The value labels show our numbers and the paper's (read from the csv).
    assert {"6.0", "10.0"} <= {text.get_text() for text in fig.axes[0].texts}
    assert {"36.4", "41.8"} <= {text.get_text() for text in fig.axes[1].texts}
    assert [bar.get_height() for bar in fig.axes[3].patches] == [17.4, 17.7, 21.0, 22.2, 24.8]


def test_plot_ablation_tolerates_missing_rows_and_rejects_bad_ones():
    assert len(plot_ablation(RESULTS[:2]).axes) == 4
    with pytest.raises(ValueError, match="unknown ablation rows"):
        plot_ablation([{**RESULTS[0], "row": 7}])
    with pytest.raises(ValueError):
        plot_ablation([])


def test_plot_loss_curves_one_line_per_run_and_term():
    flat = plot_loss_curves({"run a": [1.0, 0.8, 0.7], "run b": [1.1, 0.9, 0.85]})
    assert len(flat.axes) == 1 and len(flat.axes[0].lines) == 2
    assert_labelled(flat.axes[0])
    assert flat.axes[0].get_yscale() == "linear"

    nested = plot_loss_curves(
        {"stage 1": {"recon": [1.0, 0.1, 0.01], "contrast": [2.0, 1.5, 1.2]}, "stage 2": {"recon": [0.5, 0.2, 0.1]}}
    )
    ax = nested.axes[0]
    assert len(ax.lines) == 3
    assert ax.get_yscale() == "log"  # the losses span 200x
    assert "stage 1: recon" in [text.get_text() for text in ax.get_legend().get_texts()]


def test_plot_loss_curves_rejects_empty_input():
    with pytest.raises(ValueError):
        plot_loss_curves({})
    with pytest.raises(ValueError):
        plot_loss_curves({"run": "not a list"})


def test_save_figure_writes_png_and_creates_folders(tmp_path):
    path = save_figure(plot_ablation(RESULTS), tmp_path / "nested" / "ablation.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="png"):
        save_figure(plot_ablation(RESULTS), tmp_path / "ablation.jpg")


def test_plot_loss_curves_gives_six_terms_six_styles_and_draws_reference_lines():
    terms = {term: [3.0 - 0.1 * step for step in range(40)]
             for term in ("loss", "recon_audio", "recon_video", "inter", "intra_audio", "intra_video")}
    fig = plot_loss_curves({"av_inter_intra": terms}, reference_lines={"chance: ln 8 = 2.08": 2.0794})
    ax = fig.axes[0]
    curves = [line for line in ax.lines if line.get_label().startswith("av_inter_intra")]
    assert len({(line.get_linestyle(), line.get_marker()) for line in curves}) == 6
    reference = [line for line in ax.lines if line.get_label() == "chance: ln 8 = 2.08"]
    assert len(reference) == 1 and set(reference[0].get_ydata()) == {2.0794}
    assert reference[0].get_color() == "grey"
    assert "chance: ln 8 = 2.08" in [text.get_text() for text in ax.get_legend().get_texts()]


def test_term_styles_are_fixed_per_name_and_distinct_for_new_names():
    from mavil_lite.teach.plots import TERM_STYLES, term_styles

    assert term_styles(["inter"])["inter"] == term_styles(["recon_audio", "inter", "loss"])["inter"]
    styles = term_styles(["loss", "recon_audio", "custom_a", "custom_b"])
    assert len(set(styles.values())) == 4
    assert len(set(term_styles(f"t{i}" for i in range(len(TERM_STYLES))).values())) == len(TERM_STYLES)
