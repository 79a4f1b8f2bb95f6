"""Progress reports: one rate-limited reporter on top of :mod:`logging`.

The library reports progress to loggers under ``sdtheory`` at INFO level and never prints:
without a handler (the default for a library) nothing is shown. The ``sdtheory`` command
attaches a stderr handler (:func:`sdtheory.cli.main`), so long jobs show where they are; on a
terminal it also installs a display (:func:`set_display`) that draws the outermost
:class:`Progress` of a job as one progress bar instead of report lines.
"""

from __future__ import annotations

import contextlib
import logging
import time

__all__ = ["Progress", "quieted", "set_display"]

_DISPLAY = None
"""The display that draws progress (set by the command line on a terminal), or None: report
lines on the logger."""


def set_display(display):
    """Install ``display`` (None: none) and return the previous one. A display has
    ``start(progress) -> bool`` (whether it draws this progress: the outermost one of a job)
    and ``step(progress, n, message)``; a drawn progress reports no lines of its own, and one
    started while another is drawn reports none either (its steps are inside the drawn one)."""
    global _DISPLAY
    previous, _DISPLAY = _DISPLAY, display
    return previous


class Progress:
    """Reports ``done / total`` with the elapsed time and an estimate of the time left.

    Args:
      logger: where to report (INFO).
      total: number of steps, or None when unknown.
      what: label of a step ("round", "cell", "case", ...).
      interval: seconds between two reports. Nothing is reported before ``interval`` seconds
        have passed, so short jobs stay silent; a job that reported anything also reports its
        last step.

    Example:
      >>> p = Progress(logging.getLogger("sdtheory.demo"), total=3, what="round")
      >>> for r in range(3):
      ...     p.step(f"round {r} done")
    """

    def __init__(self, logger: logging.Logger, total: int | None = None, what: str = "step",
                 interval: float = 2.0):
        self.log = logger
        self.total = total
        self.what = what
        self.interval = float(interval)
        self.t0 = time.perf_counter()
        self.last = -float("inf")
        self.done = 0
        self.display = _DISPLAY if _DISPLAY is not None and _DISPLAY.start(self) else None
        # inside a drawn progress (a display is set but draws another one): no lines
        self.silent = _DISPLAY is not None and self.display is None

    def step(self, message: str = "", n: int = 1, *, force: bool = False) -> None:
        """Count ``n`` more steps done and report if the interval has passed."""
        self.done += n
        if self.display is not None:
            self.display.step(self, n, message)
            return
        if self.silent:
            return
        now = time.perf_counter()
        last_one = self.total is not None and self.done >= self.total
        due = now - max(self.last, self.t0) >= self.interval
        if not (force or due or (last_one and self.last > -float("inf"))):
            return
        self.last = now
        if not self.log.isEnabledFor(logging.INFO):
            return
        elapsed = now - self.t0
        if self.total:
            left = elapsed / self.done * (self.total - self.done) if self.done else float("nan")
            head = (f"{self.done}/{self.total} {self.what}s, {elapsed:.1f} s"
                    + (f", ~{left:.0f} s left" if self.done < self.total else ""))
        else:
            head = f"{self.done} {self.what}s, {elapsed:.1f} s"
        self.log.info("%s%s", head, f": {message}" if message else "")

    def note(self, message: str) -> None:
        """Report a line now, without counting a step."""
        self.log.info("%s", message)


@contextlib.contextmanager
def quieted(*names: str):
    """Within the block, the loggers ``names`` report warnings only (their levels are restored
    afterwards): for inner loops whose own progress would drown the caller's."""
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)
