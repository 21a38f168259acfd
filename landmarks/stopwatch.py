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


class NoLaps:
    """The default: records nothing."""

    def start(self) -> None:
        """Nothing to start."""

    def lap(self, stage: str) -> None:
        """Nothing to record."""


NO_LAPS = NoLaps()


class Stopwatch(NoLaps):
    """Seconds per stage since `take`: each `lap(stage)` adds the time since the previous
    `lap` (or `start`) to ``stage``."""

    def __init__(self):
        self._seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def start(self) -> None:
        """Start timing the next stage now."""
        self._last = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self._seconds[stage] = self._seconds.get(stage, 0.0) + now - self._last
        self._last = now

    def take(self) -> dict[str, float]:
        """The seconds per stage recorded since the last `take` (then cleared)."""
        seconds, self._seconds = self._seconds, {}
        return seconds
