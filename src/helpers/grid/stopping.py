"""Stopping a grid: a SIGINT or SIGTERM to the runner stops every process it started.

* The runner (:func:`interrupt_on_signals`): either signal raises :class:`Interrupted` (a
  ``KeyboardInterrupt`` that remembers the signal) wherever the runner is, so a ``kill -TERM
  <pid>`` takes the same path as a Ctrl-C: the pool stops its workers or jobs
  (:func:`stop_trees`), their claims are released (:func:`release_claims`), and the CLI says
  what it stopped and exits 128 + the signal.
* A process that executes a run (a local worker, a submitit job;
  :func:`runs_end_with_signals`): SIGTERM (and SIGINT where it is not ignored) first kills the
  run's kernel and its children (:func:`end_children`), then raises, so the claim is released
  on the way out. Kernels start in a session of their own (jupyter_client), so no terminal
  signal reaches them: they end because their runner ends them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
from collections.abc import Iterable, Iterator

import psutil

from helpers.run.store import RunStore

from . import claims

SIGNALS = (signal.SIGINT, signal.SIGTERM)
#: Seconds a stopped worker or job has to end its kernel and exit before it is killed.
GRACE_S = 10.0


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived (``signum``); a KeyboardInterrupt, so Ctrl-C paths apply."""

    def __init__(self, signum: int = signal.SIGINT) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _install(handler, signals: Iterable[int]) -> dict[int, object]:
    """Install ``handler`` for ``signals`` (not for one that is ignored, as after ``nohup``);
    return the handlers it replaced. Nothing outside the main thread (Python's rule)."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    replaced = {}
    for s in signals:
        if signal.getsignal(s) is not signal.SIG_IGN:
            replaced[s] = signal.signal(s, handler)
    return replaced


def _restore(replaced: dict[int, object]) -> None:
    for s, h in replaced.items():
        signal.signal(s, h)


@contextlib.contextmanager
def interrupt_on_signals() -> Iterator[None]:
    """While the grid runs, SIGINT and SIGTERM raise :class:`Interrupted` once; a second
    signal while it stops is ignored (``kill -9`` still ends everything at once)."""
    raised = []

    def handler(signum: int, frame: object) -> None:
        if not raised:
            raised.append(signum)
            raise Interrupted(signum)

    replaced = _install(handler, SIGNALS)
    try:
        yield
    finally:
        _restore(replaced)


def end_children() -> None:
    """Kill every descendant of this process now (a run's kernel, its data loader workers)."""
    kids = psutil.Process().children(recursive=True)
    for k in kids:
        with contextlib.suppress(psutil.Error):
            k.kill()
    psutil.wait_procs(kids, timeout=5)


@contextlib.contextmanager
def runs_end_with_signals() -> Iterator[None]:
    """Around one run in a worker or job: a SIGTERM (or a SIGINT not ignored) kills the
    kernel, then raises :class:`Interrupted` so that the claim and the log are closed."""
    def handler(signum: int, frame: object) -> None:
        _restore(replaced)  # once: the unwinding below must not be interrupted again
        end_children()
        raise Interrupted(signum)

    replaced = _install(handler, SIGNALS)
    try:
        yield
    finally:
        _restore(replaced)


def watch_parent() -> None:
    """In a worker: when the runner is gone (``kill -9`` of its pid alone), end the kernel
    and exit instead of running the rest of the queue as an orphan."""
    parent = os.getppid()

    def watch() -> None:
        while True:
            threading.Event().wait(1.0)
            if os.getppid() != parent:
                end_children()
                os._exit(1)

    threading.Thread(target=watch, name="watch-runner", daemon=True).start()


def stop_trees(tops: Iterable[psutil.Process | int], grace: float = GRACE_S) -> list[int]:
    """SIGTERM each of ``tops`` (a worker, a submitit job), give them ``grace`` seconds to
    end their kernels and exit, then SIGKILL whatever of theirs is left; return every pid of
    the trees (all gone when this returns)."""
    heads: list[psutil.Process] = []
    procs: list[psutil.Process] = []
    for top in tops:
        with contextlib.suppress(psutil.Error):
            p = top if isinstance(top, psutil.Process) else psutil.Process(top)
            heads.append(p)
            procs += [p, *p.children(recursive=True)]  # before the heads go: then orphans
    for p in heads:
        with contextlib.suppress(psutil.Error):
            p.terminate()
    _, left = psutil.wait_procs(procs, timeout=grace)
    for p in left:
        with contextlib.suppress(psutil.Error):
            p.kill()
    psutil.wait_procs(left, timeout=5)
    return [p.pid for p in procs]


def release_claims(store: RunStore, run_ids: Iterable[str],
                   pids: Iterable[int]) -> list[str]:
    """Remove the claims that stopped processes (``pids``, on this host) held; return their
    run ids. A claim of a dead pid is stale anyway; this leaves no file that says otherwise."""
    pids = set(pids)
    released = []
    for run_id in run_ids:
        path = store.claim_path(run_id)
        info = claims.read_claim(path)
        if info and info.get("host") == socket.gethostname() and info.get("pid") in pids:
            path.unlink(missing_ok=True)
            released.append(run_id)
    return released
