"""The landmarks layer's one error type."""


class LandmarkError(Exception):
    """A missing network file or an image/crop the landmark front end cannot use."""
