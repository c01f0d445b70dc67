"""What a benchmark records about the machine it ran on: the board (Raspberry Pi model), CPU model and
cores, thermal state and throttling, the runtimes' versions, a model's size, the process's peak memory, and how
busy other processes kept the CPU while it measured.
numpy and the standard library only (the device side runs it): benchmarks, the web bench and the INT8 recipe
table all record their machine with it."""
from __future__ import annotations

import os
import platform
import resource
import subprocess
import time
from pathlib import Path
from typing import Dict, Optional

import numpy as np


def _read(path: str) -> Optional[str]:
    try:
        return Path(path).read_text(errors="replace").strip("\x00\n ")
    except OSError:
        return None


def _vcgencmd(*args: str) -> Optional[str]:
    try:
        return subprocess.run(["vcgencmd", *args], capture_output=True, text=True, timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def board_model() -> Optional[str]:
    """'Raspberry Pi 5 Model B Rev 1.0' on a Pi (device tree), else None."""
    return _read("/proc/device-tree/model") or _read("/sys/firmware/devicetree/base/model")


def thermal() -> Dict:
    """Temperature and throttling now: vcgencmd on a Pi, the kernel's thermal zone elsewhere."""
    t = _vcgencmd("measure_temp")
    zone = _read("/sys/class/thermal/thermal_zone0/temp")
    return {"temp_c": float(t.split("=")[1].rstrip("'C")) if t and "=" in t else (int(zone) / 1000 if zone and zone.isdigit() else None),
            "throttled": _vcgencmd("get_throttled")}


ARM_PARTS = {"0xd03": "Cortex-A53", "0xd04": "Cortex-A35", "0xd05": "Cortex-A55", "0xd07": "Cortex-A57",
             "0xd08": "Cortex-A72", "0xd0b": "Cortex-A76", "0xd41": "Cortex-A78", "0xd46": "Cortex-A510"}


def device_facts() -> Dict:
    cpuinfo = _read("/proc/cpuinfo") or ""
    names = [ln.split(":", 1)[1].strip() for ln in cpuinfo.splitlines()
             if ln.split(":")[0].strip() in ("model name", "Model", "Hardware")]
    names += [ARM_PARTS.get(v, f"ARM part {v}") for v in
              (ln.split(":", 1)[1].strip() for ln in cpuinfo.splitlines() if ln.split(":")[0].strip() == "CPU part")]
    freq = _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq")
    os_name = next((ln.split("=", 1)[1].strip('"') for ln in (_read("/etc/os-release") or "").splitlines()
                    if ln.startswith("PRETTY_NAME=")), platform.platform())
    emulated = bool(os.environ.get("QEMU_CPU") or os.environ.get("AULUNET_EMULATED"))
    return {"machine": platform.machine(), "cpu": names[0] if names else platform.processor() or None,
            "cores": os.cpu_count(), "governor": _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
            "clock_mhz": int(freq) // 1000 if freq and freq.isdigit() else None, "board": board_model(),
            "os": os_name, "python": platform.python_version(), "numpy": np.__version__, "emulated": emulated,
            "qemu_cpu": os.environ.get("QEMU_CPU")}


def runtime_versions() -> Dict:
    from importlib import metadata

    out = {}
    for pkg in ("onnxruntime", "ai-edge-litert", "tflite-runtime", "openvino", "executorch", "executorch-numpy-runtime",
                "ncnn", "torch"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def model_bytes(model: Path) -> Optional[int]:
    """The model file plus the files that travel with it (OpenVINO's .bin beside its .xml)."""
    from core.formats import model_files

    return sum(f.stat().st_size for f in model_files(model)) if model.is_file() else None


def peak_rss_mb() -> float:
    """This process's peak resident memory. VmHWM resets at exec; ru_maxrss would carry the parent's peak."""
    status = _read("/proc/self/status") or ""
    for ln in status.splitlines():
        if ln.startswith("VmHWM:"):
            return int(ln.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


INT8_ISA = ("avx2", "avx512bw", "avx512_vnni", "avx_vnni", "amx_int8")


def int8_isa() -> list:
    """The x86 int8 dot-product extensions this CPU has: ONNX Runtime's int8 convolutions without VNNI (u8 x s8
    pairs summed into int16) can saturate, so the same file scores differently on such CPUs (docs/export.md)."""
    for line in (_read("/proc/cpuinfo") or "").splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            flags = set(value.split())
            return [f for f in INT8_ISA if f in flags]
    return []


def _busy_cpu_seconds() -> Optional[float]:
    """CPU seconds every process on this machine has used since boot (Linux /proc/stat), None elsewhere."""
    line = (_read("/proc/stat") or "").partition("\n")[0].split()
    if len(line) < 8 or line[0] != "cpu":
        return None
    user, nice, system, _idle, _iowait, irq, softirq = (int(v) for v in line[1:8])
    steal = int(line[8]) if len(line) > 8 else 0
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _own_cpu_seconds() -> float:
    """CPU seconds of this process and of the children it has waited for."""
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


class OtherLoad:
    """How many cores other processes kept busy, on average, while a block ran: the machine's busy CPU time
    minus this process's and its waited-for children's, over the wall time. A latency figure is only as good as
    the quiet around it; this records the quiet. `cores` is None where /proc/stat is absent (not Linux).

        with OtherLoad() as load:
            measure()
        load.cores  # e.g. 0.02 on an idle machine, 1.0 with one busy training beside it
    """

    def __init__(self) -> None:
        self.cores: Optional[float] = None

    def __enter__(self) -> "OtherLoad":
        self._busy0, self._own0, self._t0 = _busy_cpu_seconds(), _own_cpu_seconds(), time.monotonic()
        return self

    def __exit__(self, *exc) -> None:
        busy, wall = _busy_cpu_seconds(), time.monotonic() - self._t0
        if busy is None or self._busy0 is None or wall <= 0:
            return
        other = (busy - self._busy0) - (_own_cpu_seconds() - self._own0)
        self.cores = round(max(0.0, other / wall), 2)


OTHER_LOAD_WARN = 0.25  # past this many cores kept busy by other processes, a latency figure is flagged


def other_load_words(cores: Optional[float], total: Optional[int], during: str = "") -> str:
    """'other processes kept 0.02 of 2 cores busy' + during for a result's notes ('' when not recorded), with a
    warning past OTHER_LOAD_WARN: latency beside another busy process is that process's as much as the model's."""
    if cores is None:
        return ""
    busy = " (a busy machine: rerun on a quiet one before trusting the latency)" if cores > OTHER_LOAD_WARN else ""
    return f"other processes kept {cores:.2f} of {total or '?'} cores busy{during}{busy}"
