"""Clip -> Performance pipeline, progress/cancel, preview video and the CLI (no bpy)."""

from .errors import USER_ERRORS, TrackingError
from .job import JobFailed, JobFinished, TrackingJob
from .performance import Camera, Performance, PerformanceBuilder, load_performance
from .pipeline import FrameResult, FrameTracker, TrackingRun, track_footage
from .preview import PreviewWriter
from .progress import CancelToken, Progress, ProgressCallback, TerminalProgress

__all__ = ["USER_ERRORS", "TrackingError", "JobFailed", "JobFinished", "TrackingJob", "Camera",
           "Performance", "PerformanceBuilder", "load_performance",
           "FrameResult", "FrameTracker", "TrackingRun", "track_footage", "PreviewWriter",
           "CancelToken", "Progress", "ProgressCallback", "TerminalProgress"]
