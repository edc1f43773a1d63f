"""A published competitor: KD-Net style distillation (Hu et al., MICCAI 2020).

KD-Net ("Knowledge distillation from multi-modal to mono-modal segmentation networks") trains the
unimodal student with the segmentation loss, Hinton distillation of the outputs, and a
Kullback-Leibler term that aligns the *bottleneck* features of student and teacher. The feature term
below normalises each location's feature vector with a softmax over channels and takes the mean KL
divergence; KD-Net's own code differs in such details, hence "style".
"""

from __future__ import annotations

import torch

from pkd_lessons.losses.pixel import kd_loss


def feature_kl_loss(student_features: torch.Tensor, teacher_features: torch.Tensor) -> torch.Tensor:
    """``mean_i KL(softmax_c(f_t,i) || softmax_c(f_s,i))`` over bottleneck locations ``i``.

    Args:
        student_features: ``(B, C, *S)`` student bottleneck.
        teacher_features: ``(B, C, *S)`` teacher bottleneck (no gradient).

    Returns:
        Scalar loss.

    Examples:
        The softmax over channels makes the term blind to an offset added to every channel of a
        location, but not to a change of scale:

        >>> import torch
        >>> _ = torch.manual_seed(0)
        >>> teacher = torch.randn(2, 8, 3, 3)  # (B, C, H, W) bottleneck
        >>> float(feature_kl_loss(teacher, teacher))
        0.0
        >>> bool(feature_kl_loss(teacher + 5.0, teacher) < 1e-6)
        True
        >>> round(float(feature_kl_loss(2.0 * teacher, teacher)), 4)
        0.2348
    """
    if student_features.shape != teacher_features.shape:
        raise ValueError(
            f"bottleneck shapes differ: {tuple(student_features.shape)} vs {tuple(teacher_features.shape)}"
        )
    # the same KL as plain KD's at temperature 1 and without T^2, over channels instead of classes
    return kd_loss(student_features, teacher_features, temperature=1.0, t2_scaling=False)


def kdnet_terms(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    student_features: torch.Tensor,
    teacher_features: torch.Tensor,
    temperature: float = 4.0,
    t2_scaling: bool = True,
) -> dict[str, torch.Tensor]:
    """KD-Net's two distillation terms, by the names the trainer logs them under.

    ``{"pixel": L_kd(z_s, z_t, T), "image": KL(bottleneck_t || bottleneck_s)}``: plain KD on the
    outputs (:func:`~pkd_lessons.losses.pixel.kd_loss`) and :func:`feature_kl_loss` on the
    bottlenecks.

    Args:
        student_logits: ``(B, C, *S)``.
        teacher_logits: ``(B, C, *S)`` (no gradient).
        student_features: ``(B, F, *S')`` student bottleneck.
        teacher_features: ``(B, F, *S')`` teacher bottleneck (no gradient).
        temperature: KD temperature ``T``.
        t2_scaling: multiply the output term by ``T^2``.

    Returns:
        The two scalar terms.

    Examples:
        The terms of a student unrelated to its teacher, then of one that copies the teacher's
        outputs and bottleneck:

        >>> import torch
        >>> _ = torch.manual_seed(0)
        >>> z_s, z_t = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)  # logits (B, C, H, W)
        >>> f_s, f_t = torch.randn(2, 16, 1, 1), torch.randn(2, 16, 1, 1)  # bottlenecks (B, F, H', W')
        >>> {name: round(float(term), 4) for name, term in kdnet_terms(z_s, z_t, f_s, f_t).items()}
        {'pixel': 0.8101, 'image': 0.9918}
        >>> {name: float(term) for name, term in kdnet_terms(z_t, z_t, f_t, f_t).items()}  # a perfect copy
        {'pixel': 0.0, 'image': 0.0}
    """
    return {
        "pixel": kd_loss(student_logits, teacher_logits, temperature, t2_scaling=t2_scaling),
        "image": feature_kl_loss(student_features, teacher_features),
    }


def kdnet_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    student_features: torch.Tensor,
    teacher_features: torch.Tensor,
    temperature: float = 4.0,
    output_weight: float = 1.0,
    feature_weight: float = 1.0,
    t2_scaling: bool = True,
) -> torch.Tensor:
    """KD-Net's distillation terms: ``a * L_kd(outputs, T) + b * L_KL(bottlenecks)`` (:func:`kdnet_terms`).

    The segmentation loss is added by the trainer, as for every student.

    Args:
        student_logits, teacher_logits: ``(B, C, *S)`` logits.
        student_features, teacher_features: the two networks' bottleneck features, same shape.
        temperature: ``T`` of the softened outputs.
        output_weight: ``a``, the weight of the output term.
        feature_weight: ``b``, the weight of the bottleneck term.
        t2_scaling: multiply the output term by ``T^2`` (Hinton's convention).

    Returns:
        A scalar tensor.
    """
    terms = kdnet_terms(student_logits, teacher_logits, student_features, teacher_features, temperature, t2_scaling)
    return output_weight * terms["pixel"] + feature_weight * terms["image"]
