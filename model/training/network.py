"""A fleet's network: K AULUNets of one config as ONE module, so that one kernel launch does the work of K.

Every Conv2d becomes a grouped convolution with K times the channels (groups x K), every BatchNorm2d
normalises K times the channels (BatchNorm is per channel, so per seed), and the two places where AULUNet
mixes channels in its forward (the LSG concatenation and the 3-path AKF softmax) work per seed. Seed k's
images sit in input channels [3k, 3k+3) and its logits in output channel k. The state_dict has the plain
model's keys, every tensor the K seeds' tensors concatenated along dim 0. A fleet of one seed is the
plain model itself (nothing is stacked), so a single-seed run computes exactly what the plain model does.
"""
from __future__ import annotations

import copy
from typing import Dict, List, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from model.networks.aulunet import AKF, AULUNet, LSG, AddSkip, PlainDW, PointwiseBlock, RGF, Upsample2x

_SAFE = (nn.Sequential, nn.ModuleList, nn.ReLU, nn.AvgPool2d, nn.Identity, AULUNet, PlainDW, RGF,
         Upsample2x, AddSkip, PointwiseBlock)


class FleetAKF(AKF):
    """AKF over K seeds' stacked channels; only the 3+-path softmax needs to know the seeds."""
    fleet_k = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.n_paths == 2:
            return super().forward(x)
        g = self.gate(F.adaptive_avg_pool2d(x, 1))
        b, k = g.shape[0], self.fleet_k
        w = torch.softmax(g.view(b, k, self.n_paths, -1, 1, 1), dim=2)
        y = sum(w[:, :, i].reshape(b, -1, 1, 1) * p(x) for i, p in enumerate(self.paths))
        return self.proj(y)


class FleetLSG(LSG):
    """LSG whose [D, E'] concatenation is per seed (the gate conv is grouped by seed)."""
    fleet_k = 1

    def forward(self, d: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        if self.proj is not None:
            e = self.proj(e)
        k = self.fleet_k
        de = torch.cat([d.unflatten(1, (k, -1)), e.unflatten(1, (k, -1))], 2).flatten(1, 2)
        return d + torch.sigmoid(self.gate(de)) * e


def _stack_conv(convs: Sequence[nn.Conv2d]) -> nn.Conv2d:
    c, k = convs[0], len(convs)
    new = nn.Conv2d(c.in_channels * k, c.out_channels * k, c.kernel_size, c.stride, c.padding, c.dilation,
                    groups=c.groups * k, bias=c.bias is not None, padding_mode=c.padding_mode,
                    device=c.weight.device, dtype=c.weight.dtype)
    with torch.no_grad():
        new.weight.copy_(torch.cat([m.weight for m in convs]))
        if c.bias is not None:
            new.bias.copy_(torch.cat([m.bias for m in convs]))
    return new


def _stack_bn(bns: Sequence[nn.BatchNorm2d]) -> nn.BatchNorm2d:
    b, k = bns[0], len(bns)
    ref = b.running_mean if b.running_mean is not None else b.weight
    new = nn.BatchNorm2d(b.num_features * k, b.eps, b.momentum, b.affine, b.track_running_stats,
                         device=ref.device, dtype=ref.dtype)
    with torch.no_grad():
        for name, t in list(new.named_parameters()) + list(new.named_buffers()):
            parts = [getattr(m, name) for m in bns]
            t.copy_(parts[0] if t.dim() == 0 else torch.cat(parts))
    return new


def _set_submodule(root: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, leaf, new)


def stack_models(models: Sequence[AULUNet]) -> AULUNet:
    """K AULUNets of one config -> one AULUNet-shaped module computing all K (same state_dict keys; every
    tensor is the K seeds' tensors concatenated along dim 0). One model is returned as it is."""
    k = len(models)
    if k == 1:
        return models[0]
    fleet = copy.deepcopy(models[0])
    for name, m in list(fleet.named_modules()):
        if isinstance(m, nn.Conv2d):
            _set_submodule(fleet, name, _stack_conv([mm.get_submodule(name) for mm in models]))
        elif type(m) is nn.BatchNorm2d:
            _set_submodule(fleet, name, _stack_bn([mm.get_submodule(name) for mm in models]))
        elif type(m) is AKF:
            m.__class__, m.fleet_k = FleetAKF, k
        elif type(m) is LSG:
            m.__class__, m.fleet_k = FleetLSG, k
        elif not isinstance(m, _SAFE):
            raise TypeError(f"stack_models: no per-seed rule for module {name} ({type(m).__name__})")
    fleet.fleet_k = k
    return fleet


def unstack_state(state: Dict[str, torch.Tensor], k: int) -> List[Dict[str, torch.Tensor]]:
    """The stacked state_dict -> K single-model state_dicts (CPU, contiguous copies)."""
    out: List[Dict[str, torch.Tensor]] = [{} for _ in range(k)]
    for key, t in state.items():
        t = t.detach().cpu()
        parts = [t] * k if t.dim() == 0 else t.chunk(k, 0)
        for i in range(k):
            out[i][key] = parts[i].clone().contiguous()
    return out


def nonfinite_keys(state: Dict[str, torch.Tensor], k: int) -> List[object]:
    """Per seed, the first floating-point tensor of `state` (stacked) that is not all finite, or None (one sync)."""
    keys = [key for key, t in state.items() if t.is_floating_point() and t.dim() > 0]
    if not keys:
        return [None] * k
    ok = torch.stack([torch.isfinite(state[key].detach()).reshape(k, -1).all(1) for key in keys]).cpu()
    return [next((key for key, good in zip(keys, ok[:, i].tolist()) if not good), None) for i in range(k)]
