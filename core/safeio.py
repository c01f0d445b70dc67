"""Writing results safely (stdlib only): atomic writes, a writable-folder check, stale temp-file cleanup.

A result is written to a hidden temporary file beside its target (`.<name>.tmp<pid>...`) and moved into
place with os.replace, so a reader never sees half a file. A process killed mid-write leaves its
temporary behind; the next write to the same target removes the temporaries whose process is gone
(the pid in the name says whose it is). Any OSError becomes an `OutputError` that names the path.
"""
from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import List, Optional, Sequence

from .errors import OutputError
from .paths import BENCHMARK_RESULTS, REPO as REPO_ROOT


def file_sha256(path) -> str:
    """The sha256 of a file's bytes, hex (read in 1 MiB chunks)."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists (another user's), or we cannot tell: keep its files
    return True


def temp_prefix(name: str) -> str:
    """The hidden temporary-name prefix for a target file name (the pid follows it)."""
    return f".{name}.tmp"


def clean_stale_temps(folder, prefix: str) -> List[Path]:
    """Remove `<folder>/<prefix><pid>...` files whose process no longer runs; returns what was removed."""
    folder = Path(folder)
    removed = []
    if not folder.is_dir():
        return removed
    pattern = re.compile(re.escape(prefix) + r"(\d+)")
    for p in folder.iterdir():
        m = pattern.match(p.name)
        if m and p.is_file() and not pid_alive(int(m.group(1))):
            try:
                p.unlink()
                removed.append(p)
            except OSError:
                pass
    return removed


def _reason(e: OSError) -> str:
    return e.strerror or type(e).__name__


def ensure_writable_dir(folder, what: str = "--out") -> Path:
    """Create `folder` if needed and check that files can be created in it; OutputError otherwise."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{folder}: is a file, not a folder; pass {what} with a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"{folder}: cannot create the folder ({_reason(e)}); pass {what} with a writable location") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"{folder}: folder is not writable; pass {what} with a writable location")
    return folder


def atomic_write_bytes(path, data: bytes) -> None:
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"{path}: cannot create its folder ({_reason(e)}); write it somewhere writable") from None
    prefix = temp_prefix(path.name)
    clean_stale_temps(path.parent, prefix)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{prefix}{os.getpid()}.")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as e:
        _discard(tmp)
        raise OutputError(f"{path}: cannot write it ({_reason(e)}); write it somewhere writable") from None
    except BaseException:
        _discard(tmp)
        raise


def _discard(tmp) -> None:
    if tmp and os.path.exists(tmp):
        try:
            os.unlink(tmp)
        except OSError:
            pass


