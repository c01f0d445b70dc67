"""K seeds trained in one process: `python model/train.py --seeds 0,1,2,3,4 [--engine auto] ...`.

The paper's numbers are means of five runs. This trainer runs K seeds as ONE network: every Conv2d
becomes a grouped convolution with K times the channels (groups x K), every BatchNorm2d normalises
K times the channels (BatchNorm is per channel, so per seed), and the two places where AULUNet mixes
channels in its forward (the LSG concatenation and the 3-path AKF softmax) work per seed. Seed k's
images sit in input channels [3k, 3k+3) and its logits in output channel k, so one kernel launch does
the work of K and five seeds cost little more than one on a GPU, where launches are the limit.

Each seed keeps everything a single-seed run (the default path of model/train.py) has: its own
initial weights (torch.manual_seed(seed) then build_model), its own CPU generator (data order, then
augmentation draws, in the same order), AdamW (elementwise, so AdamW on the stacked parameters is K
independent AdamWs), the same schedule, evaluation on val each epoch and its best/last checkpoints.
The loss is the sum of the K seeds' losses, so each seed's gradient is its own. So seed k's run equals
`model/train.py --seed k` up to float rounding (tested on the CPU with K=2). Output: one folder per
seed (`<out>/seed<k>/best.pt, last.pt, log.json, curve.png`, the single-seed formats: a seed's last.pt
can be resumed alone by model/train.py --resume), plus `<out>/fleet_last.pt` (the whole fleet's
resume state, written last at each save point) and `<out>/fleet.json` (timings, per-seed bests).

Data live on the training device (model/gpu_data.py: decoded once, preprocessed there, augmented in
batches with the same random numbers). Engines (`--engine`):
  eager       plain PyTorch
  compile     torch.compile of the forward + loss (default on the CPU; `--no-compile` means eager)
  cudagraph   torch.compile(mode="reduce-overhead"): inductor kernels replayed as CUDA graphs
              (default on CUDA)
  capture     the WHOLE step (batch gather, augmentation, compiled forward + loss, backward, AdamW
              with capturable state) captured once per batch size as one CUDA graph and replayed
  capture-eager  the same without torch.compile
`--precision bf16` runs the forward under bfloat16 autocast (loss in float32); not the default: it has
not been shown to keep accuracy here (on the CPU bf16 + compile diverged). `--precision fp64` trains in
float64 (slow): two ways of training that should agree (torchrun vs one process) then agree to ~1e-12,
where float32 only agrees to its rounding, which this network amplifies (BatchNorm over small batches:
some float32 gradients at initialisation are ~2% off the float64 ones, identically in both paths).
Several GPUs: see model/ddp.py.
"""
from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from model import ddp
from model.errors import CheckpointError, DataError, UserError
from model.aulunet import AKF, AULUNet, LSG, AddSkip, PlainDW, PointwiseBlock, RGF, Upsample2x, build_model
from model.gpu_data import N_PARAMS, DeviceData, apply_aug, draw_aug_params

ENGINES = ("auto", "eager", "compile", "cudagraph", "capture", "capture-eager")
# At most this many seeds at once: the stacked network, its optimizer state and the per-seed folders grow with K
# (64 is far above the paper's 5; a range such as 0-1000000000 is a typo, not a plan).
MAX_SEEDS = 64
FLEET_FORMAT = "aulunet-fleet/1"
_SAFE = (nn.Sequential, nn.ModuleList, nn.ReLU, nn.AvgPool2d, nn.Identity, AULUNet, PlainDW, RGF,
         Upsample2x, AddSkip, PointwiseBlock)


