"""The solver layer's one error type."""


class SolverError(Exception):
    """A model file, a landmark set or a fitting problem that the solver cannot use."""
