# The README's two commands: `make report` (main job, embedded CPU grid) and `make test`.
# Both install the project on first use and register its Jupyter kernel: into the conda env
# nlpdl-report when it is the active one (conda env create -f environment.yml), else into .venv,
# created here. Another active conda env (base, ...) is never installed into; VENV=DIR picks DIR.

PYTHON ?= python3
KERNEL ?= nlpdl-report
CONDA_ENV ?= nlpdl-report
ifeq ($(origin VENV),undefined)
ifneq ($(CONDA_PREFIX),)
ifeq ($(notdir $(CONDA_DEFAULT_ENV)),$(CONDA_ENV))
CONDA_ACTIVE := 1
VENV := $(CONDA_PREFIX)
else
$(info make: conda env '$(CONDA_DEFAULT_ENV)' is active, not '$(CONDA_ENV)': using .venv instead (conda activate $(CONDA_ENV) to use that env))
endif
endif
endif
VENV ?= .venv
PY := $(VENV)/bin/python
GRID ?= params/cpu.yaml
# The ablation grid run beside GRID ("What each error cost"): params/X-ablations.yaml when it
# exists; ABLATIONS= for none. One `grid run` takes both, so they share the workers.
ABLATIONS ?= $(wildcard $(GRID:.yaml=-ablations.yaml))
WORKERS ?= 2
# GPUs for the grid, e.g. DEVICES=0 or DEVICES=0,1; empty: CPU workers. RUNS_PER_DEVICE: runs
# sharing each GPU (empty: chosen from the GPU memory and CPU cores, see helpers.grid.workers).
DEVICES ?=
RUNS_PER_DEVICE ?=
# CUDA MPS for the runs sharing a GPU: auto (empty: a private daemon when it can), on, off.
MPS ?=
# Extra `grid run` flags, e.g. GRID_ARGS="--filter seed=1 --set max_train_samples=64".
GRID_ARGS ?=
# RUNS and BUILD may hold spaces (quoted where used), not single quotes.
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

# The stamp lives in the environment and names the checkout installed into it (editable): a
# conda env shared by two checkouts is reinstalled when make runs in the other one.
STAMP := $(VENV)/.nlpdl-report-installed
ifneq ($(shell cat $(STAMP) 2>/dev/null),$(CURDIR))
STAMP_STALE := FORCE
endif

.PHONY: venv kernel test report render sweep lint lock clean FORCE

venv: $(STAMP)

# requirements.lock pins every package at one version; installed as constraints (-c), so that a
# package goes in only when a requirement asks for it: torch's CUDA libraries (nvidia-*, triton)
# come with a torch wheel that requires them (PyPI's Linux build), not with a CPU build.
# In the conda env, pip itself stays conda's.
# The stamp means a working environment: removed first, written only after CHECK_ENV passes, so
# an install killed halfway is redone by the next make. A .venv that still fails the check after
# its repair is rebuilt from scratch once; a conda env is left to you (the message says how).
$(STAMP): pyproject.toml requirements.lock $(STAMP_STALE)
	@rm -f $(STAMP)
ifdef CONDA_ACTIVE
	@echo "make: installing into the active conda env $(CONDA_DEFAULT_ENV) ($(VENV))"
else
	$(PY) -m pip --version >/dev/null 2>&1 || $(PYTHON) -m venv --clear $(VENV)
	$(PY) -m pip install -q --upgrade pip
endif
	$(INSTALL)
	$(CHECK) || $(REBUILD)
	echo '$(CURDIR)' > $(STAMP)

# Repair, install, bytecode, kernel: one shell command, so that a rebuild can run it again.
INSTALL = $(PY) -c "$$REPAIR_ENV" && $(PY) -m pip install -q --no-compile -c requirements.lock -e '.[dev]' && { $(COMPILE); } && $(REGISTER_KERNEL)
CHECK = $(PY) -c "$$CHECK_ENV" && $(PY) -m pip check && $(VENV)/bin/nlpdl-report --help >/dev/null
ifdef CONDA_ACTIVE
REBUILD = { echo "make: the conda env $(CONDA_DEFAULT_ENV) fails the check above; recreate it: conda deactivate && conda env remove -n $(CONDA_ENV) && conda env create -f environment.yml && conda activate $(CONDA_ENV) && make venv" >&2; exit 1; }
else
REBUILD = { echo "make: $(VENV) fails the check above: rebuilding it from scratch" >&2; rm -rf $(VENV) && $(PYTHON) -m venv $(VENV) && $(PY) -m pip install -q --upgrade pip && $(INSTALL) && $(CHECK); }
endif

# What pip killed mid-install leaves in site-packages: a *.dist-info folder without METADATA
# (pip then counts the package as installed, `pip check` passes, and importlib.metadata gives
# it version None: every command crashes in packaging.version) and ~name folders (pip's stash
# of a package being replaced). Removed, so that pip installs those packages again.
define REPAIR_ENV
import pathlib, shutil, sysconfig
paths = sysconfig.get_paths()
for site in sorted({pathlib.Path(paths["purelib"]), pathlib.Path(paths["platlib"])}):
    for p in sorted(site.glob("*.dist-info")) + sorted(site.glob("~*")):
        if p.name.startswith("~") or not (p / "METADATA").is_file():
            print(f"make: removing {p}: left by an interrupted install")
            shutil.rmtree(p) if p.is_dir() else p.unlink()
endef
export REPAIR_ENV

