"""Training throughput: the original report's pipeline (a) vs ours (b), same model/data/math.

Both pipelines train the same model from the same initial weights on the same examples at the
report's hyperparameters (batch 8, lr 2e-5, AdamW, weight decay 0.01, grad clip 1.0), with the
same loop (``helpers.run.training.train_one_epoch``). They differ only in:

* (a) original: every example padded to ``max_length`` (256), tokenization redone per run
  (timed), no length grouping (random order), fp32, ``torch.optim.AdamW`` defaults as HF
  Trainer's ``adamw_torch`` creates it (for-loop kernel on CPU, foreach on CUDA).
* (b) ours: ``helpers.run.training`` as a run uses it -- dynamic padding, length-grouped batches,
  tokenization cached on disk, fused AdamW, and ``precision: auto`` (bf16 autocast where the
  GPU or CPU has bf16, else fp32; SDPA attention). ``b_fp32`` / ``b_bf16`` are ours with the
  precision fixed; on a CPU where ``auto`` means bf16, ``b_fp32`` runs too by default.

The two are interleaved in chunks of a few steps in one process, so load changes on a shared
machine hit both alike and the ratio stays meaningful. Reported per pipeline: train samples/s,
real (non-pad) tokens/s, padding fraction, model-FLOP rate and its share of a matmul peak
measured at the start (fp32 square matmul; bf16 too), the final training loss and the
validation loss after training (same eval for both: the check that both learn the same),
and where a step's time goes (data, forward, backward, grad clip, optimizer; timed on extra
steps after the timed passes).

Model FLOPs count real tokens only (what a perfect implementation must compute):
``(4 * P_layers + 2 * P_trained) * T  +  12 * n_layers * d_model * sum_i L_i^2  +
6 * P_head * n_seq`` where P_layers = encoder-layer parameters (non-embedding; forward 2 and
input-gradient 2 FLOPs per parameter and token), P_trained = those of them that are trained
(weight gradient 2 more: full fine-tuning gives the usual 6 * P * T; adapters/LoRA count their
own weights), T = real tokens, L_i = real length of sequence i (QK^T and AV: 2 matmuls x 2
FLOPs x L^2 x d forward, x3 with backward), P_head = pooler + classifier (one token per
sequence). Embedding lookups count 0.

GPU (``--device cuda``) also projects the wall time of the report's 75-run grid
(params/full.yaml) on this GPU from measured per-sample train time on each dataset's
real lengths, measured eval time per sample, and a measured fixed per-run overhead.

    PYTHONPATH=src python benchmarks/throughput.py                 # CPU: MiniLM, 2 datasets
    PYTHONPATH=src python benchmarks/throughput.py --device cuda --random-init \\
        --model roberta-base --model bert-base-uncased --data-dir DIR --out DIR

Writes ``<out>/throughput_<device>.json`` and prints a short table.
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from helpers.run import batches, data, models, training
from helpers.run.config import TrainConfig
from helpers.run.device import (
    autocast_context,
    keep_freed_memory,
    resolve_pad_multiple,
    resolve_precision,
)
from helpers.run.methods import METHODS
from helpers.run.step import MAX_GRAD_NORM, evaluate, make_optimizer, to_device

DATASET_SIZES = {"restaurant_sup": (3452, 150, 1120), "acl_sup": (1688, 114, 139),
                 "agnews_sup": (6156, 684, 760)}  # train/validation/test, for the projection
FULL_GRID = {"models": ["roberta-base", "bert-base-uncased", "allenai/scibert_scivocab_uncased"],
             "peft_model": "roberta-base", "peft_methods": ["adapter", "lora"], "seeds": 5,
             "epochs": 3}
#: Offline stand-in tokenizer (git-ignored; carry it to a machine without the Hub cache).
SAVED_TOKENIZER = Path(__file__).resolve().parents[1] / "build" / "bench-tokenizer"
#: Epochs of the report's runs: ``run_train_s`` = tokenize_s + RUN_EPOCHS x full train split.
RUN_EPOCHS = 3
#: SciBERT is BERT-base with a 31k vocabulary: same per-token compute; when it is not measured,
#: its per-sample times are taken from bert-base-uncased.
STAND_INS = {"allenai/scibert_scivocab_uncased": "bert-base-uncased"}


# --------------------------------------------------------------------------- machine


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    flags: set[str] = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and cpu in ("", "x86_64"):
                cpu = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    out = {"cpu": cpu, "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
           "torch_interop_threads": torch.get_num_interop_threads(),
           "amx": any(f.startswith("amx") for f in flags), "avx512_bf16": "avx512_bf16" in flags,
           "loadavg": list(load) if load else None, "platform": platform.platform()}
    if torch.cuda.is_available():
        out["gpu"] = torch.cuda.get_device_name()
    return out


def versions() -> dict[str, str | None]:
    from helpers.run.environment import package_versions

    names = ("torch", "transformers", "datasets", "tokenizers")
    return {"python": platform.python_version(), **package_versions(names),
            "cuda": torch.version.cuda}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(device: torch.device, dtype: torch.dtype, n: int, seconds: float) -> float:
    """GFLOP/s of a square n x n matmul, best of several timed batches."""
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    for _ in range(2):
        a @ b
    sync(device)
    best, deadline = 0.0, time.perf_counter() + seconds
    reps = 1
    while time.perf_counter() < deadline:
        t = time.perf_counter()
        for _ in range(reps):
            a @ b
        sync(device)
        dt = time.perf_counter() - t
        best = max(best, 2 * n**3 * reps / dt / 1e9)
        if dt < 0.05:
            reps *= 2
    return best


# --------------------------------------------------------------------------- FLOPs


def flop_model(model: torch.nn.Module) -> dict[str, int]:
    """Parameter split for the FLOP formula (see module docstring)."""
    cfg = model.config
    layers = layers_trained = head = 0
    for name, p in model.named_parameters():
        if "embeddings" in name:
            continue
        if ".layer." in name:
            layers += p.numel()
            layers_trained += p.numel() if p.requires_grad else 0
        else:  # pooler, classifier (and PEFT head copies)
            head += p.numel()
    return {"layer_params": layers, "layer_params_trained": layers_trained, "head_params": head,
            "n_layers": cfg.num_hidden_layers, "d_model": cfg.hidden_size}


class Counted:
    """Yields ``k`` batches from a shared iterator and counts real tokens and FLOPs."""

    def __init__(self, it, k: int, fm: dict[str, int], acc: dict[str, float]) -> None:
        self.it, self.k, self.fm, self.acc = it, k, fm, acc

    def __len__(self) -> int:
        return self.k

    def __iter__(self):
        fm, acc = self.fm, self.acc
        for _ in range(self.k):
            batch = next(self.it)
            lengths = batch["attention_mask"].sum(1).double()
            tokens = float(lengths.sum())
            acc["tokens"] += tokens
            acc["slots"] += batch["attention_mask"].numel()
            acc["samples"] += len(lengths)
            acc["flops"] += ((4 * fm["layer_params"] + 2 * fm["layer_params_trained"]) * tokens
                             + 12 * fm["n_layers"] * fm["d_model"] * float((lengths**2).sum())
                             + 6 * fm["head_params"] * len(lengths))
            yield batch


ZERO = {"tokens": 0.0, "slots": 0.0, "samples": 0.0, "flops": 0.0}


# --------------------------------------------------------------------------- pipelines


def load_tokenizer(name: str):
    """helpers.run.models.load_tokenizer, plus bare tokenizer folders (no model config.json)."""
    if Path(name).expanduser().is_dir() and not (Path(name).expanduser() / "config.json").exists():
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(str(Path(name).expanduser()))
    return models.load_tokenizer(name)


def tokenizer_for(model_name: str, override: str | None):
    """(tokenizer, name used), fitted to the model's token-type vocabulary."""
    tok, name = _tokenizer_for(model_name, override)
    if getattr(models.load_model_config(model_name), "type_vocab_size", 2) < 2:
        # A WordPiece stand-in for RoBERTa must not emit segment ids: RoBERTa has one type.
        tok.model_input_names = [n for n in tok.model_input_names if n != "token_type_ids"]
    return tok, name


