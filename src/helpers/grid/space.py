"""Room for a grid's runs: before any starts, the runs folder must have the space that the
runs going at once need (their records, logs and executed notebooks), or the grid is one
error naming the folder, what is free and what is needed (helpers.run.disk)."""

from __future__ import annotations

from helpers.run import disk
from helpers.run.records import REQUIRED_FILES
from helpers.run.store import RunStore

#: The least room one run is given (a MiniLM smoke run writes ~160 KB of records, log and
#: notebooks; its dataset's token cache, shared by the grid's runs, about 1 MB).
MIN_RUN_BYTES = 1_000_000


def run_bytes(store: RunStore, sample: int = 5) -> tuple[int, str | None]:
    """Bytes one run writes, measured on up to ``sample`` complete runs (records, log and
    executed notebook of the last attempt; the largest), and the run measured."""
    largest, name = 0, None
    for folder in store.complete_runs()[:sample]:
        # not a saved checkpoint (save_best_checkpoint): few runs keep one
        files = [folder / f for f in (*REQUIRED_FILES, "train.ipynb")
                 if (folder / f).is_file()]
        logs = store.attempt_logs(folder.name)[-1:]
        files += logs + [p.with_suffix(".ipynb") for p in logs if p.with_suffix(".ipynb")
                         .is_file()]
        total = sum(p.stat().st_size for p in files)
        if total > largest:
            largest, name = total, folder.name
    return largest, name


def check_space(store: RunStore, at_once: int) -> str | None:
    """What is wrong with the free space in ``store`` for ``at_once`` runs, or None."""
    free = store.free_bytes()
    measured, name = run_bytes(store)
    need = max(measured, MIN_RUN_BYTES)
    if free is None or free >= need * at_once:
        return None
    how = (f"measured on {name}" if measured >= MIN_RUN_BYTES else "at least")
    return (f"runs folder {store} has {disk.size(free)} free; a run needs about "
            f"{disk.size(need)} ({how}: records, log, executed notebook, token cache)"
            + (f", {at_once} at once {disk.size(need * at_once)}" if at_once > 1 else "")
            + ". Free some space there or choose another folder (--runs-dir); none was "
              "started.")
