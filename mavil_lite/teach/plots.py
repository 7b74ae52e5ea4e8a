"""Figures for the ablation results and pre-training loss curves.

Every function returns a `matplotlib.figure.Figure` built without pyplot: no global figure state is touched,
no backend is selected (that is the caller's business), and a notebook shows the returned figure once
instead of once from pyplot and once from the cell's return value.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from mavil_lite.experiments.paper_numbers import ABLATION_ROWS, paper_ablation
from mavil_lite.teach.viz import plot_metric_bars

# Tick labels; the full method names are in the Markdown table.
SHORT_ROW_NAMES = {1: "A/V-MAE", 2: "AV-MAE", 3: "+inter", 4: "+intra", 5: "stage-2"}
PAPER_LABEL = "paper (AS-20K, ViT-B)"
FIGURE_DPI = 120
BAR_WIDTH = 0.38
# Log y is used when the loss spans more than this factor, so late-training detail stays visible.
LOG_SCALE_MIN_RANGE = 20.0


def plot_ablation(results: list[dict]) -> Figure:
    """Two panels (audio, video): our fine-tuned score per ablation row beside the paper's, each on its own y axis.

    Args:
        results: rows as `mavil_lite.experiments.ablation.mean_rows` gives them ({'row', 'audio', 'video', 'metric'}, scores
            in percent, optionally '<modality>_std' for error bars and '<modality>_probe' for the linear probe).
            Row 0 (no pre-training), when present, is drawn as a dashed line: the floor every bar should clear.

    Returns:
        Figure with four Axes: the audio panel (ours, left axis), its twin (paper, right axis, hatched grey
        bars), then the same for video.
        The paper gets its own y axis because a scaled-down run scores far lower: on a shared axis our bars
        would be too short for the row-to-row changes, which are what the ablation is about, to be visible.
        Both axes start at 0 so neither exaggerates its differences.
    """
    if not results:
        raise ValueError("no results to plot")
    ours_by_row = {int(result["row"]): result for result in results}
    unknown = sorted(set(ours_by_row) - set(ABLATION_ROWS) - {0})
    if unknown:
        raise ValueError(f"unknown ablation rows {unknown}; expected 0 and {ABLATION_ROWS}")
    paper = paper_ablation()
    metric = "/".join(sorted({str(result.get("metric", "score")) for result in results}))
    positions = np.arange(len(ABLATION_ROWS))

    fig = Figure(figsize=(11, 4.4), layout="constrained")
    for panel_index, modality in enumerate(("audio", "video")):
        ax = fig.add_subplot(1, 2, panel_index + 1)
        paper_ax = ax.twinx()
        rows = [ours_by_row.get(row, {}) for row in ABLATION_ROWS]
        ours_values = [row.get(modality, np.nan) for row in rows]
        errors = [row.get(f"{modality}_std", 0.0) for row in rows]
        paper_values = [paper[row][modality] for row in ABLATION_ROWS]

        ours_bars = ax.bar(positions - BAR_WIDTH / 2, ours_values, BAR_WIDTH, yerr=errors, capsize=3, color="C0",
                           label=f"ours: fine-tuned {metric} (left axis)")
        handles = [ours_bars]
        probes = [row.get(f"{modality}_probe", np.nan) for row in rows]
        if not np.all(np.isnan(probes)):
            handles += ax.plot(positions - BAR_WIDTH / 2, probes, "D", color="C1", markersize=5,
                               label=f"ours: linear probe {metric}")
        if 0 in ours_by_row:
            handles.append(ax.axhline(ours_by_row[0][modality], color="C3", linestyle="--", linewidth=1.2,
                                      label=f"ours: no pre-training, fine-tuned ({ours_by_row[0][modality]:.1f})"))
        paper_bars = paper_ax.bar(positions + BAR_WIDTH / 2, paper_values, BAR_WIDTH, color="lightgrey",
                                  edgecolor="grey", hatch="//", label=f"{PAPER_LABEL}, right axis")
        ax.bar_label(ours_bars, fmt="%.1f", padding=2, fontsize=8)
        paper_ax.bar_label(paper_bars, fmt="%.1f", padding=2, fontsize=8, color="dimgrey")
        ax.set_xticks(positions, [SHORT_ROW_NAMES[row] for row in ABLATION_ROWS])
        ax.set_xlabel("ablation row")
        ax.set_ylabel(f"ours: {modality} {metric} (%)")
        paper_ax.set_ylabel(f"paper: {modality} AS-20K mAP (%)", color="dimgrey")
        ax.set_title(f"{modality.capitalize()}")
        # Headroom above the tallest bar for the value labels and the legend.
        ax.set_ylim(0, max(np.nanmax([*ours_values, *probes, 0.0]), 1.0) * 1.5)
        paper_ax.set_ylim(0, max(paper_values) * 1.5)
        ax.legend(handles=handles + [paper_bars], loc="upper left", fontsize=7)
    fig.suptitle("MAViL ablation: each row should improve on the one to its left, and all on no pre-training")
    return fig


def plot_ablation_diagnostics(histories: dict[str, dict[str, list[float]]], diagnostics: dict[str, dict],
                              batch_size: int) -> Figure:
    """Did each run learn? Three panels against their chance levels.

    Args:
        histories: {run: {term: value per step}} as `run_ablation` returns them (``inter``, ``inter_top1``, ...).
        diagnostics: {run: `ablation.diagnose` result} for the runs to show in the retrieval panel.
        batch_size: the pre-training batch: InfoNCE's chance is ln(batch), its top-1 accuracy's 1 / batch.

    Returns:
        Figure with three Axes: the inter-modal InfoNCE over training, its top-1 accuracy, and A->V / V->A R@1
        on the test clips per run (runs without inter-modal contrast are the control).
    """
    fig = Figure(figsize=(13, 3.8), layout="constrained")
    loss_ax, top1_ax, retrieval_ax = fig.subplots(1, 3)
    contrastive = {run: h for run, h in histories.items() if "inter" in h}
    for index, (run, history) in enumerate(contrastive.items()):
        loss_ax.plot(history["inter"], color=f"C{index}", linewidth=1.0, label=run)
        if "inter_top1" in history:
            top1_ax.plot(100 * np.asarray(history["inter_top1"]), color=f"C{index}", linewidth=1.0, label=run)
    loss_ax.axhline(np.log(batch_size), color="black", linestyle="--", linewidth=1, label=f"chance: ln {batch_size}")
    top1_ax.axhline(100 / batch_size, color="black", linestyle="--", linewidth=1, label=f"chance: 1/{batch_size}")
    loss_ax.set(title="Inter-modal InfoNCE (training batches)", xlabel="optimisation step", ylabel="InfoNCE")
    top1_ax.set(title="Its top-1 accuracy: a clip's audio finds its video", xlabel="optimisation step",
                ylabel="top-1 (%)")
    runs = [run for run, d in diagnostics.items() if "retrieval" in d]
    if runs:
        positions = np.arange(len(runs))
        for offset, direction, colour in ((-0.2, "a2v", "C0"), (0.2, "v2a", "C2")):
            values = [100 * diagnostics[run]["retrieval"][direction]["R@1"] for run in runs]
            retrieval_ax.bar(positions + offset, values, 0.4, color=colour, label=direction.replace("2", " -> ").upper())
        chance = 100 * diagnostics[runs[0]]["retrieval"]["chance"]["R@1"]
        retrieval_ax.axhline(chance, color="black", linestyle="--", linewidth=1, label=f"chance ({chance:.1f}%)")
        retrieval_ax.axhline(10 * chance, color="grey", linestyle=":", linewidth=1, label="10 x chance")
        retrieval_ax.set_xticks(positions, runs, rotation=30, ha="right", fontsize=8)
    retrieval_ax.set(title="Retrieval among the test clips", ylabel="R@1 (%)")
    for ax in (loss_ax, top1_ax, retrieval_ax):
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    return fig


def plot_scaling(study: dict) -> Figure:
    """Three panels against pre-training compute (log x): the fine-tuned gain over no pre-training, A->V R@1 and the
    A->V median rank, each against its chance level.

    Args:
        study: what `mavil_lite.experiments.scaling.scaling_study` returns (one line per row and measure).

    Returns:
        Figure with three Axes. Rows without inter-modal contrast are the retrieval control. R@1 among N clips moves
        in steps of 1/N, so the median rank shows the trend where R@1 is still a few hits.
    """
    if not study["rows"]:
        raise ValueError("no budgets to plot")
    chance = 100 * study["chance_r1"]
    fig = Figure(figsize=(15, 4.0), layout="constrained")
    gain_ax, r1_ax, rank_ax = fig.subplots(1, 3)
    for index, (row, budgets) in enumerate(study["rows"].items()):
        flops = np.array([b["flops"] for b in budgets])
        label = f"row {row} ({budgets[0]['run']})"
        for modality, style in (("audio", "o-"), ("video", "s--")):
            gain_ax.plot(flops, [b[f"{modality}_gain"] for b in budgets], style, color=f"C{index}",
                         label=f"{label}: {modality}")
        r1_ax.plot(flops, [100 * b["retrieval"]["a2v"]["R@1"] for b in budgets], "o-", color=f"C{index}", label=label)
        rank_ax.plot(flops, [b["retrieval"]["a2v"]["median_rank"] for b in budgets], "o-", color=f"C{index}",
                     label=label)
    gain_ax.axhline(0, color="C3", linestyle="--", linewidth=1.2, label="no pre-training (row 0)")
    gain_ax.set(title="Fine-tuned gain over no pre-training", ylabel="gain (points)")
    r1_ax.axhline(chance, color="black", linestyle="--", linewidth=1, label=f"chance ({chance:.1f}%)")
    r1_ax.axhline(10 * chance, color="grey", linestyle=":", linewidth=1, label=f"10 x chance ({10 * chance:.1f}%)")
    r1_ax.set(title="A -> V R@1 among the test clips", ylabel="R@1 (%)")
    first = next(iter(study["rows"].values()))[0]["retrieval"]["chance"]
    rank_ax.axhline(first["median_rank"], color="black", linestyle="--", linewidth=1,
                    label=f"chance ({first['median_rank']:.1f} of {first['num_pairs']})")
    rank_ax.set(title="A -> V median rank of the true video (lower is better)", ylabel="median rank")
    for ax in (gain_ax, r1_ax, rank_ax):
        ax.set_xscale("log")
        ax.set_xlabel("pre-training compute (training FLOPs)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("Pre-training at growing budgets: reconstruction alone (row 2) and with both contrasts (row 4)")
    return fig


def _as_runs_of_terms(histories: dict) -> dict[str, dict[str, list[float]]]:
    """Normalise {run: losses} and {run: {term: losses}} to the second form, with the term '' for plain lists."""
    if not isinstance(histories, dict) or not histories:
        raise ValueError("histories must be a non-empty dict of run name -> losses or {term: losses}")
    runs: dict[str, dict[str, list[float]]] = {}
    for run, history in histories.items():
        terms = history if isinstance(history, dict) else {"": history}
        for term, losses in terms.items():
            if isinstance(losses, (str, bytes)) or not hasattr(losses, "__len__"):
                raise ValueError(f"losses of run {run!r} term {term!r} must be a sequence of numbers")
        runs[str(run)] = {str(term): [float(loss) for loss in losses] for term, losses in terms.items()
                          if not str(term).endswith("_top1")}  # contrastive accuracies are not losses
    return runs


# (line style, marker) per loss term: every term of a run gets its own, so six terms stay six distinct curves.
TERM_STYLES = [("-", ""), ("--", ""), (":", ""), ("-.", ""), ("-", "o"), ("--", "s"), (":", "^"), ("-.", "D"),
               ("-", "v"), ("--", "x"), (":", "P"), ("-.", "*")]
# The kit's terms (`MAViL.forward`) keep one style in every figure; other names take the free styles in order.
KNOWN_TERM_STYLES = {"": 0, "loss": 0, "recon_audio": 1, "recon_video": 2, "inter": 3, "intra_audio": 4,
                     "intra_video": 5}
MARKERS_PER_CURVE = 8  # markers are drawn at about this many points of a curve, so dense curves stay lines


def term_styles(term_names) -> dict[str, tuple[str, str]]:
    """``{term: (line style, marker)}``: the kit's terms by `KNOWN_TERM_STYLES`, the others (sorted) in the styles
    left free, so no two terms share one unless there are more than ``len(TERM_STYLES)``."""
    names = sorted(set(term_names))
    taken = {KNOWN_TERM_STYLES[name] for name in names if name in KNOWN_TERM_STYLES}
    free = [i for i in range(len(TERM_STYLES)) if i not in taken] or list(range(len(TERM_STYLES)))
    styles, next_free = {}, 0
    for name in names:
        if name in KNOWN_TERM_STYLES:
            styles[name] = TERM_STYLES[KNOWN_TERM_STYLES[name]]
        else:
            styles[name] = TERM_STYLES[free[next_free % len(free)]]
            next_free += 1
    return styles


def plot_loss_curves(histories: dict[str, list[float]] | dict[str, dict[str, list[float]]],
                     reference_lines: dict[str, float] | None = None) -> Figure:
    """One line per run, or per (run, loss term) when a run maps to a dict of terms.

    Args:
        histories: {run name: [loss per optimisation step]} or {run name: {term name: [loss per step]}}.
            Colour identifies the run, line style and marker the term (`term_styles`).
        reference_lines: {legend label: loss value} drawn as horizontal dashed grey lines, e.g. InfoNCE's chance
            level ``{"chance: ln 8 = 2.08": np.log(8)}``.

    Returns:
        Figure with one Axes; the y axis is logarithmic when all losses (and reference values) are positive and
        span more than a factor of `LOG_SCALE_MIN_RANGE`.
    """
    runs = _as_runs_of_terms(histories)
    references = {str(label): float(value) for label, value in (reference_lines or {}).items()}
    all_losses = np.array([loss for terms in runs.values() for losses in terms.values() for loss in losses])
    finite_losses = all_losses[np.isfinite(all_losses)]
    if finite_losses.size == 0:
        raise ValueError("histories contain no finite loss values")

    fig = Figure(figsize=(7, 4.2), layout="constrained")
    ax = fig.subplots()
    styles = term_styles(term for terms in runs.values() for term in terms)
    for run_index, (run, terms) in enumerate(runs.items()):
        colour = f"C{run_index % 10}"
        for term, losses in terms.items():
            linestyle, marker = styles[term]
            label = f"{run}: {term}" if term else run
            ax.plot(np.arange(len(losses)), losses, linestyle=linestyle, marker=marker or None, color=colour,
                    label=label, linewidth=1.2, markersize=4, markevery=max(1, len(losses) // MARKERS_PER_CURVE))
    for label, value in references.items():
        # longer dashes than the terms' "--", so the reference never reads as a curve
        ax.axhline(value, color="grey", linestyle=(0, (8, 4)), linewidth=1.3, label=label, zorder=1)

    values = np.concatenate([finite_losses, [v for v in references.values() if np.isfinite(v)]])
    use_log = values.min() > 0 and values.max() / values.min() > LOG_SCALE_MIN_RANGE
    if use_log:
        ax.set_yscale("log")
    ax.set_xlabel("optimisation step")
    ax.set_ylabel("loss (log scale)" if use_log else "loss")
    ax.set_title("Pre-training loss")
    ax.grid(True, alpha=0.3)
    # Long legends (many runs x terms) go outside so they do not hide the curves.
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    return fig


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Save `fig` as a PNG at 120 dpi, creating parent folders; returns the path written."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"save_figure writes PNG files; give a path ending in .png, got {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=FIGURE_DPI, format="png")
    return path


def plot_paper_vs_ours(record: dict) -> Figure:
    """The numbers a reproduction measured (`mavil_lite.experiments.results` record): the paper's bar beside ours."""
    measured = [e for e in record["entries"] if e["ours"] is not None]
    if not measured:
        raise ValueError(f"{record['table']}: no measured numbers to plot")
    several_rows = len({e["row"] for e in measured}) > 1
    label = lambda e: f"{e['benchmark']} {e['modality']}" + (f"\nrow {e['row']}" if several_rows else "")
    bars = {"paper": {label(e): e["paper"] for e in measured},
            "ours (mean over seeds)": {label(e): e["ours"]["mean"] for e in measured}}
    metrics = "/".join(sorted({e["metric"] for e in measured}))
    return plot_metric_bars(bars, ylabel=f"{metrics} (%)", title=f"{record['title']}: paper vs ours (status: "
                            f"{', '.join(sorted({e['status'] for e in measured}))})")
