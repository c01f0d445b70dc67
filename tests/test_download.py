import http.server
import io
import threading
import zipfile

import numpy as np
import pytest

from model.data import open_dataset
from model.download import ARCHIVES, DownloadError, download, fetch
from tests.conftest import lesion_pair


def _zip_bytes(folder: str, files: dict) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in files.items():
            z.writestr(f"{folder}/{name}", data)
    return buf.getvalue()


def _png(arr) -> bytes:
    from PIL import Image
    b = io.BytesIO()
    Image.fromarray(arr).save(b, format="PNG")
    return b.getvalue()


@pytest.fixture()
def isic_server():
    """A local HTTP server on 127.0.0.1 with Range support serving tiny ISIC 2018 archives."""
    rng = np.random.default_rng(0)
    files = {}
    for rel in ARCHIVES["isic2018"]:
        folder = rel.split("/")[-1][:-4]
        split = "Training" if "Training" in folder else "Validation" if "Validation" in folder else "Test"
        content = {}
        for k in range(3 if split == "Training" else 1):
            img, mask = lesion_pair(rng)
            sid = f"ISIC_{split[:2]}{k:05d}"
            content[f"{sid}_segmentation.png" if "GroundTruth" in folder else f"{sid}.png"] = _png(mask if "GroundTruth" in folder else img)
        files["/" + rel] = _zip_bytes(folder, content)
    state = {"requests": [], "truncate": set()}

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            data = files.get(self.path)
            state["requests"].append((self.path, self.headers.get("Range")))
            if data is None:
                self.send_error(404)
                return
            start = 0
            rng_h = self.headers.get("Range")
            if rng_h:
                start = int(rng_h.split("=")[1].split("-")[0])
                if start >= len(data):
                    self.send_error(416)
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            body = data[start:]
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.path in state["truncate"]:
                body = body[: len(body) // 2]
                state["truncate"].discard(self.path)
                self.close_connection = True
            self.wfile.write(body)

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}", files, state
    srv.shutdown()
    srv.server_close()


def test_download_unpacks_into_detected_layout(isic_server, tmp_path):
    url, files, state = isic_server
    dest = download("isic2018", tmp_path / "isic", base_url=url, progress=False)
    ds = open_dataset(dest)
    assert ds.layout == "isic"
    assert {k: len(v) for k, v in ds.splits.items()} == {"train": 3, "val": 1, "test": 1}
    assert not (dest / "archives").exists()
    n = len(state["requests"])
    download("isic2018", dest, base_url=url, progress=False)  # everything present: no new requests
    assert len(state["requests"]) == n


def test_fetch_resumes_and_checks_size(isic_server, tmp_path):
    url, files, state = isic_server
    rel = "/" + ARCHIVES["isic2018"][0]
    data = files[rel]
    dest = tmp_path / "a.zip"
    (tmp_path / "a.zip.part").write_bytes(data[:100])
    fetch(url + rel, dest, progress=False)
    assert dest.read_bytes() == data
    assert state["requests"][-1] == (rel, "bytes=100-")
    # a connection cut half-way leaves a .part and a clear error; running again completes it
    state["truncate"].add(rel)
    dest2 = tmp_path / "b.zip"
    with pytest.raises(DownloadError, match=r"b\.zip: got \d+ of \d+ bytes; run the same command again to resume"):
        fetch(url + rel, dest2, progress=False)
    assert not dest2.exists() and (tmp_path / "b.zip.part").exists()
    fetch(url + rel, dest2, progress=False)
    assert dest2.read_bytes() == data


def test_offline_and_missing_are_clear_errors(isic_server, tmp_path):
    url, _, _ = isic_server
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    with pytest.raises(DownloadError, match="cannot reach the server"):
        fetch(f"http://127.0.0.1:{port}/x.zip", tmp_path / "x.zip", timeout=5, progress=False)
    with pytest.raises(DownloadError, match="HTTP 404"):
        fetch(url + "/nope.zip", tmp_path / "n.zip", progress=False)
    with pytest.raises(DownloadError, match="unknown dataset"):
        download("isic2099", tmp_path)


def test_bad_zip_is_reported(tmp_path):
    from model.download import unpack
    p = tmp_path / "bad.zip"
    p.write_bytes(b"not a zip")
    with pytest.raises(DownloadError, match=r"bad\.zip: not a valid zip"):
        unpack(p, tmp_path)
