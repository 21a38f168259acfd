"""Run the tracking pipeline in a worker thread and hand its events to another thread.

The Blender side (or any UI) starts a `TrackingJob`, polls `events()` from its own thread
(e.g. a ``bpy.app.timers`` function) and calls `cancel()` on Esc. No bpy here.

Events, in order: any number of `Progress`, then exactly one of `JobFinished` (with the
`TrackingRun`, also after a cancel: the frames done are kept) or `JobFailed`.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from typing import Callable, Iterator, Union

from ..landmarks.footage import Footage
from .errors import USER_ERRORS
from .pipeline import FrameTracker, TrackingRun, track_footage
from .progress import CancelToken, Progress


@dataclass(frozen=True)
class JobFinished:
    run: TrackingRun


@dataclass(frozen=True)
class JobFailed:
    """The job raised: `message` is ready to show; `user_error` tells bad input from a bug."""

    message: str
    user_error: bool
    exception: BaseException


JobEvent = Union[Progress, JobFinished, JobFailed]


class TrackingJob:
    """`track_footage` in a daemon thread, reporting through a thread-safe queue.

    Parameters
    ----------
    open_footage : callable returning an open `Footage` (called in the worker, which closes it)
    make_tracker : callable ``(footage) -> FrameTracker`` (called in the worker)
    mode : "realtime" or "offline"
    progress_interval : seconds between progress events
    """

    def __init__(self, open_footage: Callable[[], Footage],
                 make_tracker: Callable[[Footage], FrameTracker], mode: str = "realtime",
                 progress_interval: float = 0.1):
        self._open_footage = open_footage
        self._make_tracker = make_tracker
        self._mode = mode
        self._progress_interval = progress_interval
        self._events: queue.Queue[JobEvent] = queue.Queue()
        self._cancel = CancelToken()
        self._thread = threading.Thread(target=self._work, name="densecap-tracking", daemon=True)

    def start(self) -> "TrackingJob":
        self._thread.start()
        return self

    def cancel(self) -> None:
        """Ask the worker to stop after the current frame (it keeps the frames done)."""
        self._cancel.cancel()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def events(self) -> Iterator[JobEvent]:
        """The events posted since the last call, without blocking."""
        while True:
            try:
                yield self._events.get_nowait()
            except queue.Empty:
                return

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def _work(self) -> None:
        try:
            with self._open_footage() as footage:
                tracker = self._make_tracker(footage)
                run = track_footage(
                    footage, tracker, mode=self._mode, cancel=self._cancel,
                    progress=lambda done, total, fps: self._events.put(Progress(done, total, fps)),
                    progress_interval=self._progress_interval)
            self._events.put(JobFinished(run))
        except USER_ERRORS as exc:
            self._events.put(JobFailed(str(exc), True, exc))
        except Exception as exc:   # a bug: report it to the UI thread rather than lose it
            self._events.put(JobFailed(f"{type(exc).__name__}: {exc}", False, exc))
