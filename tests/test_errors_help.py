"""--help of every command-line entry point: each flag says what it does and its default (issue 11)."""
import argparse
import importlib
import runpy
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# module, how to reach its parser (main(argv) unless noted)
ENTRY_POINTS = ["model.train", "model.evaluate", "model.demo", "model.summary", "model.download", "export.all",
                "export.cli", "export.to_onnx", "export.to_openvino", "export.to_tflite", "export.to_executorch", "export.to_ncnn", "benchmarks.run",
                "benchmarks.runner", "benchmarks.profile_ops", "android_demo/tools/copy_model.py",
                "android_demo/tools/make_golden.py"]


class _Got(Exception):
    pass


def parser_of(entry, monkeypatch) -> argparse.ArgumentParser:
    """The ArgumentParser an entry point builds, caught at parse_args (nothing runs)."""
    seen = {}

    def capture(self, args=None, namespace=None):
        seen["parser"] = self
        raise _Got

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", capture)
    try:
        if entry.endswith(".py"):
            monkeypatch.setattr(sys, "argv", [entry])
            mod = runpy.run_path(str(REPO / entry), run_name="not_main")
            mod["main"]([])
        elif entry in ("export.to_onnx", "export.to_openvino", "export.to_tflite", "export.to_executorch", "export.to_ncnn"):
            from export.cli import parse_args
            from export.formats import FORMATS

            parse_args(FORMATS[entry.split("_")[-1]], [])
        elif entry == "model.train":
            importlib.import_module(entry).parse_args([])
        else:
            importlib.import_module(entry).main([])
    except _Got:
        return seen["parser"]
    raise AssertionError(f"{entry} never parsed its arguments")


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
