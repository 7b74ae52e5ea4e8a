"""Figures for the teaching notebooks: what the model's inputs, masks, outputs and features look like.

Every function returns a `matplotlib.figure.Figure` built without pyplot (as in `mavil_lite.teach.plots`): no global
figure state, no backend chosen, so a notebook cell shows the returned figure exactly once and a headless
run, GitHub's renderer and a PDF export all keep it. Inputs are numpy arrays or CPU tensors in the kit's
layouts:

- a spectrogram ``fbank`` is ``(T, F)``: fbank frames (10 ms apart) by mel bins; drawn with time in
  seconds across and the mel bin up;
- ``frames`` are ``(T, H, W, 3)`` uint8 RGB (`mavil_lite.data.media.tensor_to_frames` turns model tensors back
  into these), drawn left to right with their frame index and timestamp in seconds;
- masks are input-shaped, 1 where hidden (`mavil_lite.model.masking.mask_to_pixels`), drawn as grey.
"""
from __future__ import annotations

import textwrap
from typing import Sequence

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

FRAME_SHIFT_S = 0.01  # the Kaldi fbank's 10 ms hop
MASK_GREY = 200  # hidden video pixels are drawn in this grey (0-255)
MAX_ANNOTATED_TOKENS = 130  # beyond this many cells, token numbers would be unreadable


def _np(x) -> np.ndarray:
    """A numpy copy of an array or (CPU, detached) tensor."""
    return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)


def _spectrogram(ax, fbank, frame_shift_s: float, title: str, mask=None, vmin=None, vmax=None, cmap: str = "magma"):
    """Draw a (T, F) spectrogram on ``ax`` (hidden cells grey); returns the image for a colour bar."""
    fbank = _np(fbank)
    num_frames, num_bins = fbank.shape
    data = fbank.T  # (F, T): frequency up, time across
    if mask is not None:
        data = np.ma.masked_where(_np(mask).T > 0.5, data)
    colours = matplotlib.colormaps[cmap].with_extremes(bad="0.8")
    image = ax.imshow(data, origin="lower", aspect="auto", interpolation="nearest", cmap=colours, vmin=vmin,
                      vmax=vmax, extent=(0, num_frames * frame_shift_s, 0, num_bins))
    ax.set_xlabel("time (s)")
    ax.set_ylabel("mel bin")
    ax.set_title(title, fontsize=10)
    return image


def _masked_frames(frames, mask=None) -> np.ndarray:
    """(T, H, W, 3) uint8 with hidden pixels (mask (T, H, W) = 1) painted grey."""
    frames = _np(frames).astype(np.float32)
    if mask is not None:
        hidden = _np(mask).astype(np.float32)[..., None]  # (T, H, W, 1)
        frames = frames * (1 - hidden) + MASK_GREY * hidden
    return frames.clip(0, 255).astype(np.uint8)


def _frame(ax, image, index: int, time_s: float | None, title: str | None = None, first: bool = False):
    """One frame with its index and time; pixel axes labelled on the first frame of a row only."""
    ax.imshow(image, interpolation="nearest")
    ax.set_title(title if title is not None else f"frame {index}", fontsize=9)
    ax.set_xlabel(f"t = {time_s:.2f} s" if time_s is not None else "", fontsize=8)
    if first:
        ax.set_ylabel("y (px)", fontsize=8)
        ax.tick_params(labelsize=7)
    else:
        ax.set_yticks([])
    ax.set_xticks([])


# ------------------------------------------------------------------------------------------ inputs
def plot_audio_features(waveform, sample_rate: int, fbank, normalized, frame_shift_s: float = FRAME_SHIFT_S,
                        title: str = "One clip's audio, from samples to model input") -> Figure:
    """Waveform ``(samples,)`` or ``(1, samples)``, the Kaldi log-mel fbank ``(T, F)`` and its normalised form.

    Three panels on one time axis in seconds, so the fbank's 10 ms frames line up with the samples.
    """
    waveform = _np(waveform).reshape(-1)
    fig = Figure(figsize=(10, 7.5), layout="constrained")
    axes = fig.subplots(3, 1)
    times = np.arange(len(waveform)) / sample_rate
    axes[0].plot(times, waveform, linewidth=0.4, color="C0")
    axes[0].set_xlim(0, max(times[-1], _np(fbank).shape[0] * frame_shift_s))
    axes[0].set_xlabel("time (s)")
    axes[0].set_ylabel("amplitude")
    axes[0].set_title(f"waveform: {len(waveform)} samples at {sample_rate / 1000:g} kHz, mono, DC removed", fontsize=10)
    image = _spectrogram(axes[1], fbank, frame_shift_s, "Kaldi log-mel fbank (25 ms window, 10 ms hop)")
    fig.colorbar(image, ax=axes[1], label="log mel energy")
    axes[1].set_xlim(axes[0].get_xlim())
    image = _spectrogram(axes[2], normalized, frame_shift_s, "normalised: (fbank - mean) / (2 std): the model input",
                         cmap="viridis")
    fig.colorbar(image, ax=axes[2], label="normalised value")
    axes[2].set_xlim(axes[0].get_xlim())
    fig.suptitle(title)
    return fig


