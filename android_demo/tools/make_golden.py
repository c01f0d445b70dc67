"""Golden pairs for the app's Java core: `python android_demo/tools/make_golden.py OUT_DIR [--data DIR] [--count N]`.

For each image: the RGB bytes as loaded (`NAME.rgb`, HxWx3 uint8), the model input that core/preprocess.py
makes (`NAME.input`, 256x256x3 float32 NHWC, little-endian), the logits of the embedded INT8 .tflite run
in LiteRT (`NAME.logits`, 256x256 float32), the probabilities at the image's size (`NAME.prob`) and the
mask (`NAME.mask`, uint8 0/1); `index.txt` lists `NAME HEIGHT WIDTH SIZE`. The same images run through the
edge model's asset too (`NAME_edge.*`, SIZE 128: its input and logits are 128x128). The Java test must
reproduce them.
`orientation_files` adds the EXIF-orientation pairs (OrientationTest.java): one photo saved as a PNG
with each EXIF orientation 1..8 (`exif_O.png`), its stored pixels (`exif_stored.rgb`) and what the Python
loader makes of each file (`exif_O.rgb`, model.data.load_rgb: the photo as displayed); `orientation.txt`
lists `stored HEIGHT WIDTH` and `O HEIGHT WIDTH` per orientation.
`postprocess_files` adds the mask clean-up pairs (PostprocessTest.java, web_demo/tests/postprocess.mjs): for each
mask and each step list of core/postprocess.py, the input mask (`CASE.pin`, uint8 0/1) and what core/postprocess.py
makes of it (`CASE.pout`); `postprocess.txt` lists `CASE HEIGHT WIDTH STEPS`; `metadata_files` adds the app assets' metadata JSON and the steps each lists.
OUT_DIR is the tool's own folder: a new or empty one, or one it wrote before (its manifest lists the files;
a rerun replaces them and removes the cases it no longer writes); every file is written atomically.
"""
from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np

import runtimes
from core.clitools import ArgumentParser, add_verbose, check_ranges, quiet, user_errors
from core.errors import DataError, ModelFileError, OutputError
from core.preprocess import preprocess_image, probs_to_image_size, sigmoid
from core.paths import DEFAULT_DATA, EDGE_MODEL, REPO, export_path

APP = REPO / "android_demo"
MODEL = APP / "app" / "src" / "main" / "assets" / export_path("_int8.tflite").name  # the default model's INT8 file
EDGE = MODEL.with_name(export_path("_int8.tflite", EDGE_MODEL).name)  # the edge model's, offered beside it


TOOL = "android_demo/tools/make_golden.py"


def orientation_files(stored: np.ndarray) -> dict:
    """{file name: bytes} of the EXIF-orientation pairs for one stored RGB photo."""
    import tempfile

    from PIL import Image

    from model.data import EXIF_ORIENTATION, ORIENTATIONS, load_rgb

    stored = np.ascontiguousarray(stored, dtype=np.uint8)
    files = {"exif_stored.rgb": stored.tobytes()}
    index = [f"stored {stored.shape[0]} {stored.shape[1]}"]
    with tempfile.TemporaryDirectory() as tmp:
        for o in sorted(ORIENTATIONS):
            exif = Image.Exif()
            exif[EXIF_ORIENTATION] = o
            png = Path(tmp) / f"exif_{o}.png"
            Image.fromarray(stored).save(png, exif=exif)
            shown = load_rgb(png)
            files[png.name] = png.read_bytes()
            files[f"exif_{o}.rgb"] = np.ascontiguousarray(shown).tobytes()
            index.append(f"{o} {shown.shape[0]} {shown.shape[1]}")
    files["orientation.txt"] = ("\n".join(index) + "\n").encode()
    return files


STEP_LISTS = ("largest-component", "fill-holes", "largest-component,fill-holes", "fill-holes,largest-component")


