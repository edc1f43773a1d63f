"""Label conventions: every data set's numbers map to the same classes and regions."""

from __future__ import annotations

import numpy as np
import pytest

from pkd_lessons import DataError
from pkd_lessons.data.labels import BRATS, BRATS2023, CONVENTIONS, MSD, MYOPS


def test_brats_regions():
    label = np.array([0, 1, 2, 4])
    wt, tc, et = BRATS.to_regions(BRATS.to_classes(label))
    assert wt.tolist() == [False, True, True, True]
    assert tc.tolist() == [False, True, False, True]
    assert et.tolist() == [False, False, False, True]


def test_msd_swaps_oedema_and_core():
    # MSD: 1 oedema, 2 non-enhancing tumour, 3 enhancing.
    label = np.array([0, 1, 2, 3])
    wt, tc, et = MSD.to_regions(MSD.to_classes(label))
    assert wt.tolist() == [False, True, True, True]
    assert tc.tolist() == [False, False, True, True]  # oedema (1) is NOT core
    assert et.tolist() == [False, False, False, True]


def test_brats2023_enhancing_is_three():
    assert BRATS2023.to_regions(BRATS2023.to_classes(np.array([3])))[2].tolist() == [True]
    with pytest.raises(DataError, match=r"\[4\]"):
        BRATS2023.to_classes(np.array([4]))


def test_myops_regions():
    label = np.array([0, 500, 200, 600, 1220, 2221])
    regions = dict(zip(MYOPS.region_names, MYOPS.to_regions(MYOPS.to_classes(label))))
    assert regions["LV"].tolist() == [False, True, False, False, False, False]
    assert regions["Myo"].tolist() == [False, False, True, False, True, True]
    assert regions["RV"].tolist() == [False, False, False, True, False, False]
    assert regions["Oedema"].tolist() == [False, False, False, False, True, True]
    assert regions["Scar"].tolist() == [False, False, False, False, False, True]


@pytest.mark.parametrize("name", sorted(CONVENTIONS))
def test_round_trip(name):
    conv = CONVENTIONS[name]
    values = np.array(sorted(conv.values))
    assert np.array_equal(conv.from_classes(conv.to_classes(values)), values)


def test_unknown_value_names_source_and_values():
    with pytest.raises(DataError, match=r"case_seg\.nii\.gz: label values \[3\] are not in the brats"):
        BRATS.to_classes(np.array([0, 3, 4]), source="case_seg.nii.gz")


def test_non_integer_labels_refused():
    with pytest.raises(DataError, match="non-integer"):
        BRATS.to_classes(np.array([0.0, 1.5]))
