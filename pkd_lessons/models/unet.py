"""The U-Net shared by teacher and student, built from MONAI's residual blocks.

What it shares with the reference code: four stages (widths 16/32/64/128 there; configurable here
so that the CPU lessons can use a small one), instance norm and leaky ReLU 0.2 after every
convolution, a residual connection in every encoder stage, stride-2 down-sampling, skip connections,
dropout in the encoder (a layer the reference's model function gives a rate of 0.3 by default, which
its training script sets to 0.0), a 1x1(x1) convolution to the classes, and the last
decoder map (``widths[0]`` channels, full resolution; ``d1_out`` in the reference) returned as the
features the contrastive loss embeds.

Where it differs (``docs/fidelity.md``): the reference's encoder stage is three ``general_conv``
blocks (``c1``, ``c2`` with dropout, ``c3``, output ``c1 + c3``) and its decoder stage is
nearest-neighbour up-sampling -> conv -> concat -> conv -> 1x1 conv, not residual. Here each stage is
MONAI's :class:`~monai.networks.blocks.UnetResBlock` (two convolutions and a residual) and the
decoder up-samples with a transposed convolution into a residual block. Measured on the brain
phantom (2 CPU cores, widths 8-64, 400 teacher steps), the reference's blocks cost 13 % more per step
and reached a held-out WT Dice of 0.82 against 0.87 with these; the lessons' CPU budget decides for
MONAI's blocks. The teacher's attention fusion, which is what the paper is about, is the
reference's (:class:`~pkd_lessons.models.teacher.AttentionFusion`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from monai.networks.blocks import Convolution, UnetOutBlock, UnetResBlock
from monai.networks.blocks.dynunet_block import get_conv_layer
from torch import nn

NORM = ("instance", {"affine": True})
ACT = ("leakyrelu", {"negative_slope": 0.2, "inplace": True})
#: The reference model function's default dropout rate per encoder stage (its training script feeds 0.0).
DROPOUT = 0.3


def general_conv(
    spatial_dims: int, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1
) -> Convolution:
    """The reference's ``general_conv``: convolution -> instance norm -> leaky ReLU 0.2.

    (The reference pads by reflection; MONAI's zero padding is kept here: see ``docs/fidelity.md``.)
    """
    return Convolution(
        spatial_dims,
        in_channels,
        out_channels,
        strides=stride,
        kernel_size=kernel_size,
        act=ACT,
        norm=NORM,
        adn_ordering="NA",
    )


class Subsample(nn.Module):
    """Keep every ``stride``-th voxel along each spatial axis (what a 1x1(x1) convolution of that
    stride reads of its input)."""

    def __init__(self, stride: int, spatial_dims: int) -> None:
        super().__init__()
        self.stride = stride
        self.spatial_dims = spatial_dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[(..., *[slice(None, None, self.stride)] * self.spatial_dims)]


def subsample_before_projection(block: UnetResBlock, spatial_dims: int) -> UnetResBlock:
    """Make a strided residual block's 1x1(x1) projection subsample first and convolve at stride 1.

    The same function, weights and parameter names as MONAI's strided 1x1 convolution; what it avoids
    is oneDNN's backward pass of a strided 1x1 convolution in the channels-last layout, which frees
    memory twice on the CPU (torch 2.13: "double free or corruption"; ``torch.compile`` picks that
    layout on its own, so a compiled student crashed the process).
    """
    projection = getattr(block, "conv3", None)
    if projection is None or max(projection.conv.stride) == 1:
        return block
    stride = projection.conv.stride[0]
    projection.conv.stride = (1,) * spatial_dims
    # the parameter names stay MONAI's (``conv3.conv.weight``): checkpoints load either way
    block.conv3 = nn.Sequential(
        OrderedDict(subsample=Subsample(stride, spatial_dims), **dict(projection.named_children()))
    )
    return block


def _check_dims(spatial_dims: int) -> None:
    if spatial_dims not in (2, 3):
        raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")


class Encoder(nn.Module):
    """Residual stages (four in the paper, any number from two); returns the feature map of every
    stage (finest first).

    Args:
        spatial_dims: 2 or 3.
        in_channels: input channels (1 for one modality).
        widths: channels of each stage.
        dropout: dropout rate passed to MONAI's residual blocks, which apply it after each of their
            convolutions (the reference has one dropout layer per stage, after its middle
            convolution, whose rate defaults to 0.3 and is 0.0 in its training script); 0 turns it
            off.
    """

    def __init__(self, spatial_dims: int, in_channels: int, widths: Sequence[int], dropout: float = DROPOUT) -> None:
        super().__init__()
        _check_dims(spatial_dims)
        chans = [in_channels, *widths]
        self.stages = nn.ModuleList(
            subsample_before_projection(
                UnetResBlock(
                    spatial_dims,
                    chans[i],
                    chans[i + 1],
                    kernel_size=3,
                    stride=1 if i == 0 else 2,
                    norm_name=NORM,
                    act_name=ACT,
                    dropout=dropout or None,
                ),
                spatial_dims,
            )
            for i in range(len(widths))
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features


class UpBlock(nn.Module):
    """Transposed convolution (x2), concatenation with the skip, residual block (MONAI's pieces).

    The reference's decoder stage is up-sampling, conv, concat, conv, 1x1 conv (not residual); see
    the module docstring for why this one is kept.
    """

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.up = get_conv_layer(
            spatial_dims, in_channels, out_channels, kernel_size=2, stride=2, conv_only=True, is_transposed=True
        )
        self.block = UnetResBlock(
            spatial_dims, 2 * out_channels, out_channels, kernel_size=3, stride=1, norm_name=NORM, act_name=ACT
        )

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.block(torch.cat([self.up(x), skip], dim=1))


class Decoder(nn.Module):
    """From the deepest features back to full resolution through the skips; logits and last features."""

    def __init__(self, spatial_dims: int, widths: Sequence[int], num_classes: int) -> None:
        super().__init__()
        self.ups = nn.ModuleList(UpBlock(spatial_dims, widths[i], widths[i - 1]) for i in range(len(widths) - 1, 0, -1))
        self.head = UnetOutBlock(spatial_dims, widths[0], num_classes)

    def forward(self, features: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        x = features[-1]
        for up, skip in zip(self.ups, reversed(features[:-1])):
            x = up(x, skip)
        return self.head(x), x


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, ...]]:
    """Zero-pad the spatial axes up to a multiple of ``multiple``; returns the original sizes."""
    sizes = tuple(x.shape[2:])
    pad = []
    for s in reversed(sizes):
        pad += [0, (-s) % multiple]
    return (F.pad(x, pad) if any(pad) else x), sizes


def crop_to(x: torch.Tensor, sizes: tuple[int, ...]) -> torch.Tensor:
    """Undo :func:`pad_to_multiple`."""
    return x[(..., *[slice(0, s) for s in sizes])]


class SegmentationNet(nn.Module):
    """The U-Net: the student (one modality in) or the early-fusion teacher (all in).

    Inputs of any size work: they are zero-padded to a multiple of ``2 ** (stages - 1)`` and the
    outputs cropped back.

    Args:
        in_channels: input channels (1 for a student).
        num_classes: output classes including background.
        spatial_dims: 2 (slices) or 3 (volumes).
        widths: channels of each stage, finest first (four stages, 16/32/64/128, in the paper; two or
            more work).
        dropout: dropout rate of the encoder's residual blocks (see :class:`Encoder`; 0.3 is the
            reference model function's default, 0.0 what its training script uses).

    The forward pass returns ``(logits, features)``: logits ``(B, num_classes, *S)`` and the last
    decoder feature map ``(B, widths[0], *S)``, which the contrastive loss embeds.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        spatial_dims: int = 2,
        widths: Sequence[int] = (16, 32, 64, 128),
        dropout: float = DROPOUT,
    ) -> None:
        super().__init__()
        _check_dims(spatial_dims)
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.spatial_dims = spatial_dims
        self.widths = tuple(widths)
        self.encoder = Encoder(spatial_dims, in_channels, widths, dropout)
        self.decoder = Decoder(spatial_dims, widths, num_classes)

    @property
    def multiple(self) -> int:
        """Input sizes are padded to a multiple of this."""
        return 2 ** (len(self.widths) - 1)

    def _check_input(self, x: torch.Tensor) -> None:
        if x.ndim != self.spatial_dims + 2:
            raise ValueError(
                f"expected a (B, C, {'H, W' if self.spatial_dims == 2 else 'D, H, W'}) tensor, "
                f"got shape {tuple(x.shape)}"
            )
        if x.shape[1] != self.in_channels:
            raise ValueError(f"expected {self.in_channels} input channel(s), got {x.shape[1]}")

    def forward_all(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Logits, last decoder features and the bottleneck (deepest encoder features)."""
        self._check_input(x)
        x, sizes = pad_to_multiple(x, self.multiple)
        features = self.encoder(x)
        logits, last = self.decoder(features)
        return {"logits": crop_to(logits, sizes), "features": crop_to(last, sizes), "bottleneck": features[-1]}

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.forward_all(x)
        return out["logits"], out["features"]
