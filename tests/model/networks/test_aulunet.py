import json

import pytest
import torch
import torch.nn.functional as F

from model.networks.aulunet import AKF, LSG, RGF, AULUNet, AULUNetConfig, PlainDW, AddSkip, build_model, list_models
from model.summary import count, main as summary_main


def test_v3_matches_paper_figures():
    r = count("aulunet_v3")
    assert r["params"] == 28_636
    assert round(r["gflops"], 3) == 0.069


@pytest.mark.parametrize("name,widths", [("v1", (4, 8, 16, 24, 36, 60)), ("v2", (4, 8, 16, 24, 40, 60)), ("v3", (5, 10, 15, 25, 35, 60))])
def test_registry_variants(name, widths):
    m = build_model(name)
    assert m.cfg.channels == widths
    assert build_model(f"aulunet_{name}").cfg == m.cfg
    out = m.eval()(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 1, 64, 64)


def test_unknown_model_is_a_clear_error():
    with pytest.raises(KeyError, match="unknown model 'aulunet_v9'"):
        build_model("v9")


def test_ablations_are_configuration():
    names = list_models("aulunet_v3_")
    for n in ("baseline", "m1_akf", "m2_rgf", "m3_lsg", "m4_akf_rgf", "m5_akf_lsg", "m6_rgf_lsg",
              "akf_d13", "akf_d24", "akf_d15", "akf_d17", "akf_d35", "akf_3branch"):
        assert f"aulunet_v3_{n}" in names
    base = build_model("aulunet_v3_baseline")
    kinds = {type(m) for m in base.modules()}
    assert AKF not in kinds and RGF not in kinds and LSG not in kinds
    assert PlainDW in kinds and AddSkip in kinds
    d17 = build_model("aulunet_v3_akf_d17")
    akf = d17.stem_mix
    assert [p.dilation[0] for p in akf.paths] == [1, 7]
    three = build_model("aulunet_v3_akf_3branch").stem_mix
    assert three.n_paths == 3 and three.gate.out_channels == 3 * 5


def test_only_gate_and_head_have_bias():
    m = build_model("v3")
    with_bias = {n for n, mod in m.named_modules() if isinstance(mod, torch.nn.Conv2d) and mod.bias is not None}
    assert with_bias and all(n == "head" or n.endswith(".gate") or n == "stem_mix.gate" for n in with_bias)
    assert "head" in with_bias


# The equation tests compare a module with its formula written out: different kernels (a module's fused or
# channels-last paths vs F.conv2d and elementwise ops). In float64 (rounding 2^-53 ~ 1e-16 per op, sums of
# <= 54 terms of size ~1) both agree to ~1e-14 on any CPU, so atol 1e-12; any wrong term is off by > 1e-3.


def _randomize_bn(m):
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.5, 0.5)
            mod.running_var.uniform_(0.5, 2)
            mod.weight.data.uniform_(0.5, 1.5)
            mod.bias.data.uniform_(-0.5, 0.5)


def _pw(block, x):
    conv, bn = block[0], block[1]
    y = F.conv2d(x, conv.weight)
    y = (y - bn.running_mean[None, :, None, None]) / torch.sqrt(bn.running_var[None, :, None, None] + bn.eps)
    return torch.relu(y * bn.weight[None, :, None, None] + bn.bias[None, :, None, None])


def test_akf_equation():
    torch.manual_seed(0)
    m = AKF(6, (1, 2)).double().eval()
    _randomize_bn(m)
    x = torch.randn(2, 6, 17, 19, dtype=torch.float64)
    alpha = torch.sigmoid(F.conv2d(x.mean((2, 3), keepdim=True), m.gate.weight, m.gate.bias))
    local = F.conv2d(x, m.paths[0].weight, padding=1, groups=6)
    dilated = F.conv2d(x, m.paths[1].weight, padding=2, dilation=2, groups=6)
    ref = _pw(m.proj, alpha * local + (1 - alpha) * dilated)
    assert torch.allclose(m(x), ref, atol=1e-12, rtol=0)


def test_akf_three_branch_softmax_equation():
    torch.manual_seed(1)
    m = AKF(4, (1, 2, 3)).double().eval()
    x = torch.randn(1, 4, 16, 16, dtype=torch.float64)
    g = F.conv2d(x.mean((2, 3), keepdim=True), m.gate.weight, m.gate.bias).view(1, 3, 4, 1, 1)
    w = torch.softmax(g, dim=1)
    paths = [F.conv2d(x, p.weight, padding=d, dilation=d, groups=4) for p, d in zip(m.paths, (1, 2, 3))]
    ref = _pw(m.proj, sum(w[:, i] * paths[i] for i in range(3)))
    assert torch.allclose(m(x), ref, atol=1e-12, rtol=0)


def test_rgf_equation():
    torch.manual_seed(2)
    m = RGF(7).double()
    b = torch.randn(3, 7, 5, 5, dtype=torch.float64)
    ref = b + b * torch.tanh(F.conv2d(b.mean((2, 3), keepdim=True), m.fc.weight))
    assert torch.allclose(m(b), ref, atol=1e-12, rtol=0)


@pytest.mark.parametrize("enc", [None, 9])
def test_lsg_equation(enc):
    torch.manual_seed(3)
    m = LSG(6, enc).double().eval()
    _randomize_bn(m)
    d = torch.randn(2, 6, 8, 8, dtype=torch.float64)
    e = torch.randn(2, enc or 6, 8, 8, dtype=torch.float64)
    e2 = F.conv2d(e, m.proj.weight) if enc else e
    assert (m.proj is None) == (enc is None)
    bn = m.gate[1]
    z = F.conv2d(torch.cat([d, e2], 1), m.gate[0].weight)
    z = (z - bn.running_mean[None, :, None, None]) / torch.sqrt(bn.running_var[None, :, None, None] + bn.eps)
    beta = torch.sigmoid(z * bn.weight[None, :, None, None] + bn.bias[None, :, None, None])
    assert torch.allclose(m(d, e), d + beta * e2, atol=1e-12, rtol=0)


@pytest.mark.parametrize("name", ["v3", "aulunet_v3_akf_3branch", "aulunet_v3_baseline"])
def test_gradients_reach_every_parameter(name):
    torch.manual_seed(0)
    m = build_model(name).train()
    x = torch.randn(2, 3, 64, 64)
    y = (torch.rand(2, 1, 64, 64) > 0.5).float()
    F.binary_cross_entropy_with_logits(m(x), y).backward()
    for n, p in m.named_parameters():
        assert p.grad is not None and torch.count_nonzero(p.grad) > 0, n


def test_summary_cli_json(tmp_path, capsys):
    out = tmp_path / "s.json"
    summary_main(["--variant", "v3", "--json", str(out)])
    data = json.loads(out.read_text())
    assert data == {"aulunet_v3": {"params": 28636, "gflops": pytest.approx(0.069, abs=5e-4), "size": 256}}
    summary_main(["--variant", "v3_in128", "--json", str(out)])  # counted at the variant's own input size
    assert json.loads(out.read_text())["aulunet_v3_in128"]["gflops"] == pytest.approx(0.069 / 4, abs=5e-4)
    assert "| aulunet_v3 | 28,636 |" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="unknown variant"):
        summary_main(["--variant", "v7"])


def test_config_roundtrip():
    cfg = AULUNetConfig(akf_dilations=(1, 5), lsg=False)
    assert AULUNetConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert isinstance(AULUNet(cfg).skips[0], AddSkip)
