"""A glioblastoma-like lesion: necrotic core, enhancing rim and surrounding oedema.

The lesion is grown from a random seed point in white matter. Each compartment is the inside of
an irregular "radius" ``rho(x) = |x - c| / (1 + a g(x))`` below a threshold, with ``g`` a smooth
random field, so that outlines are lobulated rather than spherical:

* tumour core (necrosis + enhancing rim): ``rho < R_core``;
* necrosis: a second irregular ball of radius ``R_nec`` (40-70 % of ``R_core``) inside the core;
  the enhancing rim is the core minus the necrosis;
* oedema: ``rho < R_oed`` (1.3-2 times ``R_core``), spreading preferentially along white matter
  and never into CSF, minus the core.

Memberships are soft (a logistic edge about half a voxel wide) so that the image shows partial
volume at the lesion's borders; the label is the compartment with the largest membership.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from pkd_lessons.phantoms.fields import smooth_field

NECROSIS, OEDEMA, ENHANCING = 1, 2, 3


@dataclass
class Tumour:
    """A grown lesion on the phantom's grid.

    Attributes:
        necrosis: soft membership of the necrotic core.
        oedema: soft membership of the oedema.
        enhancing: soft membership of the enhancing rim.
        labels: hard class map (0 none, 1 necrosis, 2 oedema, 3 enhancing).
        centre_vox: the seed point.
        radius_mm: ``R_core``.
    """

    necrosis: np.ndarray
    oedema: np.ndarray
    enhancing: np.ndarray
    labels: np.ndarray
    centre_vox: tuple[int, ...]
    radius_mm: float

    @property
    def total(self) -> np.ndarray:
        """Fraction of each voxel occupied by the lesion."""
        return self.necrosis + self.oedema + self.enhancing


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return (0.5 * (1.0 + np.tanh(0.5 * x))).astype(np.float32)


def grow_tumour(
    wm: np.ndarray,
    gm: np.ndarray,
    csf: np.ndarray,
    spacing_mm: Sequence[float],
    rng: np.random.Generator,
    core_radius_mm: tuple[float, float] = (10.0, 20.0),
    necrosis_fraction: tuple[float, float] = (0.4, 0.7),
    oedema_factor: tuple[float, float] = (1.3, 2.0),
) -> Tumour:
    """Grow a lesion at a random white-matter site.

    Args:
        wm: white-matter fraction on the phantom grid.
        gm: grey-matter fraction.
        csf: CSF fraction.
        spacing_mm: voxel size per axis.
        rng: random generator.
        core_radius_mm: range of ``R_core``.
        necrosis_fraction: range of ``R_nec / R_core``.
        oedema_factor: range of ``R_oed / R_core``.

    Returns:
        The :class:`Tumour`.
    """
    spacing = np.asarray(spacing_mm, dtype=np.float32)
    r_core = rng.uniform(*core_radius_mm)
    r_nec = r_core * rng.uniform(*necrosis_fraction)
    r_oed = r_core * rng.uniform(*oedema_factor)
    parenchyma = wm + gm
    # Seed: deep white matter, far enough from the brain's edge for the core to fit.
    # Chessboard distance never exceeds the Euclidean one, so this depth is a safe lower bound,
    # at a fifth of the cost of an exact distance transform.
    depth_mm = ndimage.distance_transform_cdt(parenchyma + csf > 0.5, metric="chessboard") * float(spacing.min())
    candidates = np.argwhere((wm > 0.6) & (depth_mm > 0.8 * r_core + 5.0))
    if len(candidates) == 0:
        candidates = np.argwhere(wm > 0.5)
    centre = candidates[rng.integers(len(candidates))]
    grid = np.meshgrid(
        *[(np.arange(n, dtype=np.float32) - c) * s for n, c, s in zip(wm.shape, centre, spacing)], indexing="ij"
    )
    dist = np.sqrt(sum(g * g for g in grid))
    edge = 0.5 * float(spacing.min())  # logistic width of a boundary, in mm

    def irregular(scale: float, amplitude: float, extra: np.ndarray | float = 0.0) -> np.ndarray:
        lobes = smooth_field(wm.shape, rng, spacing_mm, scale)
        return dist / np.maximum(1.0 + amplitude * lobes + extra, 0.3)

    core = _sigmoid((r_core - irregular(0.8 * r_core, 0.18)) / edge)
    necrosis = _sigmoid((r_nec - irregular(0.6 * r_core, 0.2)) / edge) * core
    # Oedema follows white-matter tracts: white matter widens the reach, CSF blocks it.
    oedema_reach = _sigmoid((r_oed - irregular(r_core, 0.25, 0.4 * (wm - 0.5))) / edge)
    oedema = oedema_reach * np.clip(parenchyma, 0, 1) * (1.0 - core)
    enhancing = core - necrosis
    necrosis = necrosis * np.clip(parenchyma + csf, 0, 1)
    enhancing = enhancing * np.clip(parenchyma + csf, 0, 1)
    stack = np.stack([1.0 - (necrosis + oedema + enhancing), necrosis, oedema, enhancing])
    labels = np.argmax(stack, axis=0).astype(np.uint8)
    # Keep only the lesion connected to the core: the irregular oedema reach can otherwise leave
    # detached islands far from the tumour.
    # (Computed inside the lesion's bounding box: labelling the whole volume costs more than
    # growing the lesion.)
    box = ndimage.find_objects((labels > 0).astype(np.uint8))[0]
    box = tuple(slice(max(b.start - 1, 0), b.stop + 1) for b in box)
    sub = labels[box]
    parts, _ = ndimage.label(sub > 0)
    core_parts = np.unique(parts[(sub == NECROSIS) | (sub == ENHANCING)])
    keep = np.isin(parts, core_parts[core_parts > 0])
    near = np.zeros(labels.shape, bool)
    near[box] = ndimage.binary_dilation(keep)
    necrosis, oedema, enhancing = (m * near for m in (necrosis, oedema, enhancing))
    labels = np.zeros_like(labels)
    labels[box] = np.where(keep, sub, 0)
    return Tumour(
        necrosis.astype(np.float32),
        oedema.astype(np.float32),
        enhancing.astype(np.float32),
        labels,
        tuple(int(c) for c in centre),
        float(r_core),
    )