def _tokenizer_for(model_name: str, override: str | None):
    """``--tokenizer`` wins; else the model's own; else (offline, e.g. --random-init on a GPU
    box without the Hub cache) the packaged MiniLM's, which *is* bert-base-uncased's WordPiece
    vocabulary (for RoBERTa a stand-in with similar lengths)."""
    if override:
        return load_tokenizer(override), override
    try:
        return models.load_tokenizer(model_name), model_name
    except models.ModelError as e:
        for stand_in in ("minilm", str(SAVED_TOKENIZER)):
            try:
                return load_tokenizer(stand_in), "bert-base-uncased WordPiece (stand-in)"
            except (models.ModelError, OSError, ValueError):
                continue
        raise SystemExit(f"{e}\nOr pass --tokenizer DIR (a saved tokenizer folder), or save "
                         f"one to {SAVED_TOKENIZER} with: PYTHONPATH=src python "
                         "benchmarks/throughput.py --save-tokenizer") from None



def tokenize_padded(dd, tok, max_length: int):
    """The original report's preprocessing: every split padded to max_length, as tensors."""
    out = {}
    for split in dd:
        ds = dd[split]
        texts, pairs = list(ds["text"]), list(ds["text_pair"])
        args = (texts, pairs) if pairs and pairs[0] is not None else (texts,)
        enc = tok(*args, truncation=True, max_length=max_length, padding="max_length",
                  return_tensors="pt")
        enc = dict(enc)
        enc["labels"] = torch.tensor(list(ds["label"]))
        out[split] = enc
    return out


