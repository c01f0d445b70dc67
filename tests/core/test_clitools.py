"""core/clitools.py: argparse errors in the toolkit's one-line form, the thread-count check, and --help of every
command-line entry point: each flag says what it does and its default, and argparse's errors are one line."""
import argparse
import os
import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

from core.clitools import ArgumentParser, HelpFormatter, check_threads
from core.errors import UserError
from tests.conftest import REPO

CORES = os.cpu_count() or 1


def test_parser_error_is_one_line_and_exit_code_1_on_a_real_entry_point():
    p = subprocess.run([sys.executable, str(REPO / "benchmarks" / "run.py"), "--rounds", "abc"],
                       capture_output=True, text=True)
    assert p.returncode == 1, p.stderr
    assert p.stderr.splitlines() == ["error: argument --rounds: invalid int value: 'abc' (see --help)"]
    assert p.stdout == ""


@pytest.mark.parametrize("argv,message", [
    (["--runs", "x"], "argument --runs: invalid int value: 'x'"),
    (["f", "--nope"], "unrecognized arguments: --nope"),
    ([], "the following arguments are required: file"),
    (["f", "--mode", "c"], "argument --mode: invalid choice: 'c' (choose from 'a', 'b')"),
])
def test_parser_errors(argv, message, capsys):
    p = ArgumentParser(description="d")
    p.add_argument("file")
    p.add_argument("--runs", type=int, default=1, help="runs")
    p.add_argument("--mode", choices=["a", "b"], default="a", help="mode")
    with pytest.raises(SystemExit) as e:
        p.parse_args(argv)
    assert str(e.value.code) == f"error: {message} (see --help)"  # SystemExit(str): printed on stderr, exit code 1
    assert capsys.readouterr().err == ""  # no usage block
    assert p.formatter_class is HelpFormatter


def test_help_still_exits_0(capsys):
    p = ArgumentParser(description="d")
    p.add_argument("--runs", type=int, default=1, help="timed runs")
    with pytest.raises(SystemExit) as e:
        p.parse_args(["--help"])
    assert e.value.code == 0 and "timed runs (default: 1)" in capsys.readouterr().out


def test_check_threads():
    assert check_threads(1) == [1] and check_threads("1," + str(CORES)) == [1, CORES] and check_threads([CORES]) == [CORES]
    for bad in (CORES + 1, 1000, 0, -1, "two", f"1,{CORES + 1}"):
        shown = str(bad).split(",")[-1]
        with pytest.raises(UserError, match=rf"^--threads {shown}: this machine has {CORES} cores?; give 1\.\.{CORES}$"):
            check_threads(bad)
    with pytest.raises(UserError, match=r"^--intra 99999: "):
        check_threads(99999, "--intra")


# ------------------------------------------------------------------ every entry point's parser
# Every command-line entry point, discovered: each script of the repository that runs as __main__, in any folder
# but the tests, hidden ones (.venv, .git) and what runs write or install (outputs/, runs/, data/, node_modules/).
NOT_SOURCE = {"tests", "node_modules", "outputs", "runs", "data", "build", "__pycache__"}
MAIN = re.compile(r"""^if __name__ == ["']__main__["']:""", re.M)


def _entry_points():
    found = []
    for folder, dirs, files in os.walk(REPO):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in NOT_SOURCE]  # never walk into .venv
        found += [Path(folder, f) for f in files if f.endswith(".py")]
    return sorted(str(p.relative_to(REPO)) for p in found if MAIN.search(p.read_text()))


ENTRY_POINTS = _entry_points()


class _Got(Exception):
    pass


def parser_of(entry, monkeypatch) -> argparse.ArgumentParser:
    """The ArgumentParser an entry point builds, caught at parse_args (nothing runs): the script is run as
    __main__ with no arguments, as a user would start it."""
    seen = {}

    def capture(self, args=None, namespace=None):
        seen["parser"] = self
        raise _Got

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", capture)
    monkeypatch.setattr(sys, "argv", [entry])
    try:
        runpy.run_path(str(REPO / entry), run_name="__main__")
    except _Got:
        return seen["parser"]
    raise AssertionError(f"{entry} never parsed its arguments")


def test_entry_points_are_discovered():
    assert len(ENTRY_POINTS) >= 25 and "model/train.py" in ENTRY_POINTS and "export/to_tflite.py" in ENTRY_POINTS


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_a_bad_flag_is_one_line_and_exit_1(entry, monkeypatch):
    """argparse's own errors (unknown flag, bad value) take the toolkit's form: one line, exit code 1."""
    from core.clitools import ArgumentParser

    parser = parser_of(entry, monkeypatch)
    monkeypatch.undo()
    assert isinstance(parser, ArgumentParser), f"{entry}: builds a plain argparse parser; use core.clitools.ArgumentParser"
    with pytest.raises(SystemExit) as e:
        parser.parse_args(["--no-such-flag"])
    msg = str(e.value.code)
    assert msg.startswith("error: ") and "\n" not in msg, f"{entry}: {msg!r}"


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_every_flag_says_what_it_does_and_its_default(entry, monkeypatch):
    parser = parser_of(entry, monkeypatch)
    formatter = parser._get_formatter()
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction) or action.help == argparse.SUPPRESS:
            continue
        name = "/".join(action.option_strings) or action.dest
        assert action.help and len(action.help) > 8, f"{entry} {name}: no help text"
        if action.option_strings and not action.required:
            shown = formatter._expand_help(action)
            assert "default" in shown.lower(), f"{entry} {name}: help does not state the default: {shown!r}"


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_help_prints_for_every_script(entry, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", [entry, "--help"])
    with pytest.raises(SystemExit) as e:
        runpy.run_path(str(REPO / entry), run_name="__main__")
    out = capsys.readouterr().out
    assert e.value.code in (0, None) and "usage:" in out and len(out.splitlines()) > 5, entry