# An environment works when every installed package has a name and a version, and the project,
# its run stack (torch, transformers, datasets) and its console command import and start.
define CHECK_ENV
import importlib.metadata, sys
bad = sorted(str(getattr(d, "_path", d)) for d in importlib.metadata.distributions()
             if not d.metadata["Name"] or not d.version)
if bad:
    sys.exit("make: packages without a name or version: " + ", ".join(bad))
import helpers.cli, helpers.run.data, helpers.run.models
endef
export CHECK_ENV

# The same bytecode pip would write, compiled on every core at once instead of file by file
# (about 15 s less of a first install on 2 cores). -qq and `|| true`: like pip, it skips the
# few files of Python 2 syntax that some packages ship as test data.
COMPILE = $(PY) -m compileall -qq -j 0 "$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" || true

# The Jupyter kernel `nlpdl-report` (papermill's and JupyterLab's) for this environment's python.
# After `conda env create -f environment.yml && conda activate nlpdl-report`, `make kernel` is the
# one extra step before JupyterLab; make venv/test/report do it too. Its spec names the
# provisioner of helpers.kernel, so that every client (papermill's command line too) gives the
# kernel CurveZMQ keys: no "Kernel is running over TCP without encryption".
REGISTER_KERNEL = $(PY) -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Python ($(KERNEL))" && $(PY) -m helpers.kernel $(KERNEL)
kernel: $(if $(CONDA_ACTIVE),,$(STAMP))
	$(REGISTER_KERNEL)

test: venv
	$(VENV)/bin/lint-imports
	$(PY) -m pytest $(PYTEST_ARGS)

lint: venv
	$(PY) -m ruff check src tests benchmarks

# Run the grid, then the report step (`make render`): execute notebooks/analysis.ipynb into
# $(BUILD)/analysis.ipynb (+ its HTML), then `quarto render` (HTML + Typst PDF in
# $(BUILD)/report/) when quarto is on PATH.
report: venv
	$(PY) -m helpers grid run $(GRID) $(ABLATIONS) $(GRID_ARGS) $(if $(DEVICES),--devices $(DEVICES) $(if $(RUNS_PER_DEVICE),--runs-per-device $(RUNS_PER_DEVICE)) $(if $(MPS),--mps $(MPS)),--workers $(WORKERS)) --runs-dir '$(RUNS)'
	$(RENDER)

# The learning-rate sweep behind params/cpu.yaml (not part of `make report`): run it into
# $(RUNS), where the CPU grid's own runs are shared, then print the choice by mean validation
# macro-F1 and whether $(GRID) uses it (the report's appendix shows the sweep's table).
SWEEP ?= params/cpu-sweep.yaml
sweep: venv
	$(PY) -m helpers grid run $(SWEEP) $(GRID_ARGS) $(if $(DEVICES),--devices $(DEVICES),--workers $(WORKERS)) --runs-dir $(RUNS)
	$(PY) -m helpers grid select $(SWEEP) --check $(GRID) --runs-dir $(RUNS)

# The report step alone, from the runs already in $(RUNS): the grid is neither run nor checked
# for pending runs (the analysis reports what is there).
RENDER = $(PY) -m helpers report --grid $(GRID) $(if $(ABLATIONS),--ablations $(ABLATIONS) )$(GRID_SETS)--runs-dir '$(RUNS)' --output-dir '$(BUILD)' --kernel $(KERNEL)
render: venv
	$(RENDER)

# Regenerate requirements.lock from pyproject.toml (dependencies + the dev extra) for Python 3.11
# on Linux x86_64, with uv (from PATH, else installed into .cache/lock-tools). Current pins are
# kept where they still fit; `make lock LOCK_ARGS=--upgrade` moves every pin to the newest.
LOCK_TOOLS := .cache/lock-tools
LOCK_ARGS ?=
UV = $(or $(shell command -v uv 2>/dev/null),$(LOCK_TOOLS)/bin/uv)
LOCK_CMD := uv pip compile pyproject.toml --extra dev --python-version 3.11 \
	--python-platform x86_64-manylinux_2_28 --no-header -o requirements.lock
define LOCK_HEADER
# requirements.lock: every package make venv installs, one version each, for Python 3.11 on
# Linux x86_64. Used as constraints, not as a list to install:
#     pip install -c requirements.lock -e '.[dev]'
# so a package listed here is installed only when pyproject.toml's dependencies (or theirs) ask
# for it: torch's CUDA libraries (nvidia-*, cuda-*, triton) are pinned for PyPI's Linux torch
# wheel, which requires them, and left out with a CPU build (torch==2.13.0+cpu also satisfies
# torch==2.13.0). tests/test_project.py checks that every installed package is pinned here.
# Regenerate after changing pyproject.toml's dependencies: make lock  (it runs
#     $(LOCK_CMD)
# keeping the current pins where they still fit; make lock LOCK_ARGS=--upgrade for the newest).
endef

lock:
	test -x "$(UV)" || { $(PYTHON) -m venv $(LOCK_TOOLS) && $(LOCK_TOOLS)/bin/pip install -q uv; }
	$(UV) $(wordlist 2,100,$(LOCK_CMD)) $(LOCK_ARGS) --quiet
	$(file >requirements.lock.tmp,$(LOCK_HEADER))
	grep -v '^#' requirements.lock >> requirements.lock.tmp
	mv requirements.lock.tmp requirements.lock

clean:
	rm -rf '$(BUILD)' .pytest_cache
