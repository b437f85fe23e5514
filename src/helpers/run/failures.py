"""Failure records, ``<runs>/.failed/<run_id>.json``: the last failure of a run, one typed
record (:class:`FailureRecord`) written by one method (:meth:`FailureRecords.record_failure`)
of the runs store (:class:`helpers.run.store.RunStore` has these methods)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from . import disk

FAILED_DIR = ".failed"

#: Set in a kernel's environment by the grid runner, which writes that run's failure record
#: itself (with the cell, the log and how the kernel died); helpers.run.training then writes
#: none, so one attempt has one record, never one nested in another.
FAILURE_OWNER_ENV = "NLPDL_FAILURE_RECORDED_BY"
#: Why a run failed (a record's ``cause``).
CAUSES = ("exception", "signal", "out_of_memory", "stalled", "time_limit", "disk_full")


@dataclasses.dataclass
class FailureRecord:
    """The one record of a failed attempt, ``.failed/<run_id>.json``: the exception (``ename``,
    ``evalue``, ``traceback``), its :data:`CAUSES` entry and the signal that ended the kernel
    (if any), and where it happened (cell, log, notebook, host, seconds: ``context``)."""

    ename: str
    evalue: str = ""
    cause: str = "exception"
    signal: str | None = None
    traceback: list[str] | str = dataclasses.field(default_factory=list)
    context: dict[str, Any] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_info(cls, info: dict[str, Any]) -> FailureRecord:
        """From the flat fields a runner or a run collected (unknown keys go to context)."""
        known = {f.name for f in dataclasses.fields(cls)} - {"context"}
        ename = info.get("ename") or str(info.get("error", "Error")).split(":")[0]
        return cls(**{k: v for k, v in info.items() if k in known and k != "ename"},
                   ename=ename,
                   context={k: v for k, v in info.items() if k not in known and k != "run_id"})

    def to_json(self, run_id: str) -> dict[str, Any]:
        first = str(self.evalue).splitlines()[0][:300] if self.evalue else ""
        return {**self.context, "run_id": run_id, "ename": self.ename, "evalue": self.evalue,
                "error": f"{self.ename}: {first}" if first else self.ename,
                "cause": self.cause, "signal": self.signal, "traceback": self.traceback}


class FailureRecords:
    """The runs store's failure records (a mixin of :class:`helpers.run.store.RunStore`,
    which gives ``root``)."""

    root: Path

    @property
    def failed_dir(self) -> Path:
        return self.root / FAILED_DIR

    def failure_path(self, run_id: str) -> Path:
        return self.failed_dir / f"{run_id}.json"

    def record_failure(self, run_id: str, info: FailureRecord | dict[str, Any]) -> Path:
        """Write the failure record of ``run_id`` (the one writer: every record goes through
        here, as a :class:`FailureRecord`)."""
        record = info if isinstance(info, FailureRecord) else FailureRecord.from_info(info)
        path = self.failure_path(run_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        disk.write_atomic(path, json.dumps(record.to_json(run_id), indent=2, sort_keys=True,
                                           default=str) + "\n")
        return path

    def read_failure(self, run_id: str) -> dict[str, Any] | None:
        path = self.failure_path(run_id)
        return json.loads(path.read_text()) if path.is_file() else None

    def clear_failure(self, run_id: str) -> None:
        self.failure_path(run_id).unlink(missing_ok=True)

    def failed_runs(self, run_ids: Iterable[str] | None = None) -> dict[str, str]:
        """The runs of ``run_ids`` (None: every run of the folder) that have a failure record,
        each with its one-line error, in run-id order: what a report of no or few complete
        runs names, so that the failures are not silently missing from it."""
        ids = sorted(set(run_ids) if run_ids is not None
                     else (p.stem for p in self.failed_dir.glob("*.json")))
        out = {}
        for run_id in ids:
            try:
                record = self.read_failure(run_id)
            except (OSError, ValueError):  # unreadable or half-written: still a failure to name
                record = {"error": f"unreadable failure record {self.failure_path(run_id)}"}
            if record is not None:
                out[run_id] = str(record.get("error") or record.get("ename") or "?")
        return out

    def failures_note(self, run_ids: Iterable[str] | None = None, limit: int = 3) -> str:
        """"N failed: <run id>: <error>; ..." for the first ``limit`` of :meth:`failed_runs`
        ("" when none failed): what a report of no complete run says instead of nothing."""
        failed = self.failed_runs(run_ids)
        listed = "; ".join(f"{rid}: {error}" for rid, error in list(failed.items())[:limit])
        more = f"; and {len(failed) - limit} more" if len(failed) > limit else ""
        return f"{len(failed)} failed: {listed}{more}" if failed else ""
