"""User-facing errors: bad input that the CLI reports in one line with exit code 2."""


class InputError(ValueError):
    """A malformed file, unknown name or out-of-range value, with a message naming
    the file or option, the field, what was found and what is allowed."""