class TensorRows(torch.utils.data.Dataset):
    def __init__(self, tensors: dict[str, torch.Tensor], idx: list[int]) -> None:
        self.t, self.idx = tensors, idx

    def __len__(self) -> int:
        return len(self.idx)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        j = self.idx[i]
        return {k: v[j] for k, v in self.t.items()}


def pipeline_specs(device: torch.device, names: list[str]) -> dict[str, dict[str, Any]]:
    ours = resolve_precision("auto", device)  # what a run with the defaults uses
    ours_label = "ours: dynamic padding, length grouping, token cache, fused AdamW"
    specs = {
        "a": {"label": "original: pad 256, fp32, no grouping, tokenize per run",
              "padding": "max_length", "precision": "fp32", "optimizer": "foreach"},
        "b": {"label": f"{ours_label}, precision auto = {ours}"
                       + (" autocast" if ours == "bf16" else "")
                       + (", SDPA" if device.type == "cuda" else ""),
              "padding": "dynamic", "precision": ours, "optimizer": "fused"},
        "b_fp32": {"label": "ours in fp32 (no autocast)", "padding": "dynamic",
                   "precision": "fp32", "optimizer": "fused"},
        "b_bf16": {"label": "ours with bf16 autocast", "padding": "dynamic",
                   "precision": "bf16", "optimizer": "fused"},
    }
    unknown = [n for n in names if n not in specs]
    if unknown:
        raise SystemExit(f"--pipelines: unknown {unknown}; choose from {list(specs)}.")
    return {n: specs[n] for n in names}


def make_opt(model, cfg: TrainConfig, kind: str) -> torch.optim.Optimizer:
    """``fused``: ours (helpers.run.training). ``foreach``: the same AdamW with torch's multi-tensor
    kernel, as before our change (HF Trainer's adamw_torch would even use the slower for-loop
    kernel on CPU; foreach keeps the comparison conservative)."""
    if kind == "fused":
        return make_optimizer(model, cfg)
    groups = [{"params": g["params"], "weight_decay": g["weight_decay"]}
              for g in make_optimizer(model, cfg).param_groups]
    return torch.optim.AdamW(groups, lr=cfg.learning_rate, foreach=True)


