"""The ablation's verdicts and Markdown tables, computed from the numbers a run produced (never written in advance).

`run_ablation` returns, per seed, the rows 0-5 (fine-tuned and probe scores) and each run's diagnostics;
`ablation.mean_rows` folds the seeds into mean and std. This module turns those into what a reader checks:

- `compare`: is one row's score above another's beyond the noise of the seeds (more than ``NOISE_STDS`` times
  the larger of the two rows' seed std)? With one seed there is no noise estimate, and the verdict says so.
- `ordering_verdicts`: the paper's claim, row by row (1 < 2 < 3 < 4 < 5), per modality, as measured.
- `scores_markdown` and `diagnostics_markdown`: the two tables of ``table.md`` after the paper-vs-ours table.
"""
from __future__ import annotations

import statistics

from .results import NOISE_STDS

ROW_NAMES = {0: "no pre-training (random init)", 1: "A-MAE / V-MAE", 2: "joint AV-MAE", 3: "+ inter-modal contrast",
             4: "+ intra- and inter-modal contrast", 5: "stage 2: + student-teacher"}


def compare(higher: list[float], lower: list[float]) -> tuple[str, float]:
    """Whether the mean of ``higher`` beats the mean of ``lower`` beyond noise: ``(verdict, difference)``.

    The verdict is ``"above beyond noise"`` / ``"below beyond noise"`` when the difference of the means exceeds
    ``NOISE_STDS`` x the larger sample std of the two, ``"within noise"`` otherwise, and ``"above (1 seed)"`` /
    ``"not above (1 seed)"`` when either side has a single value.
    """
    difference = statistics.fmean(higher) - statistics.fmean(lower)
    if min(len(higher), len(lower)) < 2:
        return ("above (1 seed)" if difference > 0 else "not above (1 seed)"), difference
    noise = NOISE_STDS * max(statistics.stdev(higher), statistics.stdev(lower))
    if difference > noise:
        return "above beyond noise", difference
    if difference < -noise:
        return "below beyond noise", difference
    return "within noise", difference


def _by_row(rows: list[dict]) -> dict[int, dict]:
    return {row["row"]: row for row in rows}


def floor_verdicts(rows: list[dict], key: str) -> dict[int, tuple[str, float]]:
    """Each pre-trained row (1-5) against row 0, no pre-training, on ``key`` (``audio``, ``video``, ``*_probe``)."""
    by_row = _by_row(rows)
    return {row: compare(by_row[row][f"{key}_values"], by_row[0][f"{key}_values"]) for row in range(1, 6)}


def ordering_verdicts(rows: list[dict], key: str) -> dict[int, tuple[str, float]]:
    """The paper's ordering step by step: row r against row r - 1, for r = 2..5, on ``key``."""
    by_row = _by_row(rows)
    return {row: compare(by_row[row][f"{key}_values"], by_row[row - 1][f"{key}_values"]) for row in range(2, 6)}


def ordering_sentence(rows: list[dict], key: str) -> str:
    """One line: how many of the paper's four steps went up (in the mean), how many of those beyond noise, and each
    step's verdict with its difference."""
    verdicts = ordering_verdicts(rows, key)
    held = sum(difference > 0 for _, difference in verdicts.values())
    beyond = sum(verdict == "above beyond noise" for verdict, _ in verdicts.values())
    steps = "; ".join(f"{row} vs {row - 1}: {diff:+.1f} ({verdict})" for row, (verdict, diff) in verdicts.items())
    return f"{held}/4 steps up, {beyond}/4 beyond noise ({steps})"


def _cell(row: dict, key: str) -> str:
    if len(row[f"{key}_values"]) < 2:
        return f"{row[key]:.1f}"
    return f"{row[key]:.1f} ± {row[f'{key}_std']:.1f}"


