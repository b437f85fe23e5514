"""Memory accounting: exact parameter counts, measured activations, predicted peaks (offline)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from helpers import memory as M
from helpers.report import gpu_memory
from helpers.run.config import TrainConfig
from helpers.run.models import build_model, count_parameters

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def test_encoder_parameter_counts_are_exact():
    assert M.encoder_parameter_count("bert-base-uncased") == 109_482_240
    assert M.encoder_parameter_count("roberta-base") == 124_645_632


def test_roberta_classifier_counts_per_method():
    """3 labels (restaurant_sup), the training code's default adapter and LoRA settings."""
    assert M.parameter_counts("roberta-base", "full", 3) == {"total": 124_647_939,
                                                             "trainable": 124_647_939}
    assert M.parameter_counts("roberta-base", "adapter", 3)["trainable"] == 2_381_955
    assert M.parameter_counts("roberta-base", "lora", 3)["trainable"] == 887_811


@pytest.mark.parametrize("method", ["full", "adapter", "lora"])
@pytest.mark.parametrize("num_labels", [3, 6])
def test_counts_match_the_training_model(tiny_bert, tiny_roberta, method, num_labels):
    """The meta-device count equals count_parameters of the model training builds on CPU."""
    for path in (tiny_bert, tiny_roberta):
        cfg = TrainConfig(model=str(path), method=method)
        model = build_model(cfg, [f"l{i}" for i in range(num_labels)], random_init=True)
        assert M.parameter_counts(str(path), method, num_labels) == count_parameters(model)


def test_overrides_change_trainable_counts():
    small = M.parameter_counts("bert-base-uncased", "lora", 2, lora_r=4)["trainable"]
    large = M.parameter_counts("bert-base-uncased", "lora", 2, lora_r=16)["trainable"]
    assert large - small == 12 * 2 * 12 * (768 + 768)


def test_saved_bytes_are_affine_in_batch(tiny_bert):
    """Extrapolating from batches 1 and 2 gives exactly the bytes measured at batch 8."""
    for precision in M.PRECISIONS:
        for method in ("full", "lora"):
            model = M.build(str(tiny_bert), method, 3, "cpu")
            direct = M.saved_tensor_bytes(model, 8, 48, precision)["bytes"]
            line = M.measure_activations(str(tiny_bert), method, precision, 8, 48, 3)
            assert line["measured_batches"] == [1, 2]
            assert line["bytes"] == direct


def test_measured_activations_agree_with_the_formula(tiny_bert):
    """fp32 with CUDA kernels: saved bytes within 5% of Korthikanti et al. (fused attention)."""
    for batch, seq in ((8, 64), (4, 128)):
        measured = M.measure_activations(str(tiny_bert), "full", "fp32", batch, seq)["bytes"]
        formula = M.formula_activation_bytes(str(tiny_bert), batch, seq, "fp32", "fused")
        assert measured == pytest.approx(formula, rel=0.05)


def test_counting_saved_bytes_frees_the_graph(tiny_bert):
    """The counting pass must not keep its graph alive (it once leaked every call's activations:
    a saved output held its own grad_fn, a cycle gc cannot see)."""
    import gc
    import weakref

    model = M.build(str(tiny_bert), "full", 3, "cpu")
    outputs = []
    # The pooler's tanh saves its own output for backward: the case that formed the cycle.
    handle = model.bert.pooler.register_forward_hook(
        lambda mod, args, out: outputs.append(weakref.ref(out)))
    M.saved_tensor_bytes(model, 2, 16, "fp32", kernels="native")
    handle.remove()
    gc.collect()
    assert outputs and outputs[0]() is None


