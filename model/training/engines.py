"""A fleet (K seeds of one variant as one stacked network, K >= 1) with AdamW and its training step, per engine.

Each seed keeps what a run of that seed alone has: its own initial weights (torch.manual_seed(seed), then
build_model), AdamW (elementwise, so AdamW on the stacked parameters is K independent AdamWs) and its own
loss: the objective is the sum of the K seeds' losses, so each seed's gradient is its own. Engines
(`--engine`):
  eager          plain PyTorch
  compile        torch.compile of the forward + loss (default on the CPU; `--no-compile` means eager)
  cudagraph      torch.compile(mode="reduce-overhead"): inductor kernels replayed as CUDA graphs (default on CUDA)
  capture        the WHOLE step (batch gather, augmentation, compiled forward + loss, backward, AdamW with
                 capturable state) captured once per batch size as one CUDA graph and replayed
  capture-eager  the same without torch.compile
Evaluation and state_dict stay on the plain module, so checkpoints carry no `_orig_mod.` keys.
`--precision bf16` runs the forward under bfloat16 autocast (loss in float32); not the default: it has not
been shown to keep accuracy here (on the CPU bf16 + compile diverged). `--precision fp64` trains in float64
(slow): two ways of training that should agree (torchrun vs one process, a fleet vs its seeds alone) then
agree to ~1e-12, where float32 only agrees to its rounding, which this network amplifies (BatchNorm over
small batches: some float32 gradients at initialisation are ~2% off the float64 ones, identically in both).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import torch

from model.training import ddp
from model.networks.aulunet import build_model
from core.errors import UserError
from model.data.photometric import apply_photometric
from model.data.resident import N_PARAMS, DeviceData, apply_aug
from model.training.network import nonfinite_keys, stack_models, unstack_state
from model.training.scoring import evaluate_stacked, seed_losses

ENGINES = ("auto", "eager", "compile", "cudagraph", "capture", "capture-eager")


def resolve_engine(engine: str, device: torch.device, compile_flag: bool = True, dist: Optional[ddp.Dist] = None) -> str:
    """--engine (auto: cudagraph on CUDA, compile on the CPU, eager with --no-compile) -> the engine; UserError
    for an unknown one or one this device or launch cannot run."""
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


def make_loss_fn(model: torch.nn.Module, engine: str = "eager", amp=None, cache_enabled: bool = True):
    """(x, y) -> the per-seed losses (K,) of `model` (plain, or K stacked) on a batch, compiled as `engine` says
    (the module stays plain); `amp` runs the forward under that autocast dtype, the loss in float32."""
    def loss_of(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if amp is None:
            return seed_losses(model(x), y)
        with torch.autocast(x.device.type, dtype=amp, cache_enabled=cache_enabled):
            logits = model(x)
        return seed_losses(logits.float(), y)

    if engine in ("compile", "capture"):
        return torch.compile(loss_of, dynamic=False)
    if engine == "cudagraph":
        return torch.compile(loss_of, dynamic=False, mode="reduce-overhead")
    return loss_of


@dataclass
class _Graph:
    graph: object
    idx: torch.Tensor
    params: torch.Tensor
    losses: torch.Tensor


class Fleet:
    """K seeds of one variant as one stacked model + AdamW, with the chosen engine's training step."""

    def __init__(self, name: str, seeds: Sequence[int], device, engine: str = "eager", lr: float = 1e-3,
                 weight_decay: float = 1e-2, precision: str = "fp32", dist: Optional[ddp.Dist] = None,
                 ema: float = 0.0):
        self.name, self.seeds, self.k = name, list(seeds), len(seeds)
        self.device = torch.device(device)
        self.engine, self.dist = engine, dist or ddp.Dist()
        self.lr, self.weight_decay = lr, weight_decay
        self.dtype = torch.float64 if precision == "fp64" else torch.float32
        models = []
        for s in self.seeds:  # each seed's initial weights, drawn as for a run of that seed alone
            torch.manual_seed(s)
            models.append(build_model(name))
        self.cfg = models[0].cfg
        self.model = stack_models(models).to(self.device, self.dtype).to(memory_format=torch.channels_last).train()
        if self.dist.active:
            ddp.convert_sync_bn(self.model)
            ddp.broadcast_module(self.model, self.dist)
        self.params = list(self.model.parameters())
        cuda = self.device.type == "cuda"
        capturing = engine.startswith("capture")
        if capturing:
            self.lr_t = torch.tensor(lr, dtype=torch.float32, device=self.device)
            self.opt = torch.optim.AdamW(self.params, lr=self.lr_t, weight_decay=weight_decay, capturable=True, foreach=True)
        else:
            self.lr_t = None
            self.opt = torch.optim.AdamW(self.params, lr=lr, weight_decay=weight_decay, **({"fused": True} if cuda else {}))
        if cuda:
            torch.backends.cudnn.benchmark = True
        self.loss_fn = make_loss_fn(self.model, engine, torch.bfloat16 if precision == "bf16" else None,
                                    cache_enabled=not capturing)
        self._graphs: Dict[tuple, _Graph] = {}
        # --ema: an exponential moving average of the weights (BatchNorm statistics copied), updated after every
        # step; it is what is evaluated, selected and shipped, while training goes on with the raw weights
        # (warmed up: after n updates the decay is min(DECAY, (1 + n) / (10 + n)), so that early epochs are not
        # scored on an average still made mostly of the initial weights)
        self.ema_decay, self.ema_updates = ema, 0
        self.ema = copy.deepcopy(self.model).requires_grad_(False) if ema else None

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
        x, y = apply_aug(data.x.index_select(0, flat), data.y.index_select(0, flat).to(data.x.dtype), params[:, :N_PARAMS])
        if params.shape[1] > N_PARAMS:  # --augment robust: the photometric columns follow the geometric ones
            x = apply_photometric(x, params[:, N_PARAMS:])
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
        if self.ema is not None:
            self.update_ema()
        return losses.detach()

    @torch.no_grad()
    def update_ema(self) -> None:
        decay = min(self.ema_decay, (1 + self.ema_updates) / (10 + self.ema_updates))
        self.ema_updates += 1
        torch._foreach_lerp_(list(self.ema.parameters()), self.params, 1.0 - decay)
        for e, b in zip(self.ema.buffers(), self.model.buffers()):
            e.copy_(b)

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

    # ---- evaluation and state
    def evaluate(self, data: DeviceData, batch: int = 16) -> List[Dict]:
        """Each seed's pooled metrics on `data` (threshold: logit > 0), one host sync at the end."""
        return evaluate_stacked(self.ema if self.ema is not None else self.model, self.k, data, batch)

    def nonfinite(self) -> List[object]:
        """Per seed: the first of its weights or BatchNorm statistics that is not finite, or None (one host sync)."""
        return nonfinite_keys(self.model.state_dict(), self.k)

    def seed_states(self, evaluated: bool = False) -> List[Dict[str, torch.Tensor]]:
        """Each seed's weights: the trained ones, or with `evaluated` the ones evaluate() scores (the EMA's with --ema)."""
        model = self.ema if evaluated and self.ema is not None else self.model
        return unstack_state(model.state_dict(), self.k)

    def seed_ema_states(self) -> Optional[List[Dict[str, torch.Tensor]]]:
        return unstack_state(self.ema.state_dict(), self.k) if self.ema is not None else None

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
        """The whole fleet's model and optimizer state (stacked), as fleet_last.pt holds it."""
        sd = self.opt.state_dict()
        opt_state = {i: {k: (v.detach().cpu().clone() if torch.is_tensor(v) else v) for k, v in s.items()}
                     for i, s in sd["state"].items()}
        out = {"state_dict": {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()},
               "optimizer_state": opt_state}
        if self.ema is not None:
            out["ema_state_dict"] = {k: v.detach().cpu().clone() for k, v in self.ema.state_dict().items()}
            out["ema_updates"] = self.ema_updates
        return out

    def load_fleet_state(self, state_dict: Dict, optimizer_state: Dict, ema_state_dict: Optional[Dict] = None,
                         ema_updates: int = 0) -> None:
        """Continue from a stacked state (fleet_last.pt's, or for one seed its last.pt's state_dict and the
        `state` of its optimizer, and with --ema the average's weights); the hyperparameters stay this fleet's."""
        self.model.load_state_dict(state_dict)
        if self.ema is not None:
            self.ema.load_state_dict(ema_state_dict)
            self.ema_updates = int(ema_updates)
        self.opt.load_state_dict({"state": optimizer_state, "param_groups": self.opt.state_dict()["param_groups"]})
        if self.lr_t is not None:
            for g in self.opt.param_groups:
                g["lr"] = self.lr_t
