"""The README's papermill command starts an encrypted kernel (issue 31, point 8): the kernel
spec that `make kernel` registers names helpers.kernel's provisioner, so that even papermill's
own command line, which loads no Jupyter config, gives the kernel CurveZMQ keys and the kernel
no longer logs "Kernel is running over TCP without encryption"."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from conftest import PROJECT_ROOT
from helpers import kernel
from helpers.settings import KERNEL_NAME

WARNING = "without encryption"


def register(prefix: Path) -> list[list[str]]:
    """`make kernel`'s commands as make would run them, into ``prefix`` instead of this
    environment (--sys-prefix): the spec a fresh install gets."""
    dry = subprocess.run(["make", "-n", "kernel"], cwd=PROJECT_ROOT, capture_output=True,
                         text=True, check=True).stdout
    line = next(ln for ln in dry.splitlines() if "ipykernel install" in ln.split("&&")[0])
    steps = [shlex.split(part) for part in line.split("&&")]
    assert [s[1:4] for s in steps] == [["-m", "ipykernel", "install"],
                                      ["-m", "helpers.kernel", KERNEL_NAME]], steps
    steps[0][steps[0].index("--sys-prefix")] = f"--prefix={prefix}"
    steps[1].append(f"--prefix={prefix}")
    for step in steps:
        subprocess.run(step, cwd=PROJECT_ROOT, check=True, capture_output=True)
    return steps


def readme_papermill(notebook: Path, out: Path) -> list[str]:
    """The README's papermill command, on ``notebook`` (as quick to start as train.ipynb's
    kernel, with nothing to train)."""
    (line,) = [ln for ln in (PROJECT_ROOT / "README.md").read_text().splitlines()
               if re.match(r"\s*\S*papermill -k", ln)]
    words = shlex.split(line, comments=True)
    assert words[words.index("-k") + 1:words.index("-k") + 3] == [KERNEL_NAME,
                                                                   "notebooks/train.ipynb"]
    words[words.index("-k") + 2:words.index("-k") + 4] = [str(notebook), str(out)]
    return [str(Path(sys.executable).parent / "papermill"), *words[1:]]


@pytest.fixture
def notebook(tmp_path) -> Path:
    nb = nbformat.v4.new_notebook(metadata={
        "kernelspec": {"name": KERNEL_NAME, "display_name": KERNEL_NAME, "language": "python"},
        "language_info": {"name": "python"}})
    params = nbformat.v4.new_code_cell("dataset = method = None\nseed = 0")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell("print('ran', dataset, method, seed)")]
    nbformat.write(nb, tmp_path / "nb.ipynb")
    return tmp_path / "nb.ipynb"


def run(cmd: list[str], jupyter_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "JUPYTER_PATH": str(jupyter_path)}  # the registered spec first
    return subprocess.run(cmd, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                          timeout=240)


@pytest.mark.slow
def test_the_readme_papermill_command_starts_no_unencrypted_kernel(tmp_path, notebook):
    prefix = tmp_path / "prefix"
    register(prefix)
    spec = json.loads(kernel.spec_file(KERNEL_NAME, prefix).read_text())
    assert spec["metadata"]["kernel_provisioner"]["provisioner_name"] == kernel.PROVISIONER
    out = tmp_path / "out.ipynb"
    proc = run(readme_papermill(notebook, out), prefix / "share" / "jupyter")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "ran acl_sup lora 3" in out.read_text()  # it ran, with the README's parameters
    assert WARNING not in proc.stderr + proc.stdout, proc.stderr
    # the spec as ipykernel alone writes it: the kernel warns (what the provisioner removes)
    del spec["metadata"]["kernel_provisioner"]
    kernel.spec_file(KERNEL_NAME, prefix).write_text(json.dumps(spec))
    proc = run(readme_papermill(notebook, out), prefix / "share" / "jupyter")
    assert proc.returncode == 0 and WARNING in proc.stderr, proc.stderr[-3000:]


def test_an_unregistered_kernel_is_named_with_the_fix(tmp_path, capsys):
    assert kernel.main(["no-such-kernel", "--prefix", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert str(kernel.spec_file("no-such-kernel", tmp_path)) in err and "make kernel" in err
