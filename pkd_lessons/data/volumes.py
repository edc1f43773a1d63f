"""Read a case's files into checked, normalised arrays."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from pkd_lessons.data.labels import LabelConvention
from pkd_lessons.data.layouts import LAYOUTS, Case
from pkd_lessons.data.nifti import read_nifti
from pkd_lessons.data.normalize import zscore_percentile
from pkd_lessons.errors import DataError

AFFINE_TOLERANCE_MM = 1e-2


@dataclass
class CaseVolume:
    """One case in memory, checked and normalised.

    Attributes:
        case_id: identifier.
        modalities: modality names, the order of ``image``'s channels.
        image: ``(C, X, Y, Z)`` ``float32``, z-scored per modality.
        label: ``(X, Y, Z)`` ``uint8`` class indices of the annotation (a rater's, for phantoms),
            or None.
        truth: class indices used for scoring: the clean truth where the data set has one, the
            annotation otherwise.
        mask: foreground (brain) voxels.
        affine: voxel-to-world matrix.
        convention: the label convention the files used.
    """

    case_id: str
    modalities: tuple[str, ...]
    image: np.ndarray
    label: np.ndarray | None
    truth: np.ndarray | None
    mask: np.ndarray
    affine: np.ndarray
    convention: LabelConvention

    @property
    def spacing(self) -> tuple[float, ...]:
        """Voxel size in mm."""
        return tuple(float(v) for v in np.linalg.norm(self.affine[:3, :3], axis=0))

    @property
    def shape(self) -> tuple[int, ...]:
        """Spatial shape."""
        return self.image.shape[1:]

    def channel(self, modality: str) -> np.ndarray:
        """The volume of one modality."""
        if modality not in self.modalities:
            raise KeyError(f"{self.case_id} has no modality {modality!r}; it has {self.modalities}")
        return self.image[self.modalities.index(modality)]

    def foreground_slices(self, axis: int = 2, min_foreground: float = 0.05) -> np.ndarray:
        """Indices of the slices along ``axis`` whose foreground (brain) covers at least ``min_foreground``."""
        other = tuple(a for a in range(3) if a != axis)
        return np.flatnonzero(self.mask.mean(axis=other) >= min_foreground)

    def regions(self, which: str = "truth") -> np.ndarray:
        """Region masks ``(R, X, Y, Z)`` of the truth (``"truth"``) or annotation (``"label"``)."""
        classes = self.truth if which == "truth" else self.label
        if classes is None:
            raise ValueError(f"{self.case_id} has no {which}")
        return self.convention.to_regions(classes)


def _check_geometry(name: str, shape, affine, ref_name: str, ref_shape, ref_affine) -> None:
    if tuple(shape) != tuple(ref_shape):
        raise DataError(f"{name}: shape {tuple(shape)} differs from {ref_name} {tuple(ref_shape)}")
    if not np.allclose(affine, ref_affine, atol=AFFINE_TOLERANCE_MM):
        raise DataError(
            f"{name}: affine (orientation/position) differs from {ref_name}; "
            "the modalities must be co-registered on the same grid"
        )


def _read_label(path, convention: LabelConvention, ref_name: str, ref_shape, ref_affine) -> np.ndarray:
    array, affine = read_nifti(path, dtype=np.float32)
    if array.ndim != 3:
        raise DataError(f"{path}: label must be 3-D, got shape {array.shape}")
    _check_geometry(str(path), array.shape, affine, ref_name, ref_shape, ref_affine)
    return convention.to_classes(array, source=str(path))


def load_case(case: Case, normalize: bool = True) -> CaseVolume:
    """Read, check and normalise one case.

    Checks: every file is readable NIfTI with finite values; every modality and the labels share
    one shape and affine; no modality is all zero; label values belong to the layout's convention.
    4-D Decathlon images must have the four modalities as the last axis.

    Args:
        case: the case, from :func:`~pkd_lessons.data.layouts.find_cases`.
        normalize: z-score each modality (see :func:`~pkd_lessons.data.normalize.zscore_percentile`).

    Returns:
        The :class:`CaseVolume`.

    Raises:
        DataError: with the file and the problem.
    """
    channels = []
    ref = None
    cache: dict = {}
    for modality, ref_img in case.images.items():
        if ref_img.path not in cache:
            cache[ref_img.path] = read_nifti(ref_img.path)
        array, affine = cache[ref_img.path]
        if ref_img.channel is not None:
            expected = ref_img.channels or len(case.images)
            if array.ndim != 4 or array.shape[3] != expected:
                raise DataError(
                    f"{ref_img.path}: expected a 4-D image with {expected} "
                    f"modalities on the last axis, got shape {array.shape}"
                )
            array = array[..., ref_img.channel]
        elif array.ndim != 3:
            raise DataError(f"{ref_img.path}: expected a 3-D image, got shape {array.shape}")
        if not array.any():
            where = f" (channel {ref_img.channel})" if ref_img.channel is not None else ""
            raise DataError(
                f"{ref_img.path}{where}: every voxel of case {case.case_id}'s {modality} image is zero; "
                "the file is empty or damaged"
            )
        if ref is None:
            ref = (str(ref_img.path), array.shape, affine)
        else:
            _check_geometry(str(ref_img.path), array.shape, affine, *ref)
        channels.append(array)
    image = np.stack(channels, dtype=np.float32)
    brain = LAYOUTS[case.layout].anatomy == "brain"
    # Brain data sets are skull-stripped: the brain is every voxel non-zero in some modality.
    # Cardiac images are not masked: the whole field of view is normalised.
    mask = (image != 0).any(0) if brain else np.ones(image.shape[1:], dtype=bool)
    if normalize:
        for c, channel in enumerate(image):
            image[c] = zscore_percentile(channel, mask)
    label = truth = None
    if case.label is not None:
        label = _read_label(case.label, case.convention, *ref)
    truth = _read_label(case.truth, case.convention, *ref) if case.truth is not None else label
    return CaseVolume(case.case_id, case.modalities, image, label, truth, mask, ref[2], case.convention)


def load_cases(cases: list[Case], normalize: bool = True, progress: bool = True) -> list[CaseVolume]:
    """Load several cases with a progress bar (see :func:`load_case`)."""
    return [load_case(c, normalize) for c in tqdm(cases, desc="loading", unit="case", disable=not progress)]
