"""Run the tracking pipeline in a worker thread and hand its events to another thread.

The Blender side (or any UI) starts a `TrackingJob` (or a `BackgroundJob` around any other
work, e.g. the multi-view fit), polls `events()` from its own thread
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
from .progress import CancelToken, Progress, ProgressCallback


@dataclass(frozen=True)
class JobFinished:
    run: TrackingRun      # or whatever the job's work returned (e.g. a multi-view run)


@dataclass(frozen=True)
class JobFailed:
    """The job raised: `message` is ready to show; `user_error` tells bad input from a bug."""

    message: str
    user_error: bool
    exception: BaseException


JobEvent = Union[Progress, JobFinished, JobFailed]
#: ``work(progress, cancel) -> run``: the job's body, run in the worker thread.
JobWork = Callable[[ProgressCallback, CancelToken], object]


class BackgroundJob:
    """`work` in a daemon thread, reporting through a thread-safe queue.

    work : ``work(progress, cancel) -> run``; `progress` puts `Progress` events on the queue,
    `cancel` is the job's `CancelToken`. Its return value arrives as `JobFinished(run)`, an
    exception as `JobFailed`.
    """

    def __init__(self, work: JobWork):
        self._body = work
        self._events: queue.Queue[JobEvent] = queue.Queue()
        self._cancel = CancelToken()
        self._thread = threading.Thread(target=self._work, name="densecap-tracking", daemon=True)

    def start(self) -> "BackgroundJob":
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

    def _progress(self, done: int, total: int | None, fps: float) -> None:
        self._events.put(Progress(done, total, fps))

    def _work(self) -> None:
        try:
            self._events.put(JobFinished(self._body(self._progress, self._cancel)))
        except USER_ERRORS as exc:
            self._events.put(JobFailed(str(exc), True, exc))
        except Exception as exc:   # a bug: report it to the UI thread rather than lose it
            self._events.put(JobFailed(f"{type(exc).__name__}: {exc}", False, exc))


class TrackingJob(BackgroundJob):
    """`track_footage` in a daemon thread (see `BackgroundJob`).

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
        def work(progress: ProgressCallback, cancel: CancelToken) -> TrackingRun:
            with open_footage() as footage:
                tracker = make_tracker(footage)
                return track_footage(footage, tracker, mode=mode, cancel=cancel,
                                     progress=progress, progress_interval=progress_interval)

        super().__init__(work)
