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
from typing import List

from .errors import OutputError


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
