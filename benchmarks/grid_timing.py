"""Summarise one timed grid execution (benchmarks/gpu_grid.sh) into ``grid_<device>.json``.

What a grid's wall time is made of, from what the runs themselves wrote: per run its
papermill wall time (its latest ``runs/.logs/<run_id>.<attempt>.log``: start stamp and
"complete after N s"), its
own ``metrics.json`` (train/eval time, samples/s, where the time went) and its resolved
``config.json``; for the grid the measured wall time of the grid command, the runs completed,
failed and not run, the aggregate training samples/s, and the GPU utilisation samples that
``nvidia-smi`` logged meanwhile (CSV: timestamp, utilization.gpu, memory.used).

    python benchmarks/grid_timing.py --grid params/full.yaml --runs-dir DIR --grid-seconds S \\
        [--util util.csv] [--analysis-seconds S] [--log make.log] --out DIR
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from helpers.grid.spec import load_grid
from helpers.grid.status import run_state
from helpers.run.records import read_json
from helpers.run.store import RunStore


def run_rows(store: RunStore, run_ids: list[str]) -> list[dict[str, Any]]:
    """One row per run of the grid: state, identity, papermill wall time, own timings."""
    rows = []
    for run_id in run_ids:
        folder = store.path(run_id)
        row: dict[str, Any] = {"run_id": run_id, "state": run_state(store, run_id)}
        logs = store.attempt_logs(run_id)  # the latest attempt's papermill log
        row["attempts"] = len(logs)
        if logs:
            text = logs[-1].read_text(errors="replace")
            m = re.search(r"at (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)", text)
            row["started"] = m.group(1) if m else None
            m = re.search(r"# (?:complete|FAILED) after ([\d.]+)s", text)
            row["papermill_s"] = float(m.group(1)) if m else None
        if row["state"] == "complete":
            config = read_json(folder / "config.json")
            metrics = read_json(folder / "metrics.json")
            env = read_json(folder / "env.json")
            row.update({k: config.get(k) for k in ("model", "dataset", "method", "seed",
                                                   "pad_to_multiple_of", "torch_compile")})
            row.update(precision=env.get("precision"), device_name=env.get("device_name"),
                       torch_threads=env.get("torch_threads"))
            epochs = metrics.get("num_epochs") or 1
            row.update({
                "wall_time_s": metrics.get("wall_time_s"),
                "train_time_s": metrics.get("train_time_s"),
                "train_samples": metrics.get("num_train_samples", 0) * epochs,
                "train_samples_per_s": metrics.get("train_samples_per_s"),
                "eval_samples": sum((metrics.get("num_eval_samples") or {}).values()) * epochs,
                "timings": metrics.get("timings"),
                "test_macro_f1": (metrics.get("test") or {}).get("macro_f1"),
            })
        elif row["state"] == "failed":
            failure = store.read_failure(run_id) or {}
            row["error"] = f"{failure.get('ename')}: {str(failure.get('evalue'))[:300]}"
        rows.append(row)
    return rows


def utilisation(path: Path | None) -> dict[str, Any] | None:
    """nvidia-smi's samples (one per interval): summary and the raw series."""
    if path is None or not path.is_file():
        return None
    util, mem = [], []
    with path.open() as fh:
        for rec in csv.reader(fh):
            try:
                util.append(float(rec[1]))
                mem.append(float(rec[2]))
            except (IndexError, ValueError):
                continue
    if not util:
        return {"samples": 0}
    q = statistics.quantiles(util, n=10) if len(util) > 1 else [util[0]] * 9
    return {"samples": len(util), "mean_pct": statistics.fmean(util),
            "median_pct": statistics.median(util), "p10_pct": q[0], "p90_pct": q[-1],
            "max_memory_used_mib": max(mem), "utilization_pct": util, "memory_used_mib": mem}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--grid", default="params/full.yaml")
    ap.add_argument("--runs-dir", required=True)
    ap.add_argument("--grid-seconds", type=float, required=True, help="measured wall time")
    ap.add_argument("--grid-calls", default=None,
                    help="comma list: the grid's wall time in each call, when it was resumed")
    ap.add_argument("--analysis-seconds", type=float, default=None)
    ap.add_argument("--total-seconds", type=float, default=None, help="the whole script")
    ap.add_argument("--setup", default="{}", help="JSON: what the script measured before")
    ap.add_argument("--util", default=None, help="nvidia-smi CSV")
    ap.add_argument("--runs-per-device", default=None)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--note", default="")
    ap.add_argument("--out", default="benchmarks/results")
    ap.add_argument("--set", action="append", default=[], dest="overrides",
                    help="the --set overrides the grid ran with (KEY=VALUE)")
    ap.add_argument("--filter", action="append", default=[])
    args = ap.parse_args(argv)

    from helpers.grid.spec import parse_value

    overrides = dict((k, parse_value(v)) for k, v in (o.split("=", 1) for o in args.overrides))
    grid = load_grid(args.grid, overrides=overrides, runs_dir=args.runs_dir).select(args.filter)
    rows = run_rows(grid.store, [r.run_id for r in grid.runs])
    done = [r for r in rows if r["state"] == "complete"]
    samples = sum(r.get("train_samples") or 0 for r in done)
    per_run = [r["papermill_s"] for r in done if r.get("papermill_s")]
    import torch

    result = {
        "benchmark": "grid", "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "grid": args.grid, "overrides": overrides, "filters": args.filter,
        "note": args.note,
        "device": args.device,
        "gpu": (torch.cuda.get_device_name(0) if torch.cuda.is_available() else None),
        "cpu_count": os.cpu_count(), "python": platform.python_version(),
        "torch": torch.__version__,
        "runs_per_device": args.runs_per_device,
        "hf_home": os.environ.get("HF_HOME"),
        "setup_s": json.loads(args.setup),
        "grid_wall_s": args.grid_seconds, "grid_wall_min": args.grid_seconds / 60,
        "grid_wall_s_per_call": [float(x) for x in args.grid_calls.split(",")]
        if args.grid_calls else [args.grid_seconds],
        "analysis_s": args.analysis_seconds, "total_s": args.total_seconds,
        "runs": len(rows), "completed": len(done),
        "failed": sum(r["state"] == "failed" for r in rows),
        "not_run": sum(r["state"] in ("pending", "running") for r in rows),
        "train_samples": samples,
        "aggregate_train_samples_per_s": samples / args.grid_seconds if args.grid_seconds else None,
        "run_papermill_s": {"mean": statistics.fmean(per_run), "max": max(per_run),
                            "sum": sum(per_run)} if per_run else None,
        "gpu_utilisation": utilisation(Path(args.util) if args.util else None),
        "per_run": rows,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"grid_{args.device}.json"
    path.write_text(json.dumps(result, indent=1, default=str))
    util = result["gpu_utilisation"] or {}
    print(f"{path}: {result['completed']}/{result['runs']} runs complete, "
          f"{result['failed']} failed, {result['not_run']} not run; grid "
          f"{args.grid_seconds:.0f} s ({args.grid_seconds / 60:.1f} min), "
          f"{result['aggregate_train_samples_per_s'] or 0:.0f} train samples/s"
          + (f", GPU util mean {util['mean_pct']:.0f}%" if util.get("mean_pct") is not None
             else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
