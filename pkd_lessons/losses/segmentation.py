"""The supervised segmentation loss of teacher and students."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.losses import DiceLoss

def full(x: torch.Tensor) -> torch.Tensor:
    """``x`` in at least float32: losses are computed in full precision even under mixed precision
    (float64 inputs, as in gradient checks, stay float64)."""
    return x if x.dtype == torch.float64 else x.float()


_DICE = DiceLoss(include_background=True, to_onehot_y=True, softmax=True, batch=True)


def class_weights(target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Cross-entropy class weights of the reference code: ``w_c = 1 - N_c / N``.

    ``N_c`` is the number of voxels of class ``c`` in the batch and ``N`` all voxels, so rare
    classes (the enhancing rim, scar) weigh almost 1 and the background little.
    """
    flat = target.flatten().long()
    # scatter_add_ rather than bincount: on CUDA, bincount reads its output size back to the host,
    # a synchronisation every step.
    counts = torch.zeros(num_classes, dtype=torch.float32, device=target.device)
    counts.scatter_add_(0, flat, torch.ones_like(flat, dtype=torch.float32))
    return 1.0 - counts / counts.sum()


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Soft Dice plus class-weighted cross-entropy, as in the reference code.

    ``L_seg = L_Dice + L_CE`` with

    * ``L_Dice = 1 - mean_c 2 sum_i p_ic y_ic / (sum_i p_ic + sum_i y_ic)`` over all classes
      (background included), sums over every voxel of the batch (MONAI's ``DiceLoss``, ``batch=True``);
    * ``L_CE = sum_i w_{y_i} (-log p_{i, y_i}) / sum_i w_{y_i}`` with ``w_c = 1 - N_c / N``
      (:func:`class_weights`; PyTorch's weighted mean).

    The paper's ``L_seg``; its L2 weight decay (1e-5) belongs to the optimiser, not here.

    Args:
        logits: ``(B, C, *S)``.
        target: ``(B, *S)`` integer classes.

    Returns:
        Scalar loss.
    """
    _check_pair(logits, target)
    logits = full(logits)
    weights = class_weights(target, logits.shape[1]).to(device=logits.device, dtype=logits.dtype)
    ce = F.cross_entropy(logits, target, weight=weights)
    dice = _DICE(logits, target.unsqueeze(1))
    return dice + ce


def _check_pair(logits: torch.Tensor, target: torch.Tensor) -> None:
    if logits.ndim != target.ndim + 1 or logits.shape[0] != target.shape[0] or logits.shape[2:] != target.shape[1:]:
        raise ValueError(f"logits (B, C, *S) and target (B, *S) do not match: {tuple(logits.shape)} "
                         f"vs {tuple(target.shape)}")
    if target.dtype not in (torch.int64, torch.int32, torch.uint8):
        raise ValueError(f"target must hold integer classes, got {target.dtype}")
