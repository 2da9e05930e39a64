"""User-facing errors: the CLI prints them as one line and exits non-zero."""


class OmniJaxError(Exception):
    """Bad input from the user (a config field, a file, a work directory).

    The message must say which field or file, and what was expected.
    """
