"""Data parallelism over several processes (`torchrun`), for the trainer in model/training/ (its fleets).

    torchrun --nproc-per-node 4 model/train.py --seeds 0,1,2,3,4 --data ... --engine compile

Every process holds the whole (fleet) model and the whole dataset, draws the same data order and
augmentation (the generators are seeded alike), and trains on its own contiguous slice of each
global batch; after the backward pass the gradients are summed over processes in one all-reduce of
one flat buffer (for a 28k-parameter model bucketing buys nothing). Each process weights its loss
by its share of the batch (n_local / n_global), so the summed gradient is the gradient of the global
batch's mean loss, and BatchNorm normalises with the statistics of the global batch (`SyncBatchNorm2d`,
one all-reduce of per-channel sums per layer, differentiable), so a run on W processes equals the same
run in one process with the same global batch, up to float rounding (tested on the CPU with gloo).
NCCL on CUDA, gloo on the CPU. Only rank 0 evaluates, logs and writes files.

For this tiny model one GPU trains several seeds at once much more cheaply than several GPUs train
one (every BatchNorm layer costs a collective); DDP pays off for large global batches or datasets.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
import torch.nn as nn

from core.errors import UserError


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup(device_name: str) -> tuple:
    """(Dist, torch.device): joins the process group torchrun describes (or a 1-process Dist without it)."""
    if not launched_by_torchrun():
        return Dist(), None
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local = int(os.environ.get("LOCAL_RANK", rank))
    use_cuda = device_name.startswith("cuda") or (device_name == "auto" and torch.cuda.is_available())
    if use_cuda:
        if not torch.cuda.is_available():
            raise UserError(f"--device {device_name} requested but no CUDA GPU is visible; use --device cpu")
        if local >= torch.cuda.device_count():
            raise UserError(f"torchrun started {world} processes per node but only {torch.cuda.device_count()} "
                             f"GPU(s) are visible; use --nproc-per-node {torch.cuda.device_count()} or fewer")
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        device = torch.device("cpu")
        backend = "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend, rank=rank, world_size=world, timeout=timedelta(minutes=10))
    return Dist(rank, world, local), device


def cleanup(d: Dist) -> None:
    if d.active and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def shard(n: int, d: Dist) -> slice:
    """This process's contiguous slice of a global batch of n (sizes differ by at most one)."""
    base, extra = divmod(n, d.world)
    start = d.rank * base + min(d.rank, extra)
    return slice(start, start + base + (1 if d.rank < extra else 0))


def broadcast_module(module: nn.Module, d: Dist) -> None:
    if d.active:
        for t in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(t.data, 0)


def allreduce_grads(params, d: Dist) -> None:
    """Sum the gradients over processes (one flat buffer)."""
    if not d.active:
        return
    grads = [p.grad for p in params if p.grad is not None]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def allreduce_sum(t: torch.Tensor, d: Dist) -> torch.Tensor:
    if d.active:
        t = t.clone()
        dist.all_reduce(t)
    return t


def broadcast_flag(flag: bool, d: Dist, device) -> bool:
    """Rank 0's decision, for every process (e.g. whether to stop now)."""
    if not d.active:
        return flag
    t = torch.tensor([1 if flag else 0], device=device)
    dist.broadcast(t, 0)
    return bool(t.item())


class _AllReduceSum(torch.autograd.Function):
    """Differentiable sum over processes: the gradient of a sum is the sum of the gradients."""

    @staticmethod
    def forward(ctx, t: torch.Tensor) -> torch.Tensor:
        t = t.clone()
        dist.all_reduce(t)
        return t

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> torch.Tensor:
        g = g.clone()
        dist.all_reduce(g)
        return g


class SyncBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics are those of the global batch over all processes.

    Same parameters and buffers as BatchNorm2d (checkpoints are interchangeable). Works with gloo (CPU)
    and NCCL (CUDA): one differentiable all-reduce of [sum, sum of squares, count] per call, in float64
    so that E[x^2] - E[x]^2 keeps float32 accuracy. Outside training or without a process group it is
    the plain BatchNorm2d."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        c = x.shape[1]
        xd = x.double()
        count = torch.full((1,), float(x.numel() // c), dtype=torch.float64, device=x.device)
        stats = _AllReduceSum.apply(torch.cat([xd.sum((0, 2, 3)), (xd * xd).sum((0, 2, 3)), count]))
        n = stats[-1]
        mean = stats[:c] / n
        var = (stats[c:2 * c] / n - mean * mean).clamp_min(0)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                unbiased = var * (n / (n - 1)) if float(n) > 1 else var
                self.running_mean.mul_(1 - m).add_(mean.to(self.running_mean.dtype), alpha=m)
                self.running_var.mul_(1 - m).add_(unbiased.to(self.running_var.dtype), alpha=m)
        invstd = torch.rsqrt(var + self.eps).to(x.dtype)
        y = (x - mean.to(x.dtype)[None, :, None, None]) * invstd[None, :, None, None]
        if self.affine:
            y = y * self.weight[None, :, None, None] + self.bias[None, :, None, None]
        return y


def convert_sync_bn(module: nn.Module) -> nn.Module:
    """Swap every BatchNorm2d's class for SyncBatchNorm2d in place (state and keys unchanged)."""
    for m in module.modules():
        if type(m) is nn.BatchNorm2d:
            m.__class__ = SyncBatchNorm2d
    return module


__all__ = ["Dist", "setup", "cleanup", "shard", "allreduce_grads", "allreduce_sum", "broadcast_flag",
           "broadcast_module", "SyncBatchNorm2d", "convert_sync_bn", "launched_by_torchrun"]