def atomic_write_text(path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


# --------------------------------------------------------------------------- the output policy
#
# One policy for everything the toolkit writes; every tool follows it through the helpers below:
#   1. Atomic: a file is written whole or not at all (atomic_write_bytes / atomic_write_text / atomic_copy).
#   2. Ours only: a tool deletes or replaces only files it made. A folder a tool owns as a whole (a built
#      site, an unpacked archive) carries a manifest (OWNED_MANIFEST) of the files it wrote; the tool
#      refuses a non-empty folder without one and removes only what its manifest lists (OwnedFolder).
#      A single result file already present and not ours is refused unless the user asks (check_replace).
#   3. Committed results (the folders in COMMITTED_RESULT_DIRS, which the docs cite) change only when the
#      user asks with the tool's flag (--update-results, --save); by default results go under outputs/
#      (guard_committed).

COMMITTED_RESULT_DIRS = ("exports", "benchmarks/results", "model/weights", "docs", "android_demo/app", "web_demo/site")
OWNED_MANIFEST = ".aulunet-owned.json"


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def committed_result(path) -> bool:
    """True when `path` lies in one of the repository's committed-results folders."""
    return any(_inside(Path(path), REPO_ROOT / d) for d in COMMITTED_RESULT_DIRS)


def guard_committed(path, flag: str, asked: bool, default_hint: str = "") -> None:
    """OutputError unless writing `path` is allowed: committed results only when the user passed `flag`."""
    if asked or not committed_result(path):
        return
    rel = Path(path).resolve()
    try:
        rel = rel.relative_to(REPO_ROOT)
    except ValueError:
        pass
    hint = f" or {default_hint}" if default_hint else ""
    raise OutputError(f"{rel}: is a committed result; pass {flag} to replace it{hint}")


def results_folder(update_results: bool, out: Optional[str], default: Path, names: Sequence[str] = (),
                   committed: Path = BENCHMARK_RESULTS) -> Path:
    """Where a benchmark writes its results: --out, else `default` (under outputs/), or with --update-results the
    committed folder (then --out is refused); each of `names` in it (or the folder) checked by guard_committed."""
    if update_results and out:
        raise OutputError(f"--update-results writes to {committed.relative_to(REPO_ROOT)}/; drop --out (or drop --update-results)")
    folder = committed if update_results else Path(out or default)
    for target in [folder / n for n in names] or [folder]:
        guard_committed(target, "--update-results", update_results, "pass --out with a path under outputs/")
    return folder


def write_results(folder: Path, name: str, doc, md: str) -> None:
    """A benchmark's results as the docs read them: NAME.json (for machines) and NAME.md (for people), each atomic."""
    import json

    atomic_write_text(Path(folder) / f"{name}.json", json.dumps(doc, indent=1) + "\n")
    atomic_write_text(Path(folder) / f"{name}.md", md.rstrip("\n") + "\n")


def check_replace(path, what: str, allowed: bool = False, flag: str = "--overwrite") -> Path:
    """OutputError when `path` exists and replacing it was not asked for (`allowed`)."""
    path = Path(path)
    if path.exists() and not allowed:
        raise OutputError(f"{path}: already exists and {what} does not replace it; pass {flag} or choose another path")
    return path


def atomic_copy(src, dst) -> None:
    atomic_write_bytes(dst, Path(src).read_bytes())


class OwnedFolder:
    """A folder a tool owns as a whole (rule 2): its manifest lists what the tool wrote there.

    `OwnedFolder(dir, tool)` refuses a folder that exists, is not empty and has no manifest of `tool`;
    `write_bytes`/`write_text`/`copy` write atomically and record the file; `remove_unlisted(keep)` deletes
    only files the manifest lists that are not in `keep`; `save()` writes the manifest (atomically).
    """

    def __init__(self, folder, tool: str, what: str = "--out"):
        import json

        self.folder, self.tool, self.what = Path(folder), tool, what
        self.manifest = self.folder / OWNED_MANIFEST
        self.files: set = set()
        if self.folder.exists() and not self.folder.is_dir():
            raise OutputError(f"{self.folder}: is a file, not a folder; pass {what} with a folder")
        if self.folder.is_dir() and any(self.folder.iterdir()):
            try:
                data = json.loads(self.manifest.read_text())
                ok = isinstance(data, dict) and data.get("tool") == tool and isinstance(data.get("files"), list)
            except (OSError, ValueError):
                ok = False
            if not ok:
                raise OutputError(f"{self.folder}: is not empty and was not made by {tool}; "
                                  f"pass {what} with an empty or new folder (nothing was changed)")
            self.files = {str(f) for f in data["files"] if isinstance(f, str)}
        ensure_writable_dir(self.folder, what)
        self.written: set = set()

    def _target(self, rel: str) -> Path:
        p = (self.folder / rel)
        if not _inside(p, self.folder) or p.is_symlink():
            raise OutputError(f"{p}: outside {self.folder} or a symbolic link; {self.tool} writes only inside its folder")
        return p

    def write_bytes(self, rel: str, data: bytes) -> Path:
        p = self._target(rel)
        if p.exists() and rel not in self.files:
            raise OutputError(f"{p}: exists and was not made by {self.tool}; move it away or pass another {self.what}")
        atomic_write_bytes(p, data)
        self.written.add(rel)
        self.files.add(rel)
        return p

    def write_text(self, rel: str, text: str) -> Path:
        return self.write_bytes(rel, text.encode("utf-8"))

    def copy(self, src, rel: str) -> Path:
        return self.write_bytes(rel, Path(src).read_bytes())

    def remove_unlisted(self, keep) -> List[str]:
        """Delete the files this tool wrote before that are not in `keep`; nothing else is touched."""
        keep = set(keep)
        removed = []
        for rel in sorted(self.files - keep):
            p = self.folder / rel
            if _inside(p, self.folder) and (p.is_file() and not p.is_symlink()):
                p.unlink()
                removed.append(rel)
            self.files.discard(rel)
        return removed

    def save(self) -> None:
        import json

        atomic_write_text(self.manifest, json.dumps({"tool": self.tool, "files": sorted(self.files)}, indent=1) + "\n")
