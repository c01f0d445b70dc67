"""AULUNet: the adaptive ultra-lightweight U-Net for skin-lesion segmentation.

One file for the architecture, in the style of timm's model files: small blocks, one config
per variant, a registry. No export, data or training code lives here.

Blocks (paper equations):
  AKF  y = PW(alpha * DW_d1(x) + (1 - alpha) * DW_d2(x)),  alpha = sigmoid(conv1x1(GAP(x)))
  RGF  y = B + B * tanh(conv1x1(GAP(B)))
  LSG  y = D + beta * E',  beta = sigmoid(BN(conv1x1([D, E'])))
The network returns logits; callers apply the sigmoid.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = [
    "AULUNetConfig", "AULUNet", "AKF", "RGF", "LSG", "PointwiseBlock",
    "register", "build_model", "list_models", "get_config",
]


class PointwiseBlock(nn.Sequential):
    """conv1x1 (no bias) + BN + ReLU."""

    def __init__(self, cin: int, cout: int):
        super().__init__(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class AKF(nn.Module):
    """Adaptive kernel fusion: depthwise 3x3 paths at several dilations, blended by a gate on GAP(x).

    Two paths use a sigmoid gate (alpha * p0 + (1 - alpha) * p1); three or more use a softmax gate
    over the paths. The blend is followed by a pointwise block at the same width.
    """

    def __init__(self, channels: int, dilations: Sequence[int] = (1, 2)):
        super().__init__()
        if len(dilations) < 2:
            raise ValueError("AKF needs at least two dilations")
        self.n_paths = len(dilations)
        self.paths = nn.ModuleList(
            nn.Conv2d(channels, channels, 3, padding=d, dilation=d, groups=channels, bias=False)
            for d in dilations
        )
        gate_out = channels if self.n_paths == 2 else channels * self.n_paths
        self.gate = nn.Conv2d(channels, gate_out, 1, bias=True)
        self.proj = PointwiseBlock(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = self.gate(F.adaptive_avg_pool2d(x, 1))
        if self.n_paths == 2:
            alpha = torch.sigmoid(g)
            y = alpha * self.paths[0](x) + (1 - alpha) * self.paths[1](x)
        else:
            w = torch.softmax(g.view(g.shape[0], self.n_paths, -1, 1, 1), dim=1)
            y = sum(w[:, i] * p(x) for i, p in enumerate(self.paths))
        return self.proj(y)


class PlainDW(nn.Module):
    """Ablation stand-in for AKF: one depthwise 3x3 path, then the same pointwise block."""

    def __init__(self, channels: int):
        super().__init__()
        self.dw = nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False)
        self.proj = PointwiseBlock(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.dw(x))


class RGF(nn.Module):
    """Residual global filtering on the bottleneck: B + B * tanh(conv1x1(GAP(B)))."""

    def __init__(self, channels: int):
        super().__init__()
        self.fc = nn.Conv2d(channels, channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + x * torch.tanh(self.fc(F.adaptive_avg_pool2d(x, 1)))


class LSG(nn.Module):
    """Learnable skip gate: D + beta * E', beta = sigmoid(BN(conv1x1([D, E'])))."""

    def __init__(self, dec_channels: int, enc_channels: Optional[int] = None):
        super().__init__()
        enc_channels = dec_channels if enc_channels is None else enc_channels
        self.proj = None if enc_channels == dec_channels else nn.Conv2d(enc_channels, dec_channels, 1, bias=False)
        self.gate = nn.Sequential(nn.Conv2d(2 * dec_channels, dec_channels, 1, bias=False), nn.BatchNorm2d(dec_channels))

    def forward(self, d: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        if self.proj is not None:
            e = self.proj(e)
        beta = torch.sigmoid(self.gate(torch.cat([d, e], dim=1)))
        return d + beta * e


class Upsample2x(nn.Module):
    """Bilinear x2 (align_corners=True) via F.interpolate, as the reference does; thop counts no MACs for it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=True)


