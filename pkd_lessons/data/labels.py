"""Label conventions of the real data sets, mapped onto one set of classes and regions.

Every data set labels the same structures with different numbers, and mixing them up is the most
common mistake with this data. Each :class:`LabelConvention` says which file value means which
*class* (a contiguous index used for training with softmax) and the *regions* that are scored:

=============  ====================================  ==========================
convention     file values                           notes
=============  ====================================  ==========================
``brats``      1 necrotic/non-enh. core, 2 oedema,   BraTS 2017-2021
               4 enhancing
``brats2023``  1 necrotic core, 2 oedema,            BraTS 2023 onwards
               3 enhancing
``msd``        1 oedema, 2 non-enhancing tumour,     Decathlon Task01
               3 enhancing                           (note 1 and 2 swapped)
``myops``      500 LV, 600 RV, 200 myocardium,       MyoPS 2020
               1220 oedema, 2221 scar
=============  ====================================  ==========================

Brain regions: WT (whole tumour) = every tumour label, TC (tumour core) = necrotic or
non-enhancing core + enhancing, ET = enhancing. MONAI's ``ConvertToMultiChannelBasedOnBratsClasses``
assumes BraTS values; applied to MSD labels it silently swaps oedema and core, so this module
converts through the convention instead.

Heart regions: LV blood pool, Myo (all myocardium: normal, oedema and scar), RV blood pool,
Oedema (oedema + scar, as MyoPS scores "edema") and Scar.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pkd_lessons.errors import DataError

BRAIN_CLASSES: tuple[str, ...] = ("background", "necrotic core", "oedema", "enhancing")
BRAIN_REGIONS: dict[str, tuple[int, ...]] = {"WT": (1, 2, 3), "TC": (1, 3), "ET": (3,)}
HEART_CLASSES: tuple[str, ...] = ("background", "LV", "myocardium", "RV", "oedema", "scar")
HEART_REGIONS: dict[str, tuple[int, ...]] = {"LV": (1,), "Myo": (2, 4, 5), "RV": (3,), "Oedema": (4, 5), "Scar": (5,)}


@dataclass(frozen=True)
class LabelConvention:
    """How one data set writes its labels.

    Attributes:
        name: short name (``brats``, ``brats2023``, ``msd``, ``myops``).
        values: file value -> class index (0 is background).
        class_names: name of each class index.
        regions: region name -> the class indices it unites.
    """

    name: str
    values: dict[int, int]
    class_names: tuple[str, ...]
    regions: dict[str, tuple[int, ...]]

    @property
    def num_classes(self) -> int:
        """Number of classes including background."""
        return len(self.class_names)

    @property
    def region_names(self) -> tuple[str, ...]:
        """Names of the scored regions, in order."""
        return tuple(self.regions)

    def to_classes(self, label: np.ndarray, source: str = "label") -> np.ndarray:
        """Map file values to class indices.

        Args:
            label: integer label volume as stored in the file.
            source: name of the file, used in the error message.

        Returns:
            ``uint8`` array of class indices, same shape.

        Raises:
            DataError: a value is not part of this convention (the message lists them).

        Examples:
            BraTS writes the enhancing tumour as 4, the Decathlon swaps oedema and core; both become
            the same classes (1 necrotic core, 2 oedema, 3 enhancing):

            >>> import numpy as np
            >>> BRATS.to_classes(np.array([0, 1, 2, 4])).tolist()
            [0, 1, 2, 3]
            >>> MSD.to_classes(np.array([0, 1, 2, 3])).tolist()
            [0, 2, 1, 3]
            >>> MYOPS.to_classes(np.array([0, 500, 200, 600, 1220, 2221])).tolist()
            [0, 1, 2, 3, 4, 5]

            A value from another convention is an error, not a silent mix-up (3 is BraTS 2023's
            enhancing tumour):

            >>> BRATS.to_classes(np.array([0, 3]), source="seg.nii.gz")  # doctest: +ELLIPSIS
            Traceback (most recent call last):
              ...
            pkd_lessons.errors.DataError: seg.nii.gz: label values [3] are not in the brats convention ...
        """
        label = np.asarray(label)
        if np.issubdtype(label.dtype, np.floating):
            rounded = np.rint(label)
            if not np.array_equal(rounded, label):
                raise DataError(f"{source}: label volume holds non-integer values")
            label = rounded.astype(np.int64)
        # which values occur: a count per value where the values are small non-negative integers
        # (every layout's are), 5-10x faster than np.unique's sort or hash on a whole volume
        lo, hi = (int(label.min()), int(label.max())) if label.size else (0, 0)
        if label.dtype.kind in "iub" and lo >= 0 and hi < 2**16:
            present = np.flatnonzero(np.bincount(label.ravel(order="K"), minlength=1))
        else:
            present = np.unique(label)
        unknown = sorted(set(present.tolist()) - set(self.values))
        if unknown:
            raise DataError(
                f"{source}: label values {unknown} are not in the {self.name} convention "
                f"(expected {sorted(self.values)})"
            )
        lut = np.zeros(int(max(self.values)) + 1, dtype=np.uint8)
        for value, cls in self.values.items():
            lut[value] = cls
        return lut[label]

    def from_classes(self, classes: np.ndarray) -> np.ndarray:
        """Map class indices back to this convention's file values (inverse of :meth:`to_classes`)."""
        inverse = np.zeros(self.num_classes, dtype=np.int32)
        for value, cls in self.values.items():
            inverse[cls] = value
        out = inverse[np.asarray(classes)]
        # one type per convention (not per array): a data set's files all share it
        return out.astype(np.uint8 if max(self.values) < 256 else np.int16)

    def to_regions(self, classes: np.ndarray) -> np.ndarray:
        """Binary region masks from a class-index volume.

        Args:
            classes: class indices (as returned by :meth:`to_classes`), any shape ``S``.

        Returns:
            ``bool`` array of shape ``(len(regions), *S)``.

        Examples:
            The nested brain regions: WT holds every tumour class, TC the core and the enhancing
            tumour, ET the enhancing tumour only:

            >>> import numpy as np
            >>> classes = np.array([0, 1, 2, 3])  # background, necrotic core, oedema, enhancing
            >>> BRATS.region_names
            ('WT', 'TC', 'ET')
            >>> BRATS.to_regions(classes).astype(int).tolist()
            [[0, 1, 1, 1], [0, 1, 0, 1], [0, 0, 0, 1]]
        """
        classes = np.asarray(classes)
        return np.stack([np.isin(classes, members) for members in self.regions.values()])


BRATS = LabelConvention("brats", {0: 0, 1: 1, 2: 2, 4: 3}, BRAIN_CLASSES, BRAIN_REGIONS)
BRATS2023 = LabelConvention("brats2023", {0: 0, 1: 1, 2: 2, 3: 3}, BRAIN_CLASSES, BRAIN_REGIONS)
MSD = LabelConvention("msd", {0: 0, 1: 2, 2: 1, 3: 3}, BRAIN_CLASSES, BRAIN_REGIONS)
MYOPS = LabelConvention("myops", {0: 0, 500: 1, 200: 2, 600: 3, 1220: 4, 2221: 5}, HEART_CLASSES, HEART_REGIONS)

CONVENTIONS: dict[str, LabelConvention] = {c.name: c for c in (BRATS, BRATS2023, MSD, MYOPS)}