def plot_normalization(raw_values, normalized_values, dataset_stats: tuple[float, float],
                       reference_stats: tuple[float, float], reference_name: str = "AudioSet") -> Figure:
    """Histograms of fbank values before and after normalisation, with the statistics marked.

    raw_values / normalized_values: any shape (flattened). dataset_stats, reference_stats: (mean, std).
    """
    raw, normed = _np(raw_values).reshape(-1), _np(normalized_values).reshape(-1)
    fig = Figure(figsize=(11, 3.8), layout="constrained")
    left, right = fig.subplots(1, 2)
    left.hist(raw, bins=80, color="0.6")
    for (mean, std), name, style in ((dataset_stats, "this data", "-"), (reference_stats, reference_name, ":")):
        left.axvline(mean, color="C3", linestyle=style, label=f"{name}: mean {mean:.2f}, std {std:.2f}")
        left.axvspan(mean - std, mean + std, color="C3", alpha=0.08 if style == "-" else 0.0)
    left.set_xlabel("log mel energy")
    left.set_ylabel("count (fbank cells)")
    left.set_title("raw fbank values (shaded: this data's mean ± std)", fontsize=10)
    left.legend(fontsize=8)
    right.hist(normed, bins=80, color="C0")
    for x in (-0.5, 0.0, 0.5):
        right.axvline(x, color="k", linestyle="--" if x else "-", linewidth=0.8)
    right.set_xlabel("normalised value ((x - mean) / (2 std))")
    right.set_ylabel("count (fbank cells)")
    right.set_title("model input: one std of the reference statistics is ±0.5", fontsize=10)
    fig.suptitle("Fbank normalisation statistics")
    return fig


def plot_frame_rows(rows: Sequence[tuple[str, object, object]], times_s: Sequence[float] | None = None,
                    title: str | None = None, fig: Figure | None = None) -> Figure:
    """Rows of video frames: ``rows`` is a list of (row title, frames ``(T, H, W, 3)`` uint8, mask or None).

    Each frame is titled with its index and labelled with its time in seconds; hidden pixels are grey.
    """
    num_frames = _np(rows[0][1]).shape[0]
    if fig is None:
        fig = Figure(figsize=(1.9 * num_frames + 0.8, 2.1 * len(rows) + 0.5), layout="constrained")
    axes = np.asarray(fig.subplots(len(rows), num_frames, squeeze=False))
    for r, (row_title, frames, mask) in enumerate(rows):
        images = _masked_frames(frames, mask)
        for i in range(num_frames):
            _frame(axes[r, i], images[i], i, None if times_s is None else times_s[i], first=(i == 0))
        axes[r, 0].set_ylabel(f"{row_title}\ny (px)", fontsize=9)
    if title:
        fig.suptitle(title)
    return fig


def plot_spectrograms(rows: Sequence[tuple[str, object, object]], frame_shift_s: float = FRAME_SHIFT_S,
                      title: str | None = None, fig: Figure | None = None, shared_scale: bool = True) -> Figure:
    """Stacked spectrograms: ``rows`` is a list of (panel title, fbank ``(T, F)``, mask ``(T, F)`` or None).

    With ``shared_scale`` every panel uses the first one's colour range, so a reconstruction is compared
    with the original on the same scale.
    """
    if fig is None:
        fig = Figure(figsize=(8, 2.2 * len(rows) + 0.5), layout="constrained")
    axes = np.asarray(fig.subplots(len(rows), 1, squeeze=False))[:, 0]
    first = _np(rows[0][1])
    vmin, vmax = (np.percentile(first, 1), np.percentile(first, 99.5)) if shared_scale else (None, None)
    for ax, (panel_title, fbank, mask) in zip(axes, rows):
        image = _spectrogram(ax, fbank, frame_shift_s, panel_title, mask, vmin, vmax, cmap="viridis")
        if not shared_scale:  # each panel on its own scale needs its own colour bar
            fig.colorbar(image, ax=ax, label="value")
    if shared_scale:
        fig.colorbar(image, ax=list(axes), label="normalised log mel", shrink=0.8)
    if title:
        fig.suptitle(title)
    return fig


