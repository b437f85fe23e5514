"""The kernel of one run, watched: a time limit, a stall detector, and why it died.

papermill's kernel is a child of the process running :func:`helpers.grid.execution.execute_run`
(its kernel manager is :meth:`Watchdog.kernel_manager_class`, which keeps the kernel's
``Popen``). A thread samples the kernel's process tree every second: its CPU time (progress)
and resident memory (the last peak). A kernel that uses no CPU for ``stall_s`` seconds (stopped
with SIGSTOP, deadlocked, waiting on nothing) or runs past ``time_limit_s`` is killed
(SIGKILL works on a stopped process), so the run fails with a record saying so and its claim
is released. When a kernel dies otherwise, :meth:`Watchdog.explain` says by which signal, and
"out of memory" when the evidence says so: SIGKILL while the memory cgroup's ``oom_kill``
counter rose.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from pathlib import Path
from typing import Any

import psutil

#: A kernel that used no CPU time for this long is stuck (a training step always uses some).
STALL_S = 900.0


def cgroup_oom_kills() -> int | None:
    """The ``oom_kill`` counter of this process's memory cgroup (v2), or None."""
    try:
        line = Path("/proc/self/cgroup").read_text().splitlines()[0]
        events = Path("/sys/fs/cgroup") / line.split("::", 1)[1].lstrip("/") / "memory.events"
        for row in events.read_text().splitlines():
            key, _, value = row.partition(" ")
            if key == "oom_kill":
                return int(value)
    except (OSError, IndexError, ValueError):
        return None
    return None


class Watchdog:
    """Watch the kernel of one attempt; see the module docstring."""

    def __init__(self, time_limit_s: float | None = None, stall_s: float | None = STALL_S,
                 poll_s: float = 1.0) -> None:
        self.time_limit_s, self.stall_s, self.poll_s = time_limit_s, stall_s, poll_s
        self.kernels: list[Any] = []  # the Popen of each kernel started (papermill: one)
        self.reason: tuple[str, str] | None = None  # (ename, evalue) when the watchdog killed
        self.peak_rss = 0
        self._stop = threading.Event()
        self._oom_before = cgroup_oom_kills()

    def kernel_manager_class(self) -> type:
        """A jupyter_client kernel manager that hands its kernel's ``Popen`` to this watchdog."""
        # deferred: jupyter_client is only needed where a kernel starts
        from jupyter_client.manager import AsyncKernelManager

        kernels = self.kernels

        class WatchedKernelManager(AsyncKernelManager):
            async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
                await super()._async_launch_kernel(kernel_cmd, **kw)
                kernels.append(self.provisioner.process)

        return WatchedKernelManager

    def __enter__(self) -> Watchdog:
        self._thread = threading.Thread(target=self._watch, name="kernel-watchdog", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _watch(self) -> None:
        start = last_progress = time.monotonic()
        cpu = -1.0
        while not self._stop.wait(self.poll_s):
            if not self.kernels:
                last_progress = time.monotonic()  # starting: not stalled yet
                continue
            tree = self._tree()
            if not tree:
                continue
            used, rss = 0.0, 0
            for p in tree:
                with contextlib.suppress(psutil.Error):
                    times = p.cpu_times()
                    used += times.user + times.system
                    rss += p.memory_info().rss
            self.peak_rss = max(self.peak_rss, rss)
            now = time.monotonic()
            if used > cpu:
                cpu, last_progress = used, now
            if self.time_limit_s is not None and now - start > self.time_limit_s:
                self._kill(tree, "RunTimeLimit", f"the run went past its time limit of "
                           f"{self.time_limit_s:g} s (grid run --time-limit): the grid ended "
                           f"its kernel")
                return
            if self.stall_s is not None and now - last_progress > self.stall_s:
                self._kill(tree, "RunStalled", f"the kernel used no CPU for {self.stall_s:g} s "
                           f"(stopped, e.g. by SIGSTOP, or hung; grid run --stall-after): the "
                           f"grid ended it")
                return

    def _tree(self) -> list[psutil.Process]:
        kernel = self.kernels[-1]
        if kernel.poll() is not None:
            return []
        with contextlib.suppress(psutil.Error):
            top = psutil.Process(kernel.pid)
            return [top, *top.children(recursive=True)]
        return []

    def _kill(self, tree: list[psutil.Process], ename: str, evalue: str) -> None:
        self.reason = (ename, evalue)
        for p in tree:
            with contextlib.suppress(psutil.Error):
                p.kill()

    def explain(self) -> dict[str, Any] | None:
        """Why the kernel died, as failure-record fields (ename, evalue, cause, signal), or
        None when it did not die of a signal (a Python exception says why by itself)."""
        if self.reason:
            return {"ename": self.reason[0], "evalue": self.reason[1],
                    "cause": "time_limit" if self.reason[0] == "RunTimeLimit" else "stalled",
                    "signal": "SIGKILL"}
        if not self.kernels:
            return None
        kernel = self.kernels[-1]
        with contextlib.suppress(Exception):
            kernel.wait(timeout=5)
        code = kernel.returncode
        if code is None or code >= 0:
            return None
        name = signal.Signals(-code).name if -code in signal.valid_signals() else f"signal {-code}"
        after = cgroup_oom_kills()
        peak = f"; its last resident memory was {self.peak_rss / 2**30:.2f} GiB" \
            if self.peak_rss else ""
        if name == "SIGKILL" and None not in (after, self._oom_before) \
                and after > self._oom_before:
            return {"ename": "OutOfMemory", "cause": "out_of_memory", "signal": name,
                    "evalue": f"the kernel ran out of memory: killed by SIGKILL while the memory "
                              f"cgroup's oom_kill count went from {self._oom_before} to "
                              f"{after}{peak}. Lower per_device_train_batch_size or "
                              f"max_length, or run fewer runs at once (--workers)."}
        return {"ename": "KernelKilled", "cause": "signal", "signal": name,
                "evalue": f"the kernel was killed by {name} (not by the grid){peak}"}
