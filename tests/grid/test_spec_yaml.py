"""Grid files and ``--set`` values read without YAML 1.1 surprises (issue 31.7): a number that
YAML 1.1 and 1.2 read differently (leading zero: octal; colons: base 60) is an error naming
the key and the fix, never a silent 8 or 64."""

from __future__ import annotations

import pytest

from helpers.cli import main
from helpers.grid.spec import GridError, load_grid, parse_overrides, parse_value


def write(tmp_path, text):
    path = tmp_path / "grid.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("text, named", [
    ("defaults: {model: minilm}\nmatrix: {seed: [010, 011]}\n", "matrix.seed[0]: 010"),
    ("defaults: {model: minilm, max_length: 1:04}\nmatrix: {seed: [1]}\n",
     "defaults.max_length: 1:04"),
    ("defaults: {model: minilm}\nmatrix: {seed: [009]}\n", "matrix.seed[0]: 009"),
])
def test_ambiguous_numbers_in_a_grid_file_are_named(tmp_path, text, named):
    path = write(tmp_path, text)
    with pytest.raises(GridError) as err:
        load_grid(path, runs_dir=tmp_path / "runs")
    message = str(err.value)
    assert str(path) in message and named in message, message
    assert "in quotes for text" in message


def test_leading_zero_says_what_to_write():
    with pytest.raises(GridError, match=r"--set seed=010: 010 is a number with a leading "
                                        r"zero, octal in YAML 1\.1 \(010 is 8\).*write 10"):
        parse_overrides(["seed=010"])
    with pytest.raises(GridError, match=r"--set max_length=1:04: 1:04 is a base-60 number"):
        parse_overrides(["max_length=1:04"])


@pytest.mark.parametrize("text, value", [
    ("10", 10), ("0", 0), ("0.5", 0.5), ("2e-5", 2e-5), ("'010'", "010"), ("[1, 2]", [1, 2]),
    ("1:04 text", "1:04 text"), ("-3", -3), ("00.5", 0.5),
])
def test_unambiguous_values_read_as_before(text, value):
    assert parse_value(text) == value


def test_cli_set_with_base_60_exits_2_before_any_work(tmp_path, capsys):
    path = write(tmp_path, "defaults: {model: minilm}\nmatrix: {seed: [1]}\n")
    code = main(["grid", "plan", str(path), "--runs-dir", str(tmp_path / "runs"),
                 "--set", "max_length=1:04"])
    assert code == 2
    assert "max_length=1:04" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()
