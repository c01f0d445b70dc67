"""What a fleet is trained and selected on: each seed's loss (model/training/losses.py's BCE + Dice, called per seed)
and each seed's pooled metrics (core/metrics.py's PooledMetrics, fed confusion counts taken on the device)."""
from __future__ import annotations

from typing import Dict, List, Sequence

import numpy as np
import torch
import torch.nn as nn

from model.networks.aulunet import AULUNet
from model.training.losses import bce_dice_loss
from core.metrics import PooledMetrics
from model.training.network import stack_models


def seed_losses(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Logits and targets (B, K, H, W) -> (K,): seed k's bce_dice_loss on channel k (for K=1: the loss itself)."""
    return torch.stack([bce_dice_loss(logits[:, i:i + 1], y[:, i:i + 1]) for i in range(logits.shape[1])])


def pooled(counts: np.ndarray, pixels: int) -> Dict:
    """PooledMetrics.result() of per-image [tp, fp, fn] counts (N, 3) of masks of `pixels` pixels."""
    pm = PooledMetrics()
    for tp, fp, fn in counts.tolist():
        pm.add_confusion([pixels - tp - fp - fn, fp, fn, tp])
    return pm.result()


@torch.no_grad()
def evaluate_stacked(model: nn.Module, k: int, data, batch: int = 16) -> List[Dict]:
    """Pooled metrics of each of the K stacked models on `data` (a DeviceData; prediction = logit > 0, i.e.
    sigmoid > 0.5), counted on the device with one host sync; the model is left in the mode it was in."""
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
    return [pooled(c[:, i], data.size ** 2) for i in range(k)]


def evaluate_models(models: Sequence[AULUNet], data, batch: int = 16) -> List[Dict]:
    """Several models of one config evaluated in one pass (stacked), e.g. the K seeds' best.pt on test."""
    stacked = stack_models(list(models)).to(data.x.device).to(memory_format=torch.channels_last)
    return evaluate_stacked(stacked, len(models), data, batch)
