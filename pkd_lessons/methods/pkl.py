"""The paper's method: privileged knowledge learning, both distillation terms."""

from __future__ import annotations

from types import MappingProxyType

from pkd_lessons.methods.ckd import CKD
from pkd_lessons.methods.rkd import RKD


class PKL(CKD):
    """``L_seg + a L_pixel + b L_image`` with ``a = b = 0.5`` (the paper's Eq. 8): :class:`RKD`'s
    term and :class:`CKD`'s term together."""

    name = "pkl"
    title = "privileged knowledge learning (PKL, the paper's method: RKD + CKD)"
    summary = "unimodal student + regularized KD + contrastive KD, 0.5 / 0.5 (the paper's method)"
    weights = MappingProxyType({"pixel": "pixel_weight", "image": "image_weight"})

    def terms(self, student, teacher, labels, cfg, heads):
        return {
            **RKD.terms(self, student, teacher, labels, cfg, heads),
            **CKD.terms(self, student, teacher, labels, cfg, heads),
        }