def parse_seeds(text: str) -> List[int]:
    """'0,1,2', '0-4' or a mix ('0-2,7') -> [0, 1, 2, ...]; one-line SystemExit when malformed."""
    seeds: List[int] = []
    try:
        for part in str(text).split(","):
            part = part.strip()
            if "-" in part:
                a, b = part.split("-", 1)
                lo, hi = int(a), int(b)
                if hi < lo:
                    raise ValueError
                if hi - lo + 1 + len(seeds) > MAX_SEEDS:  # counted before the range is expanded
                    raise UserError(f"--seeds {text}: {hi - lo + 1 + len(seeds)} seeds; the K-seed trainer takes at most "
                                    f"{MAX_SEEDS} at once (each seed adds a copy of the network); train them in groups")
                seeds += list(range(lo, hi + 1))
            else:
                seeds.append(int(part))
    except UserError:
        raise
    except ValueError:
        raise SystemExit(f"error: --seeds: cannot read '{text}'; give seeds like 0,1,2,3,4 or 0-4") from None
    if not seeds or any(s < 0 for s in seeds):
        raise SystemExit(f"error: --seeds: cannot read '{text}'; give non-negative seeds like 0,1,2,3,4 or 0-4")
    if len(set(seeds)) != len(seeds):
        raise SystemExit(f"error: --seeds: '{text}' names a seed twice; list each seed once")
    if len(seeds) > MAX_SEEDS:
        raise UserError(f"--seeds {text}: {len(seeds)} seeds; the K-seed trainer takes at most {MAX_SEEDS} at once "
                        f"(each seed adds a copy of the network); train them in groups")
    return seeds


# --------------------------------------------------------------------------- K models as one network

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
    """K AULUNets of one config -> one AULUNet-shaped module computing all K (same state_dict keys;
    every tensor is the K seeds' tensors concatenated along dim 0)."""
    k = len(models)
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
    """The stacked state_dict -> K single-model state_dicts (CPU, contiguous)."""
    out: List[Dict[str, torch.Tensor]] = [{} for _ in range(k)]
    for key, t in state.items():
        t = t.detach().cpu()
        parts = [t] * k if t.dim() == 0 else t.chunk(k, 0)
        for i in range(k):
            out[i][key] = parts[i].clone().contiguous()
    return out


