"""export/rewrites.py: the exact graph rewrites every exporter builds from."""
import pytest
import torch

from export.rewrites import REWRITES, AKFDelta, LSGSum, PointwiseThenUpsample, inference_graph
from model.networks.aulunet import AKF, LSG, build_model, get_config, list_models


def _random_bn(model):
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):  # non-trivial statistics, so BN folding is exercised
            m.running_mean.copy_(torch.rand(m.num_features, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(m.num_features, generator=g) - 0.5)
    return model.eval()


@pytest.mark.parametrize("name", list_models())
def test_rewritten_graph_computes_the_same_function(name):
    """The rewrites are algebra (BatchNorm folded into a conv, a concat split into two convs, an upsample moved
    after a pointwise conv), so they change the order of float sums: checked in float64, built and run there
    (rounding 2^-53 ~ 1e-16 per op; ~20 layers of sums of <= 540 terms: ~1e-12 on logits of size ~1, on any
    CPU): atol 1e-10. A wrong rewrite is off by > 1e-3. (float32: 2e-7 measured, 1e-5 not guaranteed.)"""
    torch.set_default_dtype(torch.float64)  # the rewrites' new convs take the default dtype
    try:
        torch.manual_seed(0)
        model = _random_bn(build_model(name))
        graph = inference_graph(model)
        x = torch.rand(2, 3, 64, 128)  # batch > 1 and a non-square size (a stride-2 stem halves it once more)
        with torch.no_grad():
            a, b = model(x), graph(x)
    finally:
        torch.set_default_dtype(torch.float32)
    assert a.dtype == b.dtype == torch.float64
    assert torch.allclose(a, b, atol=1e-10, rtol=0)
    cfg = get_config(name)
    expected = {"upsample_after_pointwise"} | ({"lsg_sum"} if cfg.lsg else set()) | \
               ({"akf_delta"} if cfg.akf and len(cfg.akf_dilations) == 2 else set())
    assert set(graph.rewrites) == expected and set(graph.rewrites) <= set(REWRITES)


def test_original_model_is_untouched_and_blocks_are_replaced():
    model = _random_bn(build_model("v3"))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    graph = inference_graph(model)
    assert sum(isinstance(m, AKF) for m in model.modules()) == 11 and sum(isinstance(m, LSG) for m in model.modules()) == 5
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert sum(isinstance(m, AKFDelta) for m in graph.modules()) == 11
    assert sum(isinstance(m, LSGSum) for m in graph.modules()) == 5
    assert sum(isinstance(m, PointwiseThenUpsample) for m in graph.modules()) == 5
    assert not any(isinstance(m, (AKF, LSG)) for m in graph.modules())
    # the TFLite INT8 recipe keeps convs whose path contains "gate" float: only the 11 AKF gates may match
    assert sorted(n for n, m in graph.named_modules() if isinstance(m, torch.nn.Conv2d) and "gate" in n.split(".")[-1]) \
        == sorted(n for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d) and n.endswith(".gate"))
