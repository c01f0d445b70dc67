"""Emulated ARM: the device-side runner on aarch64 builds of Python, numpy and the runtimes, under qemu-user.

`python benchmarks/run.py --device arm-emu` uses it. What it checks is numerics, not speed: the ARM wheels
carry their own kernels (XNNPACK's and ONNX Runtime's NEON paths, ARM int8), and each file's probabilities
there are compared with the same file run on this x86 host and with PyTorch. Emulated latency is hundreds
of times native and is reported only as `emulated`.

Set-up, cached under $AULUNET_ARM_CACHE (default ~/.cache/aulunet-edge/arm64), ~20 s when cold. It may change
this host (`dpkg --add-architecture arm64`, `apt-get update`), so it is built only when the user asks with
--allow-system-setup (SETUP_FLAG); without it an empty cache is a one-line error naming the flag and the commands,
and nothing runs. What it needs and builds:
- Debian's qemu-user-static (`apt-get install qemu-user-static`);
- a sysroot of Debian arm64 packages (python3.11 and the libraries it and the wheels load), fetched with
  `apt-get download` and unpacked with `dpkg -x` (no chroot, no debootstrap), plus an ARM /proc/cpuinfo:
  qemu's -L prefix is searched first, and ONNX Runtime fails on the host's x86 one;
- aarch64 wheels of numpy, onnxruntime, ai-edge-litert, openvino and ncnn installed by this host's pip with
  `--platform manylinux_*_aarch64 --only-binary=:all: --target` (openvino's needs glibc >= 2.35: bookworm
  has 2.36). QEMU_CPU=cortex-a72: qemu's default CPU model is ~20x slower.
"""
from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Sequence

from core.paths import REPO
SETUP_FLAG = "--allow-system-setup"


def cache_dir() -> Path:
    """$AULUNET_ARM_CACHE, read when used (default ~/.cache/aulunet-edge/arm64)."""
    return Path(os.environ.get("AULUNET_ARM_CACHE") or Path.home() / ".cache" / "aulunet-edge" / "arm64")


QEMU_CPU = "cortex-a72"
DEBS = ["python3.11-minimal", "libpython3.11-minimal", "libpython3.11-stdlib", "libc6", "libexpat1", "zlib1g",
        "libffi8", "libssl3", "libbz2-1.0", "liblzma5", "libgcc-s1", "libstdc++6", "libgomp1", "libsqlite3-0",
        "libuuid1", "libncursesw6", "libtinfo6", "libreadline8", "libcrypt1", "libnsl2", "libtirpc3", "libdb5.3",
        "libgssapi-krb5-2"]
WHEELS = ["numpy>=1.26,<2.5", "onnxruntime>=1.18,<2", "ai-edge-litert>=2.3,<3", "openvino>=2024.4", "ncnn>=1.0.20261020",
          "tqdm>=4.66,<5"]
# ExecuTorch has no torch-free aarch64 runtime for this sysroot's Python 3.11: executorch-numpy-runtime needs 3.12
# (`pip download --platform manylinux_2_28_aarch64 --python-version 3.11 executorch-numpy-runtime` finds none), and
# executorch itself needs torch. Its .pte entries therefore report that no ExecuTorch runtime is installed.
PLATFORMS = ["manylinux_2_36_aarch64", "manylinux_2_35_aarch64", "manylinux_2_28_aarch64", "manylinux_2_27_aarch64",
             "manylinux_2_17_aarch64", "manylinux2014_aarch64"]
CPUINFO = "".join(f"processor\t: {i}\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\n"
                  "CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\n"
                  "CPU revision\t: 3\n\n" for i in range(4))  # Cortex-A72, as on a Raspberry Pi 4


class EmulationError(RuntimeError):
    """Emulation could not be set up or run; one line with the fix."""


def qemu() -> str:
    exe = shutil.which("qemu-aarch64-static") or shutil.which("qemu-aarch64")
    if not exe:
        raise EmulationError("qemu-aarch64-static not found; install Debian's qemu-user-static (apt-get install qemu-user-static)")
    return exe