def plot_audio_video(audio_rows, video_rows, times_s=None, frame_shift_s: float = FRAME_SHIFT_S,
                     title: str | None = None, shared_scale: bool = True) -> Figure:
    """Spectrogram rows (left) beside video frame rows (right) in one figure; rows as in
    :func:`plot_spectrograms` and :func:`plot_frame_rows` (the same number of each reads best)."""
    num_frames = _np(video_rows[0][1]).shape[0]
    height = 2.0 * max(len(audio_rows), len(video_rows)) + 0.6
    fig = Figure(figsize=(6 + 1.7 * num_frames, height), layout="constrained")
    left, right = fig.subfigures(1, 2, width_ratios=[6, 1.7 * num_frames])
    plot_spectrograms(audio_rows, frame_shift_s, "audio", fig=left, shared_scale=shared_scale)
    plot_frame_rows(video_rows, times_s, "video", fig=right)
    if title:
        fig.suptitle(title)
    return fig


def plot_patch_grid(fbank, patch_size: Sequence[int], frame_shift_s: float = FRAME_SHIFT_S,
                    title: str | None = None) -> Figure:
    """A spectrogram cut into its patches, each numbered in the encoder's token order (time-major)."""
    fbank = _np(fbank)
    (num_frames, num_bins), (p, q) = fbank.shape, patch_size
    grid_t, grid_f = num_frames // p, num_bins // q
    fig = Figure(figsize=(min(16, 3 + 0.3 * grid_t), 4), layout="constrained")
    ax = fig.subplots()
    _spectrogram(ax, fbank, frame_shift_s, title or "", cmap="viridis")
    for i in range(grid_t + 1):
        ax.axvline(i * p * frame_shift_s, color="w", linewidth=0.6)
    for j in range(grid_f + 1):
        ax.axhline(j * q, color="w", linewidth=0.6)
    if grid_t * grid_f <= MAX_ANNOTATED_TOKENS:
        for i in range(grid_t):
            for j in range(grid_f):
                ax.text((i + 0.5) * p * frame_shift_s, (j + 0.5) * q, str(i * grid_f + j), color="w",
                        ha="center", va="center", fontsize=6)
    ax.set_title(title or f"{grid_t} x {grid_f} = {grid_t * grid_f} patches of {p} frames x {q} mel bins "
                          f"({p * frame_shift_s * 1000:.0f} ms each); numbers = token order", fontsize=10)
    return fig


