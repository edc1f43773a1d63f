"""The MNI ICBM152 2009 template that nilearn bundles: real adult anatomy, read offline.

nilearn ships the T1 template and the grey- and white-matter probability maps inside its wheel
(197 x 233 x 189 voxels at 1 mm). Cerebrospinal fluid is what remains of the brain mask once grey
and white matter are taken out: ventricles and sulci. Derived images must carry the copyright
notice in :data:`MNI_NOTICE`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import nibabel as nib
import numpy as np
from scipy import ndimage

MNI_NOTICE = """\
The brain phantoms in this folder are derived from the MNI ICBM152 non-linear symmetric 2009a
template (as bundled with nilearn), which carries this notice:

Copyright (C) 1993-2009 Louis Collins, McConnell Brain Imaging Centre, Montreal Neurological
Institute, McGill University. Permission to use, copy, modify, and distribute this software and
its documentation for any purpose and without fee is hereby granted, provided that the above
copyright notice appear in all copies. The authors and McGill University make no representations
about the suitability of this software for any purpose. It is provided "as is" without express or
implied warranty. The authors are not responsible for any data loss, equipment damage, property
loss, or injury to subjects or patients resulting from the use or misuse of this software package.

References: Fonov et al., NeuroImage 47 (2009) S102 and NeuroImage 54 (2011) 313-327;
Collins et al., NeuroImage (1999).
"""


@dataclass(frozen=True)
class TissueTemplate:
    """Tissue fractions of the template, cropped to the brain with a margin, at 1 mm.

    Attributes:
        gm: grey-matter fraction in [0, 1].
        wm: white-matter fraction in [0, 1].
        csf: cerebrospinal-fluid fraction in [0, 1] (inside the brain mask only).
        affine: voxel-to-world matrix of the cropped 1 mm grid (MNI space, RAS).
    """

    gm: np.ndarray
    wm: np.ndarray
    csf: np.ndarray
    affine: np.ndarray

    @property
    def shape(self) -> tuple[int, int, int]:
        """Shape of the 1 mm grid."""
        return self.gm.shape  # type: ignore[return-value]

    @property
    def brain(self) -> np.ndarray:
        """Fraction of each voxel that is brain tissue or CSF."""
        return np.clip(self.gm + self.wm + self.csf, 0.0, 1.0)


@functools.lru_cache(maxsize=1)
def load_tissue_template(margin: int = 6) -> TissueTemplate:
    """Load nilearn's bundled MNI template as tissue fractions (cached; no network).

    Args:
        margin: voxels kept around the brain's bounding box.

    Returns:
        The :class:`TissueTemplate`.
    """
    from nilearn import datasets  # imported here: nilearn is slow to import

    t1_img = nib.load(datasets.MNI152_FILE_PATH)
    t1 = np.asarray(t1_img.dataobj, dtype=np.float32)
    gm = np.asarray(nib.load(datasets.GM_MNI152_FILE_PATH).dataobj, dtype=np.float32) / 255.0
    wm = np.asarray(nib.load(datasets.WM_MNI152_FILE_PATH).dataobj, dtype=np.float32) / 255.0
    # The bundled T1 template is skull-stripped: its support is the brain. Filling holes keeps the
    # ventricles inside the mask; a light smoothing gives the mask a partial-volume edge.
    mask = ndimage.binary_fill_holes(ndimage.binary_closing(t1 > 0, iterations=2))
    mask_frac = ndimage.gaussian_filter(mask.astype(np.float32), 0.6)
    total = gm + wm
    scale = np.where(total > 1.0, 1.0 / np.maximum(total, 1e-6), 1.0)
    gm, wm = gm * scale, wm * scale
    csf = np.clip(mask_frac - gm - wm, 0.0, 1.0) * mask
    idx = np.argwhere(mask)
    lo = np.maximum(idx.min(0) - margin, 0)
    hi = np.minimum(idx.max(0) + margin + 1, mask.shape)
    crop = tuple(slice(a, b) for a, b in zip(lo, hi))
    affine = t1_img.affine.copy()
    affine[:3, 3] = t1_img.affine[:3, :3] @ lo + t1_img.affine[:3, 3]
    return TissueTemplate(
        gm=np.ascontiguousarray(gm[crop]),
        wm=np.ascontiguousarray(wm[crop]),
        csf=np.ascontiguousarray(csf[crop]),
        affine=affine,
    )
