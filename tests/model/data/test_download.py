import http.server
import json
import io
import threading
import zipfile

import numpy as np
import pytest

from model.data import open_dataset
from model.data.download import ARCHIVES, DownloadError, download, fetch
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


def _isic_archive_bytes():
    """{official relative path: zip bytes} of the six ISIC 2018 archives, tiny (3 training cases, 1 val, 1 test)."""
    rng = np.random.default_rng(0)
    out = {}
    for rel in ARCHIVES["isic2018"]:
        name = rel.split("/")[-1][:-4]
        split = "Training" if "Training" in name else "Validation" if "Validation" in name else "Test"
        gt = "GroundTruth" in name
        content = {}
        for k in range(3 if split == "Training" else 1):
            img, mask = lesion_pair(rng)
            sid = f"ISIC_{split[:2]}{k:05d}"
            content[f"{sid}_segmentation.png" if gt else f"{sid}.png"] = _png(mask if gt else img)
        out[rel] = _zip_bytes(name, content)
    return out


@pytest.fixture()
def isic_server():
    """A local HTTP server on 127.0.0.1 with Range support serving tiny ISIC 2018 archives."""
    files = {"/" + rel: data for rel, data in _isic_archive_bytes().items()}
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
    from model.data.download import unpack
    p = tmp_path / "bad.zip"
    p.write_bytes(b"not a zip")
    with pytest.raises(DownloadError, match=r"bad\.zip: not a valid zip"):
        unpack(p, tmp_path)


# --------------------------------------------------------------------------- unpacking (no network)

FOLDER = "ISIC2018_Task1-2_Training_Input"


def _zip(path, members: dict, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression=compression) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def _members(n=3):
    return {f"{FOLDER}/ISIC_{k:07d}.txt": f"image {k}\n".encode() * (k + 1) for k in range(n)}