def plot_tubelet_grid(frames, tubelet_size: Sequence[int], times_s=None, title: str | None = None) -> Figure:
    """Frames cut into tubelets: a tubelet spans ``tubelet_size[0]`` consecutive frames (same border colour)
    and a ``h x w`` pixel square; tokens are numbered on the first frame of each slice (time-major order)."""
    frames = _np(frames)
    (num_frames, height, width), (pt, ph, pw) = frames.shape[:3], tubelet_size
    grid = (num_frames // pt, height // ph, width // pw)
    fig = Figure(figsize=(1.9 * num_frames + 0.8, 2.6), layout="constrained")
    axes = fig.subplots(1, num_frames)
    for i, ax in enumerate(np.atleast_1d(axes)):
        _frame(ax, frames[i], i, None if times_s is None else times_s[i], first=(i == 0))
        slice_index = i // pt
        for k in range(1, grid[1]):
            ax.axhline(k * ph - 0.5, color="w", linewidth=0.6)
        for k in range(1, grid[2]):
            ax.axvline(k * pw - 0.5, color="w", linewidth=0.6)
        ax.add_patch(Rectangle((-0.5, -0.5), width, height, fill=False, linewidth=4, edgecolor=f"C{slice_index}"))
        ax.set_title(f"frame {i} (slice {slice_index})", fontsize=9)
        if i % pt == 0 and np.prod(grid[1:]) <= MAX_ANNOTATED_TOKENS:
            for r in range(grid[1]):
                for c in range(grid[2]):
                    index = slice_index * grid[1] * grid[2] + r * grid[2] + c
                    ax.text((c + 0.5) * pw, (r + 0.5) * ph, str(index), color="w", ha="center", va="center",
                            fontsize=6)
    fig.suptitle(title or f"{grid[0]} x {grid[1]} x {grid[2]} = {int(np.prod(grid))} tubelets of {pt} frames x "
                          f"{ph} x {pw} px (border colour = temporal slice)", fontsize=10)
    return fig


# ------------------------------------------------------------------------------------------ curves, bars
def plot_lines(x, series: dict[str, Sequence[float]], xlabel: str, ylabel: str, title: str,
               vline: float | None = None, right_series: dict[str, Sequence[float]] | None = None,
               right_ylabel: str | None = None) -> Figure:
    """Line plot of several named series over a shared ``x`` (markers at the measured points).

    ``right_series`` (each as long as ``x``) are drawn dashed on a second y axis labelled ``right_ylabel``, for a
    quantity in other units; their colours continue after the left series', and one legend names both sides.
    """
    fig = Figure(figsize=(7, 4), layout="constrained")
    ax = fig.subplots()
    for i, (name, values) in enumerate(series.items()):
        ax.plot(_np(x), _np(values), "o-", color=f"C{i % 10}", label=name, markersize=4)
    if vline is not None:
        ax.axvline(vline, color="k", linestyle="--", linewidth=0.8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=11)
    ax.grid(True, alpha=0.3)
    if not right_series:
        ax.legend(fontsize=8)
        return fig
    right = ax.twinx()
    for i, (name, values) in enumerate(right_series.items(), start=len(series)):
        right.plot(_np(x), _np(values), "s--", color=f"C{i % 10}", label=name, markersize=4)
    right.set_ylabel(right_ylabel or "")
    handles = ax.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
    # Below the axes: inside, it would hide lines of one axis or the other (each axis only avoids its own lines).
    fig.legend(handles=handles, loc="outside lower center", ncols=min(3, len(handles)), fontsize=8)
    return fig


BAR_LABEL_WRAP = 15  # characters per tick-label line under a group of bars
TICK_CHAR_WIDTH_IN = 0.085  # width of one character at the tick font size (10 pt), with some slack


def _wrap_label(label: str, width: int = BAR_LABEL_WRAP) -> str:
    """``label`` broken into lines of at most ``width`` characters at spaces (a longer word stays whole);
    line breaks already in it are kept."""
    return "\n".join(textwrap.fill(line, width, break_long_words=False) for line in label.splitlines())


def plot_metric_bars(results: dict[str, dict[str, float]], ylabel: str, title: str) -> Figure:
    """Grouped bars: ``results[run][metric]``, one group per metric, one bar per run, values printed.

    Long metric names are wrapped under their group, and each group is made at least as wide as its longest
    label line, so neighbouring tick labels never print over each other.
    """
    runs = list(results)
    metrics = list(dict.fromkeys(m for r in results.values() for m in r))
    tick_labels = [_wrap_label(str(m)) for m in metrics]
    longest_line = max((len(line) for label in tick_labels for line in label.splitlines()), default=0)
    # wide enough for the bars, and for each group's longest label line plus the y axis labels (about 1.2 in)
    fig_width = max(6, 1.6 * len(metrics) * max(1, len(runs) / 2),
                    (TICK_CHAR_WIDTH_IN * longest_line + 0.25) * len(metrics) + 1.2)
    positions = np.arange(len(metrics))
    width = 0.8 / len(runs)
    fig = Figure(figsize=(fig_width, 4), layout="constrained")
    ax = fig.subplots()
    top = 0.0
    for i, run in enumerate(runs):
        values = [results[run].get(m, np.nan) for m in metrics]
        bars = ax.bar(positions + (i - (len(runs) - 1) / 2) * width, values, width, label=run, color=f"C{i}")
        ax.bar_label(bars, fmt="%.1f", fontsize=7, padding=1)
        top = max(top, np.nanmax([*values, 0.0]))
    ax.set_xticks(positions, tick_labels)
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, top * 1.25 + 1e-9)
    ax.set_title(title, fontsize=11)
    ax.legend(fontsize=8)
    return fig


# ------------------------------------------------------------------------------------------ contrast
MATRIX_AXES_IN = 3.3  # about how tall a heat map of `plot_similarity` is drawn, for sizing its class names
CLASS_NAME_PT = 8  # largest font for the class names beside a sorted matrix


def label_order(labels: Sequence) -> np.ndarray:
    """``(N,)`` indices that sort ``labels`` (one per clip); equal labels keep their order (a stable sort)."""
    return np.array(sorted(range(len(labels)), key=lambda i: labels[i]), dtype=np.int64)


