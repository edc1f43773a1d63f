"""A published competitor: KD-Net style distillation (Hu et al., MICCAI 2020).

KD-Net ("Knowledge distillation from multi-modal to mono-modal segmentation networks") trains the
unimodal student with the segmentation loss, Hinton distillation of the outputs, and a
Kullback-Leibler term that aligns the *bottleneck* features of student and teacher. The feature term
below normalises each location's feature vector with a softmax over channels and takes the mean KL
divergence; KD-Net's own code differs in such details, hence "style".
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pkd_lessons.losses.segmentation import full

from pkd_lessons.losses.pixel import kd_loss


def feature_kl_loss(student_features: torch.Tensor, teacher_features: torch.Tensor) -> torch.Tensor:
    """``mean_i KL(softmax_c(f_t,i) || softmax_c(f_s,i))`` over bottleneck locations ``i``.

    Args:
        student_features: ``(B, C, *S)`` student bottleneck.
        teacher_features: ``(B, C, *S)`` teacher bottleneck (no gradient).

    Returns:
        Scalar loss.
    """
    if student_features.shape != teacher_features.shape:
        raise ValueError(f"bottleneck shapes differ: {tuple(student_features.shape)} vs "
                         f"{tuple(teacher_features.shape)}")
    log_s = F.log_softmax(full(student_features), dim=1)
    log_t = F.log_softmax(full(teacher_features.detach()), dim=1)
    return (log_t.exp() * (log_t - log_s)).sum(dim=1).mean()


def kdnet_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, student_features: torch.Tensor,
               teacher_features: torch.Tensor, temperature: float = 4.0, output_weight: float = 1.0,
               feature_weight: float = 1.0) -> torch.Tensor:
    """KD-Net's distillation terms: ``a * L_kd(outputs, T) + b * L_KL(bottlenecks)``.

    The segmentation loss is added by the trainer, as for every student.
    """
    return (output_weight * kd_loss(student_logits, teacher_logits, temperature)
            + feature_weight * feature_kl_loss(student_features, teacher_features))
