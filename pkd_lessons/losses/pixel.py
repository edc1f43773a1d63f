"""Pixel-level distillation: plain (Hinton) KD and the paper's regularized KD.

Notation: ``z_s``, ``z_t`` student and teacher logits at voxel ``i``, ``y_i`` its label, ``T`` the
temperature, ``p^T = softmax(z / T)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pkd_lessons.losses.segmentation import _check_pair, full

STUDENT_PROB_FLOOR = 0.005  # the reference code clips the student's softened probabilities here


def _check_logits(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> None:
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"student and teacher logits differ in shape: {tuple(student_logits.shape)} "
            f"vs {tuple(teacher_logits.shape)}"
        )


def kd_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float, t2_scaling: bool = True
) -> torch.Tensor:
    """Plain knowledge distillation (Hinton et al., 2015), mean over voxels.

    ``L_kd = T^2 * mean_i KL(p_t^T || p_s^T) = T^2 * mean_i sum_c p_t^T log(p_t^T / p_s^T)``

    **T^2 scaling is applied** by default, as Hinton recommends: the gradient of the KL term shrinks
    like ``1/T^2`` for large ``T``, and the factor keeps it comparable with the segmentation loss
    (for large ``T`` the gradient becomes ``(z_s - z_t) / C``, logit matching). Set
    ``t2_scaling=False`` for the unscaled term, which is the scale of the paper's regularized loss.
    The teacher receives no gradient.

    Args:
        student_logits: ``(B, C, *S)``.
        teacher_logits: ``(B, C, *S)``.
        temperature: ``T > 0``.
        t2_scaling: multiply by ``T^2``.

    Returns:
        Scalar loss.

    Examples:
        A student that reproduces the teacher's logits has nothing left to learn (the KL is 0), and
        the ``T^2`` factor is exactly that, a factor:

        >>> import torch
        >>> _ = torch.manual_seed(0)
        >>> teacher, student = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)  # (B, C, H, W)
        >>> float(kd_loss(teacher, teacher, temperature=4.0))
        0.0
        >>> scaled = kd_loss(student, teacher, temperature=4.0)
        >>> round(float(scaled / kd_loss(student, teacher, temperature=4.0, t2_scaling=False)), 4)
        16.0
    """
    _check_logits(student_logits, teacher_logits)
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    log_ps = F.log_softmax(full(student_logits) / temperature, dim=1)
    log_pt = F.log_softmax(full(teacher_logits.detach()) / temperature, dim=1)
    # KL(p_t || p_s) per voxel: F.kl_div takes the student's log-probabilities first
    kl = F.kl_div(log_ps, log_pt, reduction="none", log_target=True).sum(dim=1).mean()
    return kl * temperature**2 if t2_scaling else kl


@torch.no_grad()
def regularization_weights(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, target: torch.Tensor
) -> torch.Tensor:
    """The regularization factor of the paper's pixel-level loss, per voxel, without gradient.

    ``w_i = max(0, CE(y_i, p_s,i) - CE(y_i, p_t,i)) * [argmax_c p_t,ic == y_i]``

    with ``CE(y, p) = -log p_y`` at temperature 1. A voxel counts only where the teacher is right,
    and as much as the student lags behind it there: zero where the teacher is wrong (do not copy
    its mistakes), zero where the student already does as well.

    Args:
        student_logits: ``(B, C, *S)``.
        teacher_logits: ``(B, C, *S)``.
        target: ``(B, *S)`` integer classes.

    Returns:
        ``(B, *S)`` non-negative weights (``requires_grad`` is False).

    Examples:
        Three voxels of class 1 (two classes, logits ``(B, C, S)``): the teacher is right at the
        first and third, wrong at the second; the student is wrong at the first and better than the
        teacher at the third. Only the first voxel, where the teacher is right and the student lags,
        gets a weight:

        >>> import torch
        >>> target = torch.tensor([[1, 1, 1]])  # (B, S)
        >>> teacher = torch.tensor([[[0.0, 2.0, 0.0], [2.0, 0.0, 1.0]]])  # (B, C, S): class 0, then class 1
        >>> student = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 0.0, 4.0]]])
        >>> [round(w, 4) for w in regularization_weights(student, teacher, target)[0].tolist()]
        [1.1863, 0.0, 0.0]
    """
    _check_logits(student_logits, teacher_logits)
    _check_pair(teacher_logits, target)
    index = target.unsqueeze(1).long()
    ce_s = -F.log_softmax(full(student_logits), dim=1).gather(1, index).squeeze(1)
    ce_t = -F.log_softmax(full(teacher_logits), dim=1).gather(1, index).squeeze(1)
    teacher_right = teacher_logits.max(dim=1).indices == target  # argmax's first maximum, 10x faster on a CPU
    return torch.clamp(ce_s - ce_t, min=0.0) * teacher_right


def regularized_kd_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, target: torch.Tensor, temperature: float = 10.0
) -> torch.Tensor:
    """The paper's pixel-level regularized distillation loss, as in the reference code.

    ``L_rkd = sum_i w_i l_i / sum_i w_i`` with

    * ``l_i = - sum_c p_t,ic^T log(clip(p_s,ic^T, 0.005, 1))``: cross-entropy between the softened
      teacher and student outputs (no ``T^2`` factor, as in the reference code);
    * ``w_i``: :func:`regularization_weights` (no gradient).

    Dividing by ``sum_i w_i`` makes this a weighted *mean* over the few voxels where the teacher is
    right and the student is not, so the loss keeps its size however few they are. It is 0 (not
    NaN) when every weight is 0. Where the student's probability is clipped, its gradient is zero.

    Args:
        student_logits: ``(B, C, *S)``.
        teacher_logits: ``(B, C, *S)``.
        target: ``(B, *S)`` integer classes.
        temperature: ``T`` (10 in the paper).

    Returns:
        Scalar loss.

    Examples:
        With the three voxels of the example of :func:`regularization_weights`, only the first has a
        weight, so the loss is that voxel's soft cross-entropy: the voxels of weight 0 neither add
        to it nor dilute it. A student equal to its teacher has no weight anywhere, and the loss is
        0, not NaN:

        >>> import torch
        >>> target = torch.tensor([[1, 1, 1]])
        >>> teacher = torch.tensor([[[0.0, 2.0, 0.0], [2.0, 0.0, 1.0]]])
        >>> student = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 0.0, 4.0]]])
        >>> round(float(regularized_kd_loss(student, teacher, target)), 4)
        0.6994
        >>> round(float(regularized_kd_loss(student[..., :1], teacher[..., :1], target[..., :1])), 4)
        0.6994
        >>> float(regularized_kd_loss(teacher, teacher, target))
        0.0
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    weights = regularization_weights(student_logits, teacher_logits, target)
    pt = F.softmax(full(teacher_logits.detach()) / temperature, dim=1)
    ps = F.softmax(full(student_logits) / temperature, dim=1)
    per_voxel = -(pt * torch.log(torch.clamp(ps, STUDENT_PROB_FLOOR, 1.0))).sum(dim=1)
    total = weights.sum()
    # With every weight 0 the numerator is 0 too: divide by 1 then. torch.where rather than an `if`,
    # which would make the host wait for the device every step.
    return (weights * per_voxel).sum() / torch.where(total > 0, total, torch.ones_like(total))
