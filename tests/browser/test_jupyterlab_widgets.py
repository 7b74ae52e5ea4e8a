"""The teaching notebooks in a real browser: JupyterLab runs them, draws their figures, and their sliders redraw.

The headless runs (tests/test_teaching_notebooks.py) prove that the notebooks execute, but never render a widget:
they cannot see a learner open a notebook in JupyterLab, run it and drag the masking ratio. Here a headless
Chromium does exactly that, through Selenium, against a JupyterLab server of this environment:

1. run all cells and check that every one finished without an error and that the static figure is drawn;
2. move the `ratio` slider of the notebook's `explore` widget (cell tagged `widget`) through its readout, as a
   learner typing a value would, and check that the widget draws a new figure and that the visible-patch counts it
   prints follow the new ratio (`num_visible`).

Screenshots before and after the slider moved go to outputs/browser/. Run with `make test-browser`; `make test`
leaves these tests out (they need Chromium and take minutes).
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import nbformat
import papermill
import pytest

from mavil_lite.model.masking import num_visible

try:
    from selenium.common.exceptions import JavascriptException, StaleElementReferenceException
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
except ImportError:  # the fixtures skip (or fail, in CI) with the reason; collection must not break here
    pass

REPO = Path(__file__).resolve().parents[2]
# Each test opens a notebook, runs it at the smoke scale (03 trains two small models) and moves a slider.
pytestmark = [pytest.mark.browser, pytest.mark.timeout(1500)]

# what an error looks like in a rendered output, as opposed to a warning ("...: UserWarning: ...")
TRACEBACK = re.compile(r"Traceback \(most recent call last\)|^(\w+\.)*\w*(Error|Exception)\b: ", re.M)
COUNTS = re.compile(r"visible patches: audio (\d+) of (\d+), video (\d+) of (\d+) at ratio ([\d.]+)")


@dataclass(frozen=True)
class Case:
    notebook: str
    default_ratio: float  # the slider's starting value: the notebook's mask_ratio
    new_ratio: float  # what the test types into the slider's readout
    run_all_timeout: float  # seconds for "run all" on two shared cores
    printed: re.Pattern  # the line the widget's function prints, with the counts first (COUNTS)


CASES = [
    Case("02_masking", 0.8, 0.5, 240, COUNTS),
    Case("03_masked_reconstruction", 0.8, 0.5, 600,
         re.compile(COUNTS.pattern + r"; hidden-patch MSE audio ([\d.]+), video ([\d.]+)")),
]

# Finds the notebook panel by its path. The shell's `currentWidget` follows the keyboard focus, which a headless
# window never has, so it is null there; the main area's widgets are always listed.
FIND_PANEL = """
const panel = Array.from(window.jupyterapp ? window.jupyterapp.shell.widgets('main') : [])
    .find(w => w.context && w.context.path === arguments[0]);
"""


def wait_for(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.5,
             diagnose: Callable[[], str] | None = None) -> Any:
    """Poll `condition` until it returns something truthy (returned); fail saying `what` did not happen.

    A page that is re-rendering can throw stale-element or script errors for a moment: they count as "not yet".
    """
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value
        except (StaleElementReferenceException, JavascriptException) as error:
            last_error = error
        time.sleep(interval)
    details = diagnose() if diagnose else ""
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}"
                + (f" (last error: {last_error.msg})" if last_error else "") + (f"\n{details}" if details else ""))


def prepare_notebook(name: str, root: Path) -> str:
    """Copy notebooks/<name>.ipynb into the served folder with the smoke parameters injected (not executed), and
    without the committed outputs, so that every figure the test sees was drawn in this browser session."""
    target = root / f"{name}.ipynb"
    papermill.execute_notebook(
        str(REPO / "notebooks" / f"{name}.ipynb"), str(target), prepare_only=True,
        parameters={"preset": "smoke", "out_dir": str(root / "out" / name), "synthetic_dir": str(root / "synthetic"),
                    "num_workers": 0, "threads": 1})  # absolute paths: the kernel starts in `root`, not the repo
    nb = nbformat.read(target, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nbformat.write(nb, target)
    return target.name


def kernel_status(driver, path: str) -> str | None:
    """The notebook's kernel status ('idle', 'busy', 'starting', ...), None before the panel and kernel exist."""
    return driver.execute_script(FIND_PANEL + """
        const kernel = panel && panel.sessionContext.session && panel.sessionContext.session.kernel;
        return kernel ? kernel.status : null;""", path)


