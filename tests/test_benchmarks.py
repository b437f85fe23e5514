"""The benchmarks run end to end on tiny budgets and write well-formed results files
(no timing assertions: figures depend on the machine and its load)."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def load_benchmark(name: str):
    path = PROJECT_ROOT / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_throughput_quick_writes_results(tmp_path, real_data_dir, capsys):
    bench = load_benchmark("throughput")
    rc = bench.main(["--quick", "--device", "cpu", "--dataset", "acl_sup", "--passes", "2",
                     "--projection", "--data-dir", str(real_data_dir), "--out", str(tmp_path)])
    assert rc == 0
    result = json.loads((tmp_path / "throughput_cpu.json").read_text())
    assert result["benchmark"] == "throughput" and result["device"] == "cpu"
    assert result["matmul_peak_gflops"]["fp32"] > 0
    assert {"cpu", "cpu_count", "loadavg", "torch_threads"} <= set(result["machine"])
    assert result["versions"]["torch"]
    (row,) = result["rows"]
    assert (row["model"], row["dataset"], row["method"]) == ("minilm", "acl_sup", "full")
    a, b = row["pipelines"]["a"], row["pipelines"]["b"]
    # same examples, same number of them; (a) pads everything to 256, (b) to the batch max
    assert a["timed_samples"] == b["timed_samples"] == row["train_samples"]
    assert a["padding_fraction"] > b["padding_fraction"] >= 0
    assert a["mean_real_tokens"] == b["mean_real_tokens"]
    for p in (a, b):
        assert p["samples_per_s"] > 0 and p["model_gflops_per_s"] > 0
        assert 0 < p["share_of_fp32_peak"]
        assert math.isfinite(p["final_train_loss"]) and math.isfinite(p["validation_loss"])
    assert row["ratios_vs_a"]["b"] == b["samples_per_s"] / a["samples_per_s"]
    # two timed passes over the same batches; the figures are the last (warm) pass's
    for p in (a, b):
        assert len(p["pass_train_s"]) == 2 and p["train_time_s"] == p["pass_train_s"][-1]
        assert p["cold_extra_s"] == p["pass_train_s"][0] - p["pass_train_s"][1]
        phases = p["step_phases_ms"]
        assert list(phases) == ["data", "forward", "backward", "clip", "optimizer"]
        assert all(v > 0 for v in phases.values())
    proj = result["projection"]
    assert proj["num_runs"] == 0 and len(proj["missing"]) == 15  # MiniLM is not in the grid
    assert proj["fixed_per_run"]["cold_extra_s"] == max(b["cold_extra_s"], 0.0)
    # both start from the same weights and see the same examples: same loss within noise
    assert abs(a["validation_loss"] - b["validation_loss"]) < 0.05
    assert "samp/s" in capsys.readouterr().out


def test_precision_benchmark_pairs_runs_and_reuses_them(tmp_path, real_data_dir, monkeypatch,
                                                       capsys):
    """One smoke config trained in fp32 and in bf16 through the grid runner: one pair, each run
    in the precision it claims; a second call trains nothing and finds the same pair."""
    monkeypatch.setenv("NLPDL_DATA_DIR", str(real_data_dir))
    bench = load_benchmark("precision")
    argv = ["--grid", str(PROJECT_ROOT / "params" / "smoke.yaml"), "--filter", "method=full",
            "--fp32-runs", str(tmp_path / "fp32"), "--bf16-runs", str(tmp_path / "bf16"),
            "--out", str(tmp_path)]
    assert bench.main(argv) == 0
    result = json.loads((tmp_path / f"precision_{result_device()}.json").read_text())
    assert result["benchmark"] == "precision" and result["pairs"] == 1
    assert result["grid_wall_s"]["bf16"]["trained"] == 1
    (run,) = result["runs"]
    assert (run["dataset"], run["method"]) == ("restaurant_sup", "full")
    for metric, v in result["metrics"].items():
        assert v["precision_effect_mean"] == abs(run[f"{metric}_bf16"] - run[f"{metric}_fp32"])
        assert v["seed_effect_mean_fp32"] is None  # one seed: no seed spread to compare with
    for v in result["time"].values():
        assert v["fp32"] > 0 and v["bf16"] > 0
    assert "same-seed pairs" in capsys.readouterr().out
    assert bench.main(argv) == 0  # complete runs are reused
    again = json.loads((tmp_path / f"precision_{result_device()}.json").read_text())
    assert again["grid_wall_s"]["fp32"]["reused"] == again["grid_wall_s"]["bf16"]["reused"] == 1
    assert again["runs"] == result["runs"]


def result_device() -> str:
    """The device the benchmark names its file after (the one a run would pick)."""
    from helpers.run.device import pick_device

    return pick_device().type


def test_step_overhead_writes_results(tmp_path, capsys):
    """Narrow copies of the real architectures train real steps; adapters and LoRA change the
    operators a step issues, autocast adds its casts."""
    bench = load_benchmark("step_overhead")
    assert bench.main(["--device", "cpu", "--model", "bert-base-uncased", "--steps", "2",
                       "--warmup", "1", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "step_overhead_cpu.json").read_text())
    rows = {(r["method"], r["precision"]): r for r in result["rows"]}
    assert set(rows) == {(m, p) for m in ("full", "adapter", "lora") for p in ("fp32", "bf16")}
    for r in rows.values():
        assert r["step_ms"] > 0 and r["max_samples_per_s"] == 8 / (r["step_ms"] / 1000)
    for method in ("full", "adapter", "lora"):
        assert rows[method, "bf16"]["ops"] > rows[method, "fp32"]["ops"]  # the casts
    assert rows["adapter", "fp32"]["trainable"] < rows["full", "fp32"]["trainable"]
    assert len({rows[m, "fp32"]["ops"] for m in ("full", "adapter", "lora")}) == 3
    assert "max samp/s" in capsys.readouterr().out


@pytest.mark.slow
def test_concurrency_runs_processes_side_by_side(tmp_path, real_data_dir):
    """N real throughput.py processes at once, each with its share of the threads."""
    bench = load_benchmark("concurrency")
    assert bench.main(["--device", "cpu", "--model", "minilm", "--workers", "1,2", "--quick",
                       "--data-dir", str(real_data_dir), "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "concurrency_cpu.json").read_text())
    one, two = result["rows"]
    assert (one["workers"], two["workers"]) == (1, 2)
    assert len(two["samples_per_s_each"]) == 2 and all(r > 0 for r in two["samples_per_s_each"])
    assert two["aggregate_samples_per_s"] == sum(two["samples_per_s_each"])
    assert two["vs_one_process"] == two["aggregate_samples_per_s"] / one["aggregate_samples_per_s"]
    assert two["threads_each"] == max(1, one["threads_each"] // 2)
