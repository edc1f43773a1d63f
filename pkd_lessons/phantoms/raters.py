"""Annotation noise: labels drawn as a human rater would draw them.

Real training labels are not the truth. In BraTS, two experts outlining the same tumour agree with
Dice of roughly 0.75-0.95 depending on the region (Menze et al., IEEE TMI 2015): boundaries wobble,
and each rater has a habit of drawing a little too large or too small. A teacher network trained on
many such labels averages the habits out; it is then a *denoised* consensus, and that is one of the
reasons a student gains from copying it. Without this noise a phantom's labels are perfect, the
teacher adds nothing a student's own labels do not already give, and the lessons would teach a null
result (see the project's method notes).

The model works on the scored *regions* of a label convention, as raters outline them (BraTS: the
whole tumour on FLAIR, the core and the enhancing part on T1ce). Regions contained in another
(TC in WT, ET in TC; oedema in myocardium) are its children; the others are top-level. Let
``d_R(x)`` be the signed distance (mm, negative inside) to region ``R``'s boundary in the clean
label, and let rater ``r`` shift that boundary outwards by

    delta_R(x) = b_{r,R} + c_R + s * g_R(x)

where ``b_{r,R}`` is the rater's habit for the region (positive: draws it larger), ``c_R`` a small
per-case deviation from the habit, and ``g_R`` a smooth unit Gaussian field (correlation length
``jitter_scale_mm``) scaled by ``s = jitter_sd_mm``: the hand's wobble along the boundary.

* Top-level regions compete with background and each other: voxel ``x`` goes to
  ``argmin_R d_R(x) - 2 delta_R(x)`` (background: ``d_bg(x)``, no shift). Against background a
  boundary moves by exactly ``delta_R``; between two regions by the difference of their shifts.
* A child region is ``d_R(x) < delta_R(x)``, kept only inside its drawn parent.

Each voxel's class is then the one whose region memberships match. Voxels outside the anatomy
``mask`` stay background.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from pkd_lessons.data.labels import LabelConvention
from pkd_lessons.phantoms.fields import smooth_field


@dataclass(frozen=True)
class RaterModel:
    """Parameters of the annotation noise.

    Attributes:
        n_raters: size of the rater panel; each case is drawn by one of them.
        habit_sd_mm: spread of the raters' systematic over/under-segmentation per region.
        case_sd_mm: spread of a rater's deviation from their habit on one case.
        jitter_sd_mm: amplitude of the boundary wobble.
        jitter_scale_mm: length over which the wobble varies along a boundary.
        region_scale: ``(region, factor)`` pairs scaling all three spreads for a region whose edge is
            easier (factor < 1) or harder to see; e.g. the enhancing rim's edge is crisp on T1ce,
            the oedema's on FLAIR is diffuse.
    """

    n_raters: int = 4
    habit_sd_mm: float = 1.0
    case_sd_mm: float = 0.5
    jitter_sd_mm: float = 1.0
    jitter_scale_mm: float = 8.0
    region_scale: tuple[tuple[str, float], ...] = ()

    def scales(self, convention: LabelConvention) -> np.ndarray:
        """Spread factor of each region of ``convention`` (1 unless set in ``region_scale``)."""
        given = dict(self.region_scale)
        unknown = set(given) - set(convention.regions)
        if unknown:
            raise ValueError(f"region_scale names unknown regions {sorted(unknown)}")
        return np.asarray([given.get(name, 1.0) for name in convention.regions])

    def panel(self, convention: LabelConvention, rng: np.random.Generator) -> np.ndarray:
        """Draw the raters' habits, shape ``(n_raters, number of regions)`` in mm."""
        habits = rng.normal(0.0, self.habit_sd_mm, (self.n_raters, len(convention.regions)))
        return habits * self.scales(convention)

    def draw(
        self,
        classes: np.ndarray,
        habits: np.ndarray,
        convention: LabelConvention,
        spacing_mm: Sequence[float],
        rng: np.random.Generator,
        mask: np.ndarray | None = None,
    ) -> np.ndarray:
        """Draw one rater's label of a clean class map.

        Args:
            classes: clean class indices (2D or 3D) of ``convention``.
            habits: the rater's habit per region, in mm (one row of :meth:`panel`).
            convention: gives the regions and their nesting.
            spacing_mm: voxel size per axis.
            rng: random generator for the per-case deviation and the wobble.
            mask: voxels a rater may label (anatomy); everything else stays background.

        Returns:
            The rater's class map, same shape and dtype as ``classes``.
        """
        names = list(convention.regions)
        members = [set(convention.regions[n]) for n in names]
        parent = _parents(members)
        scale = self.scales(convention)
        shifts = np.asarray(habits, dtype=float) + scale * rng.normal(0.0, self.case_sd_mm, len(names))
        out = np.zeros_like(classes)
        if not (classes > 0).any():
            return out
        # Work inside the labelled bounding box plus a margin wide enough for the largest shift.
        reach_mm = 4.0 * (self.habit_sd_mm + self.case_sd_mm + self.jitter_sd_mm) + 2 * max(spacing_mm)
        fg = np.argwhere(classes > 0)
        pad = np.asarray([int(np.ceil(reach_mm / s)) for s in spacing_mm])
        lo = np.maximum(fg.min(0) - pad, 0)
        hi = np.minimum(fg.max(0) + pad + 1, classes.shape)
        box = tuple(slice(a, b) for a, b in zip(lo, hi))
        sub = classes[box]
        truth = [np.isin(sub, list(m)) for m in members]
        delta = [
            shifts[i] + scale[i] * self.jitter_sd_mm * smooth_field(sub.shape, rng, spacing_mm, self.jitter_scale_mm)
            for i in range(len(names))
        ]
        drawn: list[np.ndarray | None] = [None] * len(names)
        top = [i for i in range(len(names)) if parent[i] is None]
        energies = [signed_distance(~np.any([truth[i] for i in top], axis=0), spacing_mm)]
        energies += [signed_distance(truth[i], spacing_mm) - 2.0 * delta[i] for i in top]
        winner = np.argmin(np.stack(energies), axis=0)
        for j, i in enumerate(top):
            drawn[i] = winner == j + 1
        for i in _topological(parent):
            if parent[i] is not None:
                drawn[i] = (signed_distance(truth[i], spacing_mm) < delta[i]) & drawn[parent[i]]
        # Class of each voxel: the class whose region memberships match the drawn ones.
        code = sum(d.astype(np.int64) << i for i, d in enumerate(drawn))
        lut = np.zeros(1 << len(names), dtype=classes.dtype)
        for k in range(1, convention.num_classes):
            lut[sum(1 << i for i, m in enumerate(members) if k in m)] = k
        out[box] = lut[code]
        if mask is not None:
            out[~mask] = 0
        return out