def open_notebook(driver, lab, path: str) -> None:
    """Load JupyterLab on the notebook alone (`reset`: no tabs restored from before) and wait for an idle kernel."""
    driver.get(lab.page(f"/lab/tree/{path}", "reset"))
    wait_for(lambda: kernel_status(driver, path) == "idle", 180, f"the kernel of {path} to start")


def prompts(driver, path: str) -> list[str]:
    """The input prompts of the code cells as shown: '[3]:', '[*]:' (running or queued), '[ ]:' (not run)."""
    return driver.execute_script(FIND_PANEL + """
        return panel.content.widgets.filter(c => c.model.type === 'code')
            .map(c => c.node.querySelector('.jp-InputPrompt').textContent.trim());""", path)


def run_all_and_wait(driver, path: str, timeout: float) -> None:
    """Run all cells (the menu's Run > Run All Cells) and wait until the kernel is idle and no cell shows [*].

    The command's promise settles when the last cell has finished (or the run stopped at an error); it is kept in
    `window` so that the test polls it instead of holding one WebDriver call open for minutes.
    """
    driver.execute_script(FIND_PANEL + """
        window.jupyterapp.shell.activateById(panel.id);
        window.__runAll = 'running';
        window.jupyterapp.commands.execute('notebook:run-all-cells')
            .then(ok => { window.__runAll = ok ? 'done' : 'failed'; },
                  error => { window.__runAll = 'error: ' + error; });""", path)

    def finished():
        state = driver.execute_script("return window.__runAll")
        return state != "running" and kernel_status(driver, path) == "idle" and \
            not any("*" in p for p in prompts(driver, path)) and state

    state = wait_for(finished, timeout, f"'run all' of {path} to finish", interval=2,
                     diagnose=lambda: f"prompts: {prompts(driver, path)}\n{error_outputs(driver, path)}")
    errors = error_outputs(driver, path)
    assert not errors, f"{path}: cells failed:\n" + "\n\n".join(errors)
    assert state == "done", f"{path}: run all ended with '{state}'; prompts {prompts(driver, path)}"
    assert all(re.fullmatch(r"\[\d+\]:", p) for p in prompts(driver, path)), prompts(driver, path)


def error_outputs(driver, path: str) -> list[str]:
    """Every error in the notebook's outputs: cell errors in the model, tracebacks anywhere in the page.

    JupyterLab renders an error output with the stderr renderer (`data-mime-type` application/vnd.jupyter.stderr),
    exactly like a warning, so the DOM check looks for the traceback header instead; tracebacks printed inside a
    widget's Output area (a failing redraw) only exist in the DOM.
    """
    from_model = driver.execute_script(FIND_PANEL + """
        const errors = [];
        panel.content.widgets.forEach((cell, i) => {
            if (cell.model.type !== 'code') return;
            cell.model.outputs.toJSON().filter(o => o.output_type === 'error')
                .forEach(o => errors.push(`cell ${i}: ${o.ename}: ${o.evalue}`));
        });
        return errors;""", path)
    panel = driver.execute_script(FIND_PANEL + "return panel.node;", path)
    stderr = panel.find_elements(By.CSS_SELECTOR,
                                 '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')
    return from_model + [e.text[-3000:] for e in stderr if TRACEBACK.search(e.text)]


def tagged_cells(driver, path: str, tag: str) -> list[tuple[int, Any]]:
    """(index, DOM node) of the cells carrying `tag` in their metadata (the notebooks tag 'figure' and 'widget')."""
    return driver.execute_script(FIND_PANEL + """
        return panel.content.widgets.map((c, i) => [i, c])
            .filter(([i, c]) => (c.model.getMetadata('tags') || []).includes(arguments[1]))
            .map(([i, c]) => [i, c.node]);""", path, tag)


def output_images(element) -> list[str]:
    """The `src` of every PNG drawn in the output areas under `element` (matplotlib's inline figures)."""
    return [img.get_attribute("src") for img in element.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output img")
            if (img.get_attribute("src") or "").startswith("data:image/png")]


def slider(widget_cell, label: str):
    """The ipywidgets slider whose label reads `label`, in the widget cell's output."""
    for candidate in widget_cell.find_elements(By.CSS_SELECTOR, ".widget-slider"):
        if candidate.find_element(By.CSS_SELECTOR, ".widget-label").text.strip() == label:
            return candidate
    labels = [e.text for e in widget_cell.find_elements(By.CSS_SELECTOR, ".widget-label")]
    pytest.fail(f"no slider labelled {label!r} in the widget cell (labels: {labels})")


