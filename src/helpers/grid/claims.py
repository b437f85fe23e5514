"""Claims: each run id is trained by one process at a time, however many runners share a
runs folder (two terminals, a Slurm array beside a local batch, two ``make report``).

A claim is the file ``runs/.claims/<run_id>.lock`` (:meth:`RunStore.claim_path`), created
atomically (a hard link of a written file, else ``O_CREAT | O_EXCL``; both also on NFS):
whoever creates it runs the config, everyone else skips it. It names its holder (host, pid, the
pid's start time, when, a random token); while the run goes on, a thread writes the time into
its heartbeat file (``.<run_id>.lock.<token>.beat``, the holder's own, so a late beat never
overwrites another holder's claim) every :data:`HEARTBEAT_S` seconds, and both are removed when
the run ends. A claim is stale, and taken over, when its holder is gone
(:mod:`helpers.run.liveness`, by content, never by a file's mtime): on the same host when the
pid is dead, a zombie or now another process; from another host when its last heartbeat is
older than :data:`STALE_AFTER_S` or dated in the future; and an empty or unparseable claim has
no holder. Taking over goes through a second ``O_EXCL`` file, so two runners that both find a
stale claim don't both win.

Hand-written rather than ``filelock``: a claim must say who holds it (``grid status``, the
skipped-run message) and must be judged stale from another host, which a ``flock`` cannot.
Nor does filelock 4.3.1's ``SoftFileLease``: it keeps a zombie's lease (``kill(pid, 0)``
succeeds on one), takes another host's lease only once the contender itself has watched it
unchanged for the whole lease (a heartbeat's age on disk counts for nothing), takes over only
through ``renameat2(RENAME_EXCHANGE)``, which NFS refuses (a dead holder's lease is never taken
over there), and records no claim time for "since 10:01:02".
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helpers.run import liveness
from helpers.run.store import RunStore

HEARTBEAT_S = 30.0
#: Ten heartbeats: a holder on another host that has not touched its claim for this long is
#: taken as gone (a paused or partitioned host may then lose its claim; its token check
#: keeps it from deleting the new holder's).
STALE_AFTER_S = 300.0
#: A takeover in progress whose process died is ignored after this long.
BREAK_STALE_S = 60.0


def _read(path: Path) -> dict[str, Any] | None:
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return info if isinstance(info, dict) else None


read_claim = _read  # what a claim file says (None: gone or unreadable)


def _beat_path(path: Path, token: Any) -> Path:
    return path.with_name(f".{path.name}.{token}.beat")


def last_beat(info: dict[str, Any], path: Path) -> float | None:
    """The holder's last heartbeat (epoch seconds): its beat file's time, else its start."""
    beat = _read(_beat_path(path, info.get("token")))
    times = [t for t in ((beat or {}).get("time"), info.get("started"))
             if isinstance(t, (int, float)) and not isinstance(t, bool)]
    return max(times) if times else None


def _live(info: dict[str, Any] | None, path: Path, stale_after: float) -> bool:
    """Whether the claim at ``path`` (content ``info``) still has a holder."""
    if not info or not isinstance(info.get("token"), str):
        return False  # empty, unparseable or hand-made: nobody holds it
    if info.get("host") == socket.gethostname():
        return liveness.pid_alive(info.get("pid"), info.get("pid_started"))
    return liveness.heartbeat_fresh(last_beat(info, path), stale_after)


def holder(store: RunStore, run_id: str,
           stale_after: float = STALE_AFTER_S) -> dict[str, Any] | None:
    """Who holds the claim on ``run_id`` now (its recorded info), or None (free or stale)."""
    path = store.claim_path(run_id)
    if not path.exists():
        return None
    info = _read(path)
    return info if info is not None and _live(info, path, stale_after) else None


def held_by(store: RunStore, run_id: str) -> str | None:
    """``claimed by pid 12 on host-a since ... (expires ...)`` when ``run_id`` is held now."""
    who = holder(store, run_id)
    return f"claimed by {describe(who, store.claim_path(run_id))}" if who else None


def describe(info: dict[str, Any] | None, path: Path | None = None,
             stale_after: float = STALE_AFTER_S) -> str:
    """``pid 123 on host-a since 12:03:04`` for messages, and when the claim ends without
    its holder: while the pid lives (this host), or the time it expires without a heartbeat
    (another host; ``path`` is the claim's, to read its heartbeat)."""
    if not info:
        return "another runner"
    clock = lambda t: time.strftime("%H:%M:%S", time.localtime(t))  # noqa: E731
    started = info.get("started")
    text = (f"pid {info.get('pid')} on {info.get('host')}"
            + (f" since {clock(started)}" if isinstance(started, (int, float)) else ""))
    if info.get("host") == socket.gethostname():
        return f"{text} (held while that process lives)"
    beat = last_beat(info, path) if path is not None else None
    if beat is None:
        return text
    return (f"{text} (last heartbeat {clock(beat)}; expires at {clock(beat + stale_after)} "
            f"without another)")


@dataclass
class Claim:
    """A held claim; :meth:`release` (or leaving the ``with`` block) gives it back."""

    path: Path
    info: dict[str, Any]
    heartbeat_s: float = HEARTBEAT_S
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start_heartbeat(self) -> None:
        self._thread = threading.Thread(target=self._beat, name="claim-heartbeat", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            if not self.held():
                return  # taken over (we were judged gone): never touch another's claim
            self.beat()

    def beat(self) -> None:
        """Write the time into this holder's own heartbeat file (atomically)."""
        with contextlib.suppress(OSError):
            beat = _beat_path(self.path, self.info["token"])
            tmp = beat.with_name(f"{beat.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps({"time": time.time()}), encoding="utf-8")
            os.replace(tmp, beat)

    def held(self) -> bool:
        current = _read(self.path)
        return bool(current) and current.get("token") == self.info["token"]

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.held():
            self.path.unlink(missing_ok=True)
        _beat_path(self.path, self.info["token"]).unlink(missing_ok=True)

    def __enter__(self) -> Claim:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def try_claim(store: RunStore, run_id: str, *, heartbeat_s: float = HEARTBEAT_S,
              stale_after: float = STALE_AFTER_S) -> Claim | None:
    """Claim ``run_id`` for this process (taking over a stale claim); None when it is held."""
    path = store.claim_path(run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    info = {"run_id": run_id, "host": socket.gethostname(), "pid": os.getpid(),
            "pid_started": liveness.process_start(os.getpid()), "started": time.time(),
            "token": secrets.token_hex(8)}
    for _ in range(3):  # a takeover can race another; a few tries settle it
        if _create(path, info):
            claim = Claim(path, info, heartbeat_s)
            claim.start_heartbeat()
            return claim
        seen = _read(path)
        if _live(seen, path, stale_after) or not _take_over(path, seen, stale_after):
            return None
    return None


def discard_stale(store: RunStore, run_id: str,
                  stale_after: float = STALE_AFTER_S) -> bool:
    """Remove ``run_id``'s claim when nobody holds it (its runner was killed after the run
    was published), by the same takeover that :func:`try_claim` uses, without claiming; a
    held claim stays. True when a claim was removed."""
    path = store.claim_path(run_id)
    if not path.exists():
        return False
    seen = _read(path)
    if _live(seen, path, stale_after):
        return False
    _take_over(path, seen, stale_after)
    return not path.exists()


def _create(path: Path, info: dict[str, Any]) -> bool:
    """Create ``path`` holding ``info`` unless it exists, atomically.

    Written to a private file, then hard-linked into place: a reader never sees a claim
    without its holder (``link`` fails when the name exists, like ``O_EXCL``). Where the
    filesystem has no hard links, ``O_EXCL`` and then the write (there, for that instant, the
    claim is empty, which another runner would take as stale).
    """
    tmp = path.with_name(f".{path.name}.{info['token']}")
    tmp.write_text(json.dumps(info), encoding="utf-8")
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    except OSError:  # no hard links here
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(info, fh)
        return True
    finally:
        tmp.unlink(missing_ok=True)


def _take_over(path: Path, seen: dict[str, Any] | None, stale_after: float) -> bool:
    """Remove the stale claim ``path`` if it is still the one judged stale (content ``seen``);
    True when the caller may try to create it again."""
    breaker = path.with_name(path.name + ".break")
    try:
        fd = os.open(breaker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        with contextlib.suppress(FileNotFoundError):
            if time.time() - breaker.stat().st_mtime > BREAK_STALE_S:
                breaker.unlink()  # its breaker died mid-takeover
                return True
        return False  # another runner is taking it over right now
    os.close(fd)
    try:
        current = _read(path)
        if current == seen and not _live(current, path, stale_after):
            path.unlink(missing_ok=True)
            if isinstance(seen, dict) and isinstance(seen.get("token"), str):
                _beat_path(path, seen["token"]).unlink(missing_ok=True)
        return True
    finally:
        breaker.unlink(missing_ok=True)
