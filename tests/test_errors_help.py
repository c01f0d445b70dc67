"""--help of every command-line entry point: each flag says what it does and its default and argparse's errors in one line."""
import argparse
import importlib
import runpy
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Every command-line entry point, discovered: each script of the toolkit's folders that runs as __main__.
ENTRY_FOLDERS = ("model", "export", "runtimes", "benchmarks", "web_demo", "android_demo/tools", "docs")
ENTRY_POINTS = sorted(str(p.relative_to(REPO)) for d in ENTRY_FOLDERS for p in (REPO / d).rglob("*.py")
                      if "node_modules" not in p.parts and 'if __name__ == "__main__":' in p.read_text())


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


def test_help_prints_for_every_script():
    import subprocess

    for script in ("export/cli.py", "benchmarks/run.py", "model/summary.py"):
        p = subprocess.run([sys.executable, str(REPO / script), "--help"], capture_output=True, text=True)
        assert p.returncode == 0 and "usage:" in p.stdout and len(p.stdout.splitlines()) > 5, script
