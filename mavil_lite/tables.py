"""Our ablation numbers beside the paper's, as a Markdown table and a JSON record.

The paper's ablation (AS-20K fine-tuning mAP after AS-2M pre-training, ViT-B) climbs row by row:
A-MAE/V-MAE -> joint AV-MAE -> + inter-modal contrast -> + intra-modal contrast -> + stage-2 student-teacher.
mavil-lite reruns the five rows at a scale a laptop can afford, so absolute values are not comparable; what
can be compared is the ordering: whether each row improves on the one above. This module reads the paper's
numbers from `assets/paper_numbers.csv` (never hard-coded), lays both side by side and computes the ordering.

A result row is `{'row': 1..5, 'method': str, 'audio': float, 'video': float, 'metric': 'mAP' | 'accuracy',
'wall_s': float}` with audio/video in percent (0-100).
"""

from __future__ import annotations

import csv
import json
import math
import numbers
from pathlib import Path

PAPER_NUMBERS_CSV = Path(__file__).resolve().parents[1] / "assets" / "paper_numbers.csv"

ABLATION_ROWS = (1, 2, 3, 4, 5)
MODALITY_COLUMNS = {"A": "audio", "V": "video"}
RESULT_KEYS = ("row", "method", "audio", "video", "metric", "wall_s")


def load_paper_numbers(table: str | None = None) -> list[dict]:
    """Rows of `paper_numbers.csv`, optionally only those of one table.

    Args:
        table: 'ablation', 'av_classification', 'audio_only', 'retrieval', or None for all.

    Returns:
        list of dicts with the csv's columns; 'row' as int and 'value' as float (percent).
    """
    if not PAPER_NUMBERS_CSV.is_file():
        raise FileNotFoundError(f"paper numbers not found at {PAPER_NUMBERS_CSV}")
    with PAPER_NUMBERS_CSV.open(newline="") as csv_file:
        records = [
            {**record, "row": int(record["row"]), "value": float(record["value"])}
            for record in csv.DictReader(csv_file)
        ]
    if table is None:
        return records
    selected = [record for record in records if record["table"] == table]
    if not selected:
        known = sorted({record["table"] for record in records})
        raise ValueError(f"unknown table {table!r}; the csv has {known}")
    return selected


def paper_ablation() -> dict[int, dict]:
    """The paper's ablation as {row: {'method': str, 'audio': mAP %, 'video': mAP %}}, read from the csv."""
    ablation: dict[int, dict] = {}
    for record in load_paper_numbers("ablation"):
        entry = ablation.setdefault(record["row"], {"method": record["method"]})
        entry[MODALITY_COLUMNS[record["modality"]]] = record["value"]
    return ablation


def _validated_by_row(results: list[dict]) -> dict[int, dict]:
    """Index results by row, checking keys, row numbers and that scores are percentages."""
    by_row: dict[int, dict] = {}
    for result in results:
        missing = [key for key in RESULT_KEYS if key not in result]
        if missing:
            raise ValueError(f"result {result!r} lacks keys {missing}")
        row = result["row"]
        if row not in ABLATION_ROWS:
            raise ValueError(f"row must be one of {ABLATION_ROWS}, got {row!r}")
        if row in by_row:
            raise ValueError(f"row {row} appears twice")
        for modality in MODALITY_COLUMNS.values():
            score = result[modality]
            is_number = isinstance(score, numbers.Real) and not isinstance(score, bool)
            if not (is_number and math.isfinite(score) and 0.0 <= score <= 100.0):
                raise ValueError(f"row {row} {modality} must be a percentage in [0, 100], got {score!r}")
        # Plain floats so numpy / torch scalars neither break the JSON nor get written as strings.
        by_row[row] = {
            **result,
            "row": int(row),
            "audio": float(result["audio"]),
            "video": float(result["video"]),
            "wall_s": float(result["wall_s"]),
        }
    return by_row


def _improvements(by_row: dict[int, dict], key: str) -> list[bool | None]:
    """For rows 2..5: did `key` go up strictly from the row above? None where either row is missing."""
    return [
        by_row[row][key] > by_row[row - 1][key] if row in by_row and row - 1 in by_row else None
        for row in ABLATION_ROWS[1:]
    ]


def row_ordering(results: list[dict], key: str) -> list[bool]:
    """Whether each of rows 2..5 improved (strictly) on the row above in `key` ('audio' or 'video').

    This is the finding the README reports: the paper's claim is that all four are True in both modalities.

    Raises:
        ValueError: if `key` is not a modality column or any of rows 1..5 is missing.
    """
    if key not in MODALITY_COLUMNS.values():
        raise ValueError(f"key must be 'audio' or 'video', got {key!r}")
    by_row = _validated_by_row(results)
    missing = [row for row in ABLATION_ROWS if row not in by_row]
    if missing:
        raise ValueError(f"row ordering needs all rows {ABLATION_ROWS}; missing {missing}")
    return [bool(improved) for improved in _improvements(by_row, key)]