def postprocess_masks(extra=()) -> list:
    """(name, bool HxW mask) of the clean-up cases: rings with holes beside smaller blobs, noise, a checkerboard
    (joined only diagonally), a staircase, a hole open to the border at a corner, ties, single pixels, empty and
    full masks, odd sizes; plus `extra` (name, mask) pairs (a model's masks)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:37, 0:53]
    ring = ((yy - 18) ** 2 + (xx - 20) ** 2 < 15 ** 2) & ((yy - 18) ** 2 + (xx - 20) ** 2 >= 6 ** 2)
    blob = (yy - 8) ** 2 + (xx - 45) ** 2 < 5 ** 2
    corner = np.ones((6, 7), bool)
    corner[1:-1, 1:-1] = False
    corner[0, 0] = False
    tie = np.zeros((4, 8), bool)
    tie[1, 0:3] = True
    tie[0:3, 6] = True
    stair = np.zeros((12, 12), bool)
    for k in range(10):
        stair[k, k] = stair[k + 1, k] = True
    single = np.zeros((5, 9), bool)
    single[2, 4] = True
    masks = [("ring_and_blob", ring | blob), ("ring_around_blob", ring | ((yy - 18) ** 2 + (xx - 20) ** 2 < 3 ** 2)),
             ("noise_30", rng.random((41, 29)) < 0.3), ("noise_60", rng.random((23, 61)) < 0.6),
             ("checker", (np.indices((9, 11)).sum(0) % 2) == 0), ("staircase", stair), ("corner_open", corner),
             ("tie", tie), ("single", single), ("empty", np.zeros((7, 5), bool)), ("full", np.ones((3, 4), bool)),
             ("one_row", rng.random((1, 17)) < 0.5), ("one_column", rng.random((13, 1)) < 0.5)]
    return masks + list(extra)


def postprocess_files(masks) -> dict:
    """{file name: bytes} of the clean-up pairs for `masks` ((name, bool HxW) pairs), every step list each."""
    from core.postprocess import apply

    files, index = {}, []
    for name, m in masks:
        m = np.asarray(m, bool)
        for k, steps in enumerate(STEP_LISTS):
            case = f"pp_{name}_{k}"
            files[f"{case}.pin"] = m.astype(np.uint8).tobytes()
            files[f"{case}.pout"] = apply(m, steps).astype(np.uint8).tobytes()
            index.append(f"{case} {m.shape[0]} {m.shape[1]} {steps}")
    files["postprocess.txt"] = ("\n".join(index) + "\n").encode()
    return files


def metadata_files(assets=(MODEL, EDGE)) -> dict:
    """{file name: bytes} of the metadata cases (PostprocessTest.java): each app asset's metadata JSON as
    copy_model.py writes it (`metadata/NAME.json`), one with both steps added, and the steps core/postprocess.py
    reads from each (`metadata_steps/NAME.json`: one line, the comma list, empty for none)."""
    import json

    from core.postprocess import check_steps

    metas = {a.with_suffix(".json").name: json.loads(a.with_suffix(".json").read_text()) for a in assets}
    first = next(iter(metas.values()))
    metas["with_steps.json"] = {**first, "postprocess": ["fill-holes", "largest-component"]}
    files = {}
    for name, meta in metas.items():
        files[f"metadata/{name}"] = (json.dumps(meta, indent=1, sort_keys=True) + "\n").encode()
        files[f"metadata_steps/{name}"] = (",".join(check_steps(meta.get("postprocess") or ())) + "\n").encode()
    return files


def write_cases(out: Path, images, model: Path = MODEL, extra: dict = None, edge: Path = EDGE) -> None:
    """Golden files of `images` ((name, RGB uint8) pairs) through `model` and, named NAME_edge, through `edge`,
    plus `extra` {name: bytes}, in `out`, a folder this tool owns (OwnedFolder)."""
    from core.safeio import OwnedFolder

    segs = [(runtimes.load(model, threads=1), ""), (runtimes.load(edge, threads=1), "_edge")]
    folder = OwnedFolder(out, TOOL, "OUT_DIR")  # before any work: a folder of someone else's files is refused
    index, files = [], {}
    for seg, tag in segs:
        for image_name, rgb in images:
            name = image_name + tag
            x = preprocess_image(rgb, seg.input_size)
            logits = seg.run(x[None])[0, 0]
            prob = probs_to_image_size(sigmoid(logits)[..., None], rgb.shape[:2])
            files[f"{name}.rgb"] = np.ascontiguousarray(rgb, dtype=np.uint8).tobytes()
            files[f"{name}.input"] = x.transpose(1, 2, 0).astype("<f4").tobytes()
            files[f"{name}.logits"] = logits.astype("<f4").tobytes()
            files[f"{name}.prob"] = prob.astype("<f4").tobytes()
            files[f"{name}.mask"] = (prob > seg.threshold).astype(np.uint8).tobytes()
            index.append(f"{name} {rgb.shape[0]} {rgb.shape[1]} {seg.input_size}")
    files["index.txt"] = ("\n".join(index) + "\n").encode()
    files.update(extra or {})
    for rel in files:  # check all, then write: a file in the way that the tool did not make stops the run here
        p = out / rel
        if p.exists() and rel not in folder.files:
            raise OutputError(f"{p}: exists and was not made by {TOOL}; move it away or pass another OUT_DIR")
    for rel, data in files.items():
        folder.write_bytes(rel, data)
    folder.remove_unlisted(files)
    folder.save()


@user_errors
def main(argv=None) -> None:
    from model.data import load_rgb, open_dataset

    p = ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", help="folder for the golden files (new, empty, or written by this tool before)")
    p.add_argument("--data", default=str(DEFAULT_DATA), help="dataset whose val images are used")
    p.add_argument("--count", type=int, default=3, help="how many val images")
    add_verbose(p)
    args = p.parse_args(argv)
    check_ranges(args, {"count": 1})
    for asset in (MODEL, EDGE):
        if not asset.is_file():
            raise ModelFileError(f"{asset}: the app's model asset is missing; run python android_demo/tools/copy_model.py "
                                 f"--update-results --model exports/{asset.name}")
    data = Path(args.data)
    if not data.is_dir():
        raise DataError(f"--data {data}: folder not found; pass a dataset folder with images/ and masks/ "
                        f"(default: {DEFAULT_DATA})")
    samples = open_dataset(data).subset("val")[: args.count]
    if not samples:
        raise DataError(f"--data {data}: no val images; pass a dataset with a val split")
    cases = [(s.id, load_rgb(s.image)) for s in samples]
    with quiet(args.verbose):  # LiteRT's delegate chatter
        write_cases(Path(args.out), cases, extra={**orientation_files(cases[0][1][:61, :83]),  # a small non-square crop
                                                  **postprocess_files(postprocess_masks()), **metadata_files()})
    print(f"wrote {len(samples)} golden case(s) to {args.out}")


if __name__ == "__main__":
    main()
