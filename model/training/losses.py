"""BCE (with logits) + Dice, the paper's loss."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def dice_loss(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """1 - soft Dice per image, averaged over the batch."""
    p = torch.sigmoid(logits).flatten(1)
    t = target.flatten(1)
    inter = (p * t).sum(1)
    return (1 - (2 * inter + smooth) / (p.sum(1) + t.sum(1) + smooth)).mean()


def bce_dice_loss(logits: torch.Tensor, target: torch.Tensor, w_bce: float = 1.0, w_dice: float = 1.0) -> torch.Tensor:
    return w_bce * F.binary_cross_entropy_with_logits(logits, target) + w_dice * dice_loss(logits, target)
