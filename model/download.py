"""Download the official ISIC 2017/2018 Task 1 archives: `python model/download.py isic2018 --dest data/isic2018`.

Resumable (HTTP Range on a .part file), size-checked against the server's length, unpacked into
the official folder layout that model/data.py detects. Archives already complete are skipped.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Dict, List, Optional, Sequence

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model.clitools import HelpFormatter, user_errors  # noqa: E402

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


class DownloadError(RuntimeError):
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


def unpack(archive: Path, dest: Path) -> None:
    try:
        with zipfile.ZipFile(archive) as z:
            bad = [n for n in z.namelist() if n.startswith("/") or ".." in Path(n).parts]
            if bad:
                raise DownloadError(f"{archive}: unsafe path '{bad[0]}' in archive; refusing to unpack")
            z.extractall(dest)
    except zipfile.BadZipFile:
        raise DownloadError(f"{archive}: not a valid zip; delete it and download again") from None
    macos = dest / "__MACOSX"
    if macos.is_dir():
        shutil.rmtree(macos)


def download(dataset: str, dest, base_url: str = BASE_URL, keep_archives: bool = False, progress: bool = True) -> Path:
    if dataset not in ARCHIVES:
        raise DownloadError(f"unknown dataset '{dataset}'; choose one of {', '.join(ARCHIVES)}")
    dest = Path(dest)
    archives = dest / "archives"
    for rel in ARCHIVES[dataset]:
        name = Path(rel).name
        folder = dest / Path(name).stem
        if folder.is_dir() and any(folder.iterdir()):
            continue
        zpath = archives / name
        if not zpath.is_file():
            fetch(f"{base_url.rstrip('/')}/{rel}", zpath, progress=progress)
        unpack(zpath, dest)
        if not keep_archives:
            zpath.unlink()
    if archives.is_dir() and not any(archives.iterdir()):
        archives.rmdir()
    return dest


@user_errors
def main(argv: Optional[Sequence[str]] = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=HelpFormatter)
    p.add_argument("dataset", choices=sorted(ARCHIVES), help="which challenge's Task 1 archives")
    p.add_argument("--dest", default=None, help="target folder (default: data/<dataset> in the repository)")
    p.add_argument("--base-url", default=BASE_URL, help="where the archives are served")
    p.add_argument("--keep-archives", action="store_true", help="keep the .zip files after unpacking")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    from model.safeio import ensure_writable_dir

    dest = ensure_writable_dir(Path(args.dest or Path(__file__).resolve().parents[1] / "data" / args.dataset), "--dest")
    try:
        download(args.dataset, dest, args.base_url, args.keep_archives, progress=not args.no_progress)
    except DownloadError as e:
        raise SystemExit(f"error: {e}")
    except OSError as e:  # disk full, a file in the way
        raise SystemExit(f"error: {e.filename or dest}: cannot write it ({e.strerror or type(e).__name__}); "
                         f"free space or pass --dest elsewhere") from None
    print(f"{args.dataset} ready in {dest}")


if __name__ == "__main__":
    main()
