"""model/networks/checkpoint.py on bad input (issue 11): headers that lack a key, describe no AULUNet, or would allocate
or misread; refused in one line before anything is built."""
import json

import pytest
import torch

import runtimes
from model.networks.checkpoint import CheckpointError, load_checkpoint
from core.errors import ModelFileError
from tests.conftest import REPO

EXPORTS = REPO / "exports"


@pytest.mark.parametrize("drop", ["config", "state_dict", "preprocessing", "threshold", "model"])
def test_checkpoint_header_without_a_key(tmp_path, shipped, drop):
    ck = {k: v for k, v in load_checkpoint(shipped).items() if k != drop}
    torch.save(ck, tmp_path / "partial.pt")
    with pytest.raises(CheckpointError, match=rf"partial\.pt: checkpoint lacks '{drop}' .* retrain it with model/train\.py"):
        load_checkpoint(tmp_path / "partial.pt")


def test_checkpoint_with_a_bad_config(tmp_path, shipped):
    from model.networks.checkpoint import model_from_checkpoint

    ck = load_checkpoint(shipped)
    torch.save({**ck, "config": {**ck["config"], "channels": 7}}, tmp_path / "badcfg.pt")
    with pytest.raises(CheckpointError, match=r"badcfg\.pt: its 'config' does not describe an AULUNet"):
        model_from_checkpoint(tmp_path / "badcfg.pt")


def test_threshold_outside_0_1_is_refused(tmp_path, shipped):
    import onnx

    ck = load_checkpoint(shipped)
    torch.save({**ck, "threshold": 1.5}, tmp_path / "t.pt")
    with pytest.raises(CheckpointError, match=r"t\.pt: its threshold 1\.5 is not a probability between 0 and 1"):
        load_checkpoint(tmp_path / "t.pt")
    m = onnx.load(str(EXPORTS / "aulunet_v3_ph2.onnx"))
    meta = json.loads(m.metadata_props[0].value)
    m.metadata_props[0].value = json.dumps({**meta, "threshold": 0})
    onnx.save(m, str(tmp_path / "t0.onnx"))
    with pytest.raises(ModelFileError, match=r"t0\.onnx: its metadata threshold 0 is not a probability"):
        runtimes.load(tmp_path / "t0.onnx")


# ------------------------------------------------------------------ headers that would allocate or misread, refused first

BAD_HEADERS = [
    ("config", {"channels": [200000] * 6}, r"its config channels \[200000, .*\] are not 6 stage widths between 1 and 4096"),
    ("config", {"in_chans": 1}, r"its config in_chans 1 is not 3"),
    ("config", {"num_classes": 2}, r"its config num_classes 2 is not 1"),
    ("config", {"input_size": "big"}, r"its config input_size 'big' is not a whole number of pixels"),
    ("preprocessing", {"input_size": [20000, 20000]}, r"input_size 20000 is not a multiple of 32 between 32 and 4096"),
    ("preprocessing", {"input_size": ["256", "256"]}, r"input_size '256' is not a whole number of pixels"),
    ("preprocessing", {"input_size": [100, 100]}, r"input_size 100 is not a multiple of 32"),
    ("preprocessing", None, r"its 'preprocessing' is empty or not a mapping"),
]


@pytest.mark.parametrize("key,change,message", BAD_HEADERS)
def test_checkpoint_header_out_of_bounds_is_refused_before_building(tmp_path, shipped, key, change, message):
    ck = load_checkpoint(shipped)
    ck[key] = {} if change is None else {**ck[key], **change}
    torch.save(ck, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match=rf"bad\.pt: .*{message}.*; the file is damaged or from another tool: retrain it"):
        load_checkpoint(tmp_path / "bad.pt")
    with pytest.raises(ModelFileError, match=rf"bad\.pt: .*{message}"):
        runtimes.load(tmp_path / "bad.pt")
