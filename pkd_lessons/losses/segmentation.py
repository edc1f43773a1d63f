"""The supervised segmentation loss of teacher and students."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.losses import DiceLoss

#: Class-index dtypes every loss accepts (labels are stored as uint8, trained on as int64).
INTEGER_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


def full(x: torch.Tensor) -> torch.Tensor:
    """``x`` in at least float32: losses are computed in full precision even under mixed precision
    (float64 inputs, as in gradient checks, stay float64)."""
    return x if x.dtype == torch.float64 else x.float()


# The reference code's Dice: squared prediction in the denominator (``squared_pred``; the one-hot
# target squared is itself), no smoothing in the numerator, 1e-7 in the denominator.
_DICE = DiceLoss(
    include_background=True,
    to_onehot_y=True,
    softmax=True,
    batch=True,
    squared_pred=True,
    smooth_nr=0.0,
    smooth_dr=1e-7,
)
CE_PROB_FLOOR = 0.005  # the reference code clips the probabilities of its cross-entropy here


def class_weights(target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Cross-entropy class weights of the reference code: ``w_c = 1 - N_c / N``.

    ``N_c`` is the number of voxels of class ``c`` in the batch and ``N`` all voxels, so rare
    classes (the enhancing rim, scar) weigh almost 1 and the background little.

    Examples:
        Nine background voxels and one enhancing voxel: the background weighs 0.1, the rare class
        0.9, and a class absent from the batch gets the full weight 1:

        >>> import torch
        >>> target = torch.tensor([0, 0, 0, 0, 0, 0, 0, 0, 0, 3])
        >>> [round(w, 2) for w in class_weights(target, num_classes=4).tolist()]
        [0.1, 1.0, 1.0, 0.9]
    """
    flat = target.flatten().long()
    # scatter_add_ rather than bincount: on CUDA, bincount reads its output size back to the host,
    # a synchronisation every step.
    counts = torch.zeros(num_classes, dtype=torch.float32, device=target.device)
    counts.scatter_add_(0, flat, torch.ones_like(flat, dtype=torch.float32))
    return 1.0 - counts / counts.sum()


def weighted_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The reference code's class-weighted cross-entropy, averaged over ALL voxels.

    ``L_CE = (1/N) sum_i w_{y_i} (-log clip(p_{i,y_i}, 0.005, 1))`` with ``w_c = 1 - N_c / N``
    (:func:`class_weights`), ``N`` the voxels of the batch.

    The division is by ``N``, not by ``sum_i w_{y_i}`` as in PyTorch's weighted
    ``F.cross_entropy``: with a background of ~95 % the latter is about 20x stronger on the rare
    classes and teaches the network to paint an oedema halo around every tumour. The clip at 0.005
    is the reference's too (a voxel whose true class has probability below it gets no gradient from
    this term; the Dice term still reaches it). Written out rather than ``F.cross_entropy`` because
    PyTorch offers neither this normalisation nor the clip.

    Args:
        logits: ``(B, C, *S)``.
        target: ``(B, *S)`` integer classes.

    Returns:
        Scalar loss.
    """
    _check_pair(logits, target)
    logits = full(logits)
    index = target.long().unsqueeze(1)
    weights = class_weights(target, logits.shape[1]).to(device=logits.device, dtype=logits.dtype)
    p_true = F.softmax(logits, dim=1).gather(1, index).squeeze(1)
    return (weights[index.squeeze(1)] * -torch.log(torch.clamp(p_true, CE_PROB_FLOOR, 1.0))).mean()


def squared_dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The reference code's soft Dice loss (MONAI's ``DiceLoss`` set up to match it).

    ``L_Dice = 1 - mean_c 2 sum_i p_ic y_ic / (sum_i p_ic^2 + sum_i y_ic + 1e-7)`` over every class,
    background included, sums over all voxels of the batch.

    Args:
        logits: ``(B, C, *S)``.
        target: ``(B, *S)`` integer classes.

    Returns:
        Scalar loss.
    """
    _check_pair(logits, target)
    return _DICE(full(logits), target.long().unsqueeze(1))


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The paper's supervised loss ``L_seg``: soft Dice plus class-weighted cross-entropy, as in the
    reference code.

    ``L_seg = L_Dice + L_CE`` (:func:`squared_dice_loss`, :func:`weighted_cross_entropy`):

    * ``L_Dice = 1 - mean_c 2 sum_i p_ic y_ic / (sum_i p_ic^2 + sum_i y_ic + 1e-7)``;
    * ``L_CE = (1/N) sum_i w_{y_i} (-log clip(p_{i,y_i}, 0.005, 1))``, ``w_c = 1 - N_c / N``.

    The L2 weight decay of the reference (1e-5) belongs to the optimiser, not here. A batch of a
    single class (all background) gives ``w = 0`` everywhere and a finite loss (the Dice term).

    Args:
        logits: ``(B, C, *S)``.
        target: ``(B, *S)`` integer classes (any of :data:`INTEGER_DTYPES`).

    Returns:
        Scalar loss.

    Examples:
        One image of 1 x 4 pixels, two classes. Confident, correct logits give a loss of about 0;
        an undecided network (equal logits, ``p = 0.5`` everywhere) pays both terms:

        >>> import torch
        >>> target = torch.tensor([[[0, 0, 1, 1]]])  # (B, H, W)
        >>> confident = 20.0 * torch.nn.functional.one_hot(target, 2).permute(0, 3, 1, 2).float()
        >>> tuple(confident.shape)  # (B, C, H, W)
        (1, 2, 1, 4)
        >>> round(float(segmentation_loss(confident, target)), 4)
        0.0
        >>> round(float(segmentation_loss(torch.zeros(1, 2, 1, 4), target)), 4)
        0.6799

        An all-background batch: every class weight is 0, only the Dice term is left, and it is finite:

        >>> round(float(segmentation_loss(torch.zeros(1, 2, 1, 4), torch.zeros_like(target))), 4)
        0.6
    """
    return squared_dice_loss(logits, target) + weighted_cross_entropy(logits, target)


def _check_pair(logits: torch.Tensor, target: torch.Tensor) -> None:
    if logits.ndim != target.ndim + 1 or logits.shape[0] != target.shape[0] or logits.shape[2:] != target.shape[1:]:
        raise ValueError(
            f"logits (B, C, *S) and target (B, *S) do not match: {tuple(logits.shape)} vs {tuple(target.shape)}"
        )
    if target.dtype not in INTEGER_DTYPES:
        raise ValueError(f"target must hold integer classes, got {target.dtype}")
