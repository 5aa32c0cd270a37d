"""Error types. Anything a user can fix (bad input, bad model file) is an
``InvalidInputError``; the CLI maps it to exit code 2 and nodes show its text."""


class InvalidInputError(ValueError):
    """The input is wrong in a way the user can fix; the message says how."""


class ModelFormatError(InvalidInputError):
    """A model file is missing, truncated, or not in a layout this project reads."""


class UnsafeCheckpointError(ModelFormatError):
    """A checkpoint needs full pickle (arbitrary code) to load; it is refused."""
