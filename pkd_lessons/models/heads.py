"""The projection head that turns a feature map into the embedding of the contrastive loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def pool(features: torch.Tensor) -> torch.Tensor:
    """Global average over the spatial axes: ``(B, C, *S)`` -> ``(B, C)``. Unchanged by flips, so a
    cached pooled teacher feature stays valid for a flipped image."""
    return features.flatten(2).mean(dim=2)


class ProjectionHead(nn.Module):
    """Global average pooling, Linear(32), ReLU, Linear(16), L2 normalisation.

    As in the paper's reference code; student and teacher each get one, both trained (the teacher's
    backbone stays frozen).

    Args:
        in_channels: channels of the feature map (the last decoder stage's width).
        hidden: width of the first linear layer.
        out: embedding size.
    """

    def __init__(self, in_channels: int, hidden: int = 32, out: int = 16) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(in_channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """``(B, C, *S)`` feature map (or ``(B, C)`` already pooled) -> ``(B, out)`` unit-length embeddings."""
        pooled = features if features.ndim == 2 else pool(features)
        return F.normalize(self.mlp(pooled), dim=1)
