"""CUDA MPS for the runs sharing a GPU: one private daemon for the length of a ``grid run``.

Without MPS, the processes on one GPU take turns (time slices), so 16 runs at batch 8 keep
the GPU "100% busy" while each kernel fills a fraction of it. With MPS their kernels run side
by side: 16 bert-base runs on AG News trained 3,052 samples/s together with MPS against 1,517
without (H200, benchmarks/results/concurrency/concurrency_cuda_agnews16{,_mps}.json).

The daemon is private: its pipe folder is given only to this grid's runs (through
``CUDA_MPS_PIPE_DIRECTORY``), so other programs on the machine never connect to it, and it
is stopped when the grid ends, however it ends. Where an MPS daemon is already set up (the
variable is set, or the system-wide ``/tmp/nvidia-mps`` is live), the runs use that one and
nothing is started. Trade-off: under MPS a fatal GPU fault in one run (not an out-of-memory
error) ends the other runs on that GPU too; they are recorded as failed and the next
``grid run`` retries them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

MODES = ("auto", "on", "off")
CONTROL = "nvidia-cuda-mps-control"
PIPE_ENV, LOG_ENV = "CUDA_MPS_PIPE_DIRECTORY", "CUDA_MPS_LOG_DIRECTORY"
#: where clients look when ``CUDA_MPS_PIPE_DIRECTORY`` is unset (an admin-run daemon)
SYSTEM_PIPE_DIR = Path("/tmp/nvidia-mps")
#: a CUDA client that makes the daemon start its server on every GPU given to the grid
CLIENT_CHECK = ("import torch\n"
                "for i in range(torch.cuda.device_count()):\n"
                "    torch.ones(8, device=f'cuda:{i}').sum().item()\n"
                "print(torch.cuda.device_count())\n")


class MpsError(RuntimeError):
    """MPS was asked for (``--mps on``) but can't be used here."""


@dataclass(frozen=True)
class Plan:
    """Whether to start a private daemon, and the one line the grid prints about MPS."""

    start: bool
    reason: str
    required: bool = False  # --mps on: a daemon that fails its check is an error


def plan(mode: str, devices: Sequence[str], runs_per_device: int, executor: str = "local",
         env: Mapping[str, str] | None = None,
         which: Callable[[str], str | None] = shutil.which) -> Plan:
    """Decide before any run starts; ``--mps on`` that can't be honoured is an error here."""
    env = os.environ if env is None else env
    if mode not in MODES:
        raise MpsError(f"mps={mode!r} is not one of {list(MODES)}.")
    if mode == "off":
        return Plan(False, "off (--mps off)")
    if not devices or executor != "local":
        if mode == "on":
            raise MpsError("--mps on needs GPUs given with --devices and the local executor "
                           "(on Slurm, start MPS in the job script).")
        return Plan(False, "")
    if env.get(PIPE_ENV):
        return Plan(False, f"already set up ({PIPE_ENV}={env[PIPE_ENV]}): the runs use it")
    if (SYSTEM_PIPE_DIR / "control").exists():
        return Plan(False, f"the system's daemon ({SYSTEM_PIPE_DIR}) is used")
    if mode == "auto" and runs_per_device < 2:
        return Plan(False, "off: one run per GPU has nothing to overlap")
    if which(CONTROL) is None:
        if mode == "on":
            raise MpsError(f"--mps on: {CONTROL} is not on PATH (it ships with the NVIDIA "
                           f"driver's utilities); install it or use --mps off.")
        return Plan(False, f"off: {CONTROL} not found (runs on a GPU take turns)")
    return Plan(True, "starting a private daemon", required=mode == "on")


def _control(env: Mapping[str, str], command: str | None, timeout: float) -> str:
    args = [CONTROL, "-d"] if command is None else [CONTROL]
    full = {**os.environ, **env}
    if command is None:  # the daemon sees every GPU, so a run's CUDA_VISIBLE_DEVICES=N is
        full.pop("CUDA_VISIBLE_DEVICES", None)  # GPU N, with MPS as without
    done = subprocess.run(args, input=None if command is None else command + "\n",
                          capture_output=True, text=True, env=full,
                          timeout=timeout, check=False)
    if done.returncode != 0:
        raise MpsError(f"`{' '.join(args)}`{f' <<< {command}' if command else ''} exited "
                       f"{done.returncode}: {(done.stderr or done.stdout).strip()[:300]}")
    return done.stdout


def check_client(env: Mapping[str, str], devices: Sequence[str], timeout: float = 180,
                 python: str = sys.executable) -> None:
    """Start a CUDA client on the grid's GPUs through the daemon, then ask the daemon for its
    servers: none means the clients ran without MPS, so it isn't working here."""
    child = {**os.environ, **env, "CUDA_VISIBLE_DEVICES": ",".join(devices)}
    try:
        done = subprocess.run([python, "-c", CLIENT_CHECK], env=child, capture_output=True,
                              text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise MpsError(f"a CUDA client did not start within {timeout:.0f}s under MPS") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise MpsError(f"a CUDA client failed under MPS: {last[:300]}")
    if not _control(env, "get_server_list", timeout=30).split():
        raise MpsError("the MPS daemon started no server for a CUDA client")


@contextlib.contextmanager
def private_daemon(devices: Sequence[str], check: Callable[..., None] = check_client,
                   ) -> Iterator[dict[str, str]]:
    """Run a private MPS daemon; yields the env that connects a run to it.

    The pipe folder lives in the system temp folder, not under runs/: it holds Unix sockets,
    whose paths are limited to ~108 characters.
    """
    pipe = Path(tempfile.mkdtemp(prefix="nlpdl-mps-"))
    env = {PIPE_ENV: str(pipe), LOG_ENV: str(pipe / "log")}
    (pipe / "log").mkdir()
    started = False
    try:
        _control(env, None, timeout=60)
        started = True
        check(env, devices)
        yield env
    finally:
        try:
            if started:
                _control(env, "quit", timeout=60)
        except (MpsError, subprocess.TimeoutExpired) as e:
            print(f"warning: the MPS daemon in {pipe} did not stop ({e}); stop it with "
                  f"`echo quit | {PIPE_ENV}={pipe} {CONTROL}`", file=sys.stderr)
        else:
            shutil.rmtree(pipe, ignore_errors=True)


@contextlib.contextmanager
def for_grid(p: Plan, devices: Sequence[str], say: Callable[[str], None] = print,
             daemon: Callable[..., contextlib.AbstractContextManager[dict[str, str]]]
             = private_daemon) -> Iterator[dict[str, str]]:
    """The env the grid's runs get for MPS under plan ``p`` ({} without it). A daemon that
    fails its check is stopped and the grid goes on without MPS, unless ``p.required``."""
    if not p.start:
        if p.reason:
            say(f"MPS: {p.reason}")
        yield {}
        return
    stack = contextlib.ExitStack()
    with stack:
        try:
            env = stack.enter_context(daemon(devices))
        except (MpsError, OSError, subprocess.TimeoutExpired) as e:
            if p.required:
                raise MpsError(f"--mps on: {e}") from None
            say(f"MPS: off: it did not work here ({e}); the runs on a GPU take turns")
            env = {}
        else:
            say(f"MPS: on (private daemon, {env[PIPE_ENV]}; stopped when the grid ends)")
        yield env
