"""Lesion-wise Dice and HD95: the BraTS 2023 ranking metrics, which count every lesion alike.

The legacy metrics score a region as one mask, so a large lesion found well hides a small one
missed. BraTS 2023 scores each lesion of the truth and charges every false lesion:

1. Each region's truth and prediction are split into lesions: 26-connected components.
2. Truth lesions whose dilations (3 voxels, 18-connected, for gliomas) touch are one lesion: gaps of
   up to 6 voxels close.
3. A truth lesion is matched with every predicted component that touches the lesion dilated by the
   same amount; its Dice and HD95 are those of the lesion against the union of its matches (no match:
   Dice 0, HD95 374 mm).
4. Truth lesions of 50 mm^3 or less are left out (their matches are not false lesions either).
5. Predicted components that touch no truth lesion are false positives: Dice 0, HD95 374 mm each.

``lesion-wise Dice = sum of the lesions' Dice / (lesions + false positives)``, the same for HD95 with
374 for each false positive; a region absent from both scores Dice 1 and HD95 0.

This follows the BraTS 2023 metrics script (``BraTS-2023-Metrics``), rewritten here rather than
installed: it is a script, not a package, and the official evaluation package on the package index
(``brats-evaluation``, on ``panoptica``) reports a different lesion-wise number (the mean over
matched lesions only, with one-to-one matching and no dilation) and pins ``numpy<2.3``. Components
come from SciPy; each lesion's HD95 is :func:`~pkd_lessons.evaluation.metrics.hd95`, the larger of
the two directed 95th percentiles, as in the 2023 script (which weights surface elements by their
area and takes the nearest rank instead of interpolating, so the two can differ slightly).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy import ndimage

from pkd_lessons.data.labels import LabelConvention
from pkd_lessons.evaluation.metrics import hd95 as directed_hd95
from pkd_lessons.evaluation.metrics import pooled_hd95

#: HD95 charged for a missed or a false lesion (mm), as the BraTS 2023 script does.
MISSED_HD95 = 374.0
#: BraTS 2023 glioma settings: dilation in voxels; lesions of at most this volume are left out (mm^3).
DILATION = 3
MIN_VOLUME_MM3 = 50.0

_COMPONENTS = np.ones((3, 3, 3), dtype=bool)  # 26-connectivity
_DILATION = ndimage.generate_binary_structure(3, 2)  # 18-connectivity, as the 2023 script


def lesions(
    prediction: np.ndarray,
    truth: np.ndarray,
    spacing: Sequence[float],
    dilation: int = DILATION,
    min_volume_mm3: float = MIN_VOLUME_MM3,
    pooled: bool = False,
) -> dict:
    """Match one region's predicted and true lesions and score each (steps 1-5 of the module docstring).

    Args:
        prediction: boolean mask of the region.
        truth: boolean mask, same shape.
        spacing: voxel size in mm.
        dilation: voxels by which truth lesions are merged and matched (0: a predicted component must
            overlap the lesion, and only touching lesions are one).
        min_volume_mm3: truth lesions of at most this volume are left out.
        pooled: each lesion's HD95 by :func:`~pkd_lessons.evaluation.metrics.pooled_hd95`, the
            official evaluation package's definition, instead of the 2023 script's.

    Returns:
        ``{"dice": [...], "hd95": [...], "false_positives": n, "missed": n, "left_out": n}``: the
        scores of every kept truth lesion (missed ones included, as 0 and 374), in label order.
    """
    prediction, truth = np.asarray(prediction, bool), np.asarray(truth, bool)
    voxel_mm3 = float(np.prod(spacing))
    truth_cc, _ = ndimage.label(truth, structure=_COMPONENTS)
    pred_cc, n_pred = ndimage.label(prediction, structure=_COMPONENTS)
    if dilation:
        merged, _ = ndimage.label(ndimage.binary_dilation(truth, _DILATION, iterations=dilation), structure=_COMPONENTS)
        truth_cc = np.where(truth, merged, 0)  # truth lesions within reach of each other: one lesion
    matched: set[int] = set()
    dice, hd95, missed, left_out = [], [], 0, 0
    for index, found in enumerate(ndimage.find_objects(truth_cc), start=1):
        if found is None:
            continue
        lesion = truth_cc == index
        reach = ndimage.binary_dilation(lesion, _DILATION, iterations=dilation) if dilation else lesion
        touching = np.unique(pred_cc[reach])
        touching = touching[touching > 0]
        matched.update(touching.tolist())
        if lesion.sum() * voxel_mm3 <= min_volume_mm3:
            left_out += 1
            continue
        if not len(touching):
            missed += 1
            dice.append(0.0)
            hd95.append(MISSED_HD95)
            continue
        found_mask = np.isin(pred_cc, touching)
        dice.append(float(2 * (lesion & found_mask).sum() / (lesion.sum() + found_mask.sum())))
        hd95.append((pooled_hd95 if pooled else directed_hd95)(found_mask, lesion, spacing))
    return {
        "dice": dice,
        "hd95": hd95,
        "false_positives": n_pred - len(matched),
        "missed": missed,
        "left_out": left_out,
    }


def lesion_wise_scores(
    prediction: np.ndarray,
    truth: np.ndarray,
    convention: LabelConvention,
    spacing: Sequence[float],
    dilation: int = DILATION,
    min_volume_mm3: float = MIN_VOLUME_MM3,
) -> dict[str, dict[str, float]]:
    """Lesion-wise Dice and HD95 of every region of two class maps (the module docstring's formula).

    Args:
        prediction: class indices.
        truth: class indices, same shape.
        convention: the regions (WT, TC, ET for the brain).
        spacing: voxel size in mm.
        dilation: see :func:`lesions`.
        min_volume_mm3: see :func:`lesions`.

    Returns:
        region -> ``{"dice", "hd95", "lesions", "false_positives", "missed"}``.

    Examples:
        A truth of two enhancing lesions; the prediction finds the large one exactly, misses the
        small one and adds a false one. The legacy Dice of ET is 0.94; lesion-wise, the missed and the
        false lesion count as much as the found one:

        >>> import numpy as np
        >>> from pkd_lessons.data.labels import BRATS
        >>> truth, prediction = np.zeros((40, 40, 40), np.uint8), np.zeros((40, 40, 40), np.uint8)
        >>> truth[5:15, 5:15, 5:15] = 3  # 1000 voxels
        >>> truth[30:34, 30:34, 30:34] = 3  # 64 voxels, missed
        >>> prediction[5:15, 5:15, 5:15] = 3
        >>> prediction[30:34, 5:9, 30:34] = 3  # a false lesion
        >>> et = lesion_wise_scores(prediction, truth, BRATS, (1, 1, 1))["ET"]
        >>> round(et["dice"], 3), round(et["hd95"], 1), et["lesions"], et["missed"], et["false_positives"]
        (0.333, 249.3, 2, 1, 1)
    """
    pred_regions, truth_regions = convention.to_regions(prediction), convention.to_regions(truth)
    out = {}
    for name, pred, ref in zip(convention.region_names, pred_regions, truth_regions):
        found = lesions(pred, ref, spacing, dilation, min_volume_mm3)
        count = len(found["dice"]) + found["false_positives"]
        if count == 0:  # nothing to find, nothing found (or only lesions too small to count)
            dice, hd = 1.0, 0.0
        else:
            dice = sum(found["dice"]) / count
            hd = (sum(found["hd95"]) + MISSED_HD95 * found["false_positives"]) / count
        out[name] = {
            "dice": float(dice),
            "hd95": float(hd),
            "lesions": len(found["dice"]),
            "false_positives": found["false_positives"],
            "missed": found["missed"],
        }
    return out


def lesion_wise_summary(records: Mapping[str, dict]) -> list[dict]:
    """Legacy and lesion-wise scores side by side: one row per network and region, means over cases.

    Args:
        records: name -> a record of :func:`~pkd_lessons.evaluation.segmentation_files.score_folder`
            scored with ``lesion_wise=True``.

    Returns:
        Rows of ``{"network", "region", "dice", "lesion_dice", "hd95", "hd95_pooled", "lesion_hd95",
        "lesions", "missed", "false_positives"}``: Dice and HD95 means over the cases, lesion counts
        summed.
    """
    rows = []
    for name, record in records.items():
        cases, lesion_cases = list(record["cases"].values()), list(record["lesion_wise"].values())
        for region in cases[0]:
            rows.append(
                {
                    "network": name,
                    "region": region,
                    "dice": float(np.mean([c[region]["dice"] for c in cases])),
                    "lesion_dice": float(np.mean([c[region]["dice"] for c in lesion_cases])),
                    "hd95": float(np.mean([c[region]["hd95"] for c in cases])),
                    "hd95_pooled": float(np.mean([c[region]["hd95_pooled"] for c in cases])),
                    "lesion_hd95": float(np.mean([c[region]["hd95"] for c in lesion_cases])),
                    **{
                        k: int(sum(c[region][k] for c in lesion_cases))
                        for k in ("lesions", "missed", "false_positives")
                    },
                }
            )
    return rows
