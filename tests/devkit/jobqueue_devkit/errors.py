"""One error type for everything the devkit cannot do, so callers print one line."""


class DevkitError(RuntimeError):
    """A failure that names the problem and the fix in its message.

    The CLI prints the message alone (no traceback) and exits non-zero; the
    pytest fixtures turn it into a failed run under CI.
    """
