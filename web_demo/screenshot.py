"""Screenshot of the demo on a real photo: `python web_demo/screenshot.py [--photo FILE] [--out docs/web_demo.png]`.

Serves the site, opens it in headless Chromium with the default model, chooses the photo through the page's file
input and saves the page as a PNG (for docs/web.md and the README).
"""
from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.paths import REPO, SHARED_DATA  # noqa: E402

from core.clitools import ArgumentParser, HelpFormatter, add_verbose, quiet, user_errors  # noqa: E402
from core.errors import UserError  # noqa: E402

DEFAULT_PHOTO = SHARED_DATA / "ph2" / "images" / "IMD002.jpg"


@user_errors
def main(argv=None) -> None:
    from web_demo.browser import Page, chromium
    from web_demo.build import DIST, build
    from web_demo.serve import Server

    p = ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--photo", default=str(DEFAULT_PHOTO), help="the photo to segment")
    p.add_argument("--out", default=None, help="the PNG (default: outputs/web/web_demo.png; --update-results: the "
                   "committed docs/web_demo.png)")
    p.add_argument("--update-results", action="store_true", help="replace the committed docs/web_demo.png")
    p.add_argument("--site", default=str(DIST), help="where the site is assembled")
    add_verbose(p)
    args = p.parse_args(argv)
    from core.safeio import atomic_copy, guard_committed

    photo = Path(args.photo)
    if args.update_results and args.out:
        raise UserError("--update-results writes docs/web_demo.png; drop --out")
    out = REPO / "docs" / "web_demo.png" if args.update_results else Path(args.out or REPO / "outputs" / "web" / "web_demo.png")
    guard_committed(out, "--update-results", args.update_results, "pass --out under outputs/")
    if not photo.is_file():
        raise UserError(f"--photo {photo}: file not found; pass a photo (default: a PH2 image in ../shared)")
    if out.suffix.lower() != ".png":
        raise UserError(f"--out {out}: the screenshot is a PNG; give a .png path")
    with quiet(args.verbose):
        build(Path(args.site))
    with Server(Path(args.site)) as server, chromium() as browser:
        page = Page(browser, server.url, "sw=0", viewport={"width": 900, "height": 760})
        try:
            if page.segment(photo) is None:
                raise UserError(f"--photo {photo}: the page refused it: {page.error_text()}")
            import tempfile

            with tempfile.TemporaryDirectory() as tmp:
                shot = Path(tmp) / "shot.png"
                page.page.screenshot(path=str(shot), full_page=True)
                atomic_copy(shot, out)
        finally:
            page.close()
    print(out)


if __name__ == "__main__":
    main()
