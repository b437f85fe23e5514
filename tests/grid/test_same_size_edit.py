"""A data file edited to the same size with its mtime restored (``touch -r``), between two
seeds of one grid (issue 31.2): the second run records the new digest, ``grid plan`` shows the
first ``stale``, and the report refuses to average the two data versions, naming them."""

from __future__ import annotations

import os
import shutil

import pytest

from helpers.cli import main
from helpers.grid.spec import load_grid
from helpers.report.load import AnalysisError, grid_run_ids, require_runs, run_summary
from helpers.run import provenance, training
from helpers.run.config import TrainConfig
from helpers.run.store import RunStore

TINY = {"max_train_samples": 16, "max_eval_samples": 8, "num_train_epochs": 1,
        "max_length": 32, "per_device_train_batch_size": 8, "logging_steps": 1,
        "torch_threads": 1, "dataset": "restaurant_sup", "method": "full"}


def test_a_touch_r_edit_is_recorded_shown_stale_and_never_averaged(real_data_dir, tiny_bert,
                                                                   tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(real_data_dir / "SemEval14-res", data / "SemEval14-res")
    runs = tmp_path / "runs"
    grid_file = tmp_path / "grid.yaml"
    defaults = ", ".join(f"{k}: {v}" for k, v in
                         {**TINY, "model": tiny_bert, "data_dir": data}.items())
    grid_file.write_text(f"defaults: {{{defaults}}}\nmatrix: {{seed: [1, 2]}}\n")
    grid = load_grid(grid_file, runs_dir=runs)
    one, two = (TrainConfig.from_dict(r.params()) for r in grid.runs)

    first = training.run(one, progress=False, device="cpu")
    train = data / "SemEval14-res" / "train.json"
    st = train.stat()
    text = train.read_text()
    train.write_text(text.replace('"positive"', '"negative"', 1))  # same size, another label
    os.utime(train, ns=(st.st_atime_ns, st.st_mtime_ns))
    second = training.run(two, progress=False, device="cpu")

    recorded = [provenance.read(f)["data_files"]["SemEval14-res/train.json"]
                for f in (first, second)]
    assert recorded[0] != recorded[1] == provenance.file_digest(train)

    capsys.readouterr()
    assert main(["grid", "plan", str(grid_file), "--runs-dir", str(runs)]) == 0
    plan = capsys.readouterr().out
    assert [line.split()[1] for line in plan.splitlines() if first.name in line] == ["stale"]
    assert [line.split()[1] for line in plan.splitlines() if second.name in line] == [
        "complete"]

    summary = run_summary(RunStore(runs), grid_run_ids(grid_file))
    assert len(summary) == 2
    with pytest.raises(AnalysisError, match="trained on different data or model files") as err:
        require_runs(summary, RunStore(runs))
    assert first.name in str(err.value) and second.name in str(err.value)
