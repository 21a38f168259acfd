"""The tracking layer's one error type, and the errors a user can cause anywhere below it."""

from ..landmarks.errors import LandmarkError
from ..solver.errors import SolverError


class TrackingError(Exception):
    """A Performance file that cannot be used, an output that cannot be written, or a run
    that cannot start (e.g. nothing to track)."""


#: Bad input from a user (file, camera, option, model file): shown as a message, no traceback.
USER_ERRORS = (LandmarkError, SolverError, TrackingError)
