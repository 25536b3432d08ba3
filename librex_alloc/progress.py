"""A tiny dependency-free progress line for long command-line runs (written to stderr).

On a terminal, one line redrawn in place with ``\\r`` at most every ``min_interval`` seconds
(default 0.1 s, i.e. ≤ 10 redraws per second) and ended by a newline::

    demo  42% [########            ] 840/2000 rounds  0:03 elapsed, ETA 0:04

When the stream is not a terminal (a log file, CI), one plain line per 10 % step instead, so
a log gets at most 11 lines. A :class:`Progress` is callable with the number of units done, so
it can be passed directly as ``simulate(..., progress=...)``.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from typing import TextIO

__all__ = ["Progress", "format_duration"]


def format_duration(seconds: float) -> str:
    """``m:ss`` or ``h:mm:ss`` (``--:--`` when unknown or not finite)."""
    if not math.isfinite(seconds) or seconds < 0:
        return "--:--"
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Progress:
    """Progress of ``total`` units; ``update(done)`` / ``progress(done)`` after each unit.

    total: number of units (≥ 0); label: text in front; unit: text after ``done/total``;
    stream: defaults to ``sys.stderr``; enabled: False makes every call a no-op; tty: force the
    terminal (True) or log (False) style, None asks ``stream.isatty()``; min_interval: seconds
    between terminal redraws; clock: seconds, monotonic (injectable for tests).
    Use as a context manager, or call :meth:`close` to finish the line.
    """

    BAR_WIDTH = 20

    def __init__(self, total: int, label: str = "", *, unit: str = "",
                 stream: TextIO | None = None, enabled: bool = True, tty: bool | None = None,
                 min_interval: float = 0.1, clock: Callable[[], float] = time.monotonic):
        self.total = max(int(total), 0)
        self.label = label
        self.unit = f" {unit}" if unit else ""
        self.stream = sys.stderr if stream is None else stream
        self.enabled = bool(enabled)
        if tty is None:
            try:
                tty = bool(self.stream.isatty())
            except (AttributeError, ValueError, OSError):
                tty = False
        self.tty = tty
        self.min_interval = float(min_interval)
        self._clock = clock
        self._start = clock()
        self._done = 0.0
        self._last_draw = -math.inf
        self._next_step = 10  # log style: next percentage (multiple of 10) to report
        self._width = 0  # length of the line on screen (terminal style)
        self._closed = False

    # ------------------------------------------------------------------ public
    def __call__(self, done: float) -> None:
        self.update(done)

    def update(self, done: float) -> None:
        """Record ``done`` units (clipped to [0, total]) and redraw if it is time to."""
        if not self.enabled or self._closed:
            return
        self._done = min(max(float(done), 0.0), float(self.total))
        now = self._clock()
        finished = self._done >= self.total
        if self.tty:
            if finished or now - self._last_draw >= self.min_interval:
                self._last_draw = now
                self._write("\r" + self._padded(self.render(now)))
        else:
            pct = self._percent()
            if pct >= self._next_step:
                self._next_step = (int(pct) // 10 + 1) * 10
                self._write(self.render(now) + "\n")

    def close(self) -> None:
        """Draw the final state and end the line (terminal style); idempotent."""
        if not self.enabled or self._closed:
            return
        if self.tty:
            self._write("\r" + self._padded(self.render(self._clock())) + "\n")
        self._closed = True

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def render(self, now: float | None = None) -> str:
        """The progress line (no ``\\r`` or newline)."""
        now = self._clock() if now is None else now
        elapsed = now - self._start
        frac = self._done / self.total if self.total else 1.0
        filled = int(frac * self.BAR_WIDTH)
        bar = "#" * filled + " " * (self.BAR_WIDTH - filled)
        done = int(self._done) if float(self._done).is_integer() else round(self._done, 1)
        head = f"{self.label} " if self.label else ""
        text = (f"{head}{self._percent():3.0f}% [{bar}] {done}/{self.total}{self.unit}  "
                f"{format_duration(elapsed)} elapsed")
        if frac < 1.0:
            eta = elapsed / frac * (1.0 - frac) if frac > 0 else math.inf
            text += f", ETA {format_duration(eta)}"
        return text

    # ------------------------------------------------------------------ helpers
    def _percent(self) -> float:
        return 100.0 * self._done / self.total if self.total else 100.0

    def _padded(self, line: str) -> str:
        pad = max(self._width - len(line), 0)
        self._width = len(line)
        return line + " " * pad

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # closed or broken stream: stop reporting, keep running
            self.enabled = False
