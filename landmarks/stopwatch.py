"""Per-stage wall-clock time of the per-frame work, for the benches.

The per-frame code (`mediapipe478.MediaPipe478`, `tracking.landmark_tracker`) calls
``laps.lap("stage")`` at the end of each stage; by default ``laps`` is `NO_LAPS`, whose
`lap` does nothing (a method call, well under a microsecond a frame). A bench swaps in a
`Stopwatch` to see where a frame's time goes:

>>> watch = Stopwatch()
>>> watch.start(); work(); watch.lap("work")          # doctest: +SKIP
>>> watch.take()                                       # doctest: +SKIP
{'work': 0.0012}
"""

from __future__ import annotations

import time
from typing import Callable


class NoLaps:
    """The default: records nothing."""

    def start(self) -> None:
        """Nothing to start."""

    def lap(self, stage: str) -> None:
        """Nothing to record."""


NO_LAPS = NoLaps()


class Stopwatch(NoLaps):
    """Seconds per stage since `take`: each `lap(stage)` adds the time since the previous
    `lap` (or `start`) to ``stage``.

    clock : wall-clock time (`time.perf_counter`, the default) or this thread's CPU time
        (`time.thread_time`: on a busy machine it leaves out the time other processes took
        the core, for comparing two versions of single-threaded code)
    """

    def __init__(self, clock: Callable[[], float] = time.perf_counter):
        self.clock = clock
        self._seconds: dict[str, float] = {}
        self._last = clock()

    def start(self) -> None:
        """Start timing the next stage now."""
        self._last = self.clock()

    def lap(self, stage: str) -> None:
        now = self.clock()
        self._seconds[stage] = self._seconds.get(stage, 0.0) + now - self._last
        self._last = now

    def take(self) -> dict[str, float]:
        """The seconds per stage recorded since the last `take` (then cleared)."""
        seconds, self._seconds = self._seconds, {}
        return seconds
