"""Download the official ISIC 2017/2018 Task 1 archives: `python model/download.py isic2018 --dest data/isic2018`.

Resumable, size-checked, unpacked all or nothing into the official folder layout that model/data/ detects,
with bounds against zip bombs and zip-slip paths (model/data/download.py says how). Archives already complete
are skipped; `--archive FILE` (repeatable) unpacks an archive downloaded by hand instead of fetching it.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional, Sequence

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.clitools import ArgumentParser, HelpFormatter, user_errors
from core.errors import UserError
from core.paths import REPO
from model.data.download import ARCHIVES, BASE_URL, download


@user_errors
def main(argv: Optional[Sequence[str]] = None) -> None:
    p = ArgumentParser(description=__doc__.splitlines()[0], formatter_class=HelpFormatter)
    p.add_argument("dataset", choices=sorted(ARCHIVES), help="which challenge's Task 1 archives")
    p.add_argument("--dest", default=None, help="target folder (default: data/<dataset> in the repository)")
    p.add_argument("--base-url", default=BASE_URL, help="where the archives are served")
    p.add_argument("--keep-archives", action="store_true", help="keep the downloaded .zip files after unpacking")
    p.add_argument("--archive", action="append", default=[], metavar="FILE",
                   help="an archive downloaded by hand, by its official name (repeatable): unpacked instead of fetched, never deleted")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    from core.safeio import ensure_writable_dir

    dest = ensure_writable_dir(Path(args.dest or REPO / "data" / args.dataset), "--dest")
    try:
        download(args.dataset, dest, args.base_url, args.keep_archives, progress=not args.no_progress,
                 archives_given=args.archive)
    except OSError as e:  # disk full, a file in the way
        raise UserError(f"{e.filename or dest}: cannot write it ({e.strerror or type(e).__name__}); "
                        f"free space or pass --dest elsewhere") from None
    print(f"{args.dataset} ready in {dest}")


if __name__ == "__main__":
    main()
