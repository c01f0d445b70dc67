"""core/clitools.py: argparse errors in the toolkit's one-line form, and the thread-count check."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.clitools import ArgumentParser, HelpFormatter, check_threads
from core.errors import UserError

REPO = Path(__file__).resolve().parents[1]
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
