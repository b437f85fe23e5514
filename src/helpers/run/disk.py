"""A full disk: one error that names the folder, the space free there and the space needed.

``ENOSPC`` (no space left) and ``EDQUOT`` (quota exceeded) are the same problem to a user: a
write needs room the folder has not got. :class:`DiskFullError` is still an ``OSError``
(errno kept), so code that handles OSError goes on working; its message says what to do.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
from pathlib import Path

FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


class DiskFullError(OSError):
    """No room (or no quota) left in ``folder`` for ``needed`` bytes (None: unknown)."""

    def __init__(self, err: int, what: str, folder: Path, needed: int | None,
                 free: int | None) -> None:
        self.folder, self.needed, self.free = folder, needed, free
        cause = "disk quota exceeded" if err == errno.EDQUOT else "disk full"
        room = f"{size(free)} free there" if free is not None else "free space unknown"
        need = (f", {size(needed)} needed" if needed is not None
                else ", more needed" if free is not None else "")
        super().__init__(err, f"{cause}: could not write {what} ({room}{need}). Free some "
                              f"space on that disk (or choose another folder, e.g. "
                              f"--runs-dir) and run the same command again.")

    def __str__(self) -> str:
        return self.strerror or super().__str__()

    def __reduce__(self):  # pickled from a worker or a submitit job to the runner
        return (type(self), (self.errno, self.strerror, self.folder, self.needed, self.free))


def is_disk_full(e: BaseException) -> bool:
    return isinstance(e, OSError) and e.errno in FULL_ERRNOS


def free_bytes(path: str | os.PathLike) -> int | None:
    """Free bytes on the filesystem holding ``path`` (or its nearest existing parent)."""
    p = Path(path).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return shutil.disk_usage(p).free
    except OSError:
        return None


def size(n: int | None) -> str:
    """``512 B``, ``90.2 KB``, ``1.4 GB`` (powers of 1000, as df -H and file managers)."""
    if n is None:
        return "?"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def disk_full(e: OSError, path: str | os.PathLike, needed: int | None = None,
              what: str | None = None) -> DiskFullError:
    """The DiskFullError for ``e`` raised while writing ``path`` (a file or a folder)."""
    if isinstance(e, DiskFullError):
        return e
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    return DiskFullError(e.errno or errno.ENOSPC, what or str(path), folder, needed,
                         free_bytes(folder))


_ERRNO_IN_TEXT = re.compile(r"\[Errno (\d+)\][^']*(?:'([^']+)')?")


def from_message(text: str, folder: str | os.PathLike) -> DiskFullError | None:
    """The DiskFullError that ``text`` (an OSError's message, as a kernel's traceback gives
    it: ``[Errno 28] No space left on device: '/runs/x'``) reports, else None."""
    m = _ERRNO_IN_TEXT.search(text)
    if m is None or int(m.group(1)) not in FULL_ERRNOS:
        return None
    path = Path(m.group(2)) if m.group(2) else Path(folder)
    return disk_full(OSError(int(m.group(1)), os.strerror(int(m.group(1)))), path,
                     what=str(path) if m.group(2) else f"the run's files in {path}")


def write_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` through a temporary file renamed into place: a reader never sees half a
    file, and a failed write (a full disk: :class:`DiskFullError`) leaves no temporary file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    data = text.encode("utf-8")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
        tmp.replace(path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if is_disk_full(e):
            raise disk_full(e, path, len(data)) from None
        raise