def bench_config(model_name: str, dataset: str, method: str, args, device: torch.device,
                 pipes: dict[str, dict[str, Any]], cache_root: Path) -> dict[str, Any]:
    """Interleaved training of the pipelines on one model x dataset x method."""
    from transformers import get_linear_schedule_with_warmup

    lr = 2e-5 if method == "full" else METHODS[method].learning_rate
    cfg = TrainConfig.from_dict({"model": model_name, "dataset": dataset, "method": method,
                                 "learning_rate": lr, "per_device_train_batch_size": args.batch,
                                 "max_length": args.max_length, "seed": 1}).resolved()
    dd = data.load(dataset, args.data_dir)
    names = data.label_names(dd)
    tok, tok_name = tokenizer_for(model_name, args.tokenizer)
    n = min(args.train_samples, len(dd["train"]))
    rng = torch.Generator().manual_seed(batches.SUBSAMPLE_SEED)
    idx = torch.randperm(len(dd["train"]), generator=rng)[:n].tolist()
    n_val = min(args.eval_samples, len(dd["validation"]))

    t = time.perf_counter()
    torch.manual_seed(cfg.seed)
    base = models.build_model(cfg, names, random_init=args.random_init)
    build_s = time.perf_counter() - t
    fm = flop_model(base)

    # ours pads as a run does on this device (TrainConfig.pad_to_multiple_of; auto: 16 on CUDA)
    pad = resolve_pad_multiple(args.pad_multiple, device)
    res: dict[str, Any] = {"model": model_name, "dataset": dataset, "method": method,
                           "pad_to_multiple_of": pad,
                           "tokenizer": tok_name, "train_samples": n, "build_s": build_s,
                           "flop_model": fm, "pipelines": {}}
    state = {}
    for name, spec in pipes.items():
        t = time.perf_counter()
        if spec["padding"] == "max_length":
            padded = tokenize_padded(dd, tok, args.max_length)
            tok_s = time.perf_counter() - t

            def make(padded=padded):
                gen = torch.Generator().manual_seed(cfg.seed)
                return torch.utils.data.DataLoader(
                    TensorRows(padded["train"], idx), batch_size=args.batch,
                    sampler=torch.utils.data.RandomSampler(range(n), generator=gen))
        else:
            enc = batches.tokenize(dd, tok, args.max_length, cache_root, key_parts=(dataset,))
            tok_s = time.perf_counter() - t  # a cache hit after the first run of a grid
            train_rows = enc["train"].select(idx)

            def make(train_rows=train_rows):
                return batches.make_loader(train_rows, tok, args.batch, train=True,
                                            seed=cfg.seed, pad_to_multiple_of=pad)
        # evaluation is the same for every pipeline: it only checks what was learnt
        enc = batches.tokenize(dd, tok, args.max_length, cache_root, key_parts=(dataset,))
        val_loader = batches.make_loader(batches.subsample(enc["validation"], n_val), tok,
                                          64, train=False)
        model = copy.deepcopy(base).to(device)
        steps = math.ceil(n / args.batch)
        if args.warmup_steps:  # warm kernels/allocator on a throwaway copy: every timed
            warm = copy.deepcopy(model)  # pipeline then trains on exactly the same examples
            wopt = make_opt(warm, cfg, spec["optimizer"])
            wsched = get_linear_schedule_with_warmup(wopt, 0, steps)
            training.train_one_epoch(
                warm, Counted(iter(make()), min(args.warmup_steps, steps), fm, dict(ZERO)),
                wopt, wsched, training.TrainState(), 1, device, spec["precision"],
                logging_steps=10**9, progress=False)
            del warm, wopt
        opt = make_opt(model, cfg, spec["optimizer"])
        sched = get_linear_schedule_with_warmup(opt, 0, steps * args.passes)
        state[name] = {"spec": spec, "model": model, "opt": opt, "sched": sched, "make": make,
                       "val_loader": val_loader, "tokenize_s": tok_s, "passes": [],
                       "attn": getattr(model.config, "_attn_implementation", None)}
    del base
    gc.collect()

    def chunk(s: dict, k: int, st: training.TrainState, acc: dict) -> None:
        k = min(k, s["steps_left"])
        if k <= 0:
            return
        training.train_one_epoch(s["model"], Counted(s["it"], k, fm, acc), s["opt"], s["sched"],
                                 st, 1, device, s["spec"]["precision"], logging_steps=10**9,
                                 progress=False)
        s["steps_left"] -= k

    # Each pass replays the same batches (same order, same shapes). On a GPU the first use of a
    # tensor shape costs extra (kernel selection and lazy loading of the kernels), once per
    # shape and process: pass 1 is "cold", the last pass "warm", and the headline rate is the
    # warm one; pass_train_s keeps every pass so the cold extra is visible.
    for _ in range(args.passes):
        for s in state.values():
            s.update(it=iter(s["make"]()), steps_left=steps, acc=dict(ZERO),
                     ts=training.TrainState())
        while any(s["steps_left"] > 0 for s in state.values()):
            for s in state.values():
                chunk(s, args.chunk, s["ts"], s["acc"])
        for s in state.values():
            s["passes"].append(s["ts"].train_time_s)

    for name, s in state.items():
        ts, acc, spec = s["ts"], s["acc"], s["spec"]
        losses = ts.step_losses
        t = time.perf_counter()
        val = evaluate(s["model"], s["val_loader"], device, spec["precision"])
        sync(device)
        eval_s = time.perf_counter() - t
        tt = max(ts.train_time_s, 1e-9)
        res["pipelines"][name] = {
            **{k: spec[k] for k in ("label", "padding", "precision", "optimizer")},
            "attn_implementation": s["attn"],
            "timed_samples": int(acc["samples"]), "train_time_s": ts.train_time_s,
            "samples_per_s": acc["samples"] / tt, "tokens_per_s": acc["tokens"] / tt,
            "s_per_sample": tt / max(acc["samples"], 1),
            "padding_fraction": 1 - acc["tokens"] / max(acc["slots"], 1),
            "mean_real_tokens": acc["tokens"] / max(acc["samples"], 1),
            "model_gflops_per_s": acc["flops"] / tt / 1e9,
            "tokenize_s": s["tokenize_s"],
            "final_train_loss": sum(losses[-10:]) / len(losses[-10:]),
            "mean_train_loss": sum(losses) / len(losses),
            "validation_loss": val["loss"], "validation_accuracy": val["accuracy"],
            "eval_s": eval_s, "eval_s_per_sample": eval_s / max(n_val, 1),
            "pass_train_s": s["passes"],
            # the first pass meets every shape for the first time in this process (cold), the
            # last one replays them (warm); a run of the grid is one fresh process
            "cold_samples_per_s": acc["samples"] / max(s["passes"][0], 1e-9),
            "warm_samples_per_s": acc["samples"] / max(s["passes"][-1], 1e-9),
            "cold_extra_s": s["passes"][0] - s["passes"][-1] if len(s["passes"]) > 1 else None,
        }
        if args.phase_steps:
            res["pipelines"][name]["step_phases_ms"] = step_phases(
                s["model"], s["opt"], s["make"], spec["precision"], device, args.phase_steps)
        del s["model"], s["opt"]
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return res


