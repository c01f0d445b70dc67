import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DATA = REPO.parent / "shared" / "data"
PH2 = DATA / "ph2"
SHIPPED = REPO / "model" / "weights" / "aulunet_v3_ph2.pt"  # tests pin the PH2 model: its figures are known


@pytest.fixture(scope="session")
def ph2() -> Path:
    if not (PH2 / "images").is_dir():
        pytest.skip(f"real PH2 data absent: {PH2} not found (CI always has it)")
    return PH2


def _shared(name: str) -> Path:
    folder = DATA / name
    if not (folder / "images").is_dir():
        pytest.skip(f"real {name} data absent: {folder} not found (CI always has it)")
    return folder


@pytest.fixture(scope="session")
def isic2018() -> Path:
    return _shared("isic2018")


@pytest.fixture(scope="session")
def isic2017() -> Path:
    return _shared("isic2017")


@pytest.fixture(scope="session")
def shipped() -> Path:
    assert SHIPPED.is_file(), f"{SHIPPED} missing: the shipped checkpoint must be committed"
    return SHIPPED


def save_png(path: Path, arr: np.ndarray) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


def lesion_pair(rng, h=40, w=48):
    """A small RGB image with a dark disc and its 0/255 mask."""
    yy, xx = np.mgrid[0:h, 0:w]
    mask = (yy - h / 2) ** 2 + (xx - w / 2) ** 2 < (min(h, w) / 3) ** 2
    img = rng.integers(150, 230, (h, w, 3), dtype=np.uint8)
    img[mask] = rng.integers(30, 90, (int(mask.sum()), 3), dtype=np.uint8)
    return img, (mask * 255).astype(np.uint8)


def make_generic(root, ids=("a1", "b2", "c3", "d4", "e5"), suffix="_segmentation", ext=".png"):
    """A generic-layout dataset folder (images/ + masks/) of small synthetic lesions."""
    rng = np.random.default_rng(0)
    for i in ids:
        img, mask = lesion_pair(rng)
        save_png(root / "images" / f"{i}{ext}", img)
        save_png(root / "masks" / f"{i}{suffix}.png", mask)
    return root




def cli(script, *args):
    """Run a CLI as a user would, from the repository root: (exit code, stdout, stderr)."""
    proc = subprocess.run([sys.executable, str(REPO / script), *map(str, args)], capture_output=True, text=True, cwd=REPO)
    return proc.returncode, proc.stdout, proc.stderr


def assert_one_line_error(rc, err, pattern):
    assert rc != 0
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err[-2000:]
    assert re.search(pattern, lines[0]), lines[0]


def foreign_onnx(path):
    """The shipped PH2 ONNX export with this toolkit's metadata removed: a model file from another tool."""
    import onnx

    m = onnx.load(str(REPO / "exports" / "aulunet_v3_ph2.onnx"))
    del m.metadata_props[:]
    onnx.save(m, str(path))
    return path


def export_every_quantization(fmt_key: str, build, shipped: Path, ph2: Path, out: Path):
    """Run the shared export flow for each quantization the format table lists; files are out/m_<q><suffix>."""
    from export.cli import run
    from core.formats import FORMATS

    fmt = FORMATS[fmt_key]
    res = {q: run(fmt_key, build, ["--weights", str(shipped), "--quantize", q, "--out", str(out / f"m_{q}{fmt.suffix}"),
                                   "--eval-data", str(ph2)])
           for q in fmt.quantize}
    return out, res


# Lanes: `pytest -m "not slow"` is the fast lane; every lane marker implies slow (tests/test_markers.py checks it).
LANES = ("browser", "arm", "sshd", "compile", "training", "android")

# Transitional: the trainer's test files stay at tests/ untouched while model/train.py is rewritten; their slow tests
# (measured with --durations) are marked here by name until they move to tests/model/ with their own markers.
WEB = REPO / "web_demo"
WEB_SETUP_HINT = "bash run.sh test installs it (or: apt-get install chromium nodejs npm; npm ci --prefix web_demo)"


@pytest.fixture(scope="module")
def site(tmp_path_factory, ph2):
    """The web demo built into a temporary folder and served on 127.0.0.1 (one per test module)."""
    from web_demo.browser import chromium_path
    from web_demo.build import build
    from web_demo.serve import Server

    chromium_path()  # a one-line error naming the fix when Chromium is missing
    assert (WEB / "node_modules").is_dir(), f"{WEB / 'node_modules'} missing; {WEB_SETUP_HINT}"
    out = tmp_path_factory.mktemp("web_site")
    manifest = build(out)
    with Server(out) as server:
        yield server.url, manifest


@pytest.fixture(scope="module")
def browser(site):
    from web_demo.browser import chromium

    with chromium() as b:
        yield b
