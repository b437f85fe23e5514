"""`python -m helpers report` never leaves a build that looks current but is not: it builds in
a folder of its own and swaps it in on success (issue 20, case 8); its path arguments follow
the command line's rule (helpers.settings.cli_path)."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.cli import main
from helpers.settings import PROJECT_ROOT


def old_build(folder: Path) -> dict[str, bytes]:
    """A previous build: its notebook, a table and a figure; returns their contents."""
    (folder / "tables").mkdir(parents=True)
    (folder / "figures").mkdir()
    files = {"analysis.ipynb": b'{"old": true}', "tables/table1.csv": b"a\n1\n",
             "figures/figure1.png": b"\x89PNG old"}
    for name, content in files.items():
        (folder / name).write_bytes(content)
    return files


def contents(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*")
            if p.is_file()}


@pytest.mark.slow
def test_a_failed_report_leaves_the_previous_build_as_it_was(tmp_path, capsys):
    """It replaced analysis.ipynb with the failed notebook, beside the old tables/figures."""
    build = tmp_path / "build"
    before = old_build(build)
    runs = tmp_path / "runs"
    runs.mkdir()  # no complete run in it: the analysis notebook fails
    assert main(["report", "--runs-dir", str(runs), "--output-dir", str(build),
                 "--no-render"]) == 1
    err = capsys.readouterr().err
    assert contents(build) == before
    failed = tmp_path / "build.failed"
    assert (failed / "analysis.ipynb").is_file()
    assert "no complete runs" in (failed / "analysis.ipynb").read_text().lower()
    assert str(failed) in err and f"{build} is unchanged" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["build", "build.failed", "runs"]


def test_a_missing_runs_folder_is_an_error_before_the_notebook(tmp_path, capsys,
                                                               monkeypatch):
    build = tmp_path / "build"
    before = old_build(build)
    assert main(["report", "--runs-dir", str(tmp_path / "missing"), "--output-dir",
                 str(build)]) == 2
    assert f"Runs folder {tmp_path / 'missing'} does not exist" in capsys.readouterr().err
    assert contents(build) == before
    monkeypatch.chdir(tmp_path)
    assert main(["report", "--runs-dir", "nope", "--output-dir", "build"]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'nope'} (the current directory)" in err, err
    assert f"{PROJECT_ROOT / 'nope'} (the project root)" in err, err
    assert main(["report", "--runs-dir", str(tmp_path), "--grid", "nope.yaml"]) == 2
    assert "Grid file nope.yaml does not exist" in capsys.readouterr().err


def test_a_folder_that_is_not_a_build_is_never_replaced(tmp_path, capsys):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "todo.txt").write_text("mine")
    runs = tmp_path / "runs"
    runs.mkdir()
    assert main(["report", "--runs-dir", str(runs), "--output-dir", str(notes)]) == 2
    assert "not a report build" in capsys.readouterr().err
    assert contents(notes) == {"todo.txt": b"mine"}
    assert main(["report", "--runs-dir", str(runs), "--output-dir", str(tmp_path)]) == 2
    assert "holds the runs folder" in capsys.readouterr().err