def test_formula_reduces_to_the_paper():
    # 16-bit, FFN = 4h: s*b*h*(34 + 5*a*s/h) per layer
    s, b, h, a, n = 256, 8, 768, 12, 12
    assert M.formula_activation_bytes("roberta-base", b, s, "bf16") == \
        n * s * b * h * (34 + 5 * a * s // h)


def test_cuda_kernel_emulation_saves_bool_masks_and_no_attention_matrix(tiny_bert):
    model = M.build(str(tiny_bert), "full", 2, "cpu")
    emulated = M.saved_tensor_bytes(model, 4, 64, "fp32", kernels="cuda")
    native = M.saved_tensor_bytes(model, 4, 64, "fp32", kernels="native")
    assert "bool" in emulated["by_dtype"] and "bool" not in native["by_dtype"]
    assert emulated["bytes"] < native["bytes"]


@pytest.mark.parametrize("method", ["full", "adapter", "lora"])
def test_predicted_peak_matches_live_bytes_of_real_steps(tiny_roberta, method):
    """Real AdamW steps on CPU: the peak of live tensors is within the issue's 10% target.

    Tiny models are the hard case: the backward transient allowance is a large share of their
    peak (it is <2% for base-size models, where the CPU check agrees within 1%)."""
    for precision, (batch, seq) in (("fp32", (8, 64)), ("bf16", (4, 32))):
        pred = M.account(str(tiny_roberta), method, precision, batch, seq, 3, workspace=0)
        model = M.build(str(tiny_roberta), method, 3, "cpu")
        peak = M.measure_peak(model, batch, seq, precision, steps=2)
        assert pred["predicted_peak_bytes"] == pytest.approx(peak, rel=0.10)
        assert pred["gradients_bytes"] == 4 * pred["trainable"]
        assert pred["optimizer_bytes"] == 8 * pred["trainable"]


def test_bad_input_is_rejected_with_the_fix():
    with pytest.raises(M.MemoryAccountingError, match="method='lorra'"):
        M.account("roberta-base", "lorra")
    with pytest.raises(M.MemoryAccountingError, match="pass 'bf16'"):
        M.account("roberta-base", "full", "fp16")
    with pytest.raises(M.MemoryAccountingError, match="limit of 512"):
        M.account("roberta-base", "full", "fp32", 8, 1024, activations=0)


def test_compare_run_uses_the_runs_config(tmp_path, tiny_bert):
    run = tmp_path / "run"
    run.mkdir()
    cfg = TrainConfig(model=str(tiny_bert), dataset="acl_sup", method="lora",
                      per_device_train_batch_size=4, max_length=32).resolved().to_dict()
    (run / "config.json").write_text(json.dumps({**cfg, "run_id": "r1"}))
    params = M.parameter_counts(str(tiny_bert), "lora", 6)
    (run / "memory.json").write_text(json.dumps({
        "parameters": params, "device": "cuda", "device_name": "GPU", "precision": "bf16",
        "peak_cuda_allocated_bytes": 40 * 2**20, "peak_cuda_reserved_bytes": None,
        "peak_rss_bytes": None}))
    out = M.compare_run(run)
    assert out["num_labels"] == 6 and out["precision"] == "bf16" and out["seq"] == 32
    assert out["ratio"] == pytest.approx(out["predicted_peak_bytes"] / (40 * 2**20))
    with pytest.raises(M.MemoryAccountingError, match="not a complete run"):
        M.compare_run(tmp_path)


def test_report_pieces(tiny_bert):
    import matplotlib

    matplotlib.use("Agg")
    rows = [{"model": str(tiny_bert), "method": "full", "precision": "fp32", "batch": 2,
             "seq": 16, "measured_peak_bytes": 16 * 2**20}]
    df = gpu_memory.accounting_frame([str(tiny_bert)], precision="fp32", batch=2, seq=16,
                                     results=rows)
    assert list(df["method"]) == ["full", "adapter", "lora"]
    assert df.loc[0, "measured peak"] == pytest.approx(16 / 1024)
    assert df["gradients"].iloc[0] > 100 * df["gradients"].iloc[2]
    from helpers.report import plots

    fig = plots.memory_components(df)
    assert len(fig.axes) == 1
    model = gpu_memory.ModelMemory(str(tiny_bert), 1.0, {
        m: r.to_dict() for m, r in df.set_index("method").iterrows()})
    assert model.complete
    assert model.state("full") == pytest.approx(df["gradients"].iloc[0]
                                                + df["optimizer states"].iloc[0])


def test_benchmark_quick_writes_results(tmp_path):
    proc = subprocess.run(
        [sys.executable, "benchmarks/memory.py", "--quick", "--device", "cpu",
         "--out", str(tmp_path)], cwd=PROJECT_ROOT, capture_output=True, text=True,
        timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads((tmp_path / "memory_cpu.json").read_text())
    assert doc["device"] == "cpu" and doc["versions"]["torch"] == torch.__version__
    assert {r["method"] for r in doc["rows"]} == {"full", "adapter", "lora"}
    for r in doc["rows"]:
        assert r["predicted_peak_bytes"] > 0 and r["measured_peak_bytes"] > 0
        assert 0.9 < r["ratio"] < 1.1
