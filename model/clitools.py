"""What every command-line entry point shares (stdlib only, so the device-side runner can use it).

- `HelpFormatter`: --help shows each flag's default and keeps the description's line breaks.
- `user_errors`: a decorator for `main()`: a UserError (bad file, folder or argument) becomes
  `error: <one line>` and exit code 1 instead of a traceback.
- `check_ranges`: one-line errors for numeric flags outside their range (--runs 0, --eval-count -1).
- `quiet`: hides what libraries print (progress bars, converter logs, warnings, C++ runtime chatter)
  unless --verbose; what was hidden is kept, so a failure can point at it.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import io
import logging
import os
import sys
import tempfile
import warnings
from typing import Dict, Iterator

from .errors import UserError


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Every flag's help ends with its default (unless the help already says it; on/off flags read "off");
    the description and epilog are printed as written."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text.lower() or action.default is argparse.SUPPRESS or not action.option_strings:
            return text
        if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)) or action.default is False:
            return f"{text} (default: {'on' if action.default else 'off'})"
        if action.default is None:
            return f"{text} (default: none)"
        if isinstance(action, argparse.BooleanOptionalAction):
            return f"{text} (default: {'on' if action.default else 'off'})"
        return f"{text} (default: %(default)s)"


def user_errors(main):
    """Decorate a CLI main(): UserError -> SystemExit('error: ...') (exit code 1, no traceback)."""
    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except UserError as e:
            raise SystemExit(f"error: {e}") from None
    return wrapper


def check_ranges(args: argparse.Namespace, minimum: Dict[str, float]) -> None:
    """SystemExit('error: --flag must be at least N (got V)') for the first flag below its minimum;
    flags whose value is None (not given, no default) are skipped."""
    for name, low in minimum.items():
        value = getattr(args, name)
        if value is not None and value < low:
            low_text = f"{low:g}" if isinstance(low, float) else str(low)
            raise SystemExit(f"error: --{name.replace('_', '-')} must be at least {low_text} (got {value})")


class Captured:
    """What a quiet() block hid: `text` after the block."""

    def __init__(self) -> None:
        self.text = ""

    def tail(self, n: int = 5) -> str:
        lines = [ln.strip() for ln in self.text.splitlines() if ln.strip()]
        return " | ".join(lines[-n:])


# Environment switches that make the runtimes' own loggers quieter (read when they initialise).
QUIET_ENV = {"TF_CPP_MIN_LOG_LEVEL": "3", "GLOG_minloglevel": "3", "ORT_LOGGING_LEVEL": "3",
             "TQDM_DISABLE": "1", "ABSL_MIN_LOG_LEVEL": "3"}


@contextlib.contextmanager
def quiet(verbose: bool = False) -> Iterator[Captured]:
    """Hide library output in this block (Python warnings, logging up to WARNING, and anything written to file
    descriptors 1 and 2: C/C++ runtimes, progress bars, prints). With verbose=True nothing is hidden.
    What was hidden is in the yielded Captured's `text` afterwards."""
    captured = Captured()
    if verbose:
        yield captured
        return
    for k, v in QUIET_ENV.items():
        os.environ.setdefault(k, v)
    _flush()
    saved, sink = [], None
    try:
        sink = tempfile.TemporaryFile(mode="w+b")
        for fd in (1, 2):
            saved.append((fd, os.dup(fd)))
            os.dup2(sink.fileno(), fd)
    except OSError:  # no real file descriptors (embedded interpreter): hide what Python code prints, at least
        for fd, copy in saved:
            os.dup2(copy, fd)
            os.close(copy)
        saved = []
    disabled = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings(), contextlib.ExitStack() as stack:
            warnings.simplefilter("ignore")
            if not saved:
                stack.enter_context(contextlib.redirect_stdout(_Keep(captured)))
                stack.enter_context(contextlib.redirect_stderr(_Keep(captured)))
            yield captured
    finally:
        logging.disable(disabled)
        _flush()  # what Python buffered goes to the sink, not to the terminal after it
        for fd, copy in saved:
            os.dup2(copy, fd)
            os.close(copy)
        if sink is not None:
            sink.seek(0)
            captured.text += sink.read().decode("utf-8", "replace")
            sink.close()


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            stream.flush()
        except (AttributeError, ValueError, OSError):
            pass


class _Keep(io.TextIOBase):
    """A text stream that keeps what Python code printed to it."""

    def __init__(self, captured: Captured):
        super().__init__()
        self.captured = captured

    def write(self, s: str) -> int:
        self.captured.text += s
        return len(s)


def add_verbose(p: argparse.ArgumentParser) -> None:
    p.add_argument("--verbose", action="store_true",
                   help="show the libraries' own output (converter logs, progress bars, warnings), hidden by default")
