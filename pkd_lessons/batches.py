"""Training batches: every training slice stacked in one tensor, drawn by index.

Indexing one stacked tensor is much cheaper than a ``DataLoader`` assembling dicts slice by slice,
and it makes batch order a function of one random generator, so runs repeat exactly and resume
exactly. The frozen teacher's outputs for the same slices can be cached once
(:func:`teacher_cache`); :mod:`pkd_lessons.feed` places both for the device and
:mod:`pkd_lessons.augment` transforms the images and the cached outputs together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from pkd_lessons.data.volumes import CaseVolume


@dataclass
class SliceBank:
    """Stacked 2D slices of a set of cases, zero-padded to one size.

    Attributes:
        images: ``(N, C, H, W)`` ``float16`` (normalised intensities), all modalities.
        labels: ``(N, H, W)`` ``uint8`` annotation (rater's label) classes.
        modalities: channel names.
        origin: ``(N, 2)`` case index and slice index of each slice.
    """

    images: torch.Tensor
    labels: torch.Tensor
    modalities: tuple[str, ...]
    origin: np.ndarray

    @classmethod
    def from_volumes(cls, volumes: Sequence[CaseVolume], axis: int = 2, min_foreground: float = 0.05,
                     multiple: int = 8, target: str = "label") -> "SliceBank":
        """Stack the slices (along ``axis``) whose foreground covers at least ``min_foreground``.

        Slices are padded to a multiple of ``multiple`` (the networks' down-sampling factor), so that
        the networks need no padding of their own and a flip of a slice flips its teacher outputs,
        bottleneck included, exactly. ``target`` chooses what ``labels`` holds: ``"label"`` (the
        annotation, what every method learns from) or ``"truth"`` (the clean truth: the positive control).

        Raises:
            ValueError: no volumes, volumes without labels, or modalities that differ between cases.
        """
        if not volumes:
            raise ValueError("no training cases")
        mods = volumes[0].modalities
        if any(v.modalities != mods for v in volumes):
            raise ValueError("all cases must have the same modalities")
        if target not in ("label", "truth"):
            raise ValueError(f"target must be 'label' or 'truth', got {target!r}")
        if any(getattr(v, target) is None for v in volumes):
            raise ValueError(f"training needs a {target}; case(s) without: "
                             + ", ".join(v.case_id for v in volumes if getattr(v, target) is None))
        planes = [tuple(np.delete(np.asarray(v.shape), axis)) for v in volumes]
        h, w = (-(-max(p[i] for p in planes) // multiple) * multiple for i in range(2))
        images, labels, origin = [], [], []
        for c, v in enumerate(volumes):
            keep = v.foreground_slices(axis, min_foreground)
            img = np.moveaxis(v.image, axis + 1, 1)[:, keep]          # (C, n, a, b)
            lab = np.moveaxis(getattr(v, target), axis, 0)[keep]                 # (n, a, b)
            pad = ((0, 0), (0, 0), (0, h - img.shape[2]), (0, w - img.shape[3]))
            images.append(np.pad(img, pad).transpose(1, 0, 2, 3))
            labels.append(np.pad(lab, pad[1:]))
            origin += [(c, int(s)) for s in keep]
        return cls(torch.from_numpy(np.concatenate(images)).half(),
                   torch.from_numpy(np.concatenate(labels)).to(torch.uint8), mods, np.asarray(origin))

    def __len__(self) -> int:
        return len(self.images)

    def channels(self, modalities: Sequence[str]) -> list[int]:
        """Indices of the given modalities."""
        return [self.modalities.index(m) for m in modalities]


@dataclass
class TeacherOutputs:
    """The frozen teacher's outputs for every slice of a :class:`SliceBank`.

    Attributes:
        logits: ``(N, K, H, W)`` ``float16``.
        features: ``(N, C, H, W)`` ``float16`` last decoder features (what the projection head embeds;
            spatial, so they are flipped and warped together with the slice).
        bottleneck: ``(N, C', h, w)`` ``float16`` deepest features (used by KD-Net), or None.
    """

    logits: torch.Tensor
    features: torch.Tensor
    bottleneck: torch.Tensor | None


@torch.no_grad()
def teacher_cache(teacher: nn.Module, bank: SliceBank, device: torch.device, batch_size: int = 32,
                  bottleneck: bool = False, autocast=None, progress: bool = True) -> TeacherOutputs:
    """Run the frozen teacher once over every slice of ``bank``.

    Args:
        teacher: the teacher (its input channels are the bank's modalities).
        bank: the training slices.
        device: where to run.
        batch_size: slices per forward pass.
        bottleneck: also keep the bottleneck features (needed by KD-Net).
        autocast: a precision context factory (``Precision.autocast``), or None.
        progress: show a progress bar.

    Returns:
        :class:`TeacherOutputs` on the CPU.
    """
    teacher.eval()
    logits, features, deep = [], [], []
    for start in tqdm(range(0, len(bank), batch_size), desc="teacher cache", unit="batch",
                      disable=not progress, leave=False):
        x = bank.images[start:start + batch_size].to(device).float()
        with autocast(device) if autocast else torch.autocast(device.type, enabled=False):
            out = teacher.forward_all(x)
        logits.append(out["logits"].half().cpu())
        features.append(out["features"].half().cpu())
        if bottleneck:
            deep.append(out["bottleneck"].half().cpu())
    return TeacherOutputs(torch.cat(logits), torch.cat(features), torch.cat(deep) if bottleneck else None)
