"""Plain knowledge distillation of the outputs (Hinton et al., 2015)."""

from __future__ import annotations

from types import MappingProxyType

from pkd_lessons.methods.method import Method


class KD(Method):
    """``L_seg + a L_kd(z_s, z_t, T)``, ``L_kd = T^2 KL(p_t^T || p_s^T)`` averaged over voxels
    (:func:`~pkd_lessons.losses.pixel.kd_loss`; ``T^2`` as ``cfg.kd_t2`` says)."""

    name = "kd"
    title = "plain knowledge distillation (KD)"
    summary = "unimodal student + plain (Hinton) KD of the outputs"
    teacher_outputs = ("logits",)
    weights = MappingProxyType({"pixel": "pixel_weight"})

    def terms(self, student, teacher, labels, cfg, heads):
        from pkd_lessons.losses import kd_loss

        return {"pixel": kd_loss(student["logits"], teacher["logits"], cfg.temperature, t2_scaling=cfg.kd_t2)}
