"""The grid's progress: a bar over finished runs, and one line per finished run.

The bar is drawn only where it redraws in place (a terminal, JupyterLab's widgets); in a log
file each redraw would be appended, so there each finished run's line carries the count and
the runs in flight instead.
"""

from __future__ import annotations

from typing import Any

from helpers.run.progress import bar_class, redraws_in_place


class GridProgress:
    """tqdm bar over finished runs, postfix done/failed/remaining, one line per finished run."""

    def __init__(self, total: int, enabled: bool, out) -> None:
        self.tqdm = tqdm = bar_class()  # widgets in JupyterLab, text in a terminal or log
        self.live = enabled and redraws_in_place(out)
        self.bar = tqdm(total=total, unit="run", desc="grid", disable=not self.live, file=out,
                        dynamic_ncols=True)
        self.total, self.done, self.failed, self.out = total, 0, 0, out
        self.running: dict[str, int] = {}  # runs in flight per device ("cpu", GPU ids)
        self.skipped = 0
        self._postfix()

    def _in_flight(self) -> str:
        return " ".join(f"{'gpu' if d != 'cpu' else ''}{d}:{n}"
                        for d, n in sorted(self.running.items())) or "0"

    def _postfix(self) -> None:
        self.bar.set_postfix(done=self.done, failed=self.failed, skipped=self.skipped,
                             remaining=self.total - self.done - self.failed - self.skipped,
                             running=self._in_flight())

    def started(self, device: str) -> None:
        self.running[device] = self.running.get(device, 0) + 1
        self._postfix()

    def stopped(self, device: str) -> None:
        self.running[device] = max(0, self.running.get(device, 0) - 1)

    def finish(self, result: dict[str, Any]) -> None:
        if result.get("skipped"):
            self.skipped += 1
            line = f"  skipped {result['run_id']}: {result['skipped']}"
        elif result["ok"]:
            self.done += 1
            line = f"  done   {result['run_id']} ({result['seconds']:.0f}s)" + (
                f", {result['warning']}" if result.get("warning") else "")
        else:
            self.failed += 1
            line = f"  FAILED {result['run_id']} ({result['seconds']:.0f}s): {result['error']}"
        if not self.live:
            finished = self.done + self.failed + self.skipped
            line += f"  [{finished}/{self.total}, running={self._in_flight()}]"
        self.tqdm.write(line, file=self.out)
        self.bar.update(1)
        self._postfix()

    def close(self) -> None:
        self.bar.close()
