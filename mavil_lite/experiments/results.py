"""Reproduced numbers beside the paper's: one record per table, written as Markdown, LaTeX and JSON.

Every reproduction notebook ends the same way: a list of *entries*, one per number of the paper's table
(``table``, ``row``, ``benchmark``, ``modality`` as in the packaged `resources/paper_numbers.csv`), each holding the paper's
value and, where we ran it, ours over several seeds together with what produced it: the dataset actually
used, the scale, the wall time, the commit and a hash of the configuration. `write_tables` validates the
record against `RESULTS_SCHEMA` (`resources/results_schema.json`) and writes ``table.md``, ``table.tex`` and ``results.json``.

The status column says how far a difference can be read:

- ``scaled-down``: another dataset or a smaller scale than the paper's, so Δ is not comparable;
- ``within noise``: the paper's setting, and the paper's value is within 2 std of our seeds;
- ``below`` / ``above``: the paper's setting, and outside that band;
- ``1 seed``: the paper's setting, but one seed has no spread to say whether a difference is noise;
- ``paper only``: a comparison row of the paper that this kit does not run.
"""
from __future__ import annotations

import functools
import hashlib
import json
import statistics
import subprocess
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

import jsonschema

from .paper_numbers import load_paper_numbers

SCHEMA_VERSION = "mavil-lite/results/v1"
STATUSES = ("scaled-down", "within noise", "below", "above", "1 seed", "paper only")
NOISE_STDS = 2.0
METRIC_NAMES = {"accuracy": "acc"}  # the probe's names -> the paper's

# the JSON Schema of results.json ships inside the package, beside the paper's numbers
RESULTS_SCHEMA = json.loads(resources.files("mavil_lite").joinpath("resources", "results_schema.json").read_text())


def summarize(values: Iterable[float]) -> dict:
    """``{'mean', 'std', 'values'}`` of one number over seeds (std is the sample std, 0 for one seed)."""
    values = [float(v) for v in values]
    if not values:
        raise ValueError("no values to summarize: every measured number needs at least one seed")
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"mean": statistics.fmean(values), "std": std, "values": values}


def status_of(paper: float | None, ours: dict | None, comparable: bool) -> str:
    """The status column (module docstring): only a run at the paper's setting is compared with it."""
    if ours is None:
        return "paper only"
    if not comparable or paper is None:
        return "scaled-down"
    if len(ours["values"]) < 2:
        return "1 seed"
    if abs(ours["mean"] - paper) <= NOISE_STDS * ours["std"]:
        return "within noise"
    return "below" if ours["mean"] < paper else "above"


CODE_PATHS = ("mavil_lite", "reproduce/*.ipynb", "pyproject.toml")


