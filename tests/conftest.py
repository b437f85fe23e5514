"""Shared fixtures: the real data folder, tiny random models of the real architectures, a
runs store in the test's temporary folder; and a
check that generated Markdown's lists render as lists."""

from __future__ import annotations

import builtins
import errno
import io
import os
import re
from pathlib import Path

import mistune
import pytest

from helpers.run.store import RunStore

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def find_real_data() -> Path | None:
    """$NLPDL_DATA_DIR, else ../shared/data beside the project, else ./data."""
    candidates = []
    if os.environ.get("NLPDL_DATA_DIR"):
        candidates.append(Path(os.environ["NLPDL_DATA_DIR"]))
    candidates += [PROJECT_ROOT.parent / "shared" / "data", PROJECT_ROOT / "data"]
    for c in candidates:
        if (c / "SemEval14-res" / "train.json").is_file():
            return c.resolve()
    return None


def pytest_configure(config: pytest.Config) -> None:
    """Like the Makefile: ../shared/data is the data folder when NLPDL_DATA_DIR is unset, so
    that `pytest` alone finds it in the code under test, kernels and workers too."""
    found = find_real_data()
    if found is not None and not os.environ.get("NLPDL_DATA_DIR"):
        os.environ["NLPDL_DATA_DIR"] = str(found)


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    found = find_real_data()
    if found is None:
        msg = ("real datasets not found: set NLPDL_DATA_DIR or place them in ../shared/data "
               "(see README, 'Data')")
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but {msg}")
        pytest.skip(msg)
    return found


# Pandoc, which Quarto uses, starts a list only after a blank line (stricter than CommonMark):
# a list item glued to the paragraph above renders as text with a literal " - ".
_LIST_ITEM = re.compile(r"^(?:[-+*]|\d+\.) ")


def lists_render_as_lists(markdown: str) -> bool:
    """Every line written as a list item becomes one ``<li>`` (mistune, a CommonMark
    renderer) and starts after a blank line, another item or an item's continuation."""
    lines = markdown.splitlines()
    items = [i for i, line in enumerate(lines) if _LIST_ITEM.match(line)]
    clean = all(i == 0 or not lines[i - 1].strip() or _LIST_ITEM.match(lines[i - 1])
                or lines[i - 1].startswith("  ") for i in items)
    return clean and mistune.html(markdown).count("<li>") == len(items)


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    from helpers.testing.tiny import make_tiny_model

    return make_tiny_model("bert", tmp_path_factory.mktemp("tiny_bert"))


@pytest.fixture(scope="session")
def tiny_roberta(tmp_path_factory) -> Path:
    from helpers.testing.tiny import make_tiny_model

    return make_tiny_model("roberta", tmp_path_factory.mktemp("tiny_roberta"))


STAND_IN_NVIDIA_SMI = """#!/bin/sh
# stand-in nvidia-smi: $STUB_GPUS GPUs (default 1), answering -L and --query-gpu=memory.total
n=${STUB_GPUS:-1}
if [ "$n" = 0 ]; then echo "No devices were found"; exit 6; fi
case "$*" in
  *memory.total*) echo 81559 ;;
  *) i=0; while [ $i -lt "$n" ]; do
       echo "GPU $i: Stand-in GPU (UUID: GPU-0000000$i-0000-0000-0000-000000000000)"
       i=$((i + 1)); done ;;
esac
"""


@pytest.fixture
def stub_gpus(tmp_path_factory, monkeypatch):
    """A stand-in ``nvidia-smi`` first on PATH, saying this host has $STUB_GPUS GPUs (1): the
    grid's device check passes on a CPU host; the runs themselves train on the CPU."""
    bin_dir = tmp_path_factory.mktemp("gpu-bin")
    exe = bin_dir / "nvidia-smi"
    exe.write_text(STAND_IN_NVIDIA_SMI)
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("STUB_GPUS", "1")
    return exe


class _FullFile:
    """A file on a full disk: it was created, but every write fails with ENOSPC; no
    ``fileno`` (so shutil's copy takes the write path too)."""

    def __init__(self, fh) -> None:
        self._fh = fh

    def write(self, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), self._fh.name)

    def writelines(self, lines):
        self.write("")

    def fileno(self):
        raise io.UnsupportedOperation("fileno")

    def __getattr__(self, name):
        return getattr(self._fh, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._fh.close()

    def __iter__(self):
        return iter(self._fh)


@pytest.fixture
def disk_full(monkeypatch):
    """``disk_full(folder_or_predicate)``: from then on, files opened for writing there (every
    ``open``: builtins, io, pathlib, shutil, fsspec) are created but fail to take data with
    ENOSPC, as on a full disk. In this process only (not in kernels or workers)."""
    real_open = builtins.open
    rules: list = []

    def fake_open(file, mode="r", *args, **kwargs):
        fh = real_open(file, mode, *args, **kwargs)
        if (isinstance(file, (str, os.PathLike)) and any(c in mode for c in "wax+")
                and any(rule(Path(os.path.abspath(file))) for rule in rules)):
            return _FullFile(fh)
        return fh

    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(io, "open", fake_open)

    def full(where) -> None:
        if callable(where):
            rules.append(where)
        else:
            folder = Path(os.path.abspath(where))
            rules.append(lambda p: folder in p.parents)

    return full


@pytest.fixture
def store(tmp_path) -> RunStore:
    """A runs folder (:class:`RunStore`) in the test's own temporary folder."""
    return RunStore(tmp_path / "runs")
