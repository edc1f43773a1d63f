"""The unimodal baseline: one modality in, the labels only."""

from __future__ import annotations

from pkd_lessons.methods.method import Method


class Baseline(Method):
    """``L_seg`` on the student's one modality: what distillation must beat."""

    name = "baseline"
    title = "the unimodal baseline"
    summary = "unimodal student, segmentation loss only (labels only)"
