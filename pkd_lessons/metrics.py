"""Overlap between two segmentations, region by region (MONAI's Dice underneath)."""

from __future__ import annotations

import numpy as np
import torch
from monai.metrics import compute_dice

from pkd_lessons.labels import LabelConvention


def region_dice(prediction: np.ndarray, reference: np.ndarray, convention: LabelConvention) -> dict[str, float]:
    """Dice of each scored region between two class-index maps.

    ``Dice = 2 |A & B| / (|A| + |B|)``; a region absent from both maps counts as a perfect 1.0
    (nothing to find, nothing found), the usual BraTS convention.

    Args:
        prediction: class indices.
        reference: class indices, same shape.
        convention: gives the regions (WT/TC/ET, or LV/Myo/RV/...).

    Returns:
        Region name -> Dice.
    """
    if prediction.shape != reference.shape:
        raise ValueError(f"shapes differ: {prediction.shape} vs {reference.shape}")
    pred = torch.from_numpy(convention.to_regions(prediction))[None].float()
    ref = torch.from_numpy(convention.to_regions(reference))[None].float()
    dice = compute_dice(pred, ref, include_background=True, ignore_empty=False)[0]
    return {name: float(d) for name, d in zip(convention.region_names, dice)}
