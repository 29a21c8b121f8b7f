"""User-facing errors: the CLI prints these as one line and exits non-zero, no traceback."""


class UserError(Exception):
    """Bad input from the user (path, config, data): message is shown as is."""