def _tree(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_unpack_writes_all_members_then_the_marker(tmp_path):
    from model.data.download import extracted, unpack

    archive = _zip(tmp_path / f"{FOLDER}.zip", {**_members(), "__MACOSX/._junk": b"x"})
    dest = tmp_path / "dest"
    marker = unpack(archive, dest)
    assert _tree(dest / FOLDER) == {k.split("/", 1)[1]: v for k, v in _members().items()}
    assert json.loads(marker.read_text()) == {"archive": archive.name, "members": 3,
                                              "bytes": sum(map(len, _members().values())), "top": [FOLDER]}
    assert extracted(dest, archive.name)
    assert sorted(p.name for p in dest.iterdir()) == [f".{archive.name}.extracted.json", FOLDER]  # no temporary, no junk


def test_half_extracted_attempt_is_extracted_again(tmp_path):
    """A killed extraction (part of the folder, a temporary of a dead process, no marker) is not 'ready':
    the rerun unpacks the whole archive again, replacing what the killed one left."""
    from model.data.download import extracted, unpack

    archive = _zip(tmp_path / f"{FOLDER}.zip", _members(5))
    dest = tmp_path / "dest"
    (dest / FOLDER).mkdir(parents=True)
    (dest / FOLDER / "ISIC_0000000.txt").write_bytes(b"imag")  # cut off mid-file
    stale = dest / f".{archive.name}.tmp999999999"
    (stale / FOLDER).mkdir(parents=True)
    assert not extracted(dest, archive.name)
    unpack(archive, dest)
    assert _tree(dest / FOLDER) == {k.split("/", 1)[1]: v for k, v in _members(5).items()}
    assert not stale.exists() and extracted(dest, archive.name)


def test_a_foreign_folder_in_the_way_is_refused(tmp_path):
    from model.data.download import unpack

    archive = _zip(tmp_path / f"{FOLDER}.zip", _members())
    dest = tmp_path / "dest"
    (dest / FOLDER).mkdir(parents=True)
    (dest / FOLDER / "mine.txt").write_text("not from the archive")
    with pytest.raises(DownloadError, match=rf"{FOLDER}: already exists and holds files that are not in {FOLDER}\.zip; move it away"):
        unpack(archive, dest)
    assert _tree(dest) == {f"{FOLDER}/mine.txt": b"not from the archive"}


@pytest.mark.parametrize("name", ["../evil.txt", "/abs/evil.txt", f"{FOLDER}/../../evil.txt", "C:/evil.txt", "a\\..\\evil.txt"])
def test_zip_slip_members_are_refused_before_anything_is_written(tmp_path, name):
    from model.data.download import unpack

    archive = _zip(tmp_path / "x.zip", {**_members(), name: b"evil"})
    dest = tmp_path / "sub" / "dest"
    with pytest.raises(DownloadError, match=r"x\.zip: unsafe path .* refusing to unpack"):
        unpack(archive, dest)
    assert not list(dest.iterdir()) and not (tmp_path / "evil.txt").exists() and not (tmp_path / "sub" / "evil.txt").exists()


def test_symlink_members_are_refused(tmp_path):
    from model.data.download import unpack

    info = zipfile.ZipInfo(f"{FOLDER}/link")
    info.external_attr = (0o120777 << 16)
    path = tmp_path / "l.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(info, "/etc/passwd")
    with pytest.raises(DownloadError, match=r"l\.zip: unsafe path .*link"):
        unpack(path, tmp_path / "dest")


def test_bomb_like_archives_are_refused_before_anything_is_written(tmp_path):
    """A member that expands 1000x (20 MiB of zeros), more members or bytes than allowed: refused up front."""
    from model.data.download import unpack

    bomb = _zip(tmp_path / "bomb.zip", {f"{FOLDER}/zeros.bin": bytes(20 << 20)}, zipfile.ZIP_DEFLATED)
    assert bomb.stat().st_size < 1 << 20
    with pytest.raises(DownloadError, match=r"bomb\.zip: member .*zeros\.bin' expands \d+x .* beyond the 200x limit"):
        unpack(bomb, tmp_path / "d1")
    assert not list((tmp_path / "d1").iterdir())
    archive = _zip(tmp_path / "many.zip", _members(5))
    with pytest.raises(DownloadError, match=r"many\.zip: 5 members, more than the 4"):
        unpack(archive, tmp_path / "d2", max_members=4)
    with pytest.raises(DownloadError, match=r"many\.zip: would unpack 0\.0 GiB, more than the 0\.0 GiB limit"):
        unpack(archive, tmp_path / "d3", max_total=10)
    assert not list((tmp_path / "d2").iterdir()) and not list((tmp_path / "d3").iterdir())


def test_damaged_member_leaves_nothing(tmp_path):
    from model.data.download import unpack

    path = _zip(tmp_path / "bad.zip", _members())
    raw = bytearray(path.read_bytes())
    at = raw.index(b"image 2")
    raw[at] ^= 0xFF  # the stored bytes no longer match the member's CRC
    path.write_bytes(bytes(raw))
    with pytest.raises(DownloadError, match=r"bad\.zip: member .*ISIC_0000002\.txt' is damaged \(BadZipFile\); delete the archive"):
        unpack(path, tmp_path / "dest")
    assert not list((tmp_path / "dest").iterdir())


def _isic_archives(folder):
    """The six ISIC 2018 archives, tiny, as files named as the server names them."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for rel, data in _isic_archive_bytes().items():
        paths.append(folder / rel.split("/")[-1])
        paths[-1].write_bytes(data)
    return paths


def test_cli_unpacks_archives_given_by_hand_and_never_again(tmp_path, capsys):
    from model.download import main

    archives = _isic_archives(tmp_path / "by_hand")
    before = {p: p.read_bytes() for p in archives}
    dest = tmp_path / "isic"
    argv = ["isic2018", "--dest", str(dest), "--base-url", "http://127.0.0.1:9/none", "--no-progress"]
    argv += [a for p in archives for a in ("--archive", str(p))]
    main(argv)
    assert capsys.readouterr().out.strip() == f"isic2018 ready in {dest}"
    ds = open_dataset(dest)
    assert {k: len(v) for k, v in ds.splits.items()} == {"train": 3, "val": 1, "test": 1}
    assert {p: p.read_bytes() for p in archives} == before  # the user's files are kept
    markers = sorted(dest.glob(".*.extracted.json"))
    stamps = [m.stat().st_mtime_ns for m in markers]
    assert len(markers) == 6
    main(argv)  # done: nothing is unpacked again (and nothing fetched: the URL leads nowhere)
    assert [m.stat().st_mtime_ns for m in markers] == stamps


def test_cli_archive_errors_are_one_line(tmp_path):
    from model.download import main

    stray = _zip(tmp_path / "other.zip", _members())
    with pytest.raises(SystemExit, match=r"^error: --archive .*other\.zip: not one of isic2018's archives; give the files "
                                         r"by their official names \(ISIC2018_Task1-2_Training_Input\.zip, "):
        main(["isic2018", "--dest", str(tmp_path / "d"), "--archive", str(stray)])
    with pytest.raises(SystemExit, match=r"^error: --archive .*ISIC2018_Task1_Training_GroundTruth\.zip: file not found"):
        main(["isic2018", "--dest", str(tmp_path / "d"), "--archive", str(tmp_path / "ISIC2018_Task1_Training_GroundTruth.zip")])
