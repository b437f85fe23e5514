# The README's two commands: `make report` (main job, embedded CPU grid) and `make test`.
# Both create .venv on a fresh machine, install the project and register its Jupyter kernel.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
KERNEL ?= nlpdl-report
GRID ?= params/cpu.yaml
WORKERS ?= 2
# GPUs for the grid, e.g. DEVICES=0 or DEVICES=0,1; empty: CPU workers. RUNS_PER_DEVICE: runs
# sharing each GPU (empty: chosen from the GPU memory and CPU cores, see helpers.grid.workers).
DEVICES ?=
RUNS_PER_DEVICE ?=
# CUDA MPS for the runs sharing a GPU: auto (empty: a private daemon when it can), on, off.
MPS ?=
# Extra `grid run` flags, e.g. GRID_ARGS="--filter seed=1 --set max_train_samples=64".
GRID_ARGS ?=
RUNS ?= runs
BUILD ?= build
# The report reads the grid's runs only; GRID_ARGS' --set values change their run ids, so the
# report gets them too (its --filter and other flags are the grid run's alone).
GRID_SETS = ${shell set -- $(GRID_ARGS); while [ $$# -gt 0 ]; do case "$$1" in --set) printf -- '--set %s ' "$$2"; shift;; --set=*) printf -- '%s ' "$$1";; esac; shift; done}

# The real datasets live in ../shared/data on the team's machines and in CI (never copied here).
SHARED_DATA := $(abspath ../shared/data)
ifeq ($(origin NLPDL_DATA_DIR), undefined)
ifneq ($(wildcard $(SHARED_DATA)/SemEval14-res/train.json),)
export NLPDL_DATA_DIR := $(SHARED_DATA)
endif
endif

STAMP := $(VENV)/.installed

.PHONY: venv test report lint clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	$(PY) -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Python ($(KERNEL))"
	touch $(STAMP)

test: venv
	$(VENV)/bin/lint-imports
	$(PY) -m pytest $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check src tests benchmarks

# Run the grid, execute notebooks/analysis.ipynb into $(BUILD)/analysis.ipynb (+ its HTML),
# then `quarto render` (HTML + Typst PDF in $(BUILD)/report/) when quarto is on PATH.
report: venv
	$(PY) -m helpers grid run $(GRID) $(GRID_ARGS) $(if $(DEVICES),--devices $(DEVICES) $(if $(RUNS_PER_DEVICE),--runs-per-device $(RUNS_PER_DEVICE)) $(if $(MPS),--mps $(MPS)),--workers $(WORKERS)) --runs-dir $(RUNS)
	$(PY) -m helpers report --grid $(GRID) $(GRID_SETS) --runs-dir $(RUNS) --output-dir $(BUILD) --kernel $(KERNEL)

clean:
	rm -rf $(BUILD) .pytest_cache
