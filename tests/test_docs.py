"""Every command in the README and docs/ runs as written: shell syntax for all, the CLI's own
parser for `nlpdl-report ...`, make's dry run for `make ...`, and the cheap ones for real."""

from __future__ import annotations

import dataclasses
import re
import shlex
import subprocess

import pytest

from conftest import PROJECT_ROOT
from helpers.cli import build_parser, main
from helpers.run.config import TrainConfig

PAGES = [PROJECT_ROOT / "README.md", *sorted((PROJECT_ROOT / "docs").glob("*.md")),
         PROJECT_ROOT / "ARCHITECTURE.md", PROJECT_ROOT / "benchmarks" / "README.md"]
#: Commands cheap enough to run here (no training): they must exit 0.
CHEAP = (("grid", "plan"), ("grid", "status"), ("data", "info"))


def bash_blocks(page) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", page.read_text(), flags=re.S)


def commands(block: str) -> list[list[str]]:
    """Each command of a block as words: comments dropped, continued lines joined, a leading
    ``VAR=value`` dropped, ``a && b`` split."""
    out = []
    for line in block.replace("\\\n", " ").splitlines():
        for part in line.split("&&"):
            words = shlex.split(part, comments=True)
            while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
                words.pop(0)
            if words:
                out.append(words)
    return out


ALL = [(page.name, words) for page in PAGES for block in bash_blocks(page)
       for words in commands(block)]


def test_the_pages_have_commands():
    assert len(ALL) > 20
    assert (PROJECT_ROOT / "README.md").read_text().count("\n") <= 150


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_shell_syntax(page):
    for block in bash_blocks(page):
        proc = subprocess.run(["bash", "-n"], input=block, capture_output=True, text=True)
        assert proc.returncode == 0, (page.name, block, proc.stderr)


def cli_args(words: list[str]) -> list[str] | None:
    """The arguments of a CLI call (``nlpdl-report ...``, ``python -m helpers ...``)."""
    if words[0].endswith("nlpdl-report"):
        return words[1:]
    if words[0].endswith("python") and words[1:3] == ["-m", "helpers"]:
        return words[3:]
    return None


@pytest.mark.parametrize("page,words", ALL, ids=lambda v: " ".join(v) if isinstance(v, list)
                         else v)
def test_command_as_written(page, words, capsys, request):
    args = cli_args(words)
    if args is not None:
        if "--help" in args:
            return
        try:
            parsed = build_parser().parse_args(args)
        except SystemExit as e:
            pytest.fail(f"{page}: {' '.join(words)} does not parse: {e}")
        assert callable(parsed.func)
        if tuple(args[:2]) in CHEAP:
            if args[0] == "data":
                request.getfixturevalue("real_data_dir")
            assert main(args) == 0, capsys.readouterr()
        return
    tool = words[0].rsplit("/", 1)[-1]
    if tool == "make":
        proc = subprocess.run(["make", "-n", *words[1:]], cwd=PROJECT_ROOT, capture_output=True,
                              text=True)
        assert proc.returncode == 0, (page, words, proc.stderr)
    elif tool == "papermill":
        assert (PROJECT_ROOT / words[words.index("-k") + 2]).is_file()
        fields = {f.name for f in dataclasses.fields(TrainConfig)}
        names = [words[i + 1] for i, w in enumerate(words) if w == "-p"]
        assert names and set(names) <= fields, names
    elif tool == "conda":
        assert (PROJECT_ROOT / words[words.index("-f") + 1]).is_file() if "-f" in words else True
    else:
        assert tool in {"jupyter", "bash", "echo", "PYTHONPATH=src", "python"}, (page, words)
