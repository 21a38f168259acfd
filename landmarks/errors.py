"""The landmarks layer's one error type."""


class LandmarkError(Exception):
    """Footage that cannot be read, a camera that cannot be opened, a missing network file,
    or an image or face region the landmark front end cannot use."""
