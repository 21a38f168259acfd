"""Live tracking: a camera (or a clip standing in for it) tracked in worker threads (no bpy).

Once the tracker is made, a reader thread takes frames from the `Footage` as they come (a file is paced at its own
frame rate, like a camera) and keeps only the newest; a tracker thread tracks the newest
frame whenever it is free, so the result follows the camera with at most one frame of lag
and frames the tracker cannot keep up with are dropped. The UI thread polls `drain()` (every frame tracked since the last call, for recording) or
`latest()`.

>>> capture = LiveCapture(open_footage(0), lambda footage: make_tracker(footage, ...))  # doctest: +SKIP
>>> capture.start(); frame = capture.latest()                                          # doctest: +SKIP
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np

from ..landmarks.footage import Footage
from .errors import USER_ERRORS
from .pipeline import FrameResult, FrameTracker


#: Tracked frames kept for `drain()` when the UI does not poll (e.g. a busy Blender).
HISTORY = 600


@dataclass(frozen=True)
class LiveFrame:
    """One tracked frame: `number` counts tracked frames from 1, `captured` is the
    time.monotonic() of its capture, `image` (H, W, 3) uint8 BGR (None once a newer frame
    was tracked: only the newest keeps its image)."""

    number: int
    frame_index: int
    captured: float
    image: np.ndarray | None
    result: FrameResult


def subtract_neutral(psi: np.ndarray, neutral: np.ndarray | None) -> np.ndarray:
    """Expression weights (E,) relative to a captured neutral face (E,), clipped to [0, 1]."""
    if neutral is None:
        return np.asarray(psi, dtype=np.float64)
    return np.clip(np.asarray(psi, dtype=np.float64) - neutral, 0.0, 1.0)


class LiveCapture:
    """Track the newest frame of `footage` continuously until `stop()` or the source ends.

    footage : an open `Footage` (a webcam, or a clip for tests and replays); this object
        closes it. make_tracker : ``(footage) -> FrameTracker``, called in the tracker thread.
    paced : True: read no faster than the frame rate and track the newest frame, dropping
        the ones the tracker cannot keep up with (a camera; the default for every source but
        a webcam, which paces itself). False: track every frame of a file, at the tracker's
        speed.
    """

    def __init__(self, footage: Footage, make_tracker: Callable[[Footage], FrameTracker],
                 paced: bool | None = None):
        self.footage = footage
        self._make_tracker = make_tracker
        self._paced = footage.kind != "webcam" if paced is None else paced
        self._lock = threading.Condition()
        self._pending: tuple[int, float, np.ndarray] | None = None
        self._latest: LiveFrame | None = None
        self._history: deque[LiveFrame] = deque(maxlen=HISTORY)
        self._source_ended = False
        self._stop = threading.Event()
        self._ready = threading.Event()        # the tracker is made: start reading
        self.error: str | None = None
        self.tracked = 0
        #: The tracker (made in the tracker thread): its identity and camera for a recording.
        self.tracker: FrameTracker | None = None
        self._threads = [threading.Thread(target=self._read, name="densecap-live-read",
                                          daemon=True),
                         threading.Thread(target=self._track, name="densecap-live-track",
                                          daemon=True)]

    def start(self) -> "LiveCapture":
        for thread in self._threads:
            thread.start()
        return self

    @property
    def running(self) -> bool:
        return any(thread.is_alive() for thread in self._threads)

    def latest(self) -> LiveFrame | None:
        """The newest tracked frame (None before the first)."""
        with self._lock:
            return self._latest

    def drain(self) -> list[LiveFrame]:
        """The frames tracked since the last call, oldest first (the last one is `latest()`,
        with its image); at most `HISTORY`."""
        with self._lock:
            frames = list(self._history)
            self._history.clear()
            return frames

    def stop(self, timeout: float = 5.0) -> None:
        """Stop both threads and release the camera."""
        self._stop.set()
        self._ready.set()
        with self._lock:
            self._lock.notify_all()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout)
        self.footage.close()

    def _read(self) -> None:
        interval = 1.0 / self.footage.fps if self._paced else 0.0
        self._ready.wait()
        next_time = time.monotonic()
        try:
            for frame_index, image in self.footage:
                if self._stop.is_set():
                    break
                if interval:
                    delay = next_time - time.monotonic()
                    if delay > 0 and self._stop.wait(delay):
                        break
                    next_time = max(next_time + interval, time.monotonic() - interval)
                with self._lock:
                    while not self._paced and self._pending is not None and \
                            not self._stop.is_set():
                        self._lock.wait(0.5)           # unpaced: every frame is tracked
                    self._pending = (frame_index, time.monotonic(), image)
                    self._lock.notify_all()
        except USER_ERRORS as exc:
            self.error = str(exc)
        finally:
            with self._lock:
                self._source_ended = True
                self._lock.notify_all()

    def _track(self) -> None:
        try:
            try:
                tracker = self.tracker = self._make_tracker(self.footage)
            finally:
                self._ready.set()
            while not self._stop.is_set():
                with self._lock:
                    while self._pending is None and not self._source_ended and \
                            not self._stop.is_set():
                        self._lock.wait(0.5)
                    if self._pending is None:
                        return
                    frame_index, captured, image = self._pending
                    self._pending = None
                    self._lock.notify_all()
                result = tracker.track(frame_index, image)
                self.tracked += 1
                with self._lock:
                    if self._history:        # only the newest frame keeps its image
                        self._history[-1] = replace(self._history[-1], image=None)
                    self._latest = LiveFrame(self.tracked, frame_index, captured, image, result)
                    self._history.append(self._latest)
        except USER_ERRORS as exc:
            self.error = str(exc)
        except Exception as exc:      # a bug: keep the message for the UI rather than lose it
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self._stop.set()