def _class_blocks(sorted_labels: Sequence) -> list[tuple[object, int, int]]:
    """Runs of equal labels in a sorted sequence: ``(label, start, stop)`` per class block."""
    blocks, start = [], 0
    for k in range(1, len(sorted_labels) + 1):
        if k == len(sorted_labels) or sorted_labels[k] != sorted_labels[start]:
            blocks.append((sorted_labels[start], start, k))
            start = k
    return blocks


def _draw_class_blocks(ax, blocks: list[tuple[object, int, int]], size: int) -> None:
    """Lines between the class blocks of a sorted ``(size, size)`` heat map, and the class names at the blocks'
    centres; a name that would print over the previous one is left out."""
    for _, start, _ in blocks[1:]:
        # under the diagonal outline (patches draw at zorder 1), which would otherwise lose its edges to these
        ax.axhline(start - 0.5, color="w", linewidth=1.0, zorder=0.5)
        ax.axvline(start - 0.5, color="w", linewidth=1.0, zorder=0.5)
    points_per_row = MATRIX_AXES_IN * 72 / size
    all_centres = [(start + stop - 1) / 2 for _, start, stop in blocks]
    # the font fits the typical distance between two names; the few closer ones are thinned out below
    spacing_pt = np.median(np.diff(all_centres)) * points_per_row if len(blocks) > 1 else CLASS_NAME_PT
    fontsize = float(np.clip(0.8 * spacing_pt, 5, CLASS_NAME_PT))
    min_gap = 1.2 * fontsize / points_per_row  # rows between the centres of two names that do not touch
    centres, names, last = [], [], -np.inf
    for (label, _, _), centre in zip(blocks, all_centres):
        if centre - last >= min_gap:
            centres.append(centre)
            names.append(str(label))
            last = centre
    ax.set_xticks(centres, names, rotation=90, fontsize=fontsize)
    ax.set_yticks(centres, names, fontsize=fontsize)
    ax.tick_params(length=0)


def plot_similarity(matrices: dict[str, object], xlabel: str, ylabel: str, value_label: str,
                    title: str | None = None, highlight_diagonal: bool = True,
                    labels: Sequence | None = None) -> Figure:
    """Side-by-side heat maps of ``(N, N)`` matrices (e.g. audio-to-video similarity before and after
    training); the diagonal (each clip with itself) is outlined.

    ``labels`` (``N`` class labels, one per clip, shared by all matrices) orders rows and columns by class (a
    stable sort) and draws the class boundaries in white, with the class names at the blocks' centres: clips of
    a class that embed alike make a bright block on the diagonal. Rows and columns move together, so each clip
    still meets itself on the diagonal.
    """
    fig = Figure(figsize=(4.6 * len(matrices), 4.2 if labels is None else 4.7), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(matrices)))
    for ax, (name, matrix) in zip(axes, matrices.items()):
        matrix = _np(matrix)
        if labels is not None:
            if matrix.ndim != 2 or matrix.shape != (len(labels), len(labels)):
                raise ValueError(f"labels sort a square matrix, one label per row: {len(labels)} labels, "
                                 f"matrix {matrix.shape}")
            order = label_order(labels)
            matrix = matrix[np.ix_(order, order)]
        if matrix.min() < 0:  # signed (cosines): white at 0, so red means similar and blue dissimilar
            limit = float(np.abs(matrix).max())
            image = ax.imshow(matrix, cmap="coolwarm", vmin=-limit, vmax=limit, interpolation="nearest")
        else:
            image = ax.imshow(matrix, cmap="viridis", interpolation="nearest")
        if highlight_diagonal:
            for k in range(min(matrix.shape)):
                ax.add_patch(Rectangle((k - 0.5, k - 0.5), 1, 1, fill=False, edgecolor="k", linewidth=0.8))
        if labels is not None:
            _draw_class_blocks(ax, _class_blocks([labels[i] for i in order]), len(matrix))
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(name, fontsize=10)
        fig.colorbar(image, ax=ax, label=value_label, shrink=0.85)
    if title:
        fig.suptitle(title)
    return fig


