"""The runs folder and its one owner, :class:`RunStore`: one folder per finished run, written
atomically, and every other file the pipeline keeps beside the runs.

Layout under the store's ``root`` (default ``runs/``)::

    <run_id>/                 a complete run; appears in one rename, so it is never partial
        config.json           every parameter, resolved, plus "run_id"
        history.csv           tidy: step, epoch, split, metric, value
        predictions.csv.gz    per example: split, epoch, example, label, prediction, prob_*
                              (helpers.run.predictions)
        metrics.json          best-epoch validation/test metrics, train loss, speed, wall time
        memory.json           parameter counts and peak memory (CUDA allocated/reserved, RSS)
        env.json              package versions, device, torch threads
        train.ipynb           the executed notebook (added by the grid runner)
    .tmp/<run_id>.<pid>.<n>/  a run in progress (or killed); never read as a result
    .failed/<run_id>.json     the last failure of a run (helpers.run.failures)
    .logs/<run_id>.<attempt>.log    the grid runner's log of each attempt (and .ipynb)
    .claims/<run_id>.lock     who is running it now (helpers.grid.claims)
    .corrupt/<run_id>-<time>/ a run folder whose records did not validate, set aside
    .cache/                   tokenized datasets (``token_cache``), compiled kernels
    .submitit/<job id>/       submitit's job files (a grid run with a submitit executor)

A folder ``<run_id>/`` is complete when its records parse and validate
(:func:`helpers.run.records.check_records`, also run before publishing): a truncated file, a
hand-made folder or a diverged run is not a result, and ``grid status`` reports it as corrupt
with what is wrong.

Every stage receives a :class:`RunStore`, never a path to join names onto: a folder name typed
by a person becomes a store in one place (:meth:`RunStore.at`, the command line, a notebook's
``runs_dir`` parameter).
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import itertools
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from helpers.settings import project_path

from . import disk, liveness
from .failures import FailureRecords
from .records import check_records as _check

TMP_DIR = ".tmp"
LOGS_DIR = ".logs"
CLAIMS_DIR = ".claims"
CORRUPT_DIR = ".corrupt"
CACHE_DIR = ".cache"
SUBMITIT_DIR = ".submitit"
_ATTEMPT = re.compile(r"\d{8}T\d{6}-\d+\.log")
_counter = itertools.count()


class NotWritableError(RuntimeError):
    """The runs folder cannot be written; the message says which folder and why."""


@dataclasses.dataclass(frozen=True)
class RunStore(FailureRecords):
    """The runs folder at ``root``: where each file lives, which runs are complete, how a run
    is published, set aside or cleaned up, and its failure records (:class:`FailureRecords`).
    Frozen and picklable, so a grid hands the same store to its worker processes."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @classmethod
    def at(cls, folder: str | os.PathLike | RunStore) -> RunStore:
        """The store of ``folder`` as a person names it: relative paths from the project
        root (:func:`helpers.settings.project_path`); a store is returned as it is."""
        return folder if isinstance(folder, RunStore) else cls(project_path(folder))

    def __str__(self) -> str:  # messages name the folder
        return str(self.root)

    # -- layout ------------------------------------------------------------------------------
    def path(self, run_id: str) -> Path:
        return self.root / run_id

    @property
    def tmp_dir(self) -> Path:
        return self.root / TMP_DIR

    @property
    def logs_dir(self) -> Path:
        return self.root / LOGS_DIR

    @property
    def claims_dir(self) -> Path:
        return self.root / CLAIMS_DIR

    @property
    def corrupt_dir(self) -> Path:
        return self.root / CORRUPT_DIR

    @property
    def cache_dir(self) -> Path:
        """Caches shared by runs (compiled kernels); never a result."""
        return self.root / CACHE_DIR

    @property
    def token_cache(self) -> Path:
        """helpers.run.batches' tokenized datasets; :meth:`clean_stale` sweeps its debris."""
        return self.cache_dir / "tokenized"

    @property
    def submitit_dir(self) -> Path:
        """submitit's job files (helpers.grid.slurm): stdout, stderr, pickled tasks."""
        return self.root / SUBMITIT_DIR

    def claim_path(self, run_id: str) -> Path:
        return self.claims_dir / f"{run_id}.lock"

    def log_path(self, run_id: str, attempt: str) -> Path:
        """The log of one attempt; its executed notebook is the same path with ``.ipynb``."""
        return self.logs_dir / f"{run_id}.{attempt}.log"

    def attempt_logs(self, run_id: str) -> list[Path]:
        """Every attempt's log of ``run_id``, oldest first."""
        if not self.logs_dir.is_dir():
            return []
        found = [p for p in self.logs_dir.iterdir() if p.name.startswith(f"{run_id}.")
                 and _ATTEMPT.fullmatch(p.name[len(run_id) + 1:])]
        return sorted(found, key=lambda p: (p.stat().st_mtime, p.name))

    # -- what is complete --------------------------------------------------------------------
    def check(self, run_id: str) -> str | None:
        """What is wrong with the folder of ``run_id`` (None: a complete run)."""
        path = self.path(run_id)
        return _check(path, run_id) if path.is_dir() else "no folder"

    def is_complete(self, run_id: str) -> bool:
        return self.path(run_id).is_dir() and self.check(run_id) is None

    def run_folders(self) -> list[Path]:
        """Every folder named like a run (not the store's own ``.``-folders), complete or
        not, sorted by name."""
        if not self.root.is_dir():
            return []
        return sorted(p for p in self.root.iterdir() if not p.name.startswith(".")
                      and p.is_dir())

    def complete_runs(self) -> list[Path]:
        """Every complete run folder, sorted by name."""
        return [p for p in self.run_folders() if _check(p) is None]

    def staging_alive(self, run_id: str) -> bool:
        """Whether a live process of this host is writing ``run_id`` now (its ``.tmp``)."""
        for d in self.tmp_dir.glob(f"{glob.escape(run_id)}.*") if self.tmp_dir.is_dir() else []:
            pid = d.name[len(run_id) + 1:].split(".")[0]
            if pid.isdigit() and liveness.pid_alive(int(pid)):
                return True
        return False

    # -- writing -----------------------------------------------------------------------------
    @contextlib.contextmanager
    def staging(self, run_id: str) -> Iterator[Path]:
        """Yield an empty private folder; on success rename it to :meth:`path`.

        On an exception the folder is removed and the exception re-raised, so a failed run
        never looks complete. A killed process leaves only ``.tmp/`` debris
        (:meth:`clean_stale`).
        """
        tmp = self.tmp_dir / f"{run_id}.{os.getpid()}.{next(_counter)}"
        tmp.mkdir(parents=True)
        try:
            yield tmp
            problem = _check(tmp, run_id)
            if problem:
                raise RuntimeError(f"run {run_id}: {problem}; not marking it complete")
            self._publish(tmp, run_id)
        except BaseException as e:
            shutil.rmtree(tmp, ignore_errors=True)
            if disk.is_disk_full(e):  # pandas' or torch's own write: say where and how much
                raise disk.disk_full(e, self.root, None,
                                     f"the records of run {run_id} in {tmp}") from e
            raise
        self.clear_failure(run_id)

    def _publish(self, tmp: Path, run_id: str) -> None:
        """Move ``tmp`` to the run's folder atomically, replacing an older complete run if
        any (a folder there that does not validate is set aside, not deleted)."""
        final = self.path(run_id)
        problem = _check(final) if final.exists() else None
        if problem:
            self.set_aside(run_id, problem)
        if final.exists():
            trash = self.tmp_dir / f"{run_id}.old.{os.getpid()}.{next(_counter)}"
            final.rename(trash)
            tmp.rename(final)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            tmp.rename(final)

    def set_aside(self, run_id: str, problem: str) -> Path:
        """Move a run folder that does not validate to ``.corrupt/<run_id>-<time>/`` (kept
        for a person to look at, never deleted) with a note of what was wrong."""
        self.corrupt_dir.mkdir(parents=True, exist_ok=True)
        dest = self.corrupt_dir / (f"{run_id}-{time.strftime('%Y%m%dT%H%M%S')}-"
                                   f"{os.getpid()}.{next(_counter)}")
        self.path(run_id).rename(dest)
        (dest.parent / f"{dest.name}.txt").write_text(
            f"{run_id}: set aside on {time.strftime('%Y-%m-%d %H:%M:%S')} by pid "
            f"{os.getpid()} and rerun, because {problem}\n", encoding="utf-8")
        return dest

    def clean_stale(self) -> list[Path]:
        """Remove ``.tmp`` folders whose writing process is gone (killed runs), and the
        temporary files of writes that died or failed (a full disk): ``.failed/.*.<pid>.tmp``
        and the token cache's ``.<hash>.<pid>.tmp``."""
        removed = []
        for d in sorted(self.tmp_dir.iterdir()) if self.tmp_dir.is_dir() else []:
            pid = _pid_of(d.name)
            if pid is not None and pid != os.getpid() and liveness.pid_alive(pid):
                continue
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d)
        for folder in (self.failed_dir, self.token_cache):
            for d in sorted(folder.glob(".*.tmp")) if folder.is_dir() else []:
                pid = d.name.split(".")[-2]
                if pid.isdigit() and int(pid) != os.getpid() and liveness.pid_alive(int(pid)):
                    continue
                if d.is_dir():
                    shutil.rmtree(d, ignore_errors=True)
                else:
                    d.unlink(missing_ok=True)
                removed.append(d)
        return removed

    def check_writable(self) -> RunStore:
        """Create the folder if needed and prove it writable (a real file, not ``os.access``:
        read-only mounts and ACLs), before any work starts."""
        # a file where the folder (or one above it) should be: said so, not "File exists"
        blocker = next((p for p in (self.root, *self.root.parents)
                        if p.exists() and not p.is_dir()), None)
        if blocker is not None:
            raise NotWritableError(
                f"runs folder {self.root}: {blocker} is a file, not a folder; choose another "
                f"folder (--runs-dir, or the runs_dir parameter) or move the file.")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(prefix=".write-check.", dir=self.root)
            os.close(fd)
            os.unlink(probe)
        except OSError as e:
            raise NotWritableError(
                f"runs folder {self.root} is not writable ({e.strerror or e}); fix its "
                f"permissions or choose another folder (--runs-dir, or the runs_dir "
                f"parameter).") from None
        return self

    def free_bytes(self) -> int | None:
        """Free space where runs are written (the folder, or the nearest one above it)."""
        return disk.free_bytes(self.root)


def _pid_of(name: str) -> int | None:
    """The writer's pid in a ``.tmp`` entry's name (``<run_id>.<pid>.<n>``)."""
    return next((int(p) for p in name.split(".")[1:] if p.isdigit()), None)


def new_attempt() -> str:
    """A name for one attempt at a run: sortable by time, unique per process."""
    return f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