def _run(cmd: Sequence[str], what: str, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(list(cmd), capture_output=True, text=True, **kw)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
        raise EmulationError(f"{what} failed ({tail[:200]})")
    return proc


def _sysroot(dest: Path) -> None:
    if "arm64" not in subprocess.run(["dpkg", "--print-foreign-architectures"], capture_output=True, text=True).stdout.split():
        _run(["dpkg", "--add-architecture", "arm64"], "dpkg --add-architecture arm64 (needs root; run it with sudo, then apt-get update)")
        _run(["apt-get", "update", "-q"], "apt-get update")
    debs = dest.parent / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    names = [f"{d}:arm64" for d in DEBS]
    try:
        _run(["apt-get", "download", *names], "apt-get download of the arm64 packages", cwd=debs)
    except EmulationError:
        _run(["apt-get", "update", "-q"], "apt-get update")
        _run(["apt-get", "download", *names], "apt-get download of the arm64 packages", cwd=debs)
    for deb in sorted(debs.glob("*_arm64.deb")):
        _run(["dpkg", "-x", str(deb), str(dest)], f"dpkg -x {deb.name}")
    (dest / "proc").mkdir(exist_ok=True)
    (dest / "proc" / "cpuinfo").write_text(CPUINFO)


def setup_commands() -> str:
    """What building the cache runs, in one line (the refusal names it)."""
    return (f"`dpkg --add-architecture arm64` and `apt-get update` (when dpkg has no arm64 yet; needs root), "
            f"`apt-get download` of {len(DEBS)} arm64 packages unpacked with `dpkg -x`, and "
            f"`pip install --target` of the aarch64 wheels ({', '.join(w.split('>')[0] for w in WHEELS)})")


def _ready(cache: Path) -> bool:
    marker = cache / "ready.json"
    try:
        cached = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    return cached == {"debs": DEBS, "wheels": WHEELS} and (cache / "sysroot").is_dir() and (cache / "site").is_dir()


def setup(cache: Path = None, log=print, allow_system_setup: bool = False) -> Dict[str, Path]:
    """Build (once) and return the sysroot and site-packages folders; idempotent, atomic per folder.

    Building changes this host's package set-up, so it happens only with `allow_system_setup` (the user's
    --allow-system-setup); otherwise a missing or outdated cache is an EmulationError and nothing runs.
    """
    cache = Path(cache) if cache is not None else cache_dir()
    qemu()
    sysroot, site, marker = cache / "sysroot", cache / "site", cache / "ready.json"
    want = {"debs": DEBS, "wheels": WHEELS}
    if _ready(cache):
        return {"sysroot": sysroot, "site": site}
    if not allow_system_setup:
        raise EmulationError(f"{cache}: the aarch64 sysroot and wheels are not set up; setting them up runs "
                             f"{setup_commands()}; pass {SETUP_FLAG} to let it (or point AULUNET_ARM_CACHE "
                             f"at a ready cache)")
    log(f"emulated ARM: {SETUP_FLAG}: setting up {cache}: {setup_commands()}")
    cache.mkdir(parents=True, exist_ok=True)
    for final, build in ((sysroot, _sysroot), (site, _wheels)):
        tmp = final.with_name(final.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        log(f"emulated ARM: building {final}")
        build(tmp)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
    marker.write_text(json.dumps(want))
    return {"sysroot": sysroot, "site": site}


def _wheels(dest: Path) -> None:
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--only-binary=:all:",
           "--python-version", "3.11", "--implementation", "cp", "--target", str(dest)]
    for plat in PLATFORMS:
        cmd += ["--platform", plat]
    _run(cmd + WHEELS, "pip install of the aarch64 wheels (numpy, onnxruntime, ai-edge-litert, openvino, ncnn)")


def python_command(paths: Dict[str, Path]) -> List[str]:
    return [qemu(), "-L", str(paths["sysroot"]), str(paths["sysroot"] / "usr" / "bin" / "python3.11")]


def run_emulated(models: Sequence[Path], eval_path: Path, threads: Sequence[int], warmup: int, runs: int,
                 min_seconds: float, names: Dict[str, str], allow_system_setup: bool = False) -> Dict:
    """The runner under qemu; every entry gains `x86_parity` (the same file on this host) when it ran.

    An empty cache is set up only with `allow_system_setup` (see setup())."""
    import numpy as np

    import runtimes
    from core.metrics import mask_iou

    paths = setup(allow_system_setup=allow_system_setup)
    cmd = python_command(paths)
    env = {**os.environ, "QEMU_CPU": QEMU_CPU, "AULUNET_EMULATED": "1", "AULUNET_RUNNER_CHILD": shlex.join(cmd),
           "PYTHONPATH": os.pathsep.join([str(paths["site"]), str(REPO)])}
    import tempfile

    scratch = Path(tempfile.mkdtemp(prefix="aulunet_arm_"))  # the runner's own files: never in the results folder
    probs = scratch / "arm_probs"
    probs.mkdir()
    out = scratch / "arm.json"
    try:
        _run([*cmd, str(REPO / "benchmarks" / "runner.py"), "--models", *map(str, models), "--eval", str(eval_path),
              "--threads", ",".join(map(str, threads)), "--warmup", str(warmup), "--runs", str(runs),
              "--min-seconds", str(min_seconds), "--json", str(out), "--save-probs", str(probs), "--no-progress"],
             "the emulated runner", env=env)
        res = json.loads(out.read_text())
        x = np.load(eval_path)["x"]
        by_file = {Path(k).name: (Path(k), v) for k, v in names.items()}
        for r in res["results"]:
            model, r["name"] = by_file.get(r["file"], (None, r["name"]))
            arm_file = probs / f"{r['file']}.t{r['threads']}.npy"
            if "error" in r or model is None or not arm_file.is_file():
                continue
            arm = np.load(arm_file)
            seg = runtimes.load(model, threads=r["threads"])
            host = seg.probabilities(x[: len(arm)])
            a, h = arm > seg.threshold, host > seg.threshold
            r["x86_parity"] = {"max_abs_diff": float(np.abs(arm - host).max()), "mask_iou": mask_iou(a, h),
                               "flipped_fraction": float(np.mean(a != h))}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return res