def step_phases(model, opt, make, precision: str, device: torch.device, n: int
                ) -> dict[str, float]:
    """Where one step's time goes: mean ms per phase over ``n`` extra steps (after the timed
    passes, so nothing timed above is touched), the device synchronised between phases."""
    parts = dict.fromkeys(("data", "forward", "backward", "clip", "optimizer"), 0.0)
    params = [p for g in opt.param_groups for p in g["params"]]
    it, model = iter(make()), model.train()
    done = 0
    for _ in range(n):
        t0 = time.perf_counter()
        try:
            batch = to_device(next(it), device)
        except StopIteration:
            break
        sync(device)
        t1 = time.perf_counter()
        with autocast_context(device, precision):
            loss = model(**batch).loss
        sync(device)
        t2 = time.perf_counter()
        loss.backward()
        sync(device)
        t3 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(params, MAX_GRAD_NORM)
        sync(device)
        t4 = time.perf_counter()
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync(device)
        t5 = time.perf_counter()
        for k, v in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4), strict=True):
            parts[k] += v
        done += 1
    return {k: 1000 * v / max(done, 1) for k, v in parts.items()}


def add_shares(res: dict[str, Any], peaks: dict[str, float]) -> None:
    for p in res["pipelines"].values():
        peak = peaks.get("bf16" if p["precision"] == "bf16" else "fp32")
        p["share_of_peak"] = p["model_gflops_per_s"] / peak if peak else None
        p["share_of_fp32_peak"] = p["model_gflops_per_s"] / peaks["fp32"] if peaks else None
    pl = res["pipelines"]
    n_train = DATASET_SIZES[res["dataset"]][0]
    for p in pl.values():  # one whole run's training part, tokenization included
        p["run_train_s"] = p["tokenize_s"] + RUN_EPOCHS * n_train * p["s_per_sample"]
    if "a" in pl:
        res["ratios_vs_a"] = {k: v["samples_per_s"] / pl["a"]["samples_per_s"]
                              for k, v in pl.items() if k != "a"}
        res["run_ratios_vs_a"] = {k: pl["a"]["run_train_s"] / v["run_train_s"]
                                  for k, v in pl.items() if k != "a"}


# --------------------------------------------------------------------------- projection


def fixed_overhead(args, device: torch.device) -> dict[str, float]:
    """Per-run costs outside train/eval: a fresh interpreter's imports, model build + move."""
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch, transformers, sklearn, pandas, "
                    "datasets; import helpers.run.training"], check=True,
                   env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    imports_s = time.perf_counter() - t
    cfg = TrainConfig.from_dict({"model": args.models[0], "dataset": "acl_sup"}).resolved()
    t = time.perf_counter()
    m = models.build_model(cfg, ["a", "b", "c"], random_init=args.random_init, device=device)
    make_optimizer(m, cfg)
    sync(device)
    build_s = time.perf_counter() - t
    del m
    return {"imports_s": imports_s, "model_build_s": build_s}


