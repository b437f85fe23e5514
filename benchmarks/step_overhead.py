"""Per-step framework overhead of a training step, apart from the arithmetic.

On a GPU a batch of 8 short sentences is too little work for bert-base: a step costs what the
host needs to issue it (Python, the dispatcher, autograd, autocast casts, PEFT wrappers,
optimizer), not what the kernels compute. This benchmark measures that host cost on any
machine, GPU or not: the real architectures (``roberta-base`` / ``bert-base-uncased`` configs:
12 layers, the same modules and ops) made *narrow* (hidden size 64, 4 heads, FFN 256), so the
kernels are nearly free and a step's time is its overhead. It trains real steps through
``helpers.run.training.train_one_epoch`` with ``helpers.run.models.apply_method`` and
``helpers.run.step.make_optimizer`` (the code a run uses) and reports per model x method x
precision:

* ``step_ms``: median wall time of a step (forward, backward, grad clip, AdamW, scheduler);
* ``ops``: aten operator calls per step (profiler, nested calls included): what each
  method and autocast add to the work the host must issue;
* ``max_samples_per_s``: batch / step time, the ceiling this host's overhead puts on training
  throughput when the device itself is infinitely fast.

    PYTHONPATH=src python benchmarks/step_overhead.py            # ~1 min on 2 CPU cores

Writes ``<out>/step_overhead_<device>.json`` and prints a short table.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

from helpers.run import environment, models, training
from helpers.run.config import TrainConfig
from helpers.run.step import make_optimizer

NARROW = {"hidden_size": 64, "num_attention_heads": 4, "intermediate_size": 256}
LABELS = ["a", "b", "c"]


def narrow_model(name: str, method: str, device: torch.device) -> torch.nn.Module:
    from transformers import AutoModelForSequenceClassification

    cfg = TrainConfig.from_dict({"model": name, "dataset": "restaurant_sup",
                                 "method": method}).resolved()
    config = models.load_model_config(name, num_labels=len(LABELS), **NARROW)
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_config(config)
    return models.apply_method(model, cfg).to(device), cfg


def batches(config, n: int, batch: int, seq: int) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    low = 5  # clear of the special ids of both vocabularies
    return [{"input_ids": torch.randint(low, config.vocab_size, (batch, seq), generator=g),
             "attention_mask": torch.ones(batch, seq, dtype=torch.long),
             "labels": torch.randint(0, len(LABELS), (batch,), generator=g)}
            for _ in range(n)]


def measure(name: str, method: str, precision: str, device: torch.device, args) -> dict:
    from transformers import get_linear_schedule_with_warmup

    model, cfg = narrow_model(name, method, device)
    opt = make_optimizer(model, cfg)
    total = args.warmup + args.steps + 1
    sched = get_linear_schedule_with_warmup(opt, 0, total)
    data = batches(model.config, total, args.batch, args.seq)
    state = training.TrainState()

    def steps(chunk: list) -> None:
        training.train_one_epoch(model, chunk, opt, sched, state, 1, device, precision,
                                 logging_steps=10**9, progress=False)

    steps(data[:args.warmup])
    times = []
    for b in data[args.warmup:args.warmup + args.steps]:
        t = time.perf_counter()
        steps([b])  # train_one_epoch synchronises a CUDA device at its start and end
        times.append(time.perf_counter() - t)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        steps(data[-1:])
    ops = sum(e.count for e in prof.key_averages() if e.key.startswith("aten::"))
    step_s = statistics.median(times)
    return {"model": name, "method": method, "precision": precision,
            "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "step_ms": 1000 * step_s, "step_ms_min": 1000 * min(times), "ops": ops,
            "max_samples_per_s": args.batch / step_s,
            "learning_rate": cfg.learning_rate}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", choices=("cpu", "cuda"),
                    default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--model", dest="models", action="append",
                    help="repeatable (default: roberta-base, bert-base-uncased)")
    ap.add_argument("--methods", default="full,adapter,lora")
    ap.add_argument("--precisions", default="fp32,bf16")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=32)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    ap.add_argument("--out", default="benchmarks/results")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA GPU visible here; use --device cpu.")
    if args.threads:
        torch.set_num_threads(args.threads)
    names = args.models or ["roberta-base", "bert-base-uncased"]
    rows: list[dict[str, Any]] = []
    print(f"{'model/method':<28} {'prec':<5} {'step ms':>8} {'ops':>6} {'max samp/s':>11}")
    for name in names:
        for method in args.methods.split(","):
            for precision in args.precisions.split(","):
                r = measure(name, method, precision, device, args)
                rows.append(r)
                print(f"{name + '/' + method:<28} {precision:<5} {r['step_ms']:8.1f} "
                      f"{r['ops']:6d} {r['max_samples_per_s']:11.0f}", flush=True)
    result = {
        "benchmark": "step_overhead", "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "device": device.type, "narrow": NARROW,
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "machine": {"cpu": platform.processor() or platform.machine(),
                    "torch_threads": torch.get_num_threads(),
                    "gpu": torch.cuda.get_device_name() if device.type == "cuda" else None},
        "versions": {"python": platform.python_version(),
                     **environment.package_versions(("torch", "transformers", "adapters", "peft"))},
        "rows": rows,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"step_overhead_{device.type}.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
