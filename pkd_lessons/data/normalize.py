"""Intensity normalisation as in the paper's reference code."""

from __future__ import annotations

import numpy as np


def zscore_percentile(volume: np.ndarray, mask: np.ndarray, lower: float = 1.0, upper: float = 99.0) -> np.ndarray:
    """Z-score a volume with statistics of its foreground voxels between two percentiles.

    ``out = (x - mean) / std`` where mean and std are taken over voxels inside ``mask`` whose
    value lies between the ``lower`` and ``upper`` percentiles of the masked values, so that a few
    very bright vessels or a dark resection cavity do not set the scale. Voxels outside the mask
    are set to 0. MONAI's ``NormalizeIntensity(nonzero=True)`` does the z-score but not the
    percentile trimming of the statistics, hence this small function.

    Args:
        volume: one modality.
        mask: foreground (brain) voxels.
        lower: lower percentile.
        upper: upper percentile.

    Returns:
        ``float32`` normalised volume.
    """
    values = volume[mask].astype(np.float64)
    if values.size == 0:
        return np.zeros_like(volume, dtype=np.float32)
    lo, hi = np.percentile(values, [lower, upper])
    kept = values[(values >= lo) & (values <= hi)]
    mean = kept.mean()
    std = kept.std()
    out = (volume.astype(np.float32) - np.float32(mean)) / np.float32(std if std > 0 else 1.0)
    out[~mask] = 0.0
    return out
