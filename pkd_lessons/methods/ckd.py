"""The paper's contrastive image-level distillation (Eq. 6-7) alone."""

from __future__ import annotations

from types import MappingProxyType

from pkd_lessons.methods.method import Method


class CKD(Method):
    """``L_seg + b L_image``: Hadsell's margin loss over the (student, teacher) embedding pairs of a
    batch, each network's last decoder features through its own projection head
    (:func:`~pkd_lessons.losses.contrastive.contrastive_kd_loss`)."""

    name = "ckd"
    title = "contrastive image-level knowledge distillation (CKD, the paper's Eq. 7)"
    summary = "unimodal student + the paper's contrastive image-level KD"
    teacher_outputs = ("logits", "features")
    student_outputs = ("logits", "features")
    heads = True
    weights = MappingProxyType({"image": "image_weight"})

    def terms(self, student, teacher, labels, cfg, heads):
        from pkd_lessons.losses import contrastive_kd_loss

        emb_s = heads["student"](student["features"].float())
        emb_t = heads["teacher"](teacher["features"])
        return {"image": contrastive_kd_loss(emb_s, emb_t, cfg.margin)}

    def teacher_problem(self, teacher, cfg):
        if teacher.widths[0] != cfg.widths[0]:
            return f"the contrastive loss needs the same first width ({teacher.widths[0]} vs {cfg.widths[0]})"
        return ""
