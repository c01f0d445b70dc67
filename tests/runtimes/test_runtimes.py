"""runtimes.load and Segmenter.run / predict on bad input: the right answer or one line."""
import json
import subprocess
import sys

import numpy as np
import pytest

import runtimes
from core.errors import InputError, ModelFileError, UserError
from tests.conftest import REPO, foreign_onnx
from tests.model.networks.test_checkpoint import BAD_HEADERS

EXPORTS = REPO / "exports"


# ------------------------------------------------------------------ model files without the toolkit's metadata

def test_foreign_onnx_is_refused_unless_allowed(tmp_path):
    f = foreign_onnx(tmp_path / "foreign.onnx")
    with pytest.raises(ModelFileError, match=r"foreign\.onnx: no AULUNet metadata .* pass --allow-foreign .* assuming RGB resized to 256x256"):
        runtimes.load(f)
    with pytest.warns(UserWarning, match="no AULUNet metadata; assuming"):
        seg = runtimes.load(f, allow_foreign=True)
    assert seg.metadata["foreign"] is True and seg.threshold == 0.5
    x = np.random.default_rng(0).random((1, 3, 256, 256), dtype=np.float32)
    np.testing.assert_allclose(seg.run(x), runtimes.load(EXPORTS / "aulunet_v3_ph2.onnx").run(x), atol=1e-6)


@pytest.mark.slow
def test_foreign_files_of_every_runtime_are_refused(tmp_path):
    import openvino as ov

    ov.save_model(ov.convert_model(str(foreign_onnx(tmp_path / "f.onnx"))), str(tmp_path / "foreign.xml"))
    with pytest.raises(ModelFileError, match=r"foreign\.xml: no AULUNet metadata"):
        runtimes.load(tmp_path / "foreign.xml")
    from ai_edge_litert.tools import flatbuffer_utils

    m = flatbuffer_utils.read_model_from_bytearray(bytearray((EXPORTS / "aulunet_v3_ph2.tflite").read_bytes()))
    m.metadata = [e for e in m.metadata if e.name not in ("aulunet", b"aulunet")]
    (tmp_path / "foreign.tflite").write_bytes(bytes(flatbuffer_utils.convert_object_to_bytearray(m)))
    with pytest.raises(ModelFileError, match=r"foreign\.tflite: no AULUNet metadata"):
        runtimes.load(tmp_path / "foreign.tflite")


def test_foreign_model_with_another_input_is_refused_even_when_allowed(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 224, 224])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 224, 224])
    g = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "cls.onnx"))
    with pytest.warns(UserWarning):
        with pytest.raises(ModelFileError, match=r"cls\.onnx: its input is \[1, 3, 224, 224\], not a NCHW batch of 3-channel 256x256 images"):
            runtimes.load(tmp_path / "cls.onnx", allow_foreign=True)


def test_broken_metadata_is_a_clear_error(tmp_path):
    import onnx

    m = onnx.load(str(EXPORTS / "aulunet_v3_ph2.onnx"))
    m.metadata_props[0].value = "{not json"
    onnx.save(m, str(tmp_path / "bad_meta.onnx"))
    with pytest.raises(ModelFileError, match=r"bad_meta\.onnx: its 'aulunet' metadata is not valid JSON; re-export it with export/to_onnx\.py"):
        runtimes.load(tmp_path / "bad_meta.onnx")
    m.metadata_props[0].value = json.dumps({"toolkit": "something-else"})
    onnx.save(m, str(tmp_path / "other_meta.onnx"))
    with pytest.raises(ModelFileError, match=r"other_meta\.onnx: its 'aulunet' metadata lacks toolkit, preprocessing or threshold"):
        runtimes.load(tmp_path / "other_meta.onnx")


