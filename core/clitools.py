"""What every command-line entry point shares (stdlib only, so the device-side runner can use it).

- `HelpFormatter`: --help shows each flag's default and keeps the description's line breaks.
- `user_errors`: a decorator for `main()`: a UserError (bad file, folder or argument) becomes
  `error: <one line>` and exit code 1 instead of a traceback.
- `ArgumentParser`: argparse's, with HelpFormatter by default, whose errors (a non-numeric --runs, an unknown
  flag, a missing argument) are one line, `error: <message> (see --help)`, and exit code 1 like every other
  user error, instead of argparse's usage block and exit code 2.
- `check_ranges`: one-line errors for numeric flags outside their range (--runs 0, --eval-count -1).
- `check_threads`: a thread count between 1 and this machine's cores (--threads 1000 oversubscribes it).
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
from typing import Dict, Iterator, List

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


class ArgumentParser(argparse.ArgumentParser):
    """argparse.ArgumentParser with HelpFormatter by default and one-line errors (exit code 1)."""

    def __init__(self, *args, formatter_class=HelpFormatter, **kwargs):
        super().__init__(*args, formatter_class=formatter_class, **kwargs)

    def error(self, message: str):
        """`error: <message> (see --help)` on stderr, exit code 1 (argparse's own: usage block, exit code 2)."""
        raise SystemExit(f"error: {' '.join(str(message).split())} (see --help)")


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


def check_threads(value, flag: str = "--threads") -> List[int]:
    """Each thread count in `value` (an int, a list of ints, or a comma list such as "1,2,4") must lie in
    1..os.cpu_count(): more threads than cores only oversubscribe the machine (every run slows down, each
    thread waiting for a core). Returns the counts; UserError naming the first bad one otherwise."""
    cores = os.cpu_count() or 1
    if isinstance(value, str):
        parts = [v.strip() for v in value.split(",") if v.strip()]
    elif isinstance(value, int):
        parts = [value]
    else:
        parts = list(value)
    counts = []
    for v in parts or [value]:
        try:
            n = int(v)
        except (TypeError, ValueError):
            n = None
        if n is None or str(n) != str(v).strip() or not 1 <= n <= cores:
            raise UserError(f"{flag} {v}: this machine has {cores} core{'s' if cores != 1 else ''}; give 1..{cores}")
        counts.append(n)
    return counts


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
