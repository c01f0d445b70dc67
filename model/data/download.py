"""The official ISIC 2017/2018 Task 1 archives: fetching and unpacking them (`python model/download.py` is the command).

Resumable (HTTP Range on a .part file), size-checked against the server's length, unpacked into
the official folder layout that model/data/ detects. Archives already complete are skipped;
`--archive FILE` (repeatable) unpacks an archive downloaded by hand instead of fetching it.

Unpacking is all or nothing: an archive is extracted into a hidden temporary folder beside the
destination, every member's size is checked against the archive, the folders are renamed into place
and a marker (`.<archive>.extracted.json`) is written last; only an archive with its marker counts as
done, so an extraction that was killed is done again on the next run. What one archive may write is
bounded before anything is written (member count, total size, free disk space, compression ratio per
member) and every member must stay inside the destination: a zip bomb or a zip-slip path is refused.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import urllib.error
import urllib.request
import zipfile
import zlib
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from core.errors import UserError

BASE_URL = "https://isic-challenge-data.s3.amazonaws.com"

ARCHIVES: Dict[str, List[str]] = {
    "isic2018": [
        "2018/ISIC2018_Task1-2_Training_Input.zip",
        "2018/ISIC2018_Task1_Training_GroundTruth.zip",
        "2018/ISIC2018_Task1-2_Validation_Input.zip",
        "2018/ISIC2018_Task1_Validation_GroundTruth.zip",
        "2018/ISIC2018_Task1-2_Test_Input.zip",
        "2018/ISIC2018_Task1_Test_GroundTruth.zip",
    ],
    "isic2017": [
        "2017/ISIC-2017_Training_Data.zip",
        "2017/ISIC-2017_Training_Part1_GroundTruth.zip",
        "2017/ISIC-2017_Validation_Data.zip",
        "2017/ISIC-2017_Validation_Part1_GroundTruth.zip",
        "2017/ISIC-2017_Test_v2_Data.zip",
        "2017/ISIC-2017_Test_v2_Part1_GroundTruth.zip",
    ],
}


# What one archive may write. The largest official one (ISIC 2018 Task 1-2 training input) has ~2,600 members
# and ~10.4 GB of JPEGs, which do not compress (ratio ~1); PNG masks compress a little more.
MAX_MEMBERS = 100_000
MAX_TOTAL_BYTES = 64 * 2 ** 30
MAX_RATIO = 200          # uncompressed / compressed size of one member ...
RATIO_FLOOR = 1 << 20    # ... checked for members above 1 MiB (a small text file may compress far better)
MACOS_JUNK = "__MACOSX"


class DownloadError(UserError):
    pass


def _total_length(resp, offset: int) -> Optional[int]:
    rng = resp.headers.get("Content-Range")
    if rng and "/" in rng and rng.rsplit("/", 1)[1] != "*":
        return int(rng.rsplit("/", 1)[1])
    n = resp.headers.get("Content-Length")
    return int(n) + (offset if resp.status == 206 else 0) if n is not None else None


def fetch(url: str, dest: Path, timeout: float = 30.0, progress: bool = True, chunk: int = 1 << 16) -> Path:
    """Download url to dest, resuming from dest.part; verify the final size."""
    from tqdm import tqdm

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    offset = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:  # the .part is already complete
            part.replace(dest)
            return dest
        raise DownloadError(f"{url}: HTTP {e.code}; check the URL or download it by hand into {dest.parent}") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise DownloadError(f"{url}: cannot reach the server ({reason}); check the network, or download the archive by hand into {dest.parent}") from None
    with resp:
        if offset and resp.status != 206:
            offset = 0  # server ignored the Range: start over
        total = _total_length(resp, offset)
        with open(part, "ab" if offset else "wb") as f, tqdm(total=total, initial=offset, unit="B", unit_scale=True,
                                                              desc=dest.name, disable=not progress, leave=False) as bar:
            while True:
                buf = resp.read(chunk)
                if not buf:
                    break
                f.write(buf)
                bar.update(len(buf))
    size = part.stat().st_size
    if total is not None and size != total:
        raise DownloadError(f"{dest}: got {size} of {total} bytes; run the same command again to resume")
    part.replace(dest)
    return dest


def _marker(dest: Path, archive_name: str) -> Path:
    return Path(dest) / f".{archive_name}.extracted.json"


def extracted(dest, archive_name: str) -> bool:
    """True when `archive_name` was unpacked completely into `dest` (its marker is there, with every folder it lists)."""
    try:
        info = json.loads(_marker(dest, archive_name).read_text())
        return isinstance(info, dict) and all((Path(dest) / t).exists() for t in info["top"])
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _unsafe(name: str, info: zipfile.ZipInfo) -> bool:
    parts = name.replace("\\", "/").split("/")
    is_link = (info.external_attr >> 16) & 0o170000 == 0o120000
    return (name.startswith(("/", "\\")) or ".." in parts or "\\" in name or (len(name) > 1 and name[1] == ":")
            or "\x00" in name or is_link)


def _check_members(archive: Path, infos, max_members: int, max_total: int, max_ratio: float) -> int:
    """Refuse, before anything is written, what would escape the destination or write too much; returns the total size."""
    bad = next((i.filename for i in infos if _unsafe(i.filename, i)), None)
    if bad is not None:
        raise DownloadError(f"{archive}: unsafe path '{bad}' in archive (absolute, '..' or a link); refusing to unpack")
    files = [i for i in infos if not i.is_dir()]
    if len(files) > max_members:
        raise DownloadError(f"{archive}: {len(files)} members, more than the {max_members} an ISIC archive holds; "
                            f"refusing to unpack (delete it and download again)")
    total = sum(i.file_size for i in files)
    if total > max_total:
        raise DownloadError(f"{archive}: would unpack {total / 2 ** 30:.1f} GiB, more than the {max_total / 2 ** 30:.1f} GiB "
                            f"limit; refusing to unpack (delete it and download again)")
    for i in files:
        if i.file_size > RATIO_FLOOR and i.file_size > max_ratio * max(i.compress_size, 1):
            raise DownloadError(f"{archive}: member '{i.filename}' expands {i.file_size / max(i.compress_size, 1):.0f}x "
                                f"({i.file_size} bytes), beyond the {max_ratio:g}x limit (a zip bomb?); refusing to unpack")
    return total


def _stale_temps(dest: Path, archive_name: str):
    from core.safeio import pid_alive

    prefix = f".{archive_name}.tmp"
    for p in dest.iterdir():
        if p.name.startswith(prefix) and p.is_dir() and not p.is_symlink():
            pid = p.name[len(prefix):]
            if pid.isdigit() and not pid_alive(int(pid)):
                yield p


def _ours(folder: Path, names: set, root: Path) -> bool:
    """Every file under `folder` is a member of the archive: a previous, interrupted extraction of it."""
    return all(str(f.relative_to(root)).replace("\\", "/") in names for f in folder.rglob("*") if not f.is_dir())


def unpack(archive: Path, dest: Path, max_members: int = MAX_MEMBERS, max_total: int = MAX_TOTAL_BYTES,
           max_ratio: float = MAX_RATIO) -> Path:
    """Extract `archive` into `dest` all or nothing (see the module's docstring); returns the marker written last."""
    from core.safeio import atomic_write_text

    archive, dest = Path(archive), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for stale in _stale_temps(dest, archive.name):  # a killed extraction's temporary folder: ours, by its name
        shutil.rmtree(stale, ignore_errors=True)
    try:
        z = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as e:
        raise DownloadError(f"{archive}: not a valid zip ({type(e).__name__}); delete it and download again") from None
    with z:
        infos = [i for i in z.infolist() if i.filename.split("/")[0] != MACOS_JUNK]
        total = _check_members(archive, infos, max_members, max_total, max_ratio)
        free = shutil.disk_usage(dest).free
        if total > free:
            raise DownloadError(f"{dest}: {archive.name} needs {total / 2 ** 30:.2f} GiB and {free / 2 ** 30:.2f} GiB are free; "
                                f"free space or pass --dest elsewhere")
        files = [i for i in infos if not i.is_dir()]
        names = {i.filename.rstrip("/") for i in files}
        tmp = dest / f".{archive.name}.tmp{os.getpid()}"
        tmp.mkdir()
        try:
            for i in infos:
                target = tmp / i.filename
                if not target.resolve().is_relative_to(tmp.resolve()):
                    raise DownloadError(f"{archive}: unsafe path '{i.filename}' in archive; refusing to unpack")
                if i.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                written = 0
                try:
                    with z.open(i) as src, open(target, "wb") as out:
                        while True:
                            buf = src.read(min(1 << 20, i.file_size - written + 1))
                            if not buf:
                                break
                            written += len(buf)
                            if written > i.file_size:
                                raise DownloadError(f"{archive}: member '{i.filename}' holds more than the {i.file_size} "
                                                    f"bytes it declares; refusing to unpack (delete it and download again)")
                            out.write(buf)
                except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as e:
                    raise DownloadError(f"{archive}: member '{i.filename}' is damaged ({type(e).__name__}); "
                                        f"delete the archive and download it again") from None
            on_disk = {str(f.relative_to(tmp)): f.stat().st_size for f in tmp.rglob("*") if f.is_file()}
            short = next((i.filename for i in files if on_disk.get(i.filename) != i.file_size), None)
            if short is not None or len(on_disk) != len(files):
                raise DownloadError(f"{archive}: unpacked {len(on_disk)} files but the archive lists {len(files)}"
                                    f"{f' (first wrong: {short})' if short else ''}; delete it and download again")
            top = sorted({i.filename.split("/")[0] for i in infos})
            replace = []
            for t in top:  # what an interrupted earlier extraction of this archive left is replaced (checked first)
                there = dest / t
                if there.is_symlink() or not there.exists():
                    if there.is_symlink():
                        raise DownloadError(f"{there}: is a symbolic link; move it away or pass another --dest")
                    continue
                if (there.is_dir() and _ours(there, names, dest)) or (there.is_file() and t in names):
                    replace.append(t)
                else:
                    raise DownloadError(f"{dest / t}: already exists and holds files that are not in {archive.name}; "
                                        f"move it away or pass another --dest")
            for t in replace:
                (dest / t).rename(tmp / f".old.{t}")
            for t in top:
                (tmp / t).rename(dest / t)
            marker = _marker(dest, archive.name)
            atomic_write_text(marker, json.dumps({"archive": archive.name, "members": len(files), "bytes": total,
                                                  "top": top}, indent=1) + "\n")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return marker


def download(dataset: str, dest, base_url: str = BASE_URL, keep_archives: bool = False, progress: bool = True,
             archives_given: Sequence = ()) -> Path:
    """Fetch (unless given as local `archives_given`) and unpack every archive of `dataset` into `dest`."""
    if dataset not in ARCHIVES:
        raise DownloadError(f"unknown dataset '{dataset}'; choose one of {', '.join(ARCHIVES)}")
    dest = Path(dest)
    known = [Path(rel).name for rel in ARCHIVES[dataset]]
    local = {}
    for a in map(Path, archives_given):
        if a.name not in known:
            raise DownloadError(f"--archive {a}: not one of {dataset}'s archives; give the files by their official names "
                                f"({', '.join(known)})")
        if not a.is_file():
            raise DownloadError(f"--archive {a}: file not found; give the path of the downloaded .zip")
        local[a.name] = a
    archives = dest / "archives"
    for rel in ARCHIVES[dataset]:
        name = Path(rel).name
        zpath = local.get(name, archives / name)
        if extracted(dest, name):
            if name not in local and zpath.is_file() and not keep_archives:
                zpath.unlink()  # unpacked, then interrupted before the archive was removed
            continue
        folder = dest / Path(name).stem
        if not zpath.is_file() and folder.is_dir() and any(folder.iterdir()):
            # unpacked by an earlier version of this tool, which removed an archive only once all of it was unpacked
            print(f"note: {folder} has no completion marker and its archive is gone; kept as it is "
                  f"(delete it to download and unpack it again)", file=sys.stderr)
            continue
        if not zpath.is_file():
            fetch(f"{base_url.rstrip('/')}/{rel}", zpath, progress=progress)
        unpack(zpath, dest)
        if not keep_archives and name not in local:
            zpath.unlink()
    if archives.is_dir() and not any(archives.iterdir()):
        archives.rmdir()
    return dest
