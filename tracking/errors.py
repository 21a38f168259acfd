"""The tracking layer's one error type."""


class TrackingError(Exception):
    """A Performance file that cannot be used, an output that cannot be written, or a run
    that cannot start (e.g. nothing to track)."""
