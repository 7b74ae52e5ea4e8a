"""The main job, `reproduce/table_ablation.ipynb`, runs headless at the smoke scale and writes its table."""
import json
import re
from pathlib import Path

import nbformat
import papermill
import pytest

from mavil_lite.tables import paper_ablation

NOTEBOOK = Path(__file__).resolve().parents[1] / "reproduce" / "table_ablation.ipynb"


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("table_ablation")
    executed = out / "executed.ipynb"
    papermill.execute_notebook(str(NOTEBOOK), str(executed), cwd=str(NOTEBOOK.parents[1]), progress_bar=False,
                               execution_timeout=300, parameters={"preset": "smoke", "out_dir": str(out), "num_workers": 0})
    return out, nbformat.read(executed, as_version=4)


def test_notebook_has_the_papermill_parameters():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    names = set(re.findall(r"^(\w+) =", tagged[0].source, flags=re.M))
    assert {"preset", "data", "label_column", "out_dir", "seed", "device"} <= names
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "commit the notebook clean"


def test_smoke_table_has_five_measured_rows_beside_the_paper(smoke_run):
    out, _ = smoke_run
    table = (out / "table.md").read_text()
    paper = paper_ablation()
    lines = [line for line in table.splitlines() if re.match(r"^\| [1-5] \|", line)]
    assert len(lines) == 5
    for line, row in zip(lines, range(1, 6)):
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[0] == str(row)
        assert float(cells[2]) == paper[row]["audio"] and float(cells[4]) == paper[row]["video"]
        assert 0.0 <= float(cells[3]) <= 100.0 and 0.0 <= float(cells[5]) <= 100.0
    assert "smoke" in table and "synthetic" in table  # the scale is stated
    results = json.loads((out / "results.json").read_text())
    assert [r["row"] for r in results["rows"]] == [1, 2, 3, 4, 5]
    assert all(r["wall_s"] > 0 for r in results["rows"])


def test_smoke_run_shows_its_figures(smoke_run):
    out, nb = smoke_run
    assert (out / "ablation.png").stat().st_size > 5000 and (out / "loss_curves.png").exists()
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if "image/png" in o.get("data", {})]
    assert len(images) >= 2