def project_grid(rows: list[dict[str, Any]], overhead: dict[str, float]) -> dict[str, Any]:
    """Wall time of params/full.yaml's 75 runs from measured per-sample times (pipeline b)."""
    per = {(r["model"], r["dataset"], r["method"]): r["pipelines"]["b"] for r in rows
           if "b" in r["pipelines"]}
    runs, total, missing = [], 0.0, []
    # Every run is a fresh process, so it pays the first-use cost of its shapes once. Rows
    # measured later in this process found some shapes warm already: take the largest measured
    # cold extra for every run (an upper bound; 0 with a single pass).
    cold = max([p.get("cold_extra_s") or 0.0 for p in per.values()] + [0.0])
    fixed = overhead["imports_s"] + overhead["model_build_s"] + cold
    plan = [(m, d, "full") for m in FULL_GRID["models"] for d in DATASET_SIZES]
    plan += [(FULL_GRID["peft_model"], d, meth) for meth in FULL_GRID["peft_methods"]
             for d in DATASET_SIZES]
    for model, ds, method in plan:
        key = (model, ds, method)
        if key not in per:
            key = (STAND_INS.get(model, model), ds, method)
        if key not in per:
            missing.append(f"{model}/{ds}/{method}")
            continue
        p = per[key]
        # eval forward cost does not depend on the method; use full's when PEFT lacks one
        ev = per.get((key[0], ds, "full"), p)["eval_s_per_sample"]
        n_train, n_val, n_test = DATASET_SIZES[ds]
        epochs = FULL_GRID["epochs"]
        one = fixed + epochs * (n_train * p["s_per_sample"] + (n_val + n_test) * ev)
        runs.append({"model": model, "dataset": ds, "method": method, "run_s": one,
                     "measured_as": "/".join(key)})
        total += one * FULL_GRID["seeds"]
    return {"runs": runs, "num_runs": len(runs) * FULL_GRID["seeds"], "total_s": total,
            "total_min": total / 60, "missing": missing,
            "fixed_per_run": {**overhead, "cold_extra_s": cold},
            "includes": "per run: fresh-interpreter imports + model build/move + optimizer + "
                        "the largest measured first-pass (cold shapes) extra; "
                        "3 epochs x (train samples x measured warm s/sample on the dataset's real "
                        "lengths, length-grouped batches of 8) + 3 x (validation+test) x "
                        "measured eval s/sample (batch 64). Excludes: papermill/kernel start "
                        "(~1-2 s, see the CPU grid figures), loading pretrained weights from "
                        "disk (random init here), writing artifacts (<0.1 s), data loading "
                        "and a first-run tokenization (cached across the 5 seeds and methods)."}


# --------------------------------------------------------------------------- main


