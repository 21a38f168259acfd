"""Progress reporting and cancellation for long jobs, usable across threads.

* `CancelToken`: set from any thread (a UI button, Esc, Ctrl-C); the job checks it between
  frames and stops, keeping what it finished.
* `ProgressCallback`: ``callback(frames_done, frames_total, fps)``; ``frames_total`` is None
  when unknown (a webcam), ``fps`` is the measured processing rate.
* `TerminalProgress`: such a callback drawing a bar on stderr; on a terminal it redraws one
  line, elsewhere (CI logs, pipes) it prints a plain line every few seconds.

The Blender side runs the pipeline in a worker thread with a callback that puts `Progress`
records on a `queue.Queue`, drained by a `bpy.app.timers` function on the UI thread.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass
from typing import Callable, Optional, TextIO

#: ``callback(frames_done, frames_total_or_None, frames_per_second)``
ProgressCallback = Callable[[int, Optional[int], float], None]


class CancelToken:
    """A thread-safe flag: `cancel()` from anywhere, `cancelled` checked by the job."""

    def __init__(self):
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()


@dataclass(frozen=True)
class Progress:
    """One progress report (what a queue-based consumer receives)."""

    frames_done: int
    frames_total: int | None
    fps: float

    @property
    def fraction(self) -> float | None:
        """Done / total in [0, 1], None when the total is unknown."""
        if not self.frames_total:
            return None
        return min(self.frames_done / self.frames_total, 1.0)

    @property
    def seconds_left(self) -> float | None:
        """Estimated time to finish at the current rate, None when unknown."""
        if not self.frames_total or self.fps <= 0:
            return None
        return max(self.frames_total - self.frames_done, 0) / self.fps


class TerminalProgress:
    """A `ProgressCallback` that draws a progress bar on a text stream (stderr by default).

    On a terminal the line is redrawn at most `interval_tty` seconds apart; on anything else a
    new line is printed at most every `interval_log` seconds, so CI logs stay short. The last
    report is always drawn when `close()` is called.
    """

    def __init__(self, stream: TextIO | None = None, width: int = 30, label: str = "tracking",
                 interval_tty: float = 0.1, interval_log: float = 5.0):
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.label = label
        self.is_tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = interval_tty if self.is_tty else interval_log
        self._last_draw = -float("inf")
        self._last: Progress | None = None
        self._drawn: Progress | None = None

    def __call__(self, frames_done: int, frames_total: int | None, fps: float) -> None:
        self._last = Progress(frames_done, frames_total, fps)
        now = time.monotonic()
        if now - self._last_draw >= self.interval:
            self._draw(self._last)
            self._last_draw = now

    def close(self) -> None:
        """Draw the final state (if not drawn yet) and end the line."""
        if self._last is not None and self._last != self._drawn:
            self._draw(self._last)
        if self.is_tty and self._drawn is not None:
            self.stream.write("\n")
        self.stream.flush()

    def format(self, progress: Progress) -> str:
        """One report as text: ``tracking [#####-----]  50/100 frames  42.0 fps  ETA 1s``."""
        fraction = progress.fraction
        if fraction is None:
            counts = f"{progress.frames_done} frames"
            bar = ""
        else:
            filled = int(round(fraction * self.width))
            bar = "[" + "#" * filled + "-" * (self.width - filled) + "] "
            digits = len(str(progress.frames_total))
            counts = f"{progress.frames_done:>{digits}}/{progress.frames_total} frames"
        text = f"{self.label} {bar}{counts}  {progress.fps:.1f} fps"
        if progress.seconds_left is not None:
            text += f"  ETA {_duration(progress.seconds_left)}"
        return text

    def _draw(self, progress: Progress) -> None:
        text = self.format(progress)
        if self.is_tty:
            self.stream.write("\r" + text + "\x1b[K")
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
        self._drawn = progress


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
