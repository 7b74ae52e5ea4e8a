"""The reproduction notebooks run headless at the smoke scale, write valid results and reuse pre-training.

`pretrain.ipynb` trains the chain once; the table notebooks, pointed at it with `pretrained_dir`, must load
those checkpoints (untouched) instead of training again, and write a table with every number of the paper's.
"""
import json
import re
from pathlib import Path

import jsonschema
import nbformat
import papermill
import pytest

from mavil_lite.experiments.paper_numbers import load_paper_numbers
from mavil_lite.experiments.results import RESULTS_SCHEMA

REPO = Path(__file__).resolve().parents[1]
TABLES = {"table_audio_only": "audio_only", "table_retrieval": "retrieval", "table_av_classification": "av_classification"}
SHARED_PARAMETERS = {"preset", "data", "manifests", "label_column", "out_dir", "seeds", "resume", "device", "num_workers"}


def execute(name: str, out: Path, **parameters) -> nbformat.NotebookNode:
    executed = out / f"{name}.ipynb"
    papermill.execute_notebook(str(REPO / "reproduce" / f"{name}.ipynb"), str(executed), cwd=str(REPO),
                               progress_bar=False, execution_timeout=300,
                               parameters={"preset": "smoke", "out_dir": str(out), "num_workers": 0, **parameters})
    nb = nbformat.read(executed, as_version=4)
    assert nb.metadata["papermill"]["exception"] is not True
    return nb


def check_table(out: Path, table: str, measured_at_least: int) -> dict:
    """Every number of the paper's table is a row of table.md; ours are numbers; results.json is valid."""
    record = json.loads((out / "results.json").read_text())
    jsonschema.validate(record, RESULTS_SCHEMA)
    assert record["table"] == table and len(record["entries"]) == len(load_paper_numbers(table))
    paper_table = (out / "table.md").read_text().split("\n### ")[0]  # a table's own sections follow the paper's
    lines = [line for line in paper_table.splitlines() if re.match(r"^\| \d+ \|", line)]
    assert len(lines) == len(record["entries"])
    measured = 0
    for line, entry in zip(lines, record["entries"]):
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert float(cells[5]) == entry["paper"]
        if entry["status"] != "paper only":
            measured += 1
            ours = float(re.match(r"-?[\d.]+", cells[6]).group())
            assert 0.0 <= ours <= 100.0 and ours == pytest.approx(entry["ours"]["mean"], abs=0.05)
            assert entry["status"] == "scaled-down" and entry["dataset"] and entry["commit"]
    assert measured >= measured_at_least
    assert (out / "table.tex").read_text().count(r"\\") >= len(lines)
    return record


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    out = tmp_path_factory.mktemp("pretrain")
    nb = execute("pretrain", out)
    checkpoints = sorted(out.glob("seed0/checkpoints/*.pt"))
    assert [p.stem for p in checkpoints] == ["av_inter_intra", "stage2_iter1"]
    printed = "\n".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    assert "torchrun --nnodes=1 --nproc_per_node=8" in printed and "--teacher" in printed
    return out, {p: p.stat().st_mtime_ns for p in checkpoints}


def test_notebooks_take_the_shared_parameters():
    for name in ["pretrain", "table_ablation", *TABLES]:
        nb = nbformat.read(REPO / "reproduce" / f"{name}.ipynb", as_version=4)
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, name
        assert SHARED_PARAMETERS <= set(re.findall(r"^(\w+) =", tagged[0].source, flags=re.M)), name


@pytest.mark.parametrize("name", sorted(TABLES))
def test_table_notebook_reuses_the_pretrained_chain_and_writes_its_table(name, pretrained, tmp_path):
    pretrained_dir, mtimes = pretrained
    execute(name, tmp_path, pretrained_dir=str(pretrained_dir), seeds=[0])
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes  # loaded, not trained again
    assert not list(tmp_path.glob("seed*"))  # and nothing was pre-trained into this notebook's own folder
    measured = {"table_audio_only": 2, "table_retrieval": 2, "table_av_classification": 9}[name]
    check_table(tmp_path, TABLES[name], measured)
    assert list(tmp_path.glob("*.png"))


