"""The SSH path of benchmarks/run.py against a real sshd on 127.0.0.1 that the test starts (throwaway keys)."""
import getpass
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks import run as bench

REPO = Path(__file__).resolve().parents[1]
SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
TINY = ["--threads", "1", "--eval-count", "1", "--warmup", "0", "--runs", "2", "--min-seconds", "0", "--no-progress"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    if not os.path.exists(SSHD):
        pytest.skip("openssh-server is not installed here (.ci/run installs it: apt-get install openssh-server)")
    d = tmp_path_factory.mktemp("sshd")
    for name in ("host", "client"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / name)], check=True)
    (d / "authorized_keys").write_text((d / "client.pub").read_text())
    port = free_port()
    (d / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d / 'host'}\nPidFile {d / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {d / 'authorized_keys'}\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "PubkeyAuthentication yes\nStrictModes no\nUsePAM no\nPermitRootLogin prohibit-password\n")
    Path("/run/sshd").mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(d / "sshd_config")], stderr=subprocess.PIPE)
    host_pub = (d / "host.pub").read_text().split()
    (d / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")
    for _ in range(50):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.1)
    yield {"dir": d, "port": port, "user": getpass.getuser()}
    proc.terminate()
    proc.wait(timeout=10)


def ssh_args(sshd, known_hosts=None, port=None, python=sys.executable):
    return ["--host", f"{sshd['user']}@127.0.0.1", "--port", str(port or sshd["port"]), "--identity",
            str(sshd["dir"] / "client"), "--known-hosts", str(known_hosts or sshd["dir"] / "known_hosts"),
            "--remote-python", python]


def test_remote_run_pushes_runs_and_pulls(sshd, ph2, tmp_path):
    res = bench.main(["--data", str(ph2), "--out", str(tmp_path), "--formats", "onnx,tflite-int8,openvino", *TINY,
                      "--rounds", "2", *ssh_args(sshd)])
    assert res["remote"].endswith("@127.0.0.1") and res["settings"]["rounds"] == 2  # --rounds reaches the device
    got = {r["name"]: r for r in res["results"]}
    assert set(got) == {"onnx", "tflite-int8", "openvino"}
    for name, r in got.items():
        assert "error" not in r, (name, r.get("error"))
        assert r["n_runs"] >= 2 and r["accuracy"]["n_images"] == 1 and len(r["round_p50s_ms"]) == 2
    assert got["onnx"]["mask_iou_vs_torch_fp32"] > 0.999
    assert (tmp_path / "host.json").is_file() and (tmp_path / "host.md").is_file()
    rec = res["recommendation"]  # what to deploy on the device the run reached over SSH
    assert rec["file"] in {r["file"] for r in res["results"]} and rec["reference_dsc"] == res["eval_set"]["reference_dsc"]
    assert rec["p50_ms"] == min(r["p50_ms"] for r in res["results"] if r["accuracy"]["dsc"] >= rec["reference_dsc"] - 0.005)
    assert rec["sentence"] in (tmp_path / "host.md").read_text()


def test_file_names_cannot_inject_shell_commands(sshd, ph2, tmp_path):
    exports = tmp_path / "exports"
    exports.mkdir()
    evil = exports / "aulunet_v3_ph2.onnx"
    shutil.copy(REPO / "exports" / "aulunet_v3_ph2.onnx", evil)
    weights = tmp_path / "m$(touch INJECTED);x.pt"  # the exported file's name follows the checkpoint's stem
    shutil.copy(REPO / "model" / "weights" / "aulunet_v3_ph2.pt", weights)
    evil.rename(exports / "m$(touch INJECTED);x.onnx")
    res = bench.main(["--data", str(ph2), "--out", str(tmp_path / "out"), "--formats", "onnx", "--weights", str(weights),
                      "--exports", str(exports), *TINY, *ssh_args(sshd)])
    assert "error" not in res["results"][0], res["results"][0].get("error")
    assert not (Path.home() / "INJECTED").exists() and not list(tmp_path.rglob("INJECTED"))


def test_missing_runtime_on_device_is_reported_per_format(sshd, ph2, tmp_path):
    block = tmp_path / "block"
    block.mkdir()
    (block / "sitecustomize.py").write_text("import sys\nsys.modules['onnxruntime'] = None\n")
    wrapper = tmp_path / "python-without-ort"
    wrapper.write_text(f"#!/bin/sh\nPYTHONPATH={block} exec {sys.executable} \"$@\"\n")
    wrapper.chmod(0o755)
    res = bench.main(["--data", str(ph2), "--out", str(tmp_path), "--formats", "onnx,tflite", *TINY,
                      *ssh_args(sshd, python=str(wrapper))])
    got = {r["name"]: r for r in res["results"]}
    assert "onnxruntime is not installed; pip install onnxruntime" in got["onnx"]["error"]
    assert "error" not in got["tflite"]


def test_unreachable_or_unknown_host_fails_clearly(sshd, ph2, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(SystemExit, match="cannot reach the device over SSH.*known_hosts"):
        bench.main(["--data", str(ph2), "--out", str(tmp_path), "--formats", "onnx", *TINY, *ssh_args(sshd, known_hosts=empty)])
    with pytest.raises(SystemExit, match="cannot reach the device over SSH"):
        bench.main(["--data", str(ph2), "--out", str(tmp_path), "--formats", "onnx", *TINY, *ssh_args(sshd, port=free_port())])
    with pytest.raises(SystemExit, match="with numpy is not available on the device"):
        bench.main(["--data", str(ph2), "--out", str(tmp_path), "--formats", "onnx", *TINY,
                    *ssh_args(sshd, python="/nonexistent/python3")])
