"""ProtoKD (Wang et al., ICASSP 2023), a published competitor, as its authors' code trains it."""

from __future__ import annotations

from types import MappingProxyType

from pkd_lessons.methods.method import Method


class ProtoKD(Method):
    """``L_seg + 10 L_kd + 0.1 L_proto`` at ``T = 10``, from an early-fusion teacher.

    ``L_kd``: :func:`~pkd_lessons.losses.protokd.protokd_kd_loss` (the KL of the softened outputs
    averaged over classes and voxels, no ``T^2``), weighed by ``pixel_weight`` (10); ``L_proto``:
    :func:`~pkd_lessons.losses.protokd.prototype_loss` on the last decoder features of both networks
    under the ground-truth mask, weighed by ``image_weight`` (0.1). The teacher is the authors':
    every modality stacked at the input (``arch="early"``).

    ``L_seg`` is this package's (:func:`~pkd_lessons.losses.segmentation.segmentation_loss`, the
    paper's Dice + class-weighted cross-entropy), the same for every method, so that the methods
    differ by their distillation terms only; the authors' code uses PyTorch's class-weighted mean
    cross-entropy and a soft Dice smoothed by 1e-5.
    """

    name = "protokd"
    title = "ProtoKD (Wang et al., 2023: output KD and class-prototype maps)"
    summary = "unimodal student + ProtoKD's output KD and prototype maps, 10 / 0.1 (competitor)"
    teacher_outputs = ("logits", "features")
    student_outputs = ("logits", "features")
    weights = MappingProxyType({"pixel": "pixel_weight", "proto": "image_weight"})
    defaults = MappingProxyType({"temperature": 10.0, "pixel_weight": 10.0, "image_weight": 0.1})
    teacher_arch = "early"

    def terms(self, student, teacher, labels, cfg, heads):
        from pkd_lessons.losses import protokd_kd_loss, prototype_loss

        return {
            "pixel": protokd_kd_loss(student["logits"], teacher["logits"], cfg.temperature),
            "proto": prototype_loss(student["features"].float(), teacher["features"], labels, cfg.num_classes),
        }
