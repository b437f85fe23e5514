"""The throughput benchmark runs end to end on a tiny budget and writes a well-formed file
(no timing assertions: figures depend on the machine and its load)."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def load_benchmark(name: str):
    path = PROJECT_ROOT / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_throughput_quick_writes_results(tmp_path, real_data_dir, capsys):
    bench = load_benchmark("throughput")
    rc = bench.main(["--quick", "--device", "cpu", "--dataset", "acl_sup",
                     "--data-dir", str(real_data_dir), "--out", str(tmp_path)])
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
    # both start from the same weights and see the same examples: same loss within noise
    assert abs(a["validation_loss"] - b["validation_loss"]) < 0.05
    assert "samp/s" in capsys.readouterr().out