def format_seconds(seconds: float) -> str:
    """Human-readable duration: '42.0 s', '3 min 05 s', '1 h 02 min'."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _ordering_sentence(improvements: list[bool | None], per_row: bool = True) -> str:
    """'3/4 improved (row 2 vs 1: improved; ...)' for the improvements of rows 2..5."""
    counted = [improved for improved in improvements if improved is not None]
    summary = f"{sum(counted)}/{len(counted)} improved"
    if not per_row:
        return summary
    words = {True: "improved", False: "did not improve", None: "n/a (row missing)"}
    parts = [f"row {row} vs {row - 1}: {words[improved]}" for row, improved in zip(ABLATION_ROWS[1:], improvements)]
    return f"{summary} ({'; '.join(parts)})"


def ablation_markdown(results: list[dict], scale: dict) -> str:
    """The ablation table in Markdown: paper and ours side by side, the run's scale, and the row ordering.

    Args:
        results: list of result rows (see module docstring); missing rows are shown as '-'.
        scale: what our numbers come from, e.g. {'data': ..., 'clips': ..., 'epochs': ..., 'model': ...,
            'device': ..., 'total wall time': ...}; every key/value is listed.

    Returns:
        Markdown text ending with a newline.
    """
    by_row = _validated_by_row(results)
    paper = paper_ablation()
    metrics = sorted({result["metric"] for result in by_row.values()}) or ["-"]
    lines = [
        "## MAViL ablation: the paper's numbers and ours",
        "",
        "| # | Method | Audio: paper | Audio: ours | Video: paper | Video: ours | Pre-train wall time |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in ABLATION_ROWS:
        ours = by_row.get(row)
        # A '|' inside a cell would split it into two columns.
        method = str(ours["method"] if ours else paper[row]["method"]).replace("|", "\\|")
        audio_ours = f"{ours['audio']:.1f}" if ours else "-"
        video_ours = f"{ours['video']:.1f}" if ours else "-"
        wall_time = format_seconds(ours["wall_s"]) if ours else "-"
        lines.append(
            f"| {row} | {method} | {paper[row]['audio']:.1f} | {audio_ours} "
            f"| {paper[row]['video']:.1f} | {video_ours} | {wall_time} |"
        )

    lines += ["", "**Scale of our run**", ""]
    lines += [f"- {key}: {value}" for key, value in scale.items()] or ["- (not given)"]
    lines += [
        "",
        "**Note.** The paper's numbers are AudioSet-20K fine-tuning mAP (%) of ViT-B encoders pre-trained on "
        "AudioSet-2M. Ours are linear-probe " + "/".join(metrics) + " (%) of the scaled-down run described above. "
        "The absolute values and the size of each row's gain are therefore not comparable; only the direction "
        "of each step is.",
        "",
        "**Does each row improve on the row above?**",
        "",
    ]
    paper_by_row = {row: {"row": row, **values} for row, values in paper.items()}
    for modality in MODALITY_COLUMNS.values():
        ours_sentence = _ordering_sentence(_improvements(by_row, modality))
        paper_sentence = _ordering_sentence(_improvements(paper_by_row, modality), per_row=False)
        lines.append(f"- {modality.capitalize()}: ours {ours_sentence}. Paper: {paper_sentence}.")
    return "\n".join(lines) + "\n"


def write_results(out_dir: str | Path, results: list[dict], scale: dict) -> dict:
    """Write `table.md` and `results.json` under `out_dir` and return the JSON content.

    The JSON is {'table': 'ablation', 'scale': scale, 'rows': results sorted by row, each with
    'paper_audio', 'paper_video' (AS-20K mAP %) and 'paper_method' added}, plus 'ordering' ({'audio': [...],
    'video': [...]} for rows 2..5) when all five rows are present. Values that JSON cannot hold (paths,
    devices) are stored as strings, and the returned dict is what a reader of the file gets back.
    """
    by_row = _validated_by_row(results)
    paper = paper_ablation()
    rows = [
        {
            **by_row[row],
            "paper_method": paper[row]["method"],
            "paper_audio": paper[row]["audio"],
            "paper_video": paper[row]["video"],
        }
        for row in sorted(by_row)
    ]
    record: dict = {"table": "ablation", "scale": scale, "rows": rows}
    if len(by_row) == len(ABLATION_ROWS):
        record["ordering"] = {modality: row_ordering(results, modality) for modality in MODALITY_COLUMNS.values()}

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "table.md").write_text(ablation_markdown(results, scale))
    json_text = json.dumps(record, indent=2, default=str)
    (out_dir / "results.json").write_text(json_text + "\n")
    return json.loads(json_text)
