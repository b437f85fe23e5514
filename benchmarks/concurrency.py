"""Runs-per-device scaling: aggregate throughput of 1, 2, 4... training processes at once.

A batch-8 step of bert-base leaves an H100 mostly idle while the host issues it (see
step_overhead.py), so runs sharing one GPU (``grid run --devices 0 --runs-per-device N``)
add up; this measures by how much, to choose N.
This launches N copies of ``throughput.py --pipelines b`` at the same time, each with its share
of the CPU threads and two passes over the same batches (figures from the warm pass), and
reports each N's aggregate samples/s against N = 1.

    PYTHONPATH=src python benchmarks/concurrency.py --device cuda --random-init \\
        --model bert-base-uncased --workers 1,2,4 --data-dir DIR

``--mps`` runs them as clients of a private CUDA MPS daemon (``helpers.grid.mps``, as ``grid run``
starts one), so that their kernels overlap instead of taking turns on the GPU.

Writes ``<out>/concurrency_<device>[_mps].json`` (one file; the workers' own files stay in a
temporary folder) and prints a short table.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def launch(n: int, args, extra: list[str], tmp: Path, env: dict[str, str]) -> dict:
    threads = max(1, (os.cpu_count() or 1) // n)
    procs = []
    for i in range(n):
        out = tmp / f"n{n}" / f"w{i}"
        cmd = [sys.executable, str(HERE / "throughput.py"), "--device", args.device,
               "--pipelines", "b", "--model", args.model, "--dataset", args.dataset,
               "--methods", "full", "--passes", "2", "--no-projection", "--no-peak",
               "--phase-steps", "0", "--threads",
               str(threads), "--train-samples", str(args.train_samples), "--out", str(out),
               *extra]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                      text=True, env={**os.environ, **env}))
    t = time.perf_counter()
    errors = [p.communicate()[1] for p in procs]
    wall = time.perf_counter() - t
    rates = []
    for i, (p, err) in enumerate(zip(procs, errors, strict=True)):
        if p.returncode != 0:
            raise SystemExit(f"worker {i} of {n} failed:\n{err[-2000:]}")
        res = json.loads((tmp / f"n{n}" / f"w{i}" / f"throughput_{args.device}.json").read_text())
        rates.append(res["rows"][0]["pipelines"]["b"]["samples_per_s"])
    return {"workers": n, "threads_each": threads, "samples_per_s_each": rates,
            "aggregate_samples_per_s": sum(rates), "wall_s": wall}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cuda")
    ap.add_argument("--model", default="bert-base-uncased")
    ap.add_argument("--dataset", default="acl_sup")
    ap.add_argument("--workers", "--runs-per-device", default="1,2,4",
                    help="comma list of process counts, e.g. 1,4,8,12,16 on a GPU")
    ap.add_argument("--train-samples", type=int, default=320)
    ap.add_argument("--random-init", action="store_true")
    ap.add_argument("--tokenizer", default=None)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--quick", action="store_true", help="tiny budget (for the test)")
    ap.add_argument("--mps", action="store_true",
                    help="the processes are clients of a private CUDA MPS daemon")
    ap.add_argument("--out", default=str(HERE / "results"))
    args = ap.parse_args(argv)
    if args.mps and args.device != "cuda":
        ap.error("--mps needs --device cuda")
    extra = (["--random-init"] if args.random_init else []) \
        + (["--tokenizer", args.tokenizer] if args.tokenizer else []) \
        + (["--data-dir", args.data_dir] if args.data_dir else []) \
        + (["--quick"] if args.quick else [])
    rows = []
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        env: dict[str, str] = {}
        if args.mps:
            from helpers.grid.mps import private_daemon

            visible = os.environ.get("CUDA_VISIBLE_DEVICES", "0").split(",")
            env = stack.enter_context(private_daemon(visible))
        for n in (int(x) for x in args.workers.split(",")):
            r = launch(n, args, extra, Path(tmp), env)
            rows.append(r)
            per_process = rows[0]["aggregate_samples_per_s"] / rows[0]["workers"]
            r["vs_one_process"] = r["aggregate_samples_per_s"] / per_process
            print(f"{n} process(es) x {r['threads_each']} threads: "
                  f"{r['aggregate_samples_per_s']:.1f} samples/s together "
                  f"({r['vs_one_process']:.2f}x one process)", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"concurrency_{args.device}{'_mps' if args.mps else ''}.json"
    path.write_text(json.dumps({
        "benchmark": "concurrency", "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "device": args.device, "model": args.model, "dataset": args.dataset,
        "random_init": args.random_init, "train_samples": args.train_samples,
        "quick": args.quick, "mps": args.mps,
        "cpu_count": os.cpu_count(), "rows": rows}, indent=1) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
