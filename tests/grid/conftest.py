"""The grid tests' runs folder: a :class:`RunStore` in the test's own temporary folder."""

from __future__ import annotations

import pytest

from helpers.run.store import RunStore


@pytest.fixture
def store(tmp_path) -> RunStore:
    return RunStore(tmp_path / "runs")