def set_slider_value(driver, control, value: float) -> None:
    """Type `value` into the slider's editable readout and press Enter, as a learner would.

    ipywidgets 8 reads the readout on Enter (or blur) and clamps and rounds it to the slider's step. The readout's
    text is selected first so that typing replaces it.
    """
    readout = control.find_element(By.CSS_SELECTOR, ".widget-readout")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'}); arguments[0].focus();"
                          "document.getSelection().selectAllChildren(arguments[0]);", readout)
    ActionChains(driver).send_keys(f"{value}", Keys.ENTER).perform()
    handle = control.find_element(By.CSS_SELECTOR, "[role=slider]")
    wait_for(lambda: abs(float(handle.get_attribute("aria-valuenow")) - value) < 1e-9, 10,
             f"the slider to take the value {value}")


def widget_output(widget_cell):
    """The `Output` widget under the controls, where `explore` redraws the figure."""
    return widget_cell.find_element(By.CSS_SELECTOR, ".widget-output")


def printed_text(element) -> str:
    """What the cells under `element` printed (stdout), as rendered."""
    return "\n".join(e.text for e in element.find_elements(
        By.CSS_SELECTOR, '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stdout"]'))


def screenshot(driver, element, name: str, output_dir: Path, block: str = "start") -> Path:
    """Scroll `element` into view (aligned by `block`) and save a screenshot of the whole JupyterLab window."""
    driver.execute_script(f"arguments[0].scrollIntoView({{block: '{block}'}});", element)
    time.sleep(0.5)  # let the scroll and the image decoding settle before the capture
    path = output_dir / f"{name}.png"
    assert driver.save_screenshot(str(path)), f"could not save {path}"
    print(f"screenshot: {path}")
    return path


@pytest.mark.parametrize("case", CASES, ids=[c.notebook for c in CASES])
def test_ratio_slider_redraws_the_figure_in_jupyterlab(case, lab, driver, output_dir, shut_kernels_down):
    path = prepare_notebook(case.notebook, lab.root)
    started = time.monotonic()
    open_notebook(driver, lab, path)
    run_all_and_wait(driver, path, case.run_all_timeout)
    print(f"{path}: opened and ran all cells in {time.monotonic() - started:.0f} s")

    # the widget cell (tag `widget`) and the static figure drawn by the same function just above it
    (widget_index, widget_cell), *_ = tagged_cells(driver, path, "widget")
    figures = [(i, node) for i, node in tagged_cells(driver, path, "figure") if i < widget_index]
    assert figures, f"{path}: no figure cell above the widget cell"
    static_images = output_images(figures[-1][1])
    assert static_images, f"{path}: the static figure (cell {figures[-1][0]}) shows no PNG"
    assert not output_images(widget_output(widget_cell)), "explore draws nothing before a control moves"
    # before: the static figure from its top (03's is taller than the window: the controls are then below it)
    screenshot(driver, figures[-1][1].find_element(By.CSS_SELECTOR, ".jp-Cell-outputArea"),
               f"{case.notebook}_before", output_dir)

    # move the ratio and wait for the redraw: the printed line at the new ratio, and its figure
    set_slider_value(driver, slider(widget_cell, "ratio"), case.new_ratio)
    output = widget_output(widget_cell)

    def redrawn():
        """The printed line once it reports the new ratio and the new figure is shown below it."""
        match = case.printed.search(printed_text(output))
        return match if match and match.group(5) == f"{case.new_ratio:.2f}" and output_images(output) else None

    match = wait_for(redrawn, 120, f"{path}: the widget to redraw at ratio {case.new_ratio}",
                     diagnose=lambda: f"widget output:\n{output.text}\n" + "\n".join(error_outputs(driver, path)))
    # after: the controls at the new ratio, the printed line and the redrawn figure from its top
    screenshot(driver, widget_cell.find_element(By.CSS_SELECTOR, ".jp-Cell-outputArea"),
               f"{case.notebook}_after", output_dir)
    assert not error_outputs(driver, path)

    new_images = output_images(output)
    assert len(new_images) == 1, f"{len(new_images)} figures in the widget's output, expected one (the redraw)"
    assert new_images[0] not in static_images, "the figure did not change when the ratio did"

    seen_a, n_audio, seen_v, n_video = (int(g) for g in match.groups()[:4])
    assert float(match.group(5)) == pytest.approx(case.new_ratio)
    assert (seen_a, seen_v) == (num_visible(n_audio, case.new_ratio), num_visible(n_video, case.new_ratio))
    assert (seen_a, seen_v) != (num_visible(n_audio, case.default_ratio), num_visible(n_video, case.default_ratio))
    print(f"{path}: {match.group(0)}")
