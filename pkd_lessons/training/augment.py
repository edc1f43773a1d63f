"""Augmentation of a whole batch at once, on the device the batch is on.

MONAI's random transforms (``RandFlip``, ``RandAffine``, ``RandScaleIntensity``...) work on one
sample at a time with their own random state; applied in a Python loop over a GPU batch they launch
several small kernels per sample, and they know nothing of the teacher's cached outputs, which must
move with the image. So the three augmentations the trainer uses are written here for a batch:

* flips along each spatial axis (``flip``), without a host synchronisation;
* intensity scale and shift per sample and channel (``intensity``), on foreground voxels only;
* a small rotation and isotropic scaling (``affine``), one ``grid_sample`` for the batch: bilinear
  for images and teacher outputs, nearest for labels.

Every random number is drawn on the CPU from the trainer's generator and moved to the device (a few
bytes): the same seed gives the same augmentation on any device, and a resumed run continues the
same random sequence. A draw is made only for an enabled augmentation, so turning one off leaves
the others' sequence unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


def random_flips(generator: torch.Generator, batch: int, axes: int = 2) -> torch.Tensor:
    """``(batch, axes)`` booleans: whether to flip each sample along each spatial axis."""
    return torch.rand((batch, axes), generator=generator) < 0.5


def apply_flips(x: torch.Tensor, flips: torch.Tensor) -> torch.Tensor:
    """Flip each sample of ``x`` (``(B, ..., *S)``, last ``flips.shape[1]`` axes spatial) as ``flips`` says.

    ``torch.where`` over the flipped and unflipped batch, rather than indexing the samples to flip,
    so that a GPU never waits for the host to learn how many there are.
    """
    flips = flips.to(x.device, non_blocking=True)
    n_axes = flips.shape[1]
    for axis in range(n_axes):
        dim = x.ndim - n_axes + axis
        sel = flips[:, axis].view(-1, *([1] * (x.ndim - 1)))
        x = torch.where(sel, x.flip(dim), x)
    return x


def random_thetas(generator: torch.Generator, batch: int, degrees: float) -> torch.Tensor:
    """``(batch, 2, 3)`` affine matrices: rotation in ``±degrees``, scale in ``1 ± degrees/100``."""
    u = torch.rand((batch, 2), generator=generator) * 2 - 1
    angle, scale = u[:, 0] * math.radians(degrees), 1 + u[:, 1] * degrees / 100
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    zeros = torch.zeros_like(cos)
    return torch.stack([torch.stack([cos, -sin, zeros], 1), torch.stack([sin, cos, zeros], 1)], 1)


def apply_affine(
    x: torch.Tensor, theta: torch.Tensor, mode: str = "bilinear", grid: torch.Tensor | None = None
) -> torch.Tensor:
    """Resample ``(B, C, H, W)`` with per-sample matrices ``theta`` (zeros outside, as the background).

    ``grid``: the sampling grid of ``theta`` for this ``H`` x ``W`` if already computed (it does not
    depend on the channels, so images, labels and teacher outputs of one batch share it).
    """
    if grid is None:
        theta = theta.to(x.device, non_blocking=True)
        grid = F.affine_grid(theta.to(torch.float32), list(x.shape), align_corners=False)
    out = F.grid_sample(x.float(), grid, mode=mode, padding_mode="zeros", align_corners=False)
    return out.to(x.dtype)


def random_crops(
    batch: dict[str, torch.Tensor], size: tuple[int, int], generator: torch.Generator, grid: int = 1
) -> dict[str, torch.Tensor]:
    """Cut one random ``size`` window per sample out of every spatial entry of a 2D batch.

    The 2D counterpart of the reference code's random 80^3 crops: each sample's window is drawn
    uniformly among the positions where it fits in the slice, and the same window is cut from the
    images, labels and the teacher's cached outputs. With ``grid > 1`` the window starts on
    multiples of ``grid``, so that an entry ``grid`` times smaller (the teacher's bottleneck, for
    KD-Net) is cut at the matching place. A window as large as the slice returns the batch unchanged.

    Args:
        batch: ``images`` ``(B, C, H, W)`` and other spatial entries.
        size: ``(h, w)``, at most ``(H, W)``, multiples of ``grid``.
        generator: CPU generator for the offsets.
        grid: the offsets' step.

    Returns:
        A new dict.

    Raises:
        ValueError: a window larger than the slices.
    """
    h, w = size
    big_h, big_w = batch["images"].shape[-2:]
    if h > big_h or w > big_w:
        raise ValueError(f"slice_crop {tuple(size)} is larger than the training slices ({big_h}, {big_w})")
    if (h, w) == (big_h, big_w):
        return dict(batch)
    if h % grid or w % grid:
        raise ValueError(f"slice_crop {tuple(size)} must be a multiple of {grid} here")
    b = batch["images"].shape[0]
    oy = (torch.randint((big_h - h) // grid + 1, (b,), generator=generator) * grid).tolist()
    ox = (torch.randint((big_w - w) // grid + 1, (b,), generator=generator) * grid).tolist()
    out = dict(batch)
    for k, x in batch.items():
        if x.ndim < 3:
            continue
        f = big_h // x.shape[-2]
        if f < 1 or x.shape[-2] * f != big_h or x.shape[-1] * f != big_w or grid % f:
            continue  # not a spatial entry of this batch's slices
        out[k] = torch.stack(
            [x[i, ..., oy[i] // f : (oy[i] + h) // f, ox[i] // f : (ox[i] + w) // f] for i in range(b)]
        )
    return out


@dataclass(frozen=True)
class BatchAugment:
    """The trainer's augmentation settings.

    Attributes:
        flip: random flips along every in-plane axis.
        intensity: half-width of the per-channel intensity scale (``1 ± intensity``) and shift
            (``± intensity``, in z-score units); 0 turns it off.
        affine: largest rotation in degrees (scale ``1 ± affine/100``); 0 turns it off.
    """

    flip: bool = True
    intensity: float = 0.0
    affine: float = 0.0

    def __call__(self, batch: dict[str, torch.Tensor], generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Augment a training batch.

        Args:
            batch: ``images`` ``(B, C, *S)``, ``labels`` ``(B, *S)`` and optionally the teacher's
                cached ``t_logits`` ``(B, K, *S)``, ``t_features`` ``(B, C, *S)`` and
                ``t_bottleneck`` (any spatial size).
            generator: CPU generator for the random draws.

        Returns:
            A new dict; spatial entries flipped/resampled together, images rescaled.
        """
        out = dict(batch)
        images = out["images"]
        b, c, spatial = images.shape[0], images.shape[1], images.ndim - 2
        spatial_keys = [k for k in ("images", "labels", "t_logits", "t_features", "t_bottleneck") if k in out]
        if self.flip:
            flips = random_flips(generator, b, spatial).to(images.device, non_blocking=True)
            for k in spatial_keys:
                out[k] = apply_flips(out[k], flips)
        if self.intensity > 0:
            u = torch.rand((2, b, c), generator=generator) * 2 - 1
            u = u.to(images.device, non_blocking=True).view(2, b, c, *([1] * spatial))
            x = out["images"]
            out["images"] = torch.where(x != 0, x * (1 + self.intensity * u[0]) + self.intensity * u[1], x)
        if self.affine > 0:
            if spatial != 2:
                raise ValueError("the affine augmentation is implemented for 2D slices")
            theta = random_thetas(generator, b, self.affine).to(images.device, non_blocking=True)
            grids: dict[tuple[int, int], torch.Tensor] = {}  # one grid per spatial size
            for k in spatial_keys:
                x = out[k][:, None].float() if k == "labels" else out[k]
                size = tuple(x.shape[-2:])
                if size not in grids:
                    grids[size] = F.affine_grid(theta.float(), [b, 1, *size], align_corners=False)
                if k == "labels":
                    out[k] = apply_affine(x, theta, "nearest", grids[size])[:, 0].to(out[k].dtype)
                else:
                    out[k] = apply_affine(x, theta, grid=grids[size])
        return out
