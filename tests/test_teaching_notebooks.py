"""The six teaching notebooks run headless at the smoke scale, draw every figure and print what they must."""
import re
from pathlib import Path

import nbformat
import papermill
import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = ["01_data_and_features", "02_masking", "03_masked_reconstruction", "04_contrastive_learning",
             "05_stage2_distillation", "06_finetuning_and_evaluation"]
PARAMETERS = {"preset", "data", "label_column", "out_dir", "seed", "device"}
# what each notebook must print (regexes over its text output), beyond finishing and drawing its figures
MUST_PRINT = {
    "01_data_and_features": [r"this data \(\d+ clips\): mean -?[\d.]+, std [\d.]+", r"audio tokens \(1, \d+, \d+\)"],
    "02_masking": [r"audio: copy error [\d.]+ at ratio", r"structured \(time-freq / tube\)\s*: hidden fraction .*copy error",
                   r"the hand-written masking equals random_masking", r"visible patches: audio \d+ of \d+, video \d+ of"],
    "03_masked_reconstruction": [r"masked-patch MSE, audio \(normalised targets\): model [\d.]+ vs mean [\d.]+",
                                 r"video: .*hidden-patch MSE by hand [\d.]+ = MAViL.forward's [\d.]+",
                                 r"audio hidden-patch MSE with its own video [\d.]+; with another clip's video",
                                 r"fusion block 0: audio tokens give [\d.]+% of their attention to video tokens",
                                 r"encoder spread, random weights: audio between clips [\d.]+, within a clip [\d.]+"],
    "04_contrastive_learning": [r"inter-modal InfoNCE \(untrained\)", r"av_inter_intra: A->V R@1 [\d.]+"],
    "05_stage2_distillation": [r"gain of stage2_iter1 over av_inter_intra", r"gain of stage2_iter2 over stage2_iter1",
                               r"the hand-written fused targets equal MAViL.fused_targets",
                               r"stage2_iter1 \(fused targets\), audio: hidden-token MSE [\d.]+, (below|above) the per-position",
                               r"-> fused targets beat raw patches \(stage 1\) on \d of 4 measures",
                               r"-> fused targets beat encoders before fusion on \d of 4 measures"],
    "06_finetuning_and_evaluation": [r"pre-trained A\+V head .* mAP [\d.]+, accuracy", r"a2v: R@1 [\d.]+",
                                     r"largest difference from the original model",
                                     r"kit model\s+A mAP [\d.]+, V mAP [\d.]+, A\+V mAP"],
}


def path_of(name: str) -> Path:
    return REPO / "notebooks" / f"{name}.ipynb"


def text_output(nb) -> str:
    """Everything the notebook's code cells printed (streams and plain-text results)."""
    parts = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                parts.append(output.get("text", ""))
            elif "text/plain" in output.get("data", {}):
                parts.append(output["data"]["text/plain"])
    return "\n".join(parts)


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory):
    """One smoke dataset per test process, shared by the notebooks it runs (they run one at a time there)."""
    return tmp_path_factory.mktemp("teaching_synthetic")


def test_six_notebooks_have_the_house_structure():
    present = sorted(p.stem for p in (REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert present == NOTEBOOKS
    for name in NOTEBOOKS:
        nb = nbformat.read(path_of(name), as_version=4)
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, name
        assert PARAMETERS <= set(re.findall(r"^(\w+) =", tagged[0].source, flags=re.M)), name
        assert re.search(r'^preset = "cpu"', tagged[0].source, flags=re.M), name
        assert "%matplotlib inline" in nb.cells[1].source, name  # figures render as PNG headless too
        assert nb.cells[0].cell_type == "markdown" and "What this notebook teaches" in nb.cells[0].source
        assert "What it assumes" in nb.cells[0].source
        assert nb.cells[-1].cell_type == "markdown" and "Exercises" in nb.cells[-1].source
        assert any("figure" in c.metadata.get("tags", []) for c in nb.cells), name


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_at_smoke_scale_and_draws_its_figures(name, tmp_path, synthetic_dir):
    executed = tmp_path / f"{name}.ipynb"
    papermill.execute_notebook(
        str(path_of(name)), str(executed), cwd=str(REPO), progress_bar=False, execution_timeout=300,
        parameters={"preset": "smoke", "out_dir": str(tmp_path / "out"), "synthetic_dir": str(synthetic_dir),
                    "num_workers": 0, "threads": 1})  # one thread each: the suite runs two notebooks at once
    nb = nbformat.read(executed, as_version=4)
    assert nb.metadata["papermill"]["exception"] is not True
    figure_cells = [c for c in nb.cells if "figure" in c.metadata.get("tags", [])]
    assert figure_cells
    for cell in figure_cells:
        assert any("image/png" in o.get("data", {}) for o in cell.get("outputs", [])), \
            f"{name}: figure cell without an image:\n{cell.source}"
    printed = text_output(nb)
    for pattern in MUST_PRINT[name]:
        assert re.search(pattern, printed), f"{name} did not print {pattern!r}"
    if name == "03_masked_reconstruction":
        # the notebook's central number: the hidden-patch error of the model is below that of predicting the mean
        found = re.findall(r"masked-patch MSE, (\w+) \(normalised targets\): model ([\d.]+) vs mean ([\d.]+)", printed)
        assert {modality for modality, _, _ in found} == {"audio", "video"}
        for modality, model_mse, mean_mse in found:
            assert float(model_mse) < float(mean_mse), f"{modality}: model {model_mse} vs mean {mean_mse}"

