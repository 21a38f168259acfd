"""The landmarks layer's one error type."""


class LandmarkError(Exception):
    """Footage that cannot be read, a camera that cannot be opened, or an unusable face region."""