def git_commit(repo: str | Path | None = None) -> str:
    """The checked-out commit, with ``-dirty`` when the code (`CODE_PATHS`, not results or docs) differs from
    it; 'unknown' outside git."""
    repo = Path(repo or Path(__file__).resolve().parents[1])
    try:
        run = lambda *args: subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True).stdout
        commit = run("rev-parse", "--short=12", "HEAD").strip()
        changed = run("status", "--porcelain", "--untracked-files=no", "--", *CODE_PATHS).strip()
        return commit + ("-dirty" if changed else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


@functools.cache
def run_commit() -> str:
    """`git_commit` when this process records its first number, then the same for every later one: git runs on
    demand, not when the package is imported (every DataLoader worker imports it)."""
    return git_commit()


def config_hash(config: Any) -> str:
    """A short, stable hash of a configuration (dataclasses as dicts, keys sorted)."""
    text = json.dumps(config, sort_keys=True, default=lambda o: getattr(o, "__dict__", str(o)))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def measured(values: Iterable[float], *, dataset: str, scale: dict, wall_s: float, config: Any, comparable: bool = False,
             metric: str | None = None, commit: str | None = None) -> dict:
    """Our side of one entry: the values over seeds and everything that produced them.

    ``metric`` is what we measured when it differs from the paper's (a multi-label stand-in gives mAP where
    the paper reports accuracy); the table shows it beside our number.
    """
    return {"ours": summarize(values), "dataset": dataset, "scale": scale, "wall_s": float(wall_s),
            "commit": commit or run_commit(), "config_hash": config_hash(config), "comparable": comparable,
            "ours_metric": METRIC_NAMES.get(metric, metric)}


def table_entries(table: str, ours: dict[tuple[int, str, str], dict]) -> list[dict]:
    """Every number of the paper's ``table``, with ours filled in where ``ours`` has it.

    ``ours`` maps ``(row, benchmark, modality)`` (as in the csv) to the dicts `measured` returns.
    """
    known = {(p["row"], p["benchmark"], p["modality"]) for p in load_paper_numbers(table)}
    unknown = sorted(set(ours) - known)
    if unknown:
        raise KeyError(f"no number of the paper's {table!r} table is keyed {unknown}; keys are (row, benchmark, modality)")
    entries = []
    for paper in load_paper_numbers(table):
        key = (paper["row"], paper["benchmark"], paper["modality"])
        entry = {"row": paper["row"], "method": paper["method"], "pretrain_data": paper["pretrain_data"],
                 "benchmark": paper["benchmark"], "modality": paper["modality"], "metric": paper["metric"],
                 "paper": paper["value"], "ours": None, "delta": None}
        mine = dict(ours.get(key, {}))
        comparable = mine.pop("comparable", False)
        entry.update(mine)
        if entry["ours"] is not None:
            entry["delta"] = entry["ours"]["mean"] - paper["value"]
        entry["status"] = status_of(paper["value"], entry["ours"], comparable)
        entries.append(entry)
    return entries


def _ours_text(entry: dict, digits: int = 1) -> str:
    ours = entry["ours"]
    if ours is None:
        return "-"
    text = f"{ours['mean']:.{digits}f}"
    if len(ours["values"]) > 1:
        text += f" ± {ours['std']:.{digits}f}"
    if entry.get("ours_metric") not in (None, entry["metric"]):
        text += f" ({entry['ours_metric']})"
    return text


def _rows(record: dict) -> list[list[str]]:
    """The table's cells: one line per number, in the paper's order."""
    return [[str(e["row"]), e["method"], e["benchmark"], e["modality"], e["metric"], f"{e['paper']:.1f}",
             _ours_text(e), "-" if e["delta"] is None else f"{e['delta']:+.1f}", e["status"], e.get("dataset", "")]
            for e in record["entries"]]


HEADER = ["#", "Method", "Benchmark", "Mod.", "Metric", "Paper", "Ours", "Δ", "Status", "Data actually used"]


def to_markdown(record: dict) -> str:
    """The record as Markdown: the table, then the notes (scale, seeds, provenance)."""
    lines = [f"## {record['title']}", "", "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in _rows(record)]
    lines += ["", f"Seeds: {', '.join(map(str, record['seeds']))}. Ours is mean ± std over seeds.", ""]
    lines += [f"- {note}" for note in record["notes"]]
    return "\n".join(lines) + "\n"


def _latex_escape(text: str) -> str:
    for char, escaped in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#"),
                          ("±", r"$\pm$"), ("Δ", r"$\Delta$"), ("->", r"$\rightarrow$")):
        text = text.replace(char, escaped)
    return text


def to_latex(record: dict) -> str:
    """The record as a booktabs LaTeX table (``\\usepackage{booktabs}``), notes as its caption."""
    columns = HEADER[:-1]  # the data column is long; the caption says what was used
    lines = [r"\begin{table}[t]", r"\centering", r"\small", r"\begin{tabular}{rlllrrrrl}", r"\toprule",
             " & ".join(_latex_escape(c) for c in columns) + r" \\", r"\midrule"]
    lines += [" & ".join(_latex_escape(cell) for cell in row[:-1]) + r" \\" for row in _rows(record)]
    datasets = sorted({e["dataset"] for e in record["entries"] if e.get("dataset")})
    caption = f"{record['title']}. Data: {'; '.join(datasets) or 'none run'}. " + " ".join(record["notes"])
    lines += [r"\bottomrule", r"\end{tabular}", rf"\caption{{{_latex_escape(caption)}}}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def write_tables(out_dir: str | Path, table: str, title: str, entries: list[dict], seeds: list[int],
                 notes: list[str], sections: Iterable[str] = (), **extra: Any) -> dict:
    """Validate the record and write ``table.md``, ``table.tex`` and ``results.json``; returns the record.

    ``sections``: further Markdown (a table's own detail, e.g. the ablation's per-row scores and diagnostics),
    appended to ``table.md``; ``extra`` entries go into the record (``ablation`` is validated, see the schema)."""
    record = {"schema": SCHEMA_VERSION, "table": table, "title": title, "seeds": [int(s) for s in seeds],
              "entries": entries, "notes": list(notes), **extra}
    record = json.loads(json.dumps(record, default=str))  # numpy / torch scalars and paths -> JSON types
    jsonschema.validate(record, RESULTS_SCHEMA)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "table.md").write_text("\n".join([to_markdown(record), *sections]))
    (out_dir / "table.tex").write_text(to_latex(record))
    (out_dir / "results.json").write_text(json.dumps(record, indent=2) + "\n")
    return record
