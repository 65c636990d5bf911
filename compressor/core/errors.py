"""The one error type the tool raises for anything the user can fix."""


class CompressError(ValueError):
    """A problem with the user's input or environment.

    The message is one line: what is wrong, then how to fix it. The CLI prints it
    without a traceback and exits with status 2.
    """