class AddSkip(nn.Module):
    """Ablation stand-in for LSG: plain additive skip D + E."""

    def forward(self, d: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        return d + e


class LogitUpsample(nn.Module):
    """Bilinear x2 of the head's logits, for a stride-2 stem (the network works at half the input size)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)


@dataclass(frozen=True)
class AULUNetConfig:
    channels: Tuple[int, ...] = (5, 10, 15, 25, 35, 60)
    akf: bool = True
    akf_dilations: Tuple[int, ...] = (1, 2)
    rgf: bool = True
    lsg: bool = True
    in_chans: int = 3
    num_classes: int = 1
    # Latency-first knobs (defaults = the paper's network, so old checkpoints rebuild unchanged):
    stem_stride: int = 1          # 2: the stem halves the input; the logits are upsampled x2 at the end
    full_res_gating: bool = True  # False: plain depthwise instead of AKF, and an add instead of LSG, at c[0]
    input_size: int = 256         # the square input the variant is trained and exported at

    def to_dict(self) -> Dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Dict) -> "AULUNetConfig":
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        for k in ("channels", "akf_dilations"):
            if k in known:
                known[k] = tuple(known[k])
        return cls(**known)


class AULUNet(nn.Module):
    def __init__(self, cfg: AULUNetConfig = AULUNetConfig()):
        super().__init__()
        self.cfg = cfg
        c = list(cfg.channels)
        if len(c) != 6:
            raise ValueError(f"AULUNet needs 6 stage widths, got {c}")
        if cfg.stem_stride not in (1, 2):
            raise ValueError(f"stem_stride must be 1 or 2, got {cfg.stem_stride}")
        mix = (lambda ch: AKF(ch, cfg.akf_dilations)) if cfg.akf else PlainDW
        full_mix = mix if cfg.full_res_gating else PlainDW

        self.stem = nn.Sequential(
            nn.Conv2d(cfg.in_chans, c[0], 3, stride=cfg.stem_stride, padding=1, bias=False),
            nn.BatchNorm2d(c[0]), nn.ReLU(inplace=True),
        )
        self.stem_mix = full_mix(c[0])
        self.encoder = nn.ModuleList(
            nn.Sequential(nn.AvgPool2d(2), mix(c[i - 1]), PointwiseBlock(c[i - 1], c[i])) for i in range(1, 6)
        )
        self.bottleneck = RGF(c[5]) if cfg.rgf else nn.Identity()
        self.up = nn.ModuleList(
            nn.Sequential(Upsample2x(), PointwiseBlock(c[i + 1], c[i]))
            for i in reversed(range(5))
        )
        gated = lambda i: cfg.lsg and (i > 0 or cfg.full_res_gating)  # noqa: E731
        self.skips = nn.ModuleList((LSG(c[i]) if gated(i) else AddSkip()) for i in reversed(range(5)))
        self.decoder = nn.ModuleList((mix if i > 0 else full_mix)(c[i]) for i in reversed(range(5)))
        self.head = nn.Conv2d(c[0], cfg.num_classes, 1, bias=True)
        self.out_up = LogitUpsample() if cfg.stem_stride == 2 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats: List[torch.Tensor] = [self.stem_mix(self.stem(x))]
        for stage in self.encoder:
            feats.append(stage(feats[-1]))
        y = self.bottleneck(feats.pop())
        for up, skip, mix in zip(self.up, self.skips, self.decoder):
            y = mix(skip(up(y), feats.pop()))
        return self.out_up(self.head(y))


# --------------------------------------------------------------------------- registry

_REGISTRY: Dict[str, AULUNetConfig] = {}


def register(name: str, cfg: AULUNetConfig) -> None:
    if name in _REGISTRY:
        raise ValueError(f"model '{name}' is already registered")
    _REGISTRY[name] = cfg


def list_models(pattern: str = "") -> List[str]:
    return sorted(n for n in _REGISTRY if pattern in n)


def model_name(variant: str) -> str:
    """A variant as commands take it (v3, v3_in128 or the full aulunet_v3_in128) -> its registry name."""
    return variant if variant.startswith("aulunet_") else f"aulunet_{variant}"


def get_config(name: str) -> AULUNetConfig:
    if name not in _REGISTRY:
        raise KeyError(f"unknown model '{name}'; known: {', '.join(list_models())}")
    return _REGISTRY[name]


def build_model(name_or_cfg, **overrides) -> AULUNet:
    """build_model("aulunet_v3"), build_model("v3") or build_model(AULUNetConfig(...))."""
    if isinstance(name_or_cfg, AULUNetConfig):
        cfg = name_or_cfg
    elif isinstance(name_or_cfg, dict):
        cfg = AULUNetConfig.from_dict(name_or_cfg)
    else:
        cfg = get_config(name_or_cfg if name_or_cfg in _REGISTRY else model_name(name_or_cfg))
    return AULUNet(replace(cfg, **overrides) if overrides else cfg)


VARIANTS = {
    "v1": (4, 8, 16, 24, 36, 60),
    "v2": (4, 8, 16, 24, 40, 60),
    "v3": (5, 10, 15, 25, 35, 60),
}
for _v, _ch in VARIANTS.items():
    register(f"aulunet_{_v}", AULUNetConfig(channels=_ch))

# Ablations of the paper, all on the v3 widths, as configuration only.
# Module combinations: baseline has none of AKF/RGF/LSG; M1..M6 each switch some on; full = all three.
ABLATION_MODULES = {
    "baseline": (False, False, False),
    "m1_akf": (True, False, False),
    "m2_rgf": (False, True, False),
    "m3_lsg": (False, False, True),
    "m4_akf_rgf": (True, True, False),
    "m5_akf_lsg": (True, False, True),
    "m6_rgf_lsg": (False, True, True),
}
for _n, (_a, _r, _l) in ABLATION_MODULES.items():
    register(f"aulunet_v3_{_n}", AULUNetConfig(akf=_a, rgf=_r, lsg=_l))
AKF_DILATIONS = [(1, 2), (1, 3), (2, 4), (1, 5), (1, 7), (3, 5)]
for _d in AKF_DILATIONS:
    if _d != (1, 2):  # (1, 2) is aulunet_v3 itself
        register(f"aulunet_v3_akf_d{_d[0]}{_d[1]}", AULUNetConfig(akf_dilations=_d))
register("aulunet_v3_akf_3branch", AULUNetConfig(akf_dilations=(1, 2, 3)))

# Latency-first variants of v3 (the edge models): the same blocks, less work at full resolution.
EDGE_VARIANTS = {
    "aulunet_v3_stride2": AULUNetConfig(stem_stride=2),          # works at 128x128 inside, 256x256 in and out
    "aulunet_v3_ungated_full": AULUNetConfig(full_res_gating=False),
    "aulunet_v3_in192": AULUNetConfig(input_size=192),           # the paper's v3 at a smaller input
    "aulunet_v3_in128": AULUNetConfig(input_size=128),
}
for _n, _cfg in EDGE_VARIANTS.items():
    register(_n, _cfg)
