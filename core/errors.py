"""The toolkit's user-error types (stdlib only: the device-side runner imports them without torch).

Every error a user can cause by what they pass (a file, a folder, an argument) is a `UserError`: its
message is one line that names the file or argument and the fix. CLIs turn it into `error: <message>`
and exit code 1 (core/clitools.py); anything else that escapes is a bug and keeps its traceback.
"""
from __future__ import annotations


class UserError(ValueError):
    """Bad input from the user; the message names the file or argument and the fix."""


class DataError(UserError):
    """Bad input data; the message names the file and the fix."""


class CheckpointError(UserError):
    """A checkpoint that cannot be used; the message names the file and the fix."""


class ModelFileError(UserError):
    """A model file that cannot be used; the message names the file and the fix."""


class InputError(UserError, TypeError):
    """An array or image handed to the Python API that it cannot segment (wrong type, shape or content)."""


class OutputError(UserError):
    """A result that cannot be written where it was asked to go (read-only folder, a file in the way)."""