def test_truncated_openvino_xml_names_the_cause(tmp_path):
    text = (EXPORTS / "aulunet_v3_ph2.xml").read_text()
    (tmp_path / "cut.xml").write_text(text[: len(text) // 2])
    (tmp_path / "cut.bin").write_bytes((EXPORTS / "aulunet_v3_ph2.bin").read_bytes())
    with pytest.raises(ModelFileError, match=r"cut\.xml: OpenVINO cannot read it \(") as e:
        runtimes.load(tmp_path / "cut.xml")
    msg = str(e.value)
    assert "Exception from" not in msg and ".cpp:" not in msg and "\n" not in msg


def test_reason_skips_source_locations():
    from runtimes.base import reason

    e = RuntimeError("Exception from src/inference/src/cpp/core.cpp:84:\nCheck 'x' failed at src/frontends/ir.cpp:12:\n"
                     "[ GENERAL_ERROR ]\nStart-end tags mismatch at offset 96266\n")
    assert reason(e) == "Start-end tags mismatch at offset 96266"
    assert reason(RuntimeError("")) == "RuntimeError"


# ------------------------------------------------------------------ predict() and run() inputs

@pytest.fixture(scope="module")
def seg():
    return runtimes.load(EXPORTS / "aulunet_v3_ph2.onnx", threads=1)


def _photo():
    from PIL import Image

    from tests.conftest import PH2
    p = PH2 / "images" / "IMD002.jpg"
    if not p.is_file():
        pytest.skip("real PH2 data absent")
    return Image.open(p)


def test_predict_takes_a_pil_image(seg):
    im = _photo()
    p1, m1 = seg.predict(im)
    p2, m2 = seg.predict(np.asarray(im.convert("RGB")))
    np.testing.assert_array_equal(p1, p2)
    assert m1.shape == (im.height, im.width) and 0.05 < m1.mean() < 0.9


@pytest.mark.parametrize("bad,message", [
    ("list", r"predict\(\) takes one image .* got a list of 2; call it once per image"),
    ("float", r"predict\(\) takes uint8 RGB values 0-255, got dtype float64"),
    ("tiny", r"image is 1x1 pixels, below the 32x32 minimum"),
    ("flat", r"image has no contrast \(every value within 120\.\.120"),
    ("chw", r"predict\(\) takes one HxWx3 RGB image, got an array of shape \(3, 64, 64\)"),
    ("str", r"predict\(\) takes an HxWx3 uint8 numpy array or a PIL image, got str"),
])
def test_predict_refuses_what_it_cannot_segment(seg, bad, message):
    rgb = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    value = {"list": [rgb, rgb], "float": rgb / 255.0, "tiny": rgb[:1, :1], "flat": np.full((64, 64, 3), 120, np.uint8),
             "chw": rgb.transpose(2, 0, 1).copy(), "str": "photo.jpg"}[bad]
    with pytest.raises(InputError, match=message):
        seg.predict(value)


def test_predict_grey_and_rgba_match_the_file_loader(seg):
    rgb = np.random.default_rng(1).integers(0, 255, (64, 80, 3), dtype=np.uint8)
    grey = rgb[..., 0]
    with pytest.warns(UserWarning, match="grey HxW image converted to RGB"):
        p, _ = seg.predict(grey)
    np.testing.assert_array_equal(p, seg.predict(np.dstack([grey] * 3))[0])
    with pytest.warns(UserWarning, match="RGBA image converted to RGB"):
        p, _ = seg.predict(np.dstack([rgb, np.full(grey.shape, 7, np.uint8)]))
    np.testing.assert_array_equal(p, seg.predict(rgb)[0])


def test_run_refuses_wrong_size_and_nan(seg, shipped):
    with pytest.raises(InputError, match=r"takes 256x256 inputs, got 128x128"):
        seg.run(np.zeros((1, 3, 128, 128), np.float32))
    x = np.zeros((1, 3, 256, 256), np.float32)
    x[0, 1, 5, 5] = np.nan
    with pytest.raises(InputError, match="NaN or infinite"):
        seg.run(x)
    with pytest.raises(InputError, match=r"input sides must be multiples of 32, got 100x100"):
        runtimes.load(shipped).run(np.zeros((1, 3, 100, 100), np.float32))


# ------------------------------------------------------------------ run() on values, batches and threads it cannot take

def test_run_refuses_unpreprocessed_values(seg):
    """0..255 floats ran before (foreground 0.348 instead of 0.005); the metadata's range is [0, 1]."""
    x = np.random.default_rng(0).random((1, 3, 256, 256), dtype=np.float32)
    with pytest.raises(InputError, match=r"aulunet_v3_ph2\.onnx: run\(\) takes the preprocessed batch, values in \[0, 1\], "
                                         r"got 0\.\d+\.\.25\d\.?\d*; preprocess with core\.preprocess\.preprocess_image "
                                         r"\(or pass the uint8 photo to predict\(\)\)"):
        seg.run(x * 255)
    with pytest.raises(InputError, match=r"values in \[0, 1\], got -0\.5"):
        seg.run(x - 0.5)
    seg.run(np.clip(x * (1 + 1e-6), 0, 1 + 1e-6))  # float rounding of a min-max scale is within the slack


@pytest.mark.parametrize("name", ["aulunet_v3_ph2.xml", "aulunet_v3_ph2.onnx", "aulunet_v3_ph2_int8.tflite"])
def test_run_refuses_an_empty_batch(name):
    s = runtimes.load(EXPORTS / name, threads=1)
    with pytest.raises(InputError, match=rf"{name}: run\(\) got an empty batch \(shape \(0, 3, 256, 256\)\); pass at least one image"):
        s.run(np.zeros((0, 3, 256, 256), np.float32))


@pytest.mark.parametrize("threads,message", [
    (1.5, r"threads=1\.5: give a whole number"), ("2", r"threads='2': give a whole number"),
    (True, r"threads=True: give a whole number"), (None, r"threads=None: give a whole number"),
    (-1, r"threads=-1: give 0 \(the runtime's default\) or a count from 1 to \d+ \(this machine's CPUs\)"),
    (10 ** 6, r"threads=1000000: give 0 \(the runtime's default\) or a count from 1 to \d+"),
])
def test_load_refuses_thread_counts_it_cannot_use(threads, message):
    with pytest.raises(InputError, match=message):
        runtimes.load(EXPORTS / "aulunet_v3_ph2.onnx", threads=threads)
    assert runtimes.load(EXPORTS / "aulunet_v3_ph2.onnx", threads=np.int64(1)).threads == 1


# ------------------------------------------------------------------ export metadata that would allocate or misread, refused
# first (the same bounds as checkpoint headers, tests/model/networks/test_checkpoint.py)

@pytest.mark.parametrize("key,change,message", BAD_HEADERS)
def test_export_metadata_out_of_bounds_is_refused(tmp_path, key, change, message):
    import onnx

    m = onnx.load(str(EXPORTS / "aulunet_v3_ph2.onnx"))
    meta = json.loads(m.metadata_props[0].value)
    meta[key] = {} if change is None else {**meta[key], **change}
    m.metadata_props[0].value = json.dumps(meta)
    onnx.save(m, str(tmp_path / "bad.onnx"))
    with pytest.raises(ModelFileError, match=rf"bad\.onnx: bad 'aulunet' metadata: .*{message}.*; re-export it with export/to_onnx\.py"):
        runtimes.load(tmp_path / "bad.onnx")


def test_pt_backend_is_registered_by_the_model_package_and_says_so_when_it_is_not():
    """runtimes/ sits below model/ (docs/architecture.md): importing it pulls neither model nor torch, and a .pt
    without the model package imported is one line naming the fix; with it, the file runs."""
    code = ("import sys, runtimes\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('model', 'export', 'torch')))\n"
            "try:\n"
            "    runtimes.load(sys.argv[1])\n"
            "except runtimes.ModelFileError as e:\n"
            "    print(e)\n"
            "import model\n"
            "print(type(runtimes.load(sys.argv[1])).__name__)\n")
    weights = REPO / "model" / "weights" / "aulunet_v3_ph2.pt"
    proc = subprocess.run([sys.executable, "-c", code, str(weights)], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-800:]
    loaded, message, cls = proc.stdout.splitlines()
    assert loaded == "[]"
    assert message == (f"{weights}: PyTorch files need the backend model.networks.torch_segmenter:TorchSegmenter, registered by "
                       f"its package: `import model` first (it needs torch), or export the file to a torch-free format")
    assert cls == "TorchSegmenter"


# ------------------------------------------------------------------ mask post-processing named by the file's metadata

def _onnx_with_postprocess(path, steps):
    """The shipped PH2 ONNX export with metadata "postprocess" set to `steps` (as export --postprocess writes it)."""
    import onnx

    m = onnx.load(str(EXPORTS / "aulunet_v3_ph2.onnx"))
    meta = json.loads(m.metadata_props[0].value)
    meta["postprocess"] = steps
    m.metadata_props[0].value = json.dumps(meta)
    onnx.save(m, str(path))
    return path


def _two_lesions():
    """A light photo with two dark discs, the larger holding a light centre: the PH2 model segments both discs
    and leaves the centre out, so each step changes the mask (87 and 50 pixels on this model)."""
    yy, xx = np.mgrid[0:120, 0:160]
    img = np.full((120, 160, 3), 200, np.uint8)
    img[((yy - 60) ** 2 + (xx - 50) ** 2 < 35 ** 2) | ((yy - 30) ** 2 + (xx - 130) ** 2 < 12 ** 2)] = 60
    img[(yy - 60) ** 2 + (xx - 50) ** 2 < 10 ** 2] = 200
    return img


@pytest.mark.parametrize("steps", [["holes"], "fill-holes", [1], {"fill-holes": True}, ["none"]])
def test_metadata_with_an_unknown_postprocess_is_refused(tmp_path, steps):
    f = _onnx_with_postprocess(tmp_path / "bad_steps.onnx", steps)
    with pytest.raises(ModelFileError) as e:
        runtimes.load(f)
    assert str(e.value) == (f"{f}: bad 'aulunet' metadata: its postprocess {steps!r} is not a list of largest-component, "
                            f"fill-holes; re-export it with export/to_onnx.py")


def test_predict_applies_the_files_steps_and_an_argument_overrides_them(tmp_path, seg):
    from core import postprocess as pp

    img = _two_lesions()
    plain_prob, plain = seg.predict(img)
    assert seg.postprocess == () and "postprocess" not in seg.metadata  # the shipped files ask for none
    both = runtimes.load(_onnx_with_postprocess(tmp_path / "both.onnx", ["fill-holes", "largest-component"]), threads=1)
    assert both.postprocess == ("largest-component", "fill-holes")  # canonical order whatever the file's
    prob, mask = both.predict(img)
    np.testing.assert_array_equal(prob, plain_prob)  # the probability map is the model's, untouched
    want = pp.fill_holes(pp.largest_component(plain))
    assert (want != plain).sum() > 50  # the steps change this mask
    np.testing.assert_array_equal(mask, want)
    np.testing.assert_array_equal(both.predict(img, postprocess="none")[1], plain)
    np.testing.assert_array_equal(both.predict(img, postprocess=())[1], plain)
    np.testing.assert_array_equal(both.predict(img, postprocess=("fill-holes",))[1], pp.fill_holes(plain))
    np.testing.assert_array_equal(seg.predict(img, postprocess="largest-component,fill-holes")[1], want)
    np.testing.assert_array_equal(seg.predict(img, tta=True, postprocess="largest-component")[1],
                                  pp.largest_component(seg.predict(img, tta=True)[1]))
    with pytest.raises(UserError, match=r"^postprocess 'largest': unknown post-processing; choose none, largest-component, "
                                        r"fill-holes or largest-component,fill-holes$"):
        seg.predict(img, postprocess="largest")


def test_pt_backend_inherits_postprocess(shipped):
    import model  # noqa: F401  (registers the .pt backend)
    from core import postprocess as pp

    pt = runtimes.load(shipped, threads=1)
    img = _two_lesions()
    prob, plain = pt.predict(img)
    assert pt.postprocess == ()
    got_prob, got = pt.predict(img, postprocess="largest-component,fill-holes")
    np.testing.assert_array_equal(got_prob, prob)
    np.testing.assert_array_equal(got, pp.fill_holes(pp.largest_component(plain)))
