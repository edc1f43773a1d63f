"""The projection head that turns a feature map into the embedding of the contrastive loss."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def pooling_window(input_size: Sequence[int]) -> tuple[int, ...]:
    """The reference's pooling window: half the training crop along every axis (40 for 80^3)."""
    return tuple(max(1, int(s) // 2) for s in input_size)


def variance_scaling_(weight: torch.Tensor, factor: float = 2.0) -> torch.Tensor:
    """Fill a dense kernel in place as the reference's ``tf.contrib.layers.variance_scaling_initializer()``.

    Its defaults (``factor=2.0, mode='FAN_IN', uniform=False``): a normal distribution truncated at
    two standard deviations, drawn with ``stddev = sqrt(1.3 * factor / fan_in)`` so that the
    truncated values have a standard deviation of about ``sqrt(factor / fan_in)`` (He et al.'s
    initialisation for ReLU networks).

    Args:
        weight: a ``(out_features, in_features)`` kernel (PyTorch's layout: ``fan_in`` is its
            second size).
        factor: the variance factor (2.0, the initialiser's default).

    Returns:
        ``weight``, filled.

    Examples:
        >>> _ = torch.manual_seed(0)
        >>> w = variance_scaling_(torch.empty(400, 200))
        >>> round(w.std().item() / math.sqrt(2.0 / 200), 1), bool(w.abs().max() <= 2 * math.sqrt(2.6 / 200))
        (1.0, True)
    """
    std = math.sqrt(1.3 * factor / weight.shape[1])
    return nn.init.trunc_normal_(weight, std=std, a=-2 * std, b=2 * std)


def box_mean(x: torch.Tensor, dim: int, k: int) -> torch.Tensor:
    """Means of every ``k`` consecutive values along ``dim`` (stride 1, no padding): what
    ``avg_pool`` with a window of ``k`` along that axis computes, by running sums.

    Args:
        x: a tensor.
        dim: the axis to average along.
        k: the window, at most ``x.shape[dim]``.

    Returns:
        ``x`` with ``x.shape[dim] - k + 1`` values along ``dim``, in ``x``'s dtype.

    Examples:
        >>> box_mean(torch.tensor([[1.0, 2.0, 3.0, 6.0]]), dim=1, k=2).tolist()
        [[1.5, 2.5, 4.5]]
    """
    sums = F.pad(x.double().cumsum(dim), [0, 0] * (x.ndim - 1 - dim) + [1, 0])
    n = x.shape[dim] - k + 1
    return ((sums.narrow(dim, k, n) - sums.narrow(dim, 0, n)) / k).to(x.dtype)


class ProjectionHead(nn.Module):
    """Average pooling with a window of half the input at stride 1, flatten, Linear(32), ReLU,
    Linear(16), L2 normalisation: the reference code's ``metric_layer``.

    As there, the two dense layers have no bias and their kernels start from the reference's
    variance-scaling initialiser (:func:`variance_scaling_`: He's fan-in initialisation, a normal
    distribution truncated at two standard deviations).

    The pooling keeps the spatial layout: an 80^3 crop of 16-channel features becomes 41^3 x 16
    values before the first linear layer. (A global average pool of an instance-normalised map
    carries almost no information about the image: every image's embedding is then nearly the
    same, and the contrastive loss cannot separate them.) Student and teacher each get one head,
    both trained; the teacher's backbone stays frozen.

    Args:
        in_channels: channels of the feature map (the last decoder stage's width).
        input_size: spatial size of the feature maps it embeds (the training slice or crop).
        hidden: width of the first linear layer.
        out: embedding size.

    Raises:
        ValueError: (forward) a feature map of another size than ``input_size``.

    Examples:
        A head for 4-channel feature maps of 16 x 16 pixels pools with an 8 x 8 window and embeds
        each image as a unit-length vector of 16 values:

        >>> import torch
        >>> _ = torch.manual_seed(0)
        >>> head = ProjectionHead(in_channels=4, input_size=(16, 16))
        >>> head.window
        (8, 8)
        >>> with torch.no_grad():
        ...     emb = head(torch.randn(3, 4, 16, 16))
        >>> tuple(emb.shape), [round(n, 4) for n in emb.norm(dim=1).tolist()]
        ((3, 16), [1.0, 1.0, 1.0])
    """

    def __init__(self, in_channels: int, input_size: Sequence[int], hidden: int = 32, out: int = 16) -> None:
        super().__init__()
        self.in_channels = int(in_channels)
        self.input_size = tuple(int(s) for s in input_size)
        if len(self.input_size) not in (2, 3) or min(self.input_size) < 1:
            raise ValueError(f"input_size must be 2 or 3 positive sizes, got {input_size}")
        self.window = pooling_window(self.input_size)
        pooled = [s - w + 1 for s, w in zip(self.input_size, self.window)]
        self.mlp = nn.Sequential(
            nn.Linear(self.in_channels * math.prod(pooled), hidden, bias=False),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, out, bias=False),
        )
        for layer in (self.mlp[0], self.mlp[2]):
            variance_scaling_(layer.weight)

    def pool(self, features: torch.Tensor) -> torch.Tensor:
        """``(B, C, *input_size)`` -> ``(B, C * prod(input_size - window + 1))``."""
        if tuple(features.shape[1:]) != (self.in_channels, *self.input_size):
            raise ValueError(
                f"the projection head embeds ({self.in_channels}, "
                f"{', '.join(map(str, self.input_size))}) feature maps, got {tuple(features.shape[1:])}"
            )
        # A box filter is separable, and along one axis each window's mean is a difference of two
        # running sums: the same average as ``avg_pool`` with a window of k at stride 1, in O(1) per
        # output instead of O(k) (PyTorch's CPU pooling sums every window afresh: a 32-wide window on
        # a 64x64 window took a quarter of a pkl step). The sums run in float64, so that
        # the difference keeps float32's precision.
        for axis, k in enumerate(self.window):
            features = box_mean(features, 2 + axis, k)
        return features.flatten(1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """``(B, C, *input_size)`` feature map -> ``(B, out)`` unit-length embeddings."""
        return F.normalize(self.mlp(self.pool(features)), dim=1)


def projection_heads(width: int, input_size: Sequence[int]) -> nn.ModuleDict:
    """The pair of projection heads the contrastive loss trains: ``"student"`` and ``"teacher"``.

    Each network's last decoder features go through a head of its own, as in the reference code.

    Args:
        width: channels of the last decoder features (the first of the networks' widths).
        input_size: spatial size of the training inputs (the heads pool over half of it).

    Returns:
        ``ModuleDict`` with the two heads, freshly initialised.
    """
    return nn.ModuleDict({"student": ProjectionHead(width, input_size), "teacher": ProjectionHead(width, input_size)})
