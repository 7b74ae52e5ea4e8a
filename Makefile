# Two commands do all the set-up: `make demo` (the main job) and `make test` (the suite).
# Both create .venv and install the kit into it on first use; later runs reuse it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
OUT ?= outputs/table_ablation
PRESET ?= cpu

.PHONY: demo test lab clean

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
	$(BIN)/python -m pytest -n 2 --durations=10 tests

lab: $(STAMP)
	$(BIN)/jupyter lab

clean:
	rm -rf outputs .pytest_cache
