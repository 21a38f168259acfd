"""The landmarks layer's one error type."""


class LandmarkError(Exception):
    """Footage that cannot be read, a camera that cannot be opened, an unusable face region,
    a missing network file or an image/crop the landmark front end cannot use."""
