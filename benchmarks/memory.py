"""Measured training memory vs the accounting in ``helpers.memory``.

GPU (``--device cuda``): the report's three architectures (random init; memory does not depend
on weight values), full FT vs adapter vs LoRA, fp32 and bf16 autocast, at batch 8 x 256 tokens
and two other shapes. Each configuration runs a few real AdamW steps; the measured peak is
``torch.cuda.max_memory_allocated`` after a reset. The prediction uses activations measured on
CPU with CUDA kernels emulated (what ``compare_run`` and the report do offline); the bytes saved
for backward on the GPU itself are recorded beside it.

CPU (``--device cpu``, the default without CUDA): the same for small models (tiny BERT and
RoBERTa, MiniLM); "measured" is the peak of live tensor bytes over the same steps
(``helpers.memory.LiveTensorBytes``), and saved activations are compared with the formula.

    PYTHONPATH=src python benchmarks/memory.py --device cuda --out benchmarks/results/

Writes ``<out>/memory_<device>.json`` after every row (a timeout still leaves results) and
prints a table. Needs no data files and no network.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

from helpers import memory as M
from helpers.run.config import METHODS

MIB = 2**20
CUDA_SHAPES = "8x256,32x128,8x512"
CPU_SHAPES = "8x64,2x128"
NUM_LABELS = 3


def parse_shapes(text: str) -> list[tuple[int, int]]:
    try:
        shapes = [tuple(int(v) for v in s.lower().split("x")) for s in text.split(",") if s]
        assert shapes and all(len(s) == 2 and min(s) > 0 for s in shapes)
    except (ValueError, AssertionError):
        raise SystemExit(f"--shapes {text!r}: expected e.g. '8x256,32x128' "
                         "(batch x sequence length).") from None
    return shapes  # type: ignore[return-value]


def versions() -> dict[str, str | None]:
    from helpers.run.environment import package_versions

    names = ("torch", "transformers", "adapters", "peft")
    return {"python": platform.python_version(), **package_versions(names),
            "cuda": torch.version.cuda}


def device_info(device: str) -> dict:
    if device == "cuda":
        major, minor = torch.cuda.get_device_capability()
        return {"device": "cuda", "device_name": torch.cuda.get_device_name(),
                "capability": f"{major}.{minor}",
                "total_memory_bytes": torch.cuda.get_device_properties(0).total_memory}
    return {"device": "cpu", "device_name": platform.processor() or platform.machine(),
            "threads": torch.get_num_threads()}


def default_models(device: str, quick: bool, workdir: Path) -> list[str]:
    if device == "cuda":
        return ["bert-base-uncased"] if quick else list(M.REPORT_MODELS)
    from helpers.testing.tiny import make_tiny_model

    tiny = [str(make_tiny_model(a, workdir / f"tiny_{a}")) for a in ("bert", "roberta")]
    return tiny[:1] if quick else [*tiny, "minilm"]


def free(device: str) -> None:
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()


def measure_row(model_name: str, model: torch.nn.Module, method: str, precision: str,
                batch: int, seq: int, device: str, steps: int) -> dict:
    """Measured peak and saved bytes on ``device`` for one configuration."""
    row: dict = {"model": model_name, "method": method, "precision": precision,
                 "batch": batch, "seq": seq}
    free(device)
    if device == "cuda":
        row["baseline_bytes"] = torch.cuda.memory_allocated()
    try:
        saved = M.saved_tensor_bytes(model, batch, seq, precision, kernels="native")
        row["saved_bytes_device"] = saved["bytes"]
        row["saved_by_dtype_device"] = saved["by_dtype"]
        free(device)
        row["measured_peak_bytes"] = M.measure_peak(model, batch, seq, precision, steps)
    except torch.cuda.OutOfMemoryError as e:
        row["error"] = f"OutOfMemoryError: {str(e).splitlines()[0][:200]}"
    for p in model.parameters():
        p.grad = None
    free(device)
    return row


def predict_row(row: dict, device: str, quick: bool, source: str = "cpu") -> None:
    """Add the accounting's prediction (activations measured on CPU, CUDA kernels emulated;
    ``source="device"``: the saved bytes measured on the benchmark device instead)."""
    name, method, prec, b, s = (row[k] for k in ("model", "method", "precision", "batch", "seq"))
    if source == "device":
        acts = {"bytes": row["saved_bytes_device"], "measured_batches": [b]}
    else:
        acts = M.measure_activations(name, method, prec, b, s, NUM_LABELS, "cpu", "cuda")
    a = M.account(name, method, prec, b, s, NUM_LABELS, acts["bytes"],
                  workspace=None if device == "cuda" else 0)
    row.update({k: a[k] for k in ("parameters", "trainable", "trainable_share", "weights_bytes",
                                  "gradients_bytes", "optimizer_bytes", "transient_bytes",
                                  "workspace_bytes", "predicted_peak_bytes")})
    row["activations_bytes"] = acts["bytes"]
    row["activations_source"] = (
        f"{device} saved_tensors_hooks, native kernels" if source == "device" else
        f"cpu saved_tensors_hooks, cuda kernels emulated, batches {acts['measured_batches']}")
    row["formula_fused_bytes"] = M.formula_activation_bytes(name, b, s, prec, "fused")
    row["formula_materialized_bytes"] = M.formula_activation_bytes(name, b, s, prec)
    if device == "cpu" and not quick:
        native = M.measure_activations(name, method, prec, b, s, NUM_LABELS, "cpu", "native",
                                       extrapolate=False)
        row["saved_bytes_cpu_native"] = native["bytes"]
    if row.get("measured_peak_bytes"):
        row["ratio"] = row["predicted_peak_bytes"] / row["measured_peak_bytes"]
    if row.get("saved_bytes_device"):
        row["activations_ratio"] = acts["bytes"] / row["saved_bytes_device"]


def print_table(rows: list[dict]) -> None:
    head = (f"{'model':<24} {'method':<7} {'prec':<4} {'shape':>7} {'params':>7} "
            f"{'train%':>6} {'acts':>8} {'saved':>8} {'formula':>8} {'pred':>8} "
            f"{'meas':>8} {'ratio':>6}")
    print(head)
    print("-" * len(head))
    def mib(r: dict, k: str) -> str:
        return f"{r[k] / MIB:8.1f}" if r.get(k) is not None else f"{'-':>8}"

    for r in rows:
        print(f"{Path(r['model']).name[:24]:<24} {r['method']:<7} {r['precision']:<4} "
              f"{r['batch']:>3}x{r['seq']:<3} {r.get('parameters', 0) / 1e6:7.1f} "
              f"{100 * r.get('trainable_share', 0):6.2f} {mib(r, 'activations_bytes')} "
              f"{mib(r, 'saved_bytes_device')} {mib(r, 'formula_fused_bytes')} "
              f"{mib(r, 'predicted_peak_bytes')} {mib(r, 'measured_peak_bytes')} "
              f"{r.get('ratio', float('nan')):6.3f}" + (f"  {r['error']}" if "error" in r else ""))
    print("(MiB; acts = CPU-measured saved bytes used by the prediction; saved = measured on the "
          "benchmark device; formula = Korthikanti et al. with fused attention, layers only)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", choices=("cuda", "cpu"),
                    default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--out", default="benchmarks/results", help="folder for memory_<device>.json")
    ap.add_argument("--models", help="comma-separated model names or folders")
    ap.add_argument("--methods", default=",".join(m for m, v in METHODS.items() if v.memory),
                    help="methods the accounting covers (Method.memory), comma-separated")
    ap.add_argument("--precisions", default="fp32,bf16")
    ap.add_argument("--shapes", help=f"batch x seq list (cuda: {CUDA_SHAPES}; cpu: {CPU_SHAPES})")
    ap.add_argument("--steps", type=int, default=3, help="training steps per configuration")
    ap.add_argument("--quick", action="store_true", help="one small model, one shape, 2 steps")
    ap.add_argument("--activations", choices=("cpu", "device"), default="cpu",
                    help="activations for the prediction: measured on CPU with CUDA kernels "
                         "emulated (as offline predictions do), or on the benchmark device")
    args = ap.parse_args(argv)

    device = args.device
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda but torch.cuda.is_available() is False.")
    methods = [m for m in args.methods.split(",") if m]
    precisions = [p for p in args.precisions.split(",") if p]
    for m in methods:
        M.check_inputs(m)
    for p in precisions:
        M.check_inputs("full", p)
    shapes = parse_shapes(args.shapes or ("4x32" if args.quick else
                                          CUDA_SHAPES if device == "cuda" else CPU_SHAPES))
    steps = 2 if args.quick else args.steps
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    out_file = out_dir / f"memory_{device}.json"

    with tempfile.TemporaryDirectory() as tmp:
        models = (args.models.split(",") if args.models
                  else default_models(device, args.quick, Path(tmp)))
        doc = {"benchmark": "memory", "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
               **device_info(device), "versions": versions(), "steps": steps,
               "num_labels": NUM_LABELS, "optimizer": "torch.optim.AdamW(fused=True)",
               "measured": ("torch.cuda.max_memory_allocated after reset_peak_memory_stats"
                            if device == "cuda" else
                            "peak live tensor bytes (helpers.memory.LiveTensorBytes)"),
               "rows": []}
        if device == "cuda":  # cuBLAS workspace exists before any configuration is measured
            x = torch.ones(64, 64, device="cuda")
            (x @ x).sum().item()
            doc["allocated_after_warmup_bytes"] = torch.cuda.memory_allocated()
        start = time.time()
        for name in models:
            for method in methods:
                model = M.build(name, method, NUM_LABELS, device)
                for precision in precisions:
                    for batch, seq in shapes:
                        row = measure_row(name, model, method, precision, batch, seq, device,
                                          steps)
                        doc["rows"].append(row)
                        print(f"[{time.time() - start:6.1f}s] measured {Path(name).name} "
                              f"{method} {precision} {batch}x{seq}", flush=True)
                del model
                free(device)
                out_file.write_text(json.dumps(doc, indent=1))
        for row in doc["rows"]:
            if "error" not in row:
                predict_row(row, device, args.quick, args.activations)
            out_file.write_text(json.dumps(doc, indent=1))
        print(f"[{time.time() - start:6.1f}s] predictions done", flush=True)
        M.clear_caches()
        if not args.models and device == "cpu":  # temporary folders: keep names readable
            for row in doc["rows"]:
                row["model"] = "tiny-" + Path(row["model"]).name.removeprefix("tiny_") \
                    if "tiny_" in row["model"] else row["model"]
        out_file.write_text(json.dumps(doc, indent=1))
    print_table(doc["rows"])
    print(f"wrote {out_file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