def table(rows: list[dict[str, Any]]) -> str:
    head = (f"{'model/dataset/method':<38} {'pipe':<7} {'samp/s':>8} {'tok/s':>9} {'pad%':>5} "
            f"{'GFLOP/s':>8} {'%peak':>6} {'%fp32':>6} {'loss':>7} {'val':>7} {'x(a)':>6} "
            f"{'run_s':>8}")
    lines = [head]
    for r in rows:
        tag = f"{r['model'].split('/')[-1]}/{r['dataset']}/{r['method']}"[:38]
        for k, p in r["pipelines"].items():
            ratio = r.get("ratios_vs_a", {}).get(k)
            lines.append(
                f"{tag:<38} {k:<7} {p['samples_per_s']:8.1f} {p['tokens_per_s']:9.0f} "
                f"{100 * p['padding_fraction']:5.1f} {p['model_gflops_per_s']:8.1f} "
                f"{100 * (p['share_of_peak'] or 0):6.1f} "
                f"{100 * (p['share_of_fp32_peak'] or 0):6.1f} "
                f"{p['final_train_loss']:7.4f} {p['validation_loss']:7.4f} "
                f"{(f'{ratio:6.2f}' if ratio else '     -')} {p['run_train_s']:8.0f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", choices=("cpu", "cuda"),
                    default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--model", dest="models", action="append",
                    help="repeatable (cpu default: minilm; cuda: roberta-base, bert-base-uncased)")
    ap.add_argument("--dataset", dest="datasets", action="append",
                    help="repeatable (cpu default: restaurant_sup, acl_sup; cuda: all three)")
    ap.add_argument("--methods", default=None,
                    help="comma list; cuda default full + adapter,lora on the first model")
    ap.add_argument("--pipelines", default=None, help="cpu default a,b,b_bf16; cuda a,b")
    ap.add_argument("--data-dir", default=None, help="data folder (default $NLPDL_DATA_DIR)")
    ap.add_argument("--out", default="benchmarks/results")
    ap.add_argument("--random-init", action="store_true", help="architecture only, no weights")
    ap.add_argument("--train-samples", type=int, default=None,
                    help="examples trained per pipeline (cpu 256, cuda 320)")
    ap.add_argument("--eval-samples", type=int, default=None, help="validation examples")
    ap.add_argument("--tokenizer", default=None,
                    help="tokenizer name/folder for every model (default: the model's own)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--pad-multiple", type=int, default=None,
                    help="ours: pad batches to a multiple of N tokens (default: as a run does, "
                         "16 on CUDA, 1 on CPU)")
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--chunk", type=int, default=4, help="steps per interleaved chunk")
    ap.add_argument("--warmup-steps", type=int, default=2)
    ap.add_argument("--no-peak", action="store_true",
                    help="skip the matmul peak (no shares of it; for processes sharing a device)")
    ap.add_argument("--phase-steps", type=int, default=16,
                    help="extra steps timed phase by phase after the timed passes (0: none)")
    ap.add_argument("--passes", type=int, default=None,
                    help="timed passes over the same batches; figures from the last (warm) "
                         "one (default: cuda 2, cpu 1)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    ap.add_argument("--quick", action="store_true", help="tiny budget (for the test)")
    ap.add_argument("--no-projection", action="store_true", help="skip the 75-run projection")
    ap.add_argument("--projection", action="store_true", help="project on CPU too (testing)")
    ap.add_argument("--save-tokenizer", action="store_true",
                    help=f"save MiniLM's (= bert-base-uncased's) tokenizer to {SAVED_TOKENIZER} "
                         "for offline machines, and exit")
    args = ap.parse_args(argv)
    if args.save_tokenizer:
        models.load_tokenizer("minilm").save_pretrained(str(SAVED_TOKENIZER))
        print(f"saved {SAVED_TOKENIZER}")
        return 0

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA GPU visible here; use --device cpu.")
    cuda = device.type == "cuda"
    args.models = args.models or (["roberta-base", "bert-base-uncased"] if cuda else ["minilm"])
    args.datasets = args.datasets or (list(DATASET_SIZES) if cuda
                                      else ["restaurant_sup", "acl_sup"])
    for d in args.datasets:
        if d not in data.DATASET_NAMES:
            raise SystemExit(f"--dataset {d!r}: not one of {list(data.DATASET_NAMES)}.")
    # on CPU also the other precision of ours: the autocast gain is then measured, not assumed
    other = "b_fp32" if resolve_precision("auto", device) == "bf16" else None
    pipe_names = (args.pipelines or ("a,b" if cuda or args.quick or not other
                                     else f"a,b,{other}")).split(",")
    pipes = pipeline_specs(device, pipe_names)
    methods = (args.methods or ("full,adapter,lora" if cuda else "full")).split(",")
    args.train_samples = args.train_samples or (16 if args.quick else 320 if cuda else 256)
    args.eval_samples = args.eval_samples or (8 if args.quick else 150)
    args.passes = args.passes or (2 if cuda else 1)
    if args.passes < 1:
        raise SystemExit(f"--passes {args.passes}: must be >= 1.")
    if args.quick:
        args.warmup_steps, args.chunk = 1, 1
        args.phase_steps = min(args.phase_steps, 2)
    data.load(args.datasets[0], args.data_dir)  # clear error on a missing data folder, early
    if args.threads:
        torch.set_num_threads(args.threads)
    # process-wide, so it applies to both pipelines (as in a training.run on CPU)
    kept = keep_freed_memory() if device.type == "cpu" else False

    n, secs = (256, 0.2) if args.quick else ((8192, 2.0) if cuda else (1024, 3.0))
    peaks: dict[str, float] = {}
    if not args.no_peak:  # off when processes share the device (concurrency.py)
        peaks["fp32"] = matmul_peak(device, torch.float32, n, secs)
        if cuda or machine()["avx512_bf16"] or machine()["amx"] or args.quick:
            peaks["bf16"] = matmul_peak(device, torch.bfloat16, n, secs)
        print(f"matmul peak ({n}x{n}): "
              + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in peaks.items()), flush=True)

    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    out_file = out_dir / f"throughput_{device.type}.json"
    result: dict[str, Any] = {
        "benchmark": "throughput", "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "device": device.type, "machine": machine(), "versions": versions(),
        "settings": {k: v for k, v in vars(args).items() if k not in ("data_dir", "out")},
        "matmul_peak_gflops": peaks, "matmul_n": n, "keep_freed_memory": kept,
        "pipelines": {k: v["label"] for k, v in pipes.items()},
        "run_train_s": f"per pipeline: tokenize_s + {RUN_EPOCHS} epochs x the full train split "
                       "x measured s/sample; run_ratios_vs_a compares these (tokenization "
                       "included), ratios_vs_a the training loops alone",
        "flop_formula": "(4*P_layers + 2*P_layers_trained)*T + 12*n_layers*d_model*sum(L_i^2)"
                        " + 6*P_head*n_seq (real tokens only; embeddings 0; full FT: 6*P*T)",
        "rows": [],
    }
    start = time.perf_counter()
    project = (cuda or args.projection) and not args.no_projection
    overhead = fixed_overhead(args, device) if project else None
    with tempfile.TemporaryDirectory() as tmp:
        cache_root = Path(tmp) / "tokenized"
        plan = [(m, d, "full") for m in args.models for d in args.datasets]
        plan += [(args.models[0], d, meth) for meth in methods if meth != "full"
                 for d in args.datasets]
        for model_name, ds, method in plan:
            mpipes = pipes if method == "full" else {k: v for k, v in pipes.items() if k != "a"}
            # warm the token cache first, so pipeline b's tokenize_s is the per-run cache hit
            batches.tokenize(data.load(ds, args.data_dir),
                              tokenizer_for(model_name, args.tokenizer)[0],
                              args.max_length, cache_root, key_parts=(ds,))
            load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
            r = bench_config(model_name, ds, method, args, device, mpipes, cache_root)
            r["load_before"] = load_before
            r["load_after"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
            add_shares(r, peaks)
            result["rows"].append(r)
            print(table([r]).split("\n", 1)[1], flush=True)
            if overhead is not None:
                result["projection"] = project_grid(result["rows"], overhead)
            result["bench_wall_s"] = time.perf_counter() - start
            out_file.write_text(json.dumps(result, indent=1))  # partial results survive
    result["bench_wall_s"] = time.perf_counter() - start
    result["machine"]["loadavg_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    out_file.write_text(json.dumps(result, indent=1))
    print(table(result["rows"]))
    for r in result["rows"]:
        for k, p in r["pipelines"].items():
            if len(p["pass_train_s"]) > 1:
                print(f"  {r['model'].split('/')[-1]}/{r['dataset']}/{r['method']} {k}: cold "
                      f"{p['cold_samples_per_s']:.1f} samples/s (first pass), warm "
                      f"{p['warm_samples_per_s']:.1f} (last pass)")
            if "step_phases_ms" in p:
                ph = p["step_phases_ms"]
                total = sum(ph.values()) or 1.0
                print(f"  {r['model'].split('/')[-1]}/{r['dataset']}/{r['method']} {k}: a step "
                      f"{total:.1f} ms = " + ", ".join(f"{n} {v:.1f} ({100 * v / total:.0f}%)"
                                                       for n, v in ph.items()))
    print("x(a): training-loop speed-up over (a); run_s: tokenization + 3 epochs of the full "
          "train split at the measured rate")
    for r in result["rows"]:
        if "run_ratios_vs_a" in r:
            print(f"  {r['model']}/{r['dataset']}: whole-run training speed-up incl. "
                  "tokenization " + ", ".join(f"{k} {v:.1f}x"
                                             for k, v in r["run_ratios_vs_a"].items()))
    if "projection" in result:
        p = result["projection"]
        print(f"projected full grid ({p['num_runs']} runs): {p['total_min']:.1f} min"
              + (f" (missing {p['missing']})" if p["missing"] else ""))
    print(f"wrote {out_file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
