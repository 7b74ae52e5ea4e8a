"""Reproduced numbers beside the paper's: status, provenance, schema, and the three files written."""
import json

import jsonschema
import pytest

from mavil_lite.experiments.results import (
    RESULTS_SCHEMA,
    config_hash,
    git_commit,
    measured,
    status_of,
    summarize,
    table_entries,
    write_tables,
)

SCALE = {"preset": "smoke", "model": "tiny", "parameters_m": 5.2, "epochs": 1, "clips_seen": 32, "devices": 1}


def test_summary_and_status_follow_the_two_std_rule():
    ours = summarize([40.0, 42.0])
    assert ours["mean"] == 41.0 and ours["std"] == pytest.approx(1.41421356)
    assert status_of(41.8, ours, comparable=False) == "scaled-down"
    assert status_of(43.8, ours, comparable=True) == "within noise"  # |41 - 43.8| = 2.8 <= 2 * 1.414
    assert status_of(44.0, ours, comparable=True) == "below"
    assert status_of(37.0, ours, comparable=True) == "above"
    assert status_of(41.0, None, comparable=True) == "paper only"
    with pytest.raises(ValueError, match="at least one seed"):
        summarize([])


def test_one_seed_is_never_within_noise():
    """One value has no spread to compare against: the status says so, whatever the difference."""
    one = summarize([41.0])
    assert one["std"] == 0.0
    assert [status_of(paper, one, comparable=True) for paper in (41.0, 41.5, 30.0)] == ["1 seed"] * 3
    assert status_of(41.0, one, comparable=False) == "scaled-down"  # another setting stays another setting
    entry = {"row": 1, "method": "m", "benchmark": "b", "modality": "A", "metric": "acc", "paper": 41.5,
             "ours": one, "delta": -0.5, "status": "1 seed", "dataset": "d", "scale": SCALE, "wall_s": 1.0,
             "commit": "c", "config_hash": "0123456789ab"}
    jsonschema.validate({"schema": "mavil-lite/results/v1", "table": "ablation", "title": "t", "seeds": [0],
                         "notes": [], "entries": [entry]}, RESULTS_SCHEMA)


def test_importing_the_module_runs_no_git():
    """git runs when a number is first recorded, not on import (every DataLoader worker imports the package)."""
    import subprocess
    import sys

    probe = ("import subprocess\n"
             "calls = []\n"
             "real_run = subprocess.run\n"
             "subprocess.run = lambda command, *a, **k: calls.append(command[0]) or real_run(command, *a, **k)\n"
             "import mavil_lite.experiments.results as results\n"
             "print(calls.count('git'))\n"
             "results.measured([1.0], dataset='d', scale={}, wall_s=0.0, config={})\n"
             "print(calls.count('git'))\n")
    printed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    assert printed[0] == "0" and int(printed[1]) >= 1  # git runs once the first number is recorded


def test_config_hash_is_stable_and_sensitive():
    assert config_hash({"a": 1, "b": [1, 2]}) == config_hash({"b": [1, 2], "a": 1})
    assert config_hash({"a": 1}) != config_hash({"a": 2}) and len(config_hash({})) == 12
    assert git_commit() != ""


def test_entries_carry_the_paper_value_ours_and_provenance(tmp_path):
    ours = {(4, "SPC-1", "A"): measured([61.0, 63.0], dataset="FSDD for Speech Commands v1", scale=SCALE,
                                        wall_s=12.0, config={"preset": "smoke"}, commit="abc123")}
    entries = table_entries("audio_only", ours)
    assert len(entries) == 10  # every number of the paper's table
    mine = next(e for e in entries if e["ours"] is not None)
    assert (mine["row"], mine["benchmark"], mine["paper"]) == (4, "SPC-1", 97.3)
    assert mine["delta"] == pytest.approx(62.0 - 97.3) and mine["status"] == "scaled-down"
    assert mine["dataset"] == "FSDD for Speech Commands v1" and mine["commit"] == "abc123"
    assert sum(e["status"] == "paper only" for e in entries) == 9

    record = write_tables(tmp_path, "audio_only", "Audio-only tasks", entries, seeds=[0, 1], notes=["smoke scale"])
    assert json.loads((tmp_path / "results.json").read_text()) == record
    table = (tmp_path / "table.md").read_text()
    line = next(l for l in table.splitlines() if "| 4 | MAViL | SPC-1 |" in l)
    assert "| 97.3 | 62.0 ± 1.4 | -35.3 | scaled-down | FSDD" in line
    tex = (tmp_path / "table.tex").read_text()
    assert r"\begin{tabular}" in tex and r"62.0 $\pm$ 1.4" in tex and "Speech Commands" in tex

    with pytest.raises(KeyError, match="no number"):
        table_entries("audio_only", {(9, "SPC-1", "A"): ours[(4, "SPC-1", "A")]})


def test_schema_rejects_a_measured_number_without_its_provenance():
    entry = {"row": 1, "method": "m", "benchmark": "b", "modality": "A", "metric": "acc", "paper": 1.0,
             "ours": summarize([1.0]), "delta": 0.0, "status": "scaled-down"}
    record = {"schema": "mavil-lite/results/v1", "table": "ablation", "title": "t", "seeds": [0], "notes": [],
              "entries": [entry]}
    with pytest.raises(jsonschema.ValidationError, match="dataset"):
        jsonschema.validate(record, RESULTS_SCHEMA)
    entry.update(dataset="d", scale=SCALE, wall_s=1.0, commit="c", config_hash="0123456789ab")
    jsonschema.validate(record, RESULTS_SCHEMA)
    entry["status"] = "better"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(record, RESULTS_SCHEMA)


def test_the_committed_reproductions_validate_and_have_two_seeds():
    from pathlib import Path

    committed = sorted((Path(__file__).resolve().parents[1] / "reproduce" / "results").glob("*/*/results.json"))
    assert len(committed) >= 3
    for path in committed:
        record = json.loads(path.read_text())
        jsonschema.validate(record, RESULTS_SCHEMA)
        assert len(record["seeds"]) >= 2, path
        assert all(len(e["ours"]["values"]) == len(record["seeds"]) for e in record["entries"] if e["ours"]), path
