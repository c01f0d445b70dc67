"""core/machine.py: OtherLoad, the record of how busy other processes kept the CPU during a measurement."""
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core import machine
from core.machine import OtherLoad, other_load_words

LINUX = Path("/proc/stat").is_file()


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc/<pid>/stat (fields 14 and 15, after the command in parentheses)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / machine.os.sysconf("SC_CLK_TCK")


@pytest.mark.skipif(not LINUX, reason="OtherLoad reads /proc/stat, which only Linux has")
def test_a_process_this_one_did_not_wait_for_counts_as_other_load():
    """A spinning process started and killed inside the block is someone else's load: the block's other load is at
    least the CPU time that process used (whatever else the machine does only adds to it)."""
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        with OtherLoad() as load:
            t0 = time.monotonic()
            time.sleep(1.0)
            used = _cpu_seconds(spinner.pid)
            wall = time.monotonic() - t0
    finally:
        spinner.kill()
        spinner.wait()
    tick = 1 / machine.os.sysconf("SC_CLK_TCK")
    assert used > 0.1  # it ran
    assert load.cores is not None and load.cores * wall >= used - 0.2 - 4 * tick  # spinner's start-up is outside


@pytest.mark.skipif(not LINUX, reason="OtherLoad reads /proc/stat, which only Linux has")
def test_this_process_and_its_waited_children_are_not_other_load():
    """Work of the measuring process itself, and of a child it waited for, is subtracted: the other load is at most
    the machine's busy time minus that work."""
    busy0, own0 = machine._busy_cpu_seconds(), machine._own_cpu_seconds()
    with OtherLoad() as load:
        t0, c0 = time.monotonic(), time.process_time()
        while time.process_time() - c0 < 0.5:  # CPU time, whatever else competes for the cores
            pass
        subprocess.run([sys.executable, "-c", "import time\nwhile time.process_time() < 0.5: pass"], check=True)
    busy, own = machine._busy_cpu_seconds() - busy0, machine._own_cpu_seconds() - own0
    assert own >= 0.8  # both loops ran on this process's account
    wall = time.monotonic() - t0
    assert load.cores is not None and load.cores * wall <= max(0.0, busy - own) + 0.05 * wall + 0.05


def test_no_proc_stat_means_not_recorded(monkeypatch):
    monkeypatch.setattr(machine, "_busy_cpu_seconds", lambda: None)  # as on macOS or Windows
    with OtherLoad() as load:
        pass
    assert load.cores is None and other_load_words(load.cores, 2) == ""


def test_words():
    assert other_load_words(0.02, 2) == "other processes kept 0.02 of 2 cores busy"
    assert other_load_words(0.5, 2, during=" while timing").startswith("other processes kept 0.50 of 2 cores busy "
                                                                       "while timing (a busy machine: ")
    assert other_load_words(0.25, 2) == "other processes kept 0.25 of 2 cores busy"  # at the limit: not flagged
    assert other_load_words(1.0, None) == ("other processes kept 1.00 of ? cores busy (a busy machine: rerun on a "
                                           "quiet one before trusting the latency)")
