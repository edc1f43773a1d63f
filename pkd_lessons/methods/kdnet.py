"""KD-Net (Hu et al., MICCAI 2020), a published competitor."""

from __future__ import annotations

from types import MappingProxyType

from pkd_lessons.methods.method import Method


class KDNet(Method):
    """``L_seg + a L_kd(z_s, z_t, T) + b KL(bottleneck_t || bottleneck_s)``
    (:func:`~pkd_lessons.losses.kdnet.kdnet_terms`)."""

    name = "kdnet"
    title = "KD-Net (Hu et al., 2020: output KD and a bottleneck KL)"
    summary = "unimodal student + KD-Net style output KD and bottleneck KL (competitor)"
    teacher_outputs = ("logits", "bottleneck")
    student_outputs = ("logits", "bottleneck")
    weights = MappingProxyType({"pixel": "pixel_weight", "image": "image_weight"})

    def terms(self, student, teacher, labels, cfg, heads):
        from pkd_lessons.losses import kdnet_terms

        return kdnet_terms(
            student["logits"],
            teacher["logits"],
            student["bottleneck"].float(),
            teacher["bottleneck"],
            cfg.temperature,
            t2_scaling=cfg.kd_t2,
        )

    def teacher_problem(self, teacher, cfg):
        if tuple(teacher.widths) != tuple(cfg.widths):
            return (
                "KD-Net matches bottlenecks, so teacher and student need the "
                f"same widths ({teacher.widths} vs {cfg.widths})"
            )
        return ""
