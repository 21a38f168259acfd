"""Clip -> Performance pipeline, progress/cancel, preview video and the CLI (no bpy)."""

from .errors import TrackingError
from .performance import Camera, Performance, PerformanceBuilder, load_performance
from .pipeline import FrameResult, FrameTracker, TrackingRun, track_footage
from .preview import PreviewWriter
from .progress import CancelToken, Progress, ProgressCallback, TerminalProgress

__all__ = ["TrackingError", "Camera", "Performance", "PerformanceBuilder", "load_performance",
           "FrameResult", "FrameTracker", "TrackingRun", "track_footage", "PreviewWriter",
           "CancelToken", "Progress", "ProgressCallback", "TerminalProgress"]
