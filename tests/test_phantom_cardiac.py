"""The cardiac phantom: MyoPS layout and labels, sequence contrasts, per-case variation."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from pkd_lessons.data.labels import MYOPS
from pkd_lessons.evaluation.metrics import region_dice
from pkd_lessons.phantoms.cardiac import CardiacPhantomConfig, make_cardiac_case


@pytest.fixture(scope="module")
def cases():
    return [make_cardiac_case(seed=4, index=i) for i in range(8)]


def test_files_in_myops_layout(cardiac_set):
    images = sorted(p.name for p in (cardiac_set / "train25").iterdir())
    assert images[:3] == [f"myops_training_101_{s}.nii.gz" for s in ("C0", "DE", "T2")]
    labels = sorted(p.name for p in (cardiac_set / "train25_myops_gd").iterdir())
    assert labels[:2] == ["myops_training_101_gd.nii.gz", "myops_training_101_gd_clean.nii.gz"]
    img = nib.load(cardiac_set / "train25" / "myops_training_101_DE.nii.gz")
    assert img.ndim == 3 and 3 <= img.shape[2] <= 6


def test_label_values_follow_myops(cases):
    for case in cases:
        assert set(np.unique(case.truth)) <= {0, 200, 500, 600, 1220, 2221}
        assert {200, 500, 600} <= set(np.unique(case.truth))
    assert sum(2221 in np.unique(c.truth) for c in cases) >= len(cases) // 2


def test_sequence_contrasts(cases):
    """bSSFP: blood bright, myocardium dark. LGE: scar bright, healthy myocardium nulled.
    T2 (black blood): oedema brighter than myocardium, blood suppressed."""
    checked = 0
    for case in cases:
        t = case.truth
        blood, myo, oedema, scar = (t == 500), (t == 200), (t == 1220), (t == 2221)
        med = {
            k: {
                n: float(np.median(img[w]))
                for n, w in [("blood", blood), ("myo", myo), ("oedema", oedema), ("scar", scar)]
                if w.sum() > 10
            }
            for k, img in case.images.items()
        }
        assert med["bssfp"]["blood"] > 2 * med["bssfp"]["myo"]
        assert med["t2"]["blood"] < med["t2"]["myo"]
        if "scar" in med["lge"]:
            assert med["lge"]["scar"] > 3 * med["lge"]["myo"]
            checked += 1
        if "oedema" in med["t2"]:
            assert med["t2"]["oedema"] > 1.15 * med["t2"]["myo"]
    assert checked >= 3


def test_cases_vary(cases):
    lv = [c.info["area_cm2"]["LV"] / c.info["slices"] for c in cases]
    myo = [c.info["area_cm2"]["Myo"] / c.info["slices"] for c in cases]
    assert np.std(lv) / np.mean(lv) > 0.05
    assert np.std(myo) / np.mean(myo) > 0.05
    assert len({c.info["slices"] for c in cases}) > 1


def test_rater_label_close_to_truth_but_not_equal(cases):
    dice = [region_dice(MYOPS.to_classes(c.label), MYOPS.to_classes(c.truth), MYOPS) for c in cases]
    for region in ("LV", "Myo", "RV"):
        values = [d[region] for d in dice]
        assert 0.75 < np.mean(values) < 0.99, (region, values)


def test_deterministic():
    a, b = make_cardiac_case(1, 2), make_cardiac_case(1, 2)
    assert all(np.array_equal(a.images[m], b.images[m]) for m in a.images)
    assert np.array_equal(a.label, b.label)


def test_bad_config():
    with pytest.raises(ValueError, match="slices"):
        CardiacPhantomConfig(slices=(4, 2))
