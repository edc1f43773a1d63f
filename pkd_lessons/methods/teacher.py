"""The multimodal teacher: every modality in, the segmentation loss only."""

from __future__ import annotations

from pkd_lessons.methods.method import Method


class Teacher(Method):
    """``L_seg`` on all modalities; the network every distilled student learns from."""

    name = "teacher"
    title = "the multimodal teacher"
    summary = "multimodal teacher, all modalities, segmentation loss only"
    student = False
