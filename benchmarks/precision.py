"""Does bf16 autocast change the results? The same grid trained in fp32 and in bf16, run by run.

``precision: auto`` trains with bf16 autocast where the hardware has bf16 (GPUs, and CPUs with
AVX512-BF16 or AMX). This benchmark is the evidence for keeping that on the CPU: it runs a grid
(default ``params/cpu.yaml``) twice through the grid runner, once with ``--set precision=fp32``
and once with ``--set precision=bf16`` (same seeds, same examples, same initial weights), and
compares the two runs of every config against the spread between seeds:

* ``|bf16 - fp32|`` of test macro-F1 and accuracy for each same-seed pair (the precision effect)
* ``|seed_i - seed_j|`` within each dataset x method cell, per precision (the seed effect)
* summed wall, train and evaluation seconds per precision, and their ratios.

Complete runs are reused (the runs folders are ordinary grid folders), so a rerun only trains
what is missing; point ``--fp32-runs`` at an existing ``runs/`` of the same grid to reuse it.

    PYTHONPATH=src python benchmarks/precision.py                   # cpu grid, ~15 min on 2 cores

Writes ``<out>/precision_<device>.json`` and prints a short table.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from helpers.grid.runner import run_grid
from helpers.grid.spec import load_grid
from helpers.report import load
from helpers.run import environment
from helpers.run.device import cpu_has_native_bf16, pick_device
from helpers.run.store import RunStore

PROJECT_ROOT = Path(__file__).resolve().parents[1]
PAIR_KEYS = ["model", "dataset", "method", "seed"]
SCORES = ["macro_f1", "accuracy"]


def runs_of(runs_dir: Path, precision: str, run_ids: set[str]) -> pd.DataFrame:
    summary = load.run_summary(RunStore(runs_dir))
    summary = summary[summary["run_id"].isin(run_ids)]
    wrong = summary[summary["precision"] != precision]
    if len(wrong):
        raise SystemExit(f"{runs_dir}: runs {list(wrong['run_id'])} trained in "
                         f"{sorted(set(wrong['precision']))}, not {precision}.")
    return summary


def seed_spread(summary: pd.DataFrame, metric: str) -> list[float]:
    """|seed_i - seed_j| for every pair of seeds within each model x dataset x method cell."""
    out = []
    for _, cell in summary.groupby(["model", "dataset", "method"]):
        out += [abs(x - y) for x, y in itertools.combinations(cell[metric].tolist(), 2)]
    return out


def compare(fp32: pd.DataFrame, bf16: pd.DataFrame) -> dict[str, Any]:
    pairs = fp32.merge(bf16, on=PAIR_KEYS, suffixes=("_fp32", "_bf16"))
    if pairs.empty:
        raise SystemExit("No config was trained in both precisions: nothing to compare.")
    out: dict[str, Any] = {"pairs": len(pairs), "metrics": {}, "time": {}}
    for m in SCORES:
        delta = (pairs[f"{m}_bf16"] - pairs[f"{m}_fp32"]).abs()
        seeds = {p: seed_spread(s, m) for p, s in (("fp32", fp32), ("bf16", bf16))}
        out["metrics"][m] = {
            "precision_effect_mean": float(delta.mean()),
            "precision_effect_max": float(delta.max()),
            "identical_pairs": int((delta == 0).sum()),
            **{f"seed_effect_mean_{p}": (sum(v) / len(v) if v else None)
               for p, v in seeds.items()},
            **{f"seed_effect_max_{p}": (max(v) if v else None) for p, v in seeds.items()},
        }
    for col, name in (("wall_time_s", "wall_s"), ("train_time_s", "train_s"),
                      ("eval_time_s", "eval_s")):
        a, b = float(pairs[f"{col}_fp32"].sum()), float(pairs[f"{col}_bf16"].sum())
        out["time"][name] = {"fp32": a, "bf16": b, "speedup": a / b if b else None}
    cols = [*PAIR_KEYS, *(f"{m}_{p}" for m in SCORES for p in ("fp32", "bf16")),
            "best_epoch_fp32", "best_epoch_bf16", "wall_time_s_fp32", "wall_time_s_bf16"]
    out["runs"] = pairs[cols].to_dict(orient="records")
    return out


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.4f}"


def table(res: dict[str, Any]) -> str:
    lines = [f"{res['pairs']} same-seed pairs (fp32 vs bf16)",
             f"{'test metric':<10} {'|bf16-fp32| mean':>17} {'max':>7} {'identical':>9} "
             f"{'|seed diff| fp32':>17} {'bf16':>7}"]
    for m, v in res["metrics"].items():
        lines.append(f"{m:<10} {_fmt(v['precision_effect_mean']):>17} "
                     f"{_fmt(v['precision_effect_max']):>7} {v['identical_pairs']:>9} "
                     f"{_fmt(v['seed_effect_mean_fp32']):>17} "
                     f"{_fmt(v['seed_effect_mean_bf16']):>7}")
    for col, v in res["time"].items():
        if v["speedup"]:
            lines.append(f"sum {col:<7} fp32 {v['fp32']:7.0f} s   bf16 {v['bf16']:7.0f} s   "
                         f"{v['speedup']:.2f}x")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--grid", default=str(PROJECT_ROOT / "params" / "cpu.yaml"))
    ap.add_argument("--fp32-runs", default=str(PROJECT_ROOT / "build" / "precision" / "fp32"))
    ap.add_argument("--bf16-runs", default=str(PROJECT_ROOT / "build" / "precision" / "bf16"))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--filter", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--out", default=str(PROJECT_ROOT / "benchmarks" / "results"))
    args = ap.parse_args(argv)

    device = pick_device()
    if device.type == "cpu" and not cpu_has_native_bf16():
        print("note: this CPU has no native bf16 (AVX512-BF16/AMX); `auto` keeps fp32 here, "
              "and bf16 runs are emulated (slow).", file=sys.stderr)
    result: dict[str, Any] = {
        "benchmark": "precision", "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "device": device.type, "grid": os.path.relpath(args.grid, PROJECT_ROOT),
        "filter": args.filter, "workers": args.workers,
        "machine": {"cpu": platform.processor() or platform.machine(),
                    "cpu_count": os.cpu_count(), "native_bf16": cpu_has_native_bf16(),
                    "gpu": torch.cuda.get_device_name() if device.type == "cuda" else None},
        "versions": environment.package_versions(("torch", "transformers", "adapters", "peft")),
        "grid_wall_s": {},
    }
    frames = {}
    for precision, runs_dir in (("fp32", args.fp32_runs), ("bf16", args.bf16_runs)):
        grid = load_grid(args.grid, overrides={"precision": precision}, runs_dir=runs_dir)
        grid = grid.select(args.filter)
        t = time.perf_counter()
        summary = run_grid(grid, workers=args.workers, progress=False)
        result["grid_wall_s"][precision] = {"seconds": time.perf_counter() - t,
                                            "trained": len(summary.completed),
                                            "reused": len(summary.skipped)}
        if not summary.ok:
            raise SystemExit(f"{precision} grid failed: see {runs_dir}/.logs")
        frames[precision] = runs_of(Path(runs_dir), precision, {r.run_id for r in grid.runs})
    result.update(compare(frames["fp32"], frames["bf16"]))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"precision_{device.type}.json"
    path.write_text(json.dumps(result, indent=1, default=str) + "\n")
    print(table(result))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