def test_ablation_runs_every_row_for_two_seeds_and_shows_its_figures(tmp_path):
    nb = execute("table_ablation", tmp_path, seeds=[0, 1])
    record = check_table(tmp_path, "ablation", measured_at_least=10)
    assert all(len(e["ours"]["values"]) == 2 for e in record["entries"])
    paper_table, scores, diagnostics = (tmp_path / "table.md").read_text().split("\n### ")
    assert all("±" in line for line in paper_table.splitlines() if re.match(r"^\| \d", line))
    assert "smoke" in record["entries"][0]["scale"]["preset"] and "synthetic" in record["entries"][0]["dataset"]
    assert any(note.startswith("Audio: ours") for note in record["notes"])
    # rows 0-5, each fine-tuned (the main score, the paper table's "ours") and probed, with std over the 2 seeds
    rows = record["ablation"]["rows"]
    assert [row["row"] for row in rows] == [0, 1, 2, 3, 4, 5]
    by_entry = {(e["row"], e["modality"]): e["ours"]["mean"] for e in record["entries"] if e["ours"]}
    for row in rows[1:]:
        assert row["audio"] == pytest.approx(by_entry[(row["row"], "A")]) and len(row["audio_values"]) == 2
        assert row["video"] == pytest.approx(by_entry[(row["row"], "V")])
        assert all(0 <= row[key] <= 100 for key in ("audio_probe", "video_probe"))
    table_rows = [line for line in scores.splitlines() if re.match(r"^\| \d \|", line)]
    assert len(table_rows) == 6 and "(the floor)" in table_rows[0] and "fine-tuned" in scores and "probe" in scores
    # every run's diagnostics, for both seeds: reconstruction against the mean predictor, contrast, retrieval
    for seed in ("0", "1"):
        runs = record["ablation"]["diagnostics"][seed]
        assert set(runs) == {"random_init", "a_mae", "v_mae", "av_mae", "av_inter", "av_inter_intra", "stage2_iter1"}
        assert runs["a_mae"]["reconstruction"]["audio"]["mean_predictor"] > 0
        assert runs["av_inter"]["contrast"]["inter"]["chance"] == pytest.approx(2.7726, abs=1e-3)  # ln 16
        assert runs["av_inter"]["retrieval"]["chance"]["R@1"] == pytest.approx(1 / 8)  # 8 smoke test clips
        assert "student_teacher" in runs["stage2_iter1"] and "retrieval" not in runs["a_mae"]
    assert len([line for line in diagnostics.splitlines() if line.startswith("| ") and "---" not in line]) == 8
    assert (tmp_path / "ablation.png").stat().st_size > 5000 and (tmp_path / "loss_curves.png").exists()
    assert (tmp_path / "diagnostics.png").stat().st_size > 5000
    for cell in (c for c in nb.cells if "figure" in c.metadata.get("tags", [])):
        assert any("image/png" in o.get("data", {}) for o in cell.get("outputs", [])), cell.source


def test_scaling_study_measures_each_budget_and_fits_its_trend(tmp_path):
    execute("scaling", tmp_path, budget_multiples=[1, 2])
    record = json.loads((tmp_path / "scaling.json").read_text())
    assert record["epochs"] == [1, 2] and record["commit"]
    assert set(record["study"]["rows"]) == {"2", "4"}  # JSON keys
    for row, (small, large) in record["study"]["rows"].items():
        assert small["run"] == large["run"] == {"2": "av_mae", "4": "av_inter_intra"}[row]
        assert large["steps"] == 2 * small["steps"] and large["flops"] == pytest.approx(2 * small["flops"])
        for b in (small, large):
            for m in ("audio", "video"):
                assert b[f"{m}_gain"] == pytest.approx(b[m] - record["study"]["floor"][m])
            assert b["retrieval"]["chance"]["R@1"] == pytest.approx(1 / 8)  # 8 smoke test clips
    row4 = record["study"]["rows"]["4"]
    assert row4[0]["flops"] > record["study"]["rows"]["2"][0]["flops"]  # contrast's second view costs compute
    assert set(record["trends"]["4"]) == {"audio_gain", "video_gain", "a2v_r1", "v2a_r1"}
    assert record["trends"]["4"]["a2v_r1"]["target"] == pytest.approx(10 / 8)
    assert "| 4 | av_inter_intra | 2 |" in (tmp_path / "scaling.md").read_text()
    assert (tmp_path / "scaling.png").stat().st_size > 10_000


def test_every_notebook_pre_trains_on_the_clips_the_ablation_pre_trains_on():
    """A table that reuses pretrain.ipynb's checkpoints (pretrained_dir) must get models pre-trained on the same clips
    as the ablation's own: the train split and the unlabelled one (`pretraining_clips`), never the train split alone."""
    for name in ["pretrain", "table_ablation", "scaling", *TABLES]:
        source = "\n".join(c.source for c in nbformat.read(REPO / "reproduce" / f"{name}.ipynb", as_version=4).cells)
        assert "pretraining_clips(" in source, name
        assert not re.search(r"(pretrain_clips|train) = load_source\([^)]*\)\.subset\(\"train\"\)", source), name