# ------------------------------------------------------------------------------------------ features
def pca_colours(features, num_components: int = 3) -> np.ndarray:
    """``(N, D)`` features -> ``(N, 3)`` RGB in [0, 1]: the top 3 principal components, each stretched
    between its 2nd and 98th percentile. Tokens with similar features get similar colours."""
    features = _np(features).astype(np.float64)
    centred = features - features.mean(axis=0, keepdims=True)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    projected = centred @ vt[:num_components].T  # (N, 3)
    low, high = np.percentile(projected, 2, axis=0), np.percentile(projected, 98, axis=0)
    return np.clip((projected - low) / np.maximum(high - low, 1e-12), 0, 1)


def plot_token_pca(fbank, audio_features, audio_grid: Sequence[int], frames, video_features,
                   video_grid: Sequence[int], times_s=None, frame_shift_s: float = FRAME_SHIFT_S,
                   title: str = "Token features, PCA to RGB") -> Figure:
    """Per-token features painted over the inputs they came from.

    audio_features ``(Na, D)`` over ``audio_grid = (t, f)``; video_features ``(Nv, D)`` over
    ``video_grid = (t, h, w)``; both modalities share one PCA, so a colour means the same direction in
    feature space in the spectrogram and in the frames.
    """
    colours = pca_colours(np.concatenate([_np(audio_features), _np(video_features)]))
    n_audio = _np(audio_features).shape[0]
    audio_rgb = colours[:n_audio].reshape(*audio_grid, 3)  # (t, f, 3)
    video_rgb = colours[n_audio:].reshape(*video_grid, 3)  # (t, h, w, 3)
    frames = _np(frames)
    num_frames = frames.shape[0]
    frames_per_slice = num_frames // video_grid[0]
    fig = Figure(figsize=(max(10, 1.9 * num_frames), 8), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[1, 1])
    ax_spec, ax_pca = top.subplots(1, 2)
    _spectrogram(ax_spec, fbank, frame_shift_s, "spectrogram (model input)", cmap="viridis")
    duration = _np(fbank).shape[0] * frame_shift_s
    ax_pca.imshow(audio_rgb.transpose(1, 0, 2), origin="lower", aspect="auto", interpolation="nearest",
                  extent=(0, duration, 0, _np(fbank).shape[1]))
    ax_pca.set_xlabel("time (s)")
    ax_pca.set_ylabel("mel bin")
    ax_pca.set_title(f"audio tokens ({audio_grid[0]} x {audio_grid[1]}), PCA colours", fontsize=10)
    axes = np.asarray(bottom.subplots(2, num_frames, squeeze=False))
    for i in range(num_frames):
        time_s = None if times_s is None else times_s[i]
        _frame(axes[0, i], frames[i], i, time_s, first=(i == 0))
        _frame(axes[1, i], video_rgb[i // frames_per_slice], i, time_s, title=f"slice {i // frames_per_slice}",
               first=(i == 0))
        axes[1, i].set_ylabel("tubelet row" if i == 0 else "", fontsize=8)
    axes[0, 0].set_ylabel("frames\ny (px)", fontsize=9)
    bottom.suptitle(f"video tubelets ({' x '.join(map(str, video_grid))}), PCA colours below their frames",
                    fontsize=10)
    fig.suptitle(title)
    return fig


# ------------------------------------------------------------------------------------------ retrieval
def plot_ranked_list(query_fbank, query_title: str, results: Sequence[dict], frame_shift_s: float = FRAME_SHIFT_S,
                     title: str = "Audio-to-video retrieval") -> Figure:
    """A query clip's spectrogram above the clips ranked for it, best first.

    results: one dict per retrieved clip with 'frame' ``(H, W, 3)`` uint8 (e.g. its middle frame), 'caption'
    (rank, score, labels) and 'match' (True for the query's own video: outlined in green).
    """
    fig = Figure(figsize=(max(8, 2.0 * len(results)), 5.6), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[1, 1.15])
    _spectrogram(top.subplots(), query_fbank, frame_shift_s, query_title, cmap="viridis")
    axes = np.atleast_1d(bottom.subplots(1, len(results)))
    for k, (ax, result) in enumerate(zip(axes, results)):
        ax.imshow(result["frame"], interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel(result["caption"], fontsize=7)
        ax.set_title(f"rank {k + 1}", fontsize=9, color="green" if result.get("match") else "black")
        if result.get("match"):
            frame_h, frame_w = result["frame"].shape[:2]
            ax.add_patch(Rectangle((-0.5, -0.5), frame_w, frame_h, fill=False, edgecolor="limegreen", linewidth=4))
    bottom.suptitle("retrieved videos (middle frame), most similar first; green = the query's own video",
                    fontsize=10)
    fig.suptitle(title)
    return fig