def fleet_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-seed BCE + Dice (model/losses.py's, smooth 1) of logits and targets (B, K, H, W) -> (K,)."""
    bce = F.binary_cross_entropy_with_logits(logits, y, reduction="none").mean((0, 2, 3))
    p = torch.sigmoid(logits)
    inter = (p * y).sum((2, 3))
    dice = (1 - (2 * inter + 1) / (p.sum((2, 3)) + y.sum((2, 3)) + 1)).mean(0)
    return bce + dice


def pooled_from_counts(counts: np.ndarray, pixels: int) -> Dict:
    """PooledMetrics.result() from per-image [tp, fp, fn] counts (N, 3), as evaluate_arrays would give."""
    from model.metrics import PooledMetrics, scores

    pm = PooledMetrics()
    for tp, fp, fn in counts.tolist():
        c = np.array([pixels - tp - fp - fn, fp, fn, tp], dtype=np.int64)
        pm.cm += c
        s = scores(c)
        pm.per_image_dsc.append(s["dsc"])
        if hasattr(pm, "per_image_jaccard"):
            pm.per_image_jaccard.append(s["miou"])
    return pm.result()


@torch.no_grad()
def evaluate_stacked(model: nn.Module, k: int, data: DeviceData, batch: int = 16) -> List[Dict]:
    """Pooled metrics of each of the K stacked models on `data` (as model/train.py's evaluate_arrays:
    prediction = logit > 0), counted on the device; the model is left in the mode it was in."""
    was_training = model.training
    model.eval()
    counts = []
    dtype = next(model.parameters()).dtype
    for i in range(0, len(data), batch):
        x = data.x[i:i + batch].to(dtype)
        logits = model(x.repeat(1, k, 1, 1).contiguous(memory_format=torch.channels_last))
        pred, t = logits > 0, data.y[i:i + batch].bool()
        counts.append(torch.stack([(pred & t).sum((2, 3)), (pred & ~t).sum((2, 3)), (~pred & t).sum((2, 3))], -1))
    model.train(was_training)
    c = torch.cat(counts).cpu().numpy() if counts else np.zeros((0, k, 3), np.int64)
    return [pooled_from_counts(c[:, i], data.size ** 2) for i in range(k)]


def evaluate_models(models: Sequence[AULUNet], data: DeviceData, batch: int = 16) -> List[Dict]:
    """Several models of one config evaluated in one pass (stacked), e.g. the K seeds' best.pt on test."""
    device = data.x.device
    stacked = stack_models(list(models)).to(device).to(memory_format=torch.channels_last)
    return evaluate_stacked(stacked, len(models), data, batch)


# --------------------------------------------------------------------------- the trainer

def resolve_engine(engine: str, device: torch.device, compile_flag: bool = True, dist: Optional[ddp.Dist] = None) -> str:
    if engine not in ENGINES:
        raise UserError(f"--engine: unknown engine '{engine}'; choose from {', '.join(ENGINES)}")
    if engine == "auto":
        if not compile_flag:
            return "eager"
        return "cudagraph" if device.type == "cuda" else "compile"
    if engine in ("cudagraph", "capture", "capture-eager") and device.type != "cuda":
        raise UserError(f"--engine {engine} needs a CUDA GPU (device here: {device}); use --engine compile or eager")
    if engine.startswith("capture") and dist is not None and dist.active:
        raise UserError(f"--engine {engine} captures one process's step; with torchrun use --engine cudagraph, compile or eager")
    return engine


@dataclass
class _Graph:
    graph: object
    idx: torch.Tensor
    params: torch.Tensor
    losses: torch.Tensor


class Fleet:
    """K seeds of one variant as one stacked model + AdamW, with the chosen engine's training step."""

    def __init__(self, name: str, seeds: Sequence[int], device, engine: str = "eager", lr: float = 1e-3,
                 weight_decay: float = 1e-2, precision: str = "fp32", dist: Optional[ddp.Dist] = None):
        self.name, self.seeds, self.k = name, list(seeds), len(seeds)
        self.device = torch.device(device)
        self.engine, self.dist = engine, dist or ddp.Dist()
        self.lr, self.weight_decay = lr, weight_decay
        self.amp = torch.bfloat16 if precision == "bf16" else None
        self.dtype = torch.float64 if precision == "fp64" else torch.float32
        models = []
        for s in self.seeds:  # each seed's initial weights, exactly as model/train.py draws them
            torch.manual_seed(s)
            models.append(build_model(name))
        self.cfg = models[0].cfg
        self.model = stack_models(models).to(self.device, self.dtype).to(memory_format=torch.channels_last).train()
        if self.dist.active:
            ddp.convert_sync_bn(self.model)
            ddp.broadcast_module(self.model, self.dist)
        self.params = list(self.model.parameters())
        cuda = self.device.type == "cuda"
        if engine.startswith("capture"):
            self.lr_t = torch.tensor(lr, dtype=torch.float32, device=self.device)
            self.opt = torch.optim.AdamW(self.params, lr=self.lr_t, weight_decay=weight_decay, capturable=True, foreach=True)
        else:
            self.lr_t = None
            self.opt = torch.optim.AdamW(self.params, lr=lr, weight_decay=weight_decay, **({"fused": True} if cuda else {}))
        if cuda:
            torch.backends.cudnn.benchmark = True
        capturing = engine.startswith("capture")

        def loss_of(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            if self.amp is None:
                return fleet_loss(self.model(x), y)
            with torch.autocast(self.device.type, dtype=self.amp, cache_enabled=not capturing):
                logits = self.model(x)
            return fleet_loss(logits.float(), y)

        if engine in ("compile", "capture"):
            self.loss_fn = torch.compile(loss_of, dynamic=False)
        elif engine == "cudagraph":
            self.loss_fn = torch.compile(loss_of, dynamic=False, mode="reduce-overhead")
        else:
            self.loss_fn = loss_of
        self._graphs: Dict[tuple, _Graph] = {}

    # ---- one step
    def set_lr(self, lr: float) -> None:
        self.lr = lr
        if self.lr_t is not None:
            self.lr_t.fill_(lr)
        else:
            for g in self.opt.param_groups:
                g["lr"] = lr

    def batch(self, data: DeviceData, idx: torch.Tensor, params: torch.Tensor):
        """idx (K, b) image indices, params (K*b, 8) -> grouped input (b, 3K, S, S), targets (b, K, S, S)."""
        k, b = idx.shape
        flat = idx.reshape(-1)
        x, y = apply_aug(data.x.index_select(0, flat), data.y.index_select(0, flat).to(data.x.dtype), params)
        s = x.shape[-1]
        x = x.view(k, b, 3, s, s).transpose(0, 1).reshape(b, 3 * k, s, s).contiguous(memory_format=torch.channels_last)
        return x, y.view(k, b, s, s).transpose(0, 1)

    def _raw_step(self, data, idx, params, weight: float) -> torch.Tensor:
        x, y = self.batch(data, idx, params)
        losses = self.loss_fn(x, y)
        if weight != 1.0:
            losses = losses * weight
        losses.sum().backward()
        ddp.allreduce_grads(self.params, self.dist)
        self.opt.step()
        return losses.detach()

    def step(self, data: DeviceData, idx: torch.Tensor, params: torch.Tensor, weight: float = 1.0) -> torch.Tensor:
        """One AdamW step of every seed on its batch (idx row k, params rows k*b..); returns the K losses
        (times `weight`, this process's share of the global batch), not synchronised."""
        if self.engine.startswith("capture"):
            g = self._graphs.get((id(data), idx.shape[1]))
            if g is None:
                g = self._capture(data, idx.shape[1])
            g.idx.copy_(idx)
            g.params.copy_(params)
            g.graph.replay()
            return g.losses.clone()
        if self.engine == "cudagraph":
            torch.compiler.cudagraph_mark_step_begin()
        self.opt.zero_grad(set_to_none=True)
        return self._raw_step(data, idx, params, weight)

    def _snapshot(self):
        tensors = self.params + list(self.model.buffers())
        state = {id(p): {k: v.clone() for k, v in s.items() if torch.is_tensor(v)} for p, s in self.opt.state.items()}
        return [t.detach().clone() for t in tensors], state

    def _restore(self, snap) -> None:
        saved, state = snap
        with torch.no_grad():
            for t, v in zip(self.params + list(self.model.buffers()), saved):
                t.copy_(v)
            for p, s in self.opt.state.items():
                for k, v in s.items():
                    if torch.is_tensor(v):
                        v.copy_(state[id(p)][k]) if id(p) in state else v.zero_()

    def _capture(self, data: DeviceData, b: int) -> _Graph:
        """Warm up (compiles, allocates AdamW state), put the model and optimizer back as they were,
        then capture the whole step for batches of b as one CUDA graph."""
        idx = (torch.arange(self.k * b, device=self.device) % len(data)).view(self.k, b)
        params = torch.zeros(self.k * b, N_PARAMS, device=self.device)
        params[:, 2] = 1.0
        params[:, 6] = 1.0
        snap = self._snapshot()
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            for _ in range(3):
                self.opt.zero_grad(set_to_none=True)
                self._raw_step(data, idx, params, 1.0)
        torch.cuda.current_stream(self.device).wait_stream(side)
        torch.cuda.synchronize(self.device)
        self._restore(snap)
        graph = torch.cuda.CUDAGraph()
        self.opt.zero_grad(set_to_none=True)
        with torch.cuda.graph(graph):
            losses = self._raw_step(data, idx, params, 1.0)
        g = _Graph(graph, idx, params, losses)
        self._graphs[(id(data), b)] = g
        return g

    # ---- evaluation
    def evaluate(self, data: DeviceData, batch: int = 16) -> List[Dict]:
        """Each seed's pooled metrics on `data` (threshold: logit > 0), one host sync at the end."""
        return evaluate_stacked(self.model, self.k, data, batch)

    # ---- state
    def finite_seeds(self) -> List[bool]:
        """Per seed: are all its weights and BatchNorm statistics finite? (one host sync)"""
        parts = [torch.isfinite(t.detach()).reshape(self.k, -1).all(1)
                 for t in self.model.state_dict().values() if t.is_floating_point() and t.dim() > 0]
        return torch.stack(parts).all(0).cpu().tolist()

    def seed_states(self) -> List[Dict[str, torch.Tensor]]:
        return unstack_state(self.model.state_dict(), self.k)

    def seed_optimizer_states(self) -> List[Dict]:
        """K optimizer state_dicts as a single-seed AdamW(model.parameters()) on the CPU would save them."""
        template = torch.optim.AdamW([torch.zeros(1, requires_grad=True)], lr=self.lr,
                                     weight_decay=self.weight_decay).state_dict()["param_groups"][0]
        group = {**template, "lr": float(self.lr), "params": list(range(len(self.params)))}
        out = [{"state": {}, "param_groups": [copy.deepcopy(group)]} for _ in range(self.k)]
        for i, p in enumerate(self.params):
            s = self.opt.state.get(p)
            if not s:
                continue
            for k in range(self.k):
                out[k]["state"][i] = {"step": s["step"].detach().float().cpu().clone().reshape(()),
                                      **{n: s[n].detach().chunk(self.k, 0)[k].cpu().clone() for n in ("exp_avg", "exp_avg_sq")}}
        return out

    def fleet_state(self) -> Dict:
        sd = self.opt.state_dict()
        opt_state = {i: {k: (v.detach().cpu().clone() if torch.is_tensor(v) else v) for k, v in s.items()}
                     for i, s in sd["state"].items()}
        return {"state_dict": {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()},
                "optimizer_state": opt_state}

    def load_fleet_state(self, ck: Dict) -> None:
        self.model.load_state_dict(ck["state_dict"])
        self.opt.load_state_dict({"state": ck["optimizer_state"], "param_groups": self.opt.state_dict()["param_groups"]})
        if self.lr_t is not None:
            for g in self.opt.param_groups:
                g["lr"] = self.lr_t


def draw_epoch(gens: Sequence[torch.Generator], n: int, batch: int, p_rotate: float = 0.5):
    """One epoch's random numbers for K seeds, drawn in model/train.py's order from each seed's generator:
    the permutation, then each batch's augmentation. Returns perms (K, n) int64 and, per batch,
    params (K*b, 8) stacked seed-major into one CPU tensor with the batch offsets."""
    perms, rows = [], []
    for g in gens:
        perms.append(torch.randperm(n, generator=g))
        rows.append([draw_aug_params(g, min(batch, n - i), p_rotate) for i in range(0, n, batch)])
    per_batch = [torch.cat([rows[k][j] for k in range(len(gens))]) for j in range(len(rows[0]))]
    return torch.stack(perms), per_batch


# --------------------------------------------------------------------------- command line

def _load_fleet(path: Path, args, name: str, seeds: List[int]) -> Dict:
    from model.train import check_resume

    if not path.is_file():
        raise CheckpointError(f"{path}: nothing to resume; run without --resume first")
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"{path}: not a readable fleet checkpoint ({type(e).__name__}); delete it and start again without --resume") from None
    if not isinstance(ck, dict) or ck.get("format") != FLEET_FORMAT:
        raise CheckpointError(f"{path}: not a fleet checkpoint (no '{FLEET_FORMAT}' header); delete it and start again without --resume")
    lacking = [k for k in ("train_args", "seeds", "model", "rng", "epoch", "best", "history") if k not in ck]
    if lacking or not isinstance(ck["train_args"], dict) or not isinstance(ck["seeds"], list):
        raise CheckpointError(f"{path}: has no '{lacking[0] if lacking else 'train_args'}' (damaged?), so it cannot be "
                              f"resumed; delete it and start again without --resume")
    # the fleet's train_args carry seed = its first seed; the seeds are compared as a list
    check_resume(path, {**ck["train_args"], "variant": ck["model"]}, args, skip=("seed",),
                 extra=[("seeds", ",".join(map(str, seeds)), ",".join(map(str, ck["seeds"])))])
    return ck


def _recorded_data(ck: Dict, out: Path, seeds: List[int]):
    """The data header a fleet resumes against: fleet_last.pt's, or (older fleets) a seed checkpoint's."""
    if isinstance(ck.get("data"), dict):
        return ck["data"]
    for s in seeds:
        for f in ("last.pt", "best.pt"):
            p = out / f"seed{s}" / f
            if p.is_file():
                try:
                    return torch.load(p, map_location="cpu", weights_only=True).get("data")
                except Exception:
                    continue
    return None


def main(args) -> Dict:
    """The K-seed trainer behind model/train.py --seeds (and torchrun); `args` is train.py's namespace."""
    seeds = parse_seeds(args.seeds) if args.seeds is not None else [args.seed]
    dist, dev = ddp.setup(args.device)
    try:
        return _run(args, seeds, dist, dev)
    finally:
        ddp.cleanup(dist)


def _run(args, seeds: List[int], dist: ddp.Dist, dev) -> Dict:
    from model.clitools import check_ranges
    from model.data import open_dataset
    from model.train import (REPO, RUN_FILES, check_batches, check_resume_data, pick_device, refuse_existing_run,
                             remove_if_empty)

    t_start = time.time()
    # model/train.py checked the shared flags and the variant before it dispatched here
    check_ranges(args, {"save_every": 1, "time_limit": 0.0})
    name = args.variant if args.variant.startswith("aulunet_") else f"aulunet_{args.variant}"
    device = dev or pick_device(args.device)
    engine = resolve_engine(args.engine, device, args.compile, dist)
    if args.threads:
        torch.set_num_threads(args.threads)
    tag = "-".join(map(str, seeds)) if len(seeds) <= 8 else f"{seeds[0]}-{seeds[-1]}x{len(seeds)}"
    out = Path(args.out or REPO / "runs" / f"{name}_{args.schedule}_seeds{tag}")
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: is a file, not a run folder; pass --out with a folder")
    fleet_path = out / "fleet_last.pt"
    ck = None
    if args.resume:
        ck = _load_fleet(fleet_path, args, name, seeds)
    else:
        refuse_existing_run(out, [fleet_path, out / "fleet.json",
                                  *(out / f"seed{s}" / f for s in seeds for f in RUN_FILES)])
    show = not args.no_progress and dist.main

    ds = open_dataset(args.data, seed=seeds[0])
    if ck is not None:
        check_resume_data(fleet_path, _recorded_data(ck, out, seeds), ds, args.data)
    if len(seeds) > 1 and ds.split_source.startswith("sorted ids, seed"):
        if len({open_dataset(args.data, seed=s).split_hash() for s in seeds}) > 1:
            raise DataError(f"--seeds: {args.data} has no fixed split (no split.json), so each seed would get "
                            f"its own split; add a split.json or train the seeds one at a time")
    train_s, val_s = ds.subset("train"), ds.subset("val")
    if args.limit_train:
        train_s = train_s[: args.limit_train]
    if args.limit_val:
        val_s = val_s[: args.limit_val]
    n, bs = len(train_s), args.batch_size
    check_batches(n, bs)
    if dist.active and min(b for b in (bs, n % bs or bs, n) if b) < dist.world:
        smallest = min(b for b in (bs, n % bs or bs, n) if b)
        raise UserError(f"--batch-size {bs}: with {n} training images a batch of {smallest} cannot be split over "
                        f"{dist.world} processes; use a --batch-size (and a last batch) of at least {dist.world}")
    if dist.main:  # a UserError here is one line: model/train.py's main (also torchrun's) turns it into one
        from model.safeio import ensure_writable_dir

        made = not out.exists()
        ensure_writable_dir(out, "--out")
    try:
        return _train(args, name, seeds, dist, device, engine, out, ck, ds, train_s, val_s, show, t_start)
    except BaseException:
        if dist.main and made:  # failed before it wrote anything: no empty run folder left behind
            remove_if_empty(out)
        raise


def _train(args, name, seeds, dist, device, engine, out, ck, ds, train_s, val_s, show, t_start) -> Dict:
    from tqdm import tqdm

    from model.checkpoint import atomic_write_text, save_atomic
    from model.train import diverged, lr_at, run_meta

    bs = args.batch_size
    train = DeviceData.load(train_s, args.size, device, progress=show)
    val = DeviceData.load(val_s, args.size, device, progress=show) if dist.main else None
    t_data = time.time() - t_start

    fleet = Fleet(name, seeds, device, engine, args.lr, args.weight_decay, args.precision, dist)
    if fleet.dtype != torch.float32:
        train.x = train.x.to(fleet.dtype)
        if val is not None:
            val.x = val.x.to(fleet.dtype)
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    k = len(seeds)
    start, bests, histories, timing = 0, [{"dsc": -1.0} for _ in seeds], [[] for _ in seeds], []
    fleet_path = out / "fleet_last.pt"
    if ck is not None:
        fleet.load_fleet_state(ck)
        for g, st in zip(gens, ck["rng"]):
            g.set_state(st)
        start, bests, histories, timing = ck["epoch"], ck["best"], ck["history"], ck.get("timing", [])
    metas = [run_meta(args, name, fleet.cfg, ds, len(train_s), len(val_s), seed=s) for s in seeds]
    seed_dirs = [out / f"seed{s}" for s in seeds]
    if dist.main:
        for d in seed_dirs:
            d.mkdir(parents=True, exist_ok=True)
    best_states: List[Optional[Dict]] = [None] * k
    eval_batch = 64 if device.type == "cuda" else 16

    saved = [start]  # the epoch the files on disk hold

    def save(epoch: int, lr: float, vals: List[Dict]) -> None:
        saved[0] = epoch
        states, opts = fleet.seed_states(), fleet.seed_optimizer_states()
        for i in range(k):
            if best_states[i] is not None:
                save_atomic({**metas[i], "state_dict": best_states[i], "epoch": bests[i]["epoch"],
                             "metrics": {"val": bests[i]}}, seed_dirs[i] / "best.pt")
                best_states[i] = None
            save_atomic({**metas[i], "state_dict": states[i], "epoch": epoch, "metrics": {"val": vals[i]},
                         "optimizer": opts[i], "rng": gens[i].get_state(), "best": bests[i], "history": histories[i]},
                        seed_dirs[i] / "last.pt")
            atomic_write_text(seed_dirs[i] / "log.json", json.dumps({"run": metas[i], "best": bests[i], "epochs": histories[i]}, indent=1))
        save_atomic({"format": FLEET_FORMAT, "model": name, "seeds": seeds, "train_args": metas[0]["train_args"],
                     "data": metas[0]["data"], "epoch": epoch, **fleet.fleet_state(), "rng": [g.get_state() for g in gens],
                     "best": bests, "history": histories, "timing": timing}, fleet_path)
        atomic_write_text(out / "fleet.json", json.dumps(_fleet_summary(), indent=1))

    def _fleet_summary() -> Dict:
        done = len(histories[0])
        return {"model": name, "seeds": seeds, "engine": engine, "device": _device_name(device), "world": dist.world,
                "epochs": args.epochs, "epochs_done": done, "finished": done >= args.epochs,
                "images_per_epoch_per_seed": len(train_s), "data_seconds": round(t_data, 2),
                "best": [{"seed": s, **b} for s, b in zip(seeds, bests)], "timing": timing}

    n = len(train)
    bar = tqdm(range(start, args.epochs), initial=start, total=args.epochs, desc=f"{name} x{k}", disable=not show)
    stopped = False
    for epoch in bar:
        t0 = time.time()
        lr = lr_at(epoch, args)
        fleet.set_lr(lr)
        perms, params = draw_epoch(gens, n, bs)
        perms = perms.to(device)
        params_dev = torch.cat(params).to(device) if params else None
        losses = torch.empty(len(params), k, dtype=torch.float64, device=device)
        row = 0
        for j, i in enumerate(range(0, n, bs)):
            b = min(bs, n - i)
            idx, p = perms[:, i:i + b], params_dev[row:row + k * b].view(k, b, N_PARAMS)
            row += k * b
            w = 1.0
            if dist.active:
                sl = ddp.shard(b, dist)
                idx, p, w = idx[:, sl], p[:, sl], (sl.stop - sl.start) / b
            losses[j] = fleet.step(train, idx, p.reshape(-1, N_PARAMS), w)
        epoch_loss = ddp.allreduce_sum(losses, dist).double().mean(0).cpu().tolist()
        t_train = time.time() - t0
        finite = fleet.finite_seeds()  # the same on every process (synchronised gradients)
        for i in range(k):
            what = (f"seed {seeds[i]}'s training loss is {epoch_loss[i]}" if not np.isfinite(epoch_loss[i]) else
                    f"seed {seeds[i]}'s weights are not finite" if not finite[i] else None)
            if what:
                raise diverged(out, epoch + 1, what, saved[0], fleet_path)
        if dist.main:
            vals = fleet.evaluate(val, eval_batch)
            for i, v in enumerate(vals):
                if not (np.isfinite(v["dsc"]) and np.isfinite(v["miou"])):
                    raise diverged(out, epoch + 1, f"seed {seeds[i]}'s val DSC {v['dsc']}, mIoU {v['miou']}", saved[0], fleet_path)
            seconds = round(time.time() - t0, 3)
            timing.append({"epoch": epoch + 1, "train_s": round(t_train, 3), "seconds": seconds,
                           "img_per_s": round(k * n / t_train, 1)})
            states_now = None
            for i in range(k):
                v = vals[i]
                histories[i].append({"epoch": epoch + 1, "lr": lr, "loss": epoch_loss[i], "val_dsc": v["dsc"],
                                     "val_miou": v["miou"], "seconds": seconds})
                if v["dsc"] > bests[i]["dsc"]:
                    bests[i] = {**{key: v[key] for key in ("dsc", "miou", "accuracy", "specificity", "sensitivity", "n_images")},
                                "epoch": epoch + 1}
                    states_now = states_now or fleet.seed_states()
                    best_states[i] = states_now[i]
        last = epoch + 1 >= args.epochs
        stop = bool(args.stop_after and epoch + 1 >= args.stop_after)
        if args.time_limit and dist.main:
            longest = max(t["seconds"] for t in timing[-5:])
            stop = stop or (time.time() - t_start) + 1.3 * longest > args.time_limit
        stop = ddp.broadcast_flag(stop, dist, device) and not last
        if dist.main:
            if last or stop or (epoch + 1) % args.save_every == 0:
                save(epoch + 1, lr, vals)
            bar.set_postfix(loss=f"{np.mean(epoch_loss):.4f}", dsc=f"{np.mean([v['dsc'] for v in vals]):.4f}",
                            best=f"{np.mean([b['dsc'] for b in bests]):.4f}")
        if stop:
            stopped = True
            break
    bar.close()
    summary = {"out": str(out), "seeds": seeds, "engine": engine, "epochs_done": len(histories[0]),
               "finished": len(histories[0]) >= args.epochs, "stopped_early": stopped,
               "best": [{"seed": s, **b} for s, b in zip(seeds, bests)]}
    if dist.main:
        from model.visualize import plot_training

        for d, h, b in zip(seed_dirs, histories, bests):
            plot_training({"epochs": h, "best": b}, d / "curve.png")
        print(json.dumps(summary))
    return summary


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform

    return f"cpu ({platform.machine()}, {torch.get_num_threads()} threads)"
