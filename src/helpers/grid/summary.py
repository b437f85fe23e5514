"""What a ``grid run`` did, and its closing lines."""

from __future__ import annotations

import signal
from dataclasses import dataclass, field

from .spec import Grid


@dataclass
class RunSummary:
    """What a ``run`` did; ``ok`` is False when a run failed or the batch was interrupted."""

    completed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # complete before (or by another runner)
    busy: list[str] = field(default_factory=list)  # claimed by another runner: not run here
    busy_why: dict[str, str] = field(default_factory=dict)  # run id -> who holds it, until when
    corrupt: list[str] = field(default_factory=list)  # records did not validate: set aside
    stale: list[str] = field(default_factory=list)  # complete, but their data changed since
    not_run: list[str] = field(default_factory=list)  # left pending (interrupt, dead workers)
    interrupted: bool = False
    signal: int | None = None  # what interrupted it (SIGINT, SIGTERM)
    stopped: list[str] = field(default_factory=list)  # in progress when it was interrupted
    detached: list[str] = field(default_factory=list)  # Slurm jobs left running on the cluster
    errors: dict[str, str] = field(default_factory=dict)  # run id -> its result's error
    disk_full: list[str] = field(default_factory=list)  # found the disk full: none started since
    seconds: float = 0.0

    @property
    def executed(self) -> list[str]:
        return self.completed + self.failed

    @property
    def ok(self) -> bool:
        return not self.failed and not self.interrupted and not self.not_run


def format_summary(summary: RunSummary, grid: Grid) -> str:
    lines = [f"summary: {len(summary.completed)} completed, {len(summary.failed)} failed, "
             f"{len(summary.skipped)} already complete"
             + (f", {len(summary.busy)} claimed by another runner (not run here)"
                if summary.busy else "")
             + (f", {len(summary.not_run)} not run" if summary.not_run else "")
             + f" ({summary.seconds:.0f}s)"]
    lines += busy_lines(summary)
    for run_id in summary.failed:
        f = grid.store.read_failure(run_id)
        if f is None or run_id in summary.disk_full:  # the result says it best
            lines.append(f"  FAILED {run_id}: {summary.errors.get(run_id, '?')}")
            continue
        evalue = str(f.get("evalue") or "").splitlines()
        lines.append(f"  FAILED {run_id}: {f.get('ename')}: {evalue[0][:200] if evalue else ''}"
                     f"\n         log {f.get('log')}"
                     f"  details {grid.store.failure_path(run_id)}")
    if summary.disk_full and summary.not_run:
        lines.append(f"not started: {len(summary.not_run)} run(s), the disk being full (see "
                     f"above); free some space, then run the same command again.")
    if summary.interrupted:
        lines.append(stopped_line(summary))
    elif summary.failed or summary.not_run:
        lines.append("run the same command again to retry the runs that did not complete.")
    return "\n".join(lines)


def busy_lines(summary: RunSummary, limit: int = 10) -> list[str]:
    """One line per run another runner holds: the run, the holder, when the claim expires."""
    lines = [f"  CLAIMED {run_id}: {summary.busy_why.get(run_id, 'claimed by another runner')}"
             for run_id in summary.busy[:limit]]
    if len(summary.busy) > limit:
        lines.append(f"  ... and {len(summary.busy) - limit} more (grid status names them)")
    return lines


def stopped_line(summary: RunSummary) -> str:
    """The one line of an interrupted grid: what it stopped, what is left to resume."""
    name = signal.Signals(summary.signal or signal.SIGINT).name
    runs = (f"stopped {len(summary.stopped)} run(s) in progress ({', '.join(summary.stopped)}) "
            f"with their workers and kernels" if summary.stopped else "no run was in progress")
    left = (f"; {len(summary.detached)} Slurm job(s) keep running "
            f"({', '.join(summary.detached)}; scancel stops them)" if summary.detached else "")
    return (f"stopped by {name}: {runs}{left}; {len(summary.not_run)} run(s) resumable: "
            f"run the same command again to finish the grid.")
