"""Exact graph rewrites applied before every export: the same function with fewer passes over the
full-resolution tensors, which is where these runtimes spend their time (benchmarks/profile_ops.py).

Each rewrite is algebra, not approximation; the exported files still pass their parity gates against
the *unrewritten* PyTorch model (export/cli.py compares with the checkpoint's own module).

- upsample_after_pointwise: ReLU(BN(PW(Up(x)))) == ReLU(Up(BN(PW(x)))), because bilinear weights sum to
  one, so the 1x1 conv and BN (both affine per pixel) commute with the upsample. The conv runs at a
  quarter of the pixels and the upsample carries c[i] instead of c[i+1] channels.
- lsg_sum: sigmoid(BN(W [D; E'])) == sigmoid(W_d D + W_e E' + b): two 1x1 convs and an add instead of
  a concat and one conv (BN folded into W_d).
- akf_delta: alpha * P1 + (1 - alpha) * P2 == P2 + alpha * (P1 - P2) for two-path AKF.

Measured (docs/benchmarks.md): 5-13% lower single-image latency on ONNX Runtime, OpenVINO and LiteRT,
max |logit diff| ~3e-5. Ablation blocks (PlainDW, AddSkip, three-path AKF) are left as they are.
"""
from __future__ import annotations

import copy
from typing import List

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.fusion import fuse_conv_bn_eval

from model.networks.aulunet import AKF, LSG, AULUNet, PointwiseBlock, Upsample2x

REWRITES = ("upsample_after_pointwise", "lsg_sum", "akf_delta")


class PointwiseThenUpsample(nn.Module):
    """ReLU(Up(conv_bn(x))): the up block of the decoder (Upsample2x, PointwiseBlock) with its pointwise
    conv moved below the model's own upsample."""

    def __init__(self, block: nn.Sequential):
        super().__init__()
        self.up = block[0]
        self.conv = fuse_conv_bn_eval(block[1][0], block[1][1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.up(self.conv(x)))


class LSGSum(nn.Module):
    """D + sigmoid(W_d D + W_e E' + b) * E': the learnable skip gate without the concat (its convs are
    named beta_*, not gate_*: the TFLite INT8 recipe keeps convs named "gate" float)."""

    def __init__(self, lsg: LSG):
        super().__init__()
        self.proj = lsg.proj
        fused = fuse_conv_bn_eval(lsg.gate[0], lsg.gate[1])
        c = fused.out_channels
        self.beta_d = nn.Conv2d(c, c, 1, bias=True)
        self.beta_e = nn.Conv2d(c, c, 1, bias=False)
        with torch.no_grad():
            self.beta_d.weight.copy_(fused.weight[:, :c])
            self.beta_d.bias.copy_(fused.bias)
            self.beta_e.weight.copy_(fused.weight[:, c:])

    def forward(self, d: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        if self.proj is not None:
            e = self.proj(e)
        return d + torch.sigmoid(self.beta_d(d) + self.beta_e(e)) * e


class AKFDelta(nn.Module):
    """Two-path AKF as P2 + alpha * (P1 - P2). Keeps the attribute names (paths, gate, proj), so the
    TFLite INT8 recipe still finds the gate convs by name."""

    def __init__(self, akf: AKF):
        super().__init__()
        self.paths, self.gate, self.proj = akf.paths, akf.gate, akf.proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        alpha = torch.sigmoid(self.gate(F.adaptive_avg_pool2d(x, 1)))
        p2 = self.paths[1](x)
        return self.proj(p2 + alpha * (self.paths[0](x) - p2))


def _replace(module: nn.Module, applied: List[str]) -> None:
    for name, child in module.named_children():
        if isinstance(child, AKF) and child.n_paths == 2:
            setattr(module, name, AKFDelta(child))
            applied.append("akf_delta")
        elif isinstance(child, LSG):
            setattr(module, name, LSGSum(child))
            applied.append("lsg_sum")
        elif (isinstance(child, nn.Sequential) and len(child) == 2 and isinstance(child[0], Upsample2x)
              and isinstance(child[1], PointwiseBlock)):
            setattr(module, name, PointwiseThenUpsample(child))
            applied.append("upsample_after_pointwise")
        else:
            _replace(child, applied)


def inference_graph(model: AULUNet) -> nn.Module:
    """A rewritten copy of `model` (eval mode, the original untouched), with `.rewrites` listing what
    was applied (sorted, unique)."""
    out = copy.deepcopy(model).eval()
    applied: List[str] = []
    _replace(out, applied)
    out.rewrites = sorted(set(applied))
    return out
