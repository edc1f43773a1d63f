"""Networks: the residual U-Net student, the multimodal attention-fusion teacher, projection heads."""

from pkd_lessons.models.heads import ProjectionHead, projection_heads
from pkd_lessons.models.teacher import AttentionFusion, MultimodalTeacher, early_fusion_teacher, student
from pkd_lessons.models.unet import SegmentationNet

__all__ = [
    "AttentionFusion",
    "MultimodalTeacher",
    "ProjectionHead",
    "SegmentationNet",
    "early_fusion_teacher",
    "projection_heads",
    "student",
]