def _parents(members: list[set]) -> list[int | None]:
    """Index of each region's smallest strict superset among the regions, or None."""
    parents: list[int | None] = []
    for i, m in enumerate(members):
        supersets = [j for j, other in enumerate(members) if j != i and m < other]
        parents.append(min(supersets, key=lambda j: len(members[j])) if supersets else None)
    return parents


def _topological(parent: list[int | None]) -> list[int]:
    """Region indices ordered so that every parent comes before its children."""
    depth = []
    for i in range(len(parent)):
        d, j = 0, i
        while parent[j] is not None:
            d, j = d + 1, parent[j]
        depth.append(d)
    return sorted(range(len(parent)), key=lambda i: depth[i])


def signed_distance(region: np.ndarray, spacing_mm: Sequence[float]) -> np.ndarray:
    """Signed distance to the region's boundary in mm: negative inside, positive outside.

    The boundary lies half a voxel beyond the outermost voxel centres, so a one-voxel region has
    distance -half a voxel at its centre rather than 0.

    Args:
        region: boolean mask.
        spacing_mm: voxel size per axis.

    Returns:
        ``float32`` signed distance of the same shape (a large constant for an empty or full region).
    """
    if not region.any():
        return np.full(region.shape, 1e6, dtype=np.float32)
    if region.all():
        return np.full(region.shape, -1e6, dtype=np.float32)
    half = 0.5 * min(spacing_mm)
    outside = ndimage.distance_transform_edt(~region, sampling=spacing_mm)
    inside = ndimage.distance_transform_edt(region, sampling=spacing_mm)
    return np.where(region, -(inside - half), outside - half).astype(np.float32)
