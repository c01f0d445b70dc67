"""Run the device-side runner on another machine over SSH (a Raspberry Pi, an ARM board).

The host packs the runner with the numpy-only modules it imports, the model files and the eval set into a
tar stream, unpacks it in a fresh temporary folder on the device, runs the runner there and reads its JSON
back; the folder is removed afterwards. SSH runs with key authentication only (BatchMode), host-key checking
on (StrictHostKeyChecking=yes: add the device to known_hosts first), and every remote argument quoted with
shlex, so file names cannot inject shell commands.
"""
from __future__ import annotations

import io
import json
import shlex
import subprocess
import tarfile
from pathlib import Path
from typing import Dict, Optional, Sequence

from core.paths import REPO

# What travels to the device: the torch-free packages whole, and the runner with the benchmarks modules it
# imports (read from its imports, transitively). model/ and export/ never travel: timing a .pt needs torch.
DEVICE_PACKAGES = ("core", "runtimes")
RUNNER = "benchmarks/runner.py"


def _imported_benchmarks_modules(rel: str) -> set:
    import ast

    found = set()
    for node in ast.walk(ast.parse((REPO / rel).read_text(), filename=rel)):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            path = Path(*name.split(".")).with_suffix(".py")
            if name.split(".")[0] == "benchmarks" and (REPO / path).is_file():
                found.add(path.as_posix())
    return found


def bundle() -> list:
    """The files and folders (relative to the repository) the device needs to run the runner."""
    todo, seen = [RUNNER], set()
    while todo:
        rel = todo.pop()
        if rel not in seen:
            seen.add(rel)
            todo.extend(_imported_benchmarks_modules(rel) - seen)
    return [*DEVICE_PACKAGES, "benchmarks/__init__.py", *sorted(seen)]


class RemoteError(RuntimeError):
    """The device could not be reached or the runner could not run there; one line, with the fix."""


class Remote:
    def __init__(self, host: str, port: int = 22, identity: Optional[str] = None, known_hosts: Optional[str] = None,
                 python: str = "python3", timeout: int = 10):
        if not host or host.startswith("-"):
            raise RemoteError(f"--host {host!r}: give user@address")
        self.host, self.python = host, python
        self.opts = ["-p", str(port), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
                     "-o", f"ConnectTimeout={timeout}", "-o", "LogLevel=ERROR"]
        if identity:
            self.opts += ["-i", identity, "-o", "IdentitiesOnly=yes"]
        if known_hosts:
            self.opts += ["-o", f"UserKnownHostsFile={known_hosts}"]

    def ssh(self, argv: Sequence[str], stdin: Optional[bytes] = None, check: bool = True) -> subprocess.CompletedProcess:
        """Run argv on the device; the remote shell sees each argument quoted."""
        proc = subprocess.run(["ssh", *self.opts, "--", self.host, shlex.join(argv)], input=stdin, capture_output=True)
        if check and proc.returncode != 0:
            err = proc.stderr.decode(errors="replace").strip().splitlines()
            msg = err[-1] if err else f"exit code {proc.returncode}"
            if proc.returncode == 255:
                raise RemoteError(f"{self.host}: cannot reach the device over SSH ({msg}); check the address, "
                                  "that it is in known_hosts, and that your key is authorised")
            raise RemoteError(f"{self.host}: {' '.join(argv[:2])} failed ({msg})")
        return proc

    def check_python(self) -> None:
        probe = "import numpy, sys; print(sys.version.split()[0], numpy.__version__)"
        proc = self.ssh([self.python, "-c", probe], check=False)
        if proc.returncode == 255:
            self.ssh(["true"])  # raises the unreachable-host error
        if proc.returncode != 0:
            raise RemoteError(f"{self.host}: {self.python} with numpy is not available on the device; "
                              "install the runner's requirements there: pip install -r benchmarks/requirements-device.txt")


def pack(models: Sequence[Path], eval_path: Path) -> bytes:
    from core.formats import model_files

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for rel in bundle():
            tar.add(REPO / rel, arcname=rel, filter=lambda t: None if "__pycache__" in t.name else t)
        for m in models:
            for f in model_files(m):
                tar.add(f, arcname=f"models/{f.name}")
        tar.add(eval_path, arcname=f"eval/{eval_path.name}")
    return buf.getvalue()


def run_remote(remote: Remote, models: Sequence[Path], eval_path: Path, threads: Sequence[int], warmup: int,
               runs: int, min_seconds: float, names: Dict[str, str], rounds: int = 1) -> Dict:
    """Push, run, pull. Per-format failures come back as entries with `error` (the runner keeps going)."""
    remote.check_python()
    workdir = remote.ssh(["mktemp", "-d", "-t", "aulunet-bench.XXXXXX"]).stdout.decode().strip()
    try:
        remote.ssh(["tar", "-xzf", "-", "-C", workdir], stdin=pack(models, eval_path))
        remote_models = [f"{workdir}/models/{m.name}" for m in models]
        remote.ssh([remote.python, f"{workdir}/benchmarks/runner.py", "--models", *remote_models,
                    "--eval", f"{workdir}/eval/{eval_path.name}", "--threads", ",".join(map(str, threads)),
                    "--warmup", str(warmup), "--runs", str(runs), "--min-seconds", str(min_seconds),
                    "--rounds", str(rounds), "--json", f"{workdir}/results.json", "--no-progress"])
        res = json.loads(remote.ssh(["cat", f"{workdir}/results.json"]).stdout)
    finally:
        remote.ssh(["rm", "-rf", "--", workdir], check=False)
    by_file = {Path(k).name: v for k, v in names.items()}
    for r in res["results"]:
        r["name"] = by_file.get(r["file"], r["name"])
    res["remote"] = remote.host
    return res
