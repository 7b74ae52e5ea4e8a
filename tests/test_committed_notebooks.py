"""The committed notebooks carry real outputs of the current code: executed by `make notebooks` at the `cpu` preset,
with every figure drawn, no error, and a recorded commit that is part of this history."""
import json
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb")) + sorted((REPO / "reproduce").glob("*.ipynb"))
MAX_TOTAL_MB = 20  # PNGs at the inline backend's resolution, no widget state: a few MB in all


def read(path: Path) -> dict:
    return json.loads(path.read_text())


def git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_executed_at_the_cpu_preset_without_errors(path):
    nb = read(path)
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(c.get("execution_count") for c in code), f"{path.name}: run `make notebooks` (some cells never ran)"
    assert nb["metadata"]["papermill"]["parameters"]["preset"] == "cpu"
    assert nb["metadata"]["papermill"].get("exception") is not True
    assert nb["metadata"]["mavil_lite"]["preset"] == "cpu"
    errors = [o for c in code for o in c.get("outputs", []) if o["output_type"] == "error"]
    assert not errors, f"{path.name}: {errors[0]['ename']}: {errors[0]['evalue']}"
    assert "widgets" not in nb["metadata"], f"{path.name}: widget state is saved (tools/execute_notebooks.py drops it)"
    for cell in code:
        if "figure" in cell["metadata"].get("tags", []):
            assert any("image/png" in o.get("data", {}) for o in cell["outputs"]), \
                f"{path.name}: a figure cell has no image:\n{''.join(cell['source'])[:200]}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_records_a_commit_of_this_history(path):
    if git("rev-parse", "--git-dir").returncode != 0:
        pytest.skip("not a git checkout: the recorded commits cannot be checked")
    commit = read(path)["metadata"]["mavil_lite"]["commit"]
    ancestor = git("merge-base", "--is-ancestor", commit, "HEAD")
    assert ancestor.returncode == 0, f"{path.name} was executed at {commit}, which is not an ancestor of HEAD"


def test_the_reconstruction_notebook_shows_its_figures_and_errors_to_a_reader():
    """What someone sees who opens notebook 03 without running it: the pictures and the model-vs-mean errors."""
    nb = read(REPO / "notebooks" / "03_masked_reconstruction.ipynb")
    images = sum("image/png" in o.get("data", {}) for c in nb["cells"] for o in c.get("outputs", []))
    printed = "".join("".join(o.get("text", "")) for c in nb["cells"] for o in c.get("outputs", []))
    assert images >= 6
    assert "masked-patch MSE, audio (normalised targets): model" in printed
    assert "masked-patch MSE, video (normalised targets): model" in printed


def test_committed_notebooks_stay_small():
    total_mb = sum(p.stat().st_size for p in NOTEBOOKS) / 1e6
    assert total_mb < MAX_TOTAL_MB, f"{total_mb:.1f} MB of notebooks"
