"""The multimodal teacher: one encoder per modality, fused by attention at every scale."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.blocks import Convolution
from torch import nn

from pkd_lessons.models.unet import (
    DROPOUT,
    NORM,
    Decoder,
    Encoder,
    SegmentationNet,
    _check_dims,
    crop_to,
    general_conv,
    pad_to_multiple,
)


class AttentionFusion(nn.Module):
    """The reference code's modality attention: one sigmoid weight per modality and location, then a
    1x1 fusion.

    With ``f_1 ... f_M`` the modalities' feature maps at one scale (``C`` channels each):

    * ``a = sigmoid(IN(conv3x3([f_1, ..., f_M])))``, ``(B, M, *S)``: a 3x3 (3x3x3) convolution of the
      concatenated maps to ``M`` maps, instance norm, sigmoid;
    * ``fused = LeakyReLU_0.2(IN(conv1x1([a_1 f_1, ..., a_M f_M])))``, ``(B, C, *S)``.

    Args:
        spatial_dims: 2 or 3.
        channels: ``C``, the width of one modality's features at this scale.
        modalities: ``M``.
    """

    def __init__(self, spatial_dims: int, channels: int, modalities: int) -> None:
        super().__init__()
        self.attention = Convolution(
            spatial_dims, channels * modalities, modalities, kernel_size=3, norm=NORM, act="sigmoid", adn_ordering="NA"
        )
        self.project = general_conv(spatial_dims, channels * modalities, channels, kernel_size=1)

    def forward(self, features: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        stacked = torch.cat(list(features), dim=1)
        weights = self.attention(stacked)
        weighted = torch.cat([f * weights[:, m : m + 1] for m, f in enumerate(features)], dim=1)
        return self.project(weighted), weights


class MultimodalTeacher(nn.Module):
    """Teacher with one encoder per modality, attention fusion at each scale and a shared decoder.

    The input holds the modalities as channels, in the order of ``modalities``.

    Args:
        modalities: names of the input channels, e.g. ``("flair", "t1", "t1ce", "t2")``.
        num_classes: output classes including background.
        spatial_dims: 2 or 3.
        widths: channels of each stage, finest first, per modality encoder and in the decoder (four
            stages in the paper; two or more work).
        dropout: dropout rate of each encoder's residual blocks, applied after each of their
            convolutions (:class:`~pkd_lessons.models.unet.Encoder`; the reference has one dropout
            layer after the middle convolution of each stage, rate 0.3 by default and 0.0 in its
            training script).

    The forward pass returns ``(logits, features)`` as :class:`~pkd_lessons.models.unet.SegmentationNet`.

    Examples:
        A small 2D teacher (three stages, widths 4/8/16) on a batch of two 30 x 22 slices with all
        four modalities. The attention maps hold one weight in (0, 1) per modality and location, at
        every scale:

        >>> import torch
        >>> _ = torch.manual_seed(0)
        >>> teacher = MultimodalTeacher(("flair", "t1", "t1ce", "t2"), num_classes=4, widths=(4, 8, 16))
        >>> out = teacher.forward_all(torch.randn(2, 4, 30, 22))
        >>> tuple(out["logits"].shape), tuple(out["features"].shape)
        ((2, 4, 30, 22), (2, 4, 30, 22))
        >>> [tuple(a.shape) for a in out["attention"]]
        [(2, 4, 30, 22), (2, 4, 15, 11), (2, 4, 8, 6)]
        >>> bool(((out["attention"][0] > 0) & (out["attention"][0] < 1)).all())
        True

        It cannot run with a modality missing:

        >>> teacher(torch.randn(2, 1, 30, 22))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
          ...
        ValueError: the teacher needs all 4 modalities (flair, t1, t1ce, t2) as input channels, in that order; ...
    """

    def __init__(
        self,
        modalities: Sequence[str],
        num_classes: int,
        spatial_dims: int = 2,
        widths: Sequence[int] = (16, 32, 64, 128),
        dropout: float = DROPOUT,
    ) -> None:
        super().__init__()
        _check_dims(spatial_dims)
        if len(modalities) < 2:
            raise ValueError(f"a multimodal teacher needs at least two modalities, got {list(modalities)}")
        self.modalities = tuple(modalities)
        self.num_classes = num_classes
        self.spatial_dims = spatial_dims
        self.widths = tuple(widths)
        self.in_channels = len(self.modalities)
        self.encoders = nn.ModuleList(Encoder(spatial_dims, 1, widths, dropout) for _ in self.modalities)
        self.fusions = nn.ModuleList(AttentionFusion(spatial_dims, w, len(self.modalities)) for w in widths)
        self.decoder = Decoder(spatial_dims, widths, num_classes)

    @property
    def multiple(self) -> int:
        """Input sizes are padded to a multiple of this."""
        return 2 ** (len(self.widths) - 1)

    def forward_all(self, x: torch.Tensor) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        """Logits, last decoder features, bottleneck and the attention maps of every scale."""
        if x.ndim != self.spatial_dims + 2:
            raise ValueError(
                f"expected a (B, C, ...) tensor with {self.spatial_dims} spatial axes, got shape {tuple(x.shape)}"
            )
        if x.shape[1] != len(self.modalities):
            raise ValueError(
                f"the teacher needs all {len(self.modalities)} modalities ({', '.join(self.modalities)}) as "
                f"input channels, in that order; got {x.shape[1]} channel(s). A teacher cannot run with a "
                "modality missing: that is what the unimodal student is for."
            )
        x, sizes = pad_to_multiple(x, self.multiple)
        per_modality = [enc(x[:, m : m + 1]) for m, enc in enumerate(self.encoders)]
        fused, attention = [], []
        for scale, fusion in enumerate(self.fusions):
            f, a = fusion([feats[scale] for feats in per_modality])
            fused.append(f)
            attention.append(a)
        logits, last = self.decoder(fused)
        return {
            "logits": crop_to(logits, sizes),
            "features": crop_to(last, sizes),
            "bottleneck": fused[-1],
            "attention": [crop_to(a, tuple(-(-s // 2**i) for s in sizes)) for i, a in enumerate(attention)],
        }

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.forward_all(x)
        return out["logits"], out["features"]


def early_fusion_teacher(
    modalities: Sequence[str],
    num_classes: int,
    spatial_dims: int = 2,
    widths: Sequence[int] = (16, 32, 64, 128),
    dropout: float = DROPOUT,
) -> SegmentationNet:
    """The plain alternative: all modalities stacked as input channels of one U-Net."""
    net = SegmentationNet(len(modalities), num_classes, spatial_dims, widths, dropout)
    net.modalities = tuple(modalities)
    return net


def student(
    num_classes: int,
    spatial_dims: int = 2,
    widths: Sequence[int] = (16, 32, 64, 128),
    modality: str | None = None,
    dropout: float = DROPOUT,
) -> SegmentationNet:
    """The unimodal student: the same backbone fed by one modality (one input channel).

    The reference code repeats the one modality into four channels; a one-channel first layer is the
    cleaner equivalent.

    Examples:
        A small student (widths 4/8/16) on two T1ce slices of 30 x 22 pixels, a size that is not a
        multiple of 4: the input is padded inside and the outputs cropped back to it:

        >>> import torch
        >>> _ = torch.manual_seed(0)
        >>> net = student(num_classes=4, widths=(4, 8, 16), modality="t1ce")
        >>> net.modalities, net.in_channels, net.multiple
        (('t1ce',), 1, 4)
        >>> logits, features = net(torch.randn(2, 1, 30, 22))
        >>> tuple(logits.shape), tuple(features.shape)  # (B, classes, H, W), (B, widths[0], H, W)
        ((2, 4, 30, 22), (2, 4, 30, 22))
    """
    net = SegmentationNet(1, num_classes, spatial_dims, widths, dropout)
    net.modalities = (modality,) if modality else ()
    return net