def scores_markdown(rows: list[dict], seeds: list[int]) -> str:
    """Rows 0-5: fine-tuned (the paper's protocol) and linear-probe scores per modality, and each fine-tuned score
    against row 0."""
    metric = rows[0]["metric"]
    verdicts = {key: floor_verdicts(rows, key) for key in ("audio", "video")}
    lines = [f"### Every row fine-tuned and probed ({metric}, mean ± std over seeds {list(seeds)})", "",
             "| # | Method | Audio fine-tuned | Audio probe | Video fine-tuned | Video probe | fine-tuned vs row 0 (A / V) |",
             "|---|---|---|---|---|---|---|"]
    for row in rows:
        against = "(the floor)" if row["row"] == 0 else " / ".join(
            f"{verdicts[key][row['row']][1]:+.1f} {verdicts[key][row['row']][0]}" for key in ("audio", "video"))
        lines.append(f"| {row['row']} | {ROW_NAMES[row['row']]} | {_cell(row, 'audio')} | {_cell(row, 'audio_probe')} "
                     f"| {_cell(row, 'video')} | {_cell(row, 'video_probe')} | {against} |")
    return "\n".join(lines) + "\n"


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.fmean(values) if values else None


def _fmt(value: float | None, scale: float = 1.0, digits: int = 2) -> str:
    return "-" if value is None else f"{scale * value:.{digits}f}"


def diagnostics_markdown(diagnostics_by_seed: dict[int, dict[str, dict]]) -> str:
    """Per run, averaged over seeds: reconstruction against the mean predictor, InfoNCE and its top-1 accuracy
    against chance, A->V / V->A retrieval against chance, the label-level P@5, and stage 2's student-teacher gap."""
    runs = list(next(iter(diagnostics_by_seed.values())))
    lines = ["### Did each run learn? Diagnostics on the test clips (mean over seeds)", "",
             "| run | recon. MSE / mean predictor (A; V) | inter InfoNCE first -> last (chance) | inter top-1 last "
             "(chance) | A->V R@1 % (chance) | A->V median rank (chance) | V->A R@1 % | A->V label P@5 (chance) "
             "| student-teacher MSE / teacher variance (A; V) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for run in runs:
        def get(*path):
            values = []
            for diagnostics in diagnostics_by_seed.values():
                value = diagnostics[run]
                for key in path:
                    value = value.get(key) if isinstance(value, dict) else None
                values.append(value)
            return _mean(values)

        recon = "; ".join(f"{_fmt(get('reconstruction', m, 'model'))} / {_fmt(get('reconstruction', m, 'mean_predictor'))}"
                          for m in ("audio", "video") if get("reconstruction", m, "model") is not None) or "-"
        inter = "-" if get("contrast", "inter", "first") is None else (
            f"{_fmt(get('contrast', 'inter', 'first'))} -> {_fmt(get('contrast', 'inter', 'last'))} "
            f"({_fmt(get('contrast', 'inter', 'chance'))})")
        top1 = "-" if get("contrast", "inter", "top1_last") is None else (
            f"{_fmt(get('contrast', 'inter', 'top1_last'), 100, 1)}% ({_fmt(get('contrast', 'inter', 'top1_chance'), 100, 1)}%)")
        retrieval = get("retrieval", "a2v", "R@1") is not None
        a2v = f"{_fmt(get('retrieval', 'a2v', 'R@1'), 100, 1)} ({_fmt(get('retrieval', 'chance', 'R@1'), 100, 1)})" \
            if retrieval else "-"
        rank = f"{_fmt(get('retrieval', 'a2v', 'median_rank'), 1, 0)} ({_fmt(get('retrieval', 'chance', 'median_rank'), 1, 1)})" \
            if retrieval else "-"
        v2a = _fmt(get("retrieval", "v2a", "R@1"), 100, 1) if retrieval else "-"
        label = f"{_fmt(get('retrieval', 'a2v', 'label', 'P@5'), 100, 1)}% ({_fmt(get('retrieval', 'a2v', 'label', 'chance'), 100, 1)}%)" \
            if retrieval else "-"
        gap = "; ".join(f"{_fmt(get('student_teacher', m, 'mse'), 1, 3)} / {_fmt(get('student_teacher', m, 'teacher_variance'), 1, 3)}"
                        for m in ("audio", "video") if get("student_teacher", m, "mse") is not None) or "-"
        lines.append(f"| {run} | {recon} | {inter} | {top1} | {a2v} | {rank} | {v2a} | {label} | {gap} |")
    return "\n".join(lines) + "\n"
