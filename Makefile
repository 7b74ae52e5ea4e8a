# Two commands do all the set-up: `make demo` (the main job) and `make test` (the suite).
# Both create .venv and install the kit into it on first use; later runs reuse it.
# `make test-browser` runs the notebooks in JupyterLab in headless Chromium (Debian's chromium, chromium-driver).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
OUT ?= outputs/table_ablation
PRESET ?= cpu

.PHONY: demo test test-browser notebooks lab clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	mkdir -p $(OUT)
	$(BIN)/papermill reproduce/table_ablation.ipynb $(OUT)/table_ablation.ipynb \
		-p preset $(PRESET) -p out_dir $(OUT) --cwd . --log-output --no-progress-bar
	@cat $(OUT)/table.md

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --durations=10 -m "not browser" tests

# one JupyterLab server and one browser for the whole session: no xdist
test-browser: $(STAMP)
	$(BIN)/python -m pytest -m browser -p no:xdist --durations=10 -s tests/browser

# re-execute every committed notebook in place at the cpu preset (about 80 minutes on 2 cores; see README)
notebooks: $(STAMP)
	$(BIN)/python tools/execute_notebooks.py --preset $(PRESET)

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/

clean:
	rm -rf outputs .pytest_cache
