"""Overlap between two segmentations, region by region (MONAI's Dice underneath)."""

from __future__ import annotations

import numpy as np
import torch
from monai.metrics import compute_dice

from pkd_lessons.data.labels import LabelConvention


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

    Examples:
        Five voxels in BraTS classes (1 necrotic core, 2 oedema, 3 enhancing). The prediction finds
        the oedema, calls the necrotic voxel enhancing and misses the enhancing one: the whole
        tumour is nearly right, the enhancing tumour entirely wrong:

        >>> import numpy as np
        >>> from pkd_lessons.data.labels import BRATS
        >>> reference = np.array([0, 2, 2, 1, 3])
        >>> prediction = np.array([0, 2, 2, 3, 0])
        >>> {region: round(d, 4) for region, d in region_dice(prediction, reference, BRATS).items()}
        {'WT': 0.8571, 'TC': 0.6667, 'ET': 0.0}

        A region absent from both maps counts as found:

        >>> region_dice(np.zeros(4, dtype=int), np.zeros(4, dtype=int), BRATS)
        {'WT': 1.0, 'TC': 1.0, 'ET': 1.0}
    """
    if prediction.shape != reference.shape:
        raise ValueError(f"shapes differ: {prediction.shape} vs {reference.shape}")
    pred = torch.from_numpy(convention.to_regions(prediction))[None].float()
    ref = torch.from_numpy(convention.to_regions(reference))[None].float()
    dice = compute_dice(pred, ref, include_background=True, ignore_empty=False)[0]
    return {name: float(d) for name, d in zip(convention.region_names, dice)}


def annotation_agreement(volumes, convention: LabelConvention | None = None) -> dict[str, float]:
    """Mean Dice per region between the annotation (the rater's label) and the truth.

    On the phantoms this is the *annotation ceiling*: a network that reproduced the rater's labels
    perfectly would score this against the truth. A network can pass it only by averaging out the
    raters' noise, as a good teacher does.

    Args:
        volumes: cases with both ``label`` and ``truth``.
        convention: regions (default: the first case's).

    Returns:
        region -> mean Dice.

    Raises:
        ValueError: no cases, or a case without a separate truth.
    """
    volumes = list(volumes)
    if not volumes:
        raise ValueError("annotation_agreement needs at least one case")
    convention = convention or volumes[0].convention
    scores = []
    for v in volumes:
        if v.label is None or v.truth is None:
            raise ValueError(f"{v.case_id} needs both an annotation and a truth")
        scores.append(region_dice(v.label, v.truth, convention))
    return {r: float(np.mean([s[r] for s in scores])) for r in convention.region_names}
