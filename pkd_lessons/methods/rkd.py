"""The paper's regularized pixel-level distillation (Eq. 4-5) alone."""

from __future__ import annotations

from types import MappingProxyType

from pkd_lessons.methods.method import Method


class RKD(Method):
    """``L_seg + a L_pixel``, ``L_pixel = sum_i w_i l_i / sum_i w_i`` with the regularization weight
    ``w_i = max(0, CE_s - CE_t) [argmax p_t = y]`` (:func:`~pkd_lessons.losses.pixel.regularized_kd_loss`)."""

    name = "rkd"
    title = "regularized pixel-level knowledge distillation (RKD, the paper's Eq. 5)"
    summary = "unimodal student + the paper's regularized pixel-level KD"
    teacher_outputs = ("logits",)
    weights = MappingProxyType({"pixel": "pixel_weight"})

    def terms(self, student, teacher, labels, cfg, heads):
        from pkd_lessons.losses import regularized_kd_loss

        return {"pixel": regularized_kd_loss(student["logits"], teacher["logits"], labels, cfg.temperature)}
