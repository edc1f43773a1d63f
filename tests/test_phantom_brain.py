"""The brain phantom: layout, contrasts, lesion sizes, annotation noise, determinism."""

from __future__ import annotations

import hashlib
import json
import time

import nibabel as nib
import numpy as np
import pytest

from pkd_lessons.data.labels import BRATS
from pkd_lessons.evaluation.metrics import region_dice
from pkd_lessons.phantoms import make_phantoms
from pkd_lessons.phantoms.brain import BrainPhantomConfig, make_brain_case
from pkd_lessons.phantoms.mni import load_tissue_template

N_CASES = 6


@pytest.fixture(scope="module")
def cases():
    return [make_brain_case(seed=11, index=i) for i in range(N_CASES)]


def _median(image, where):
    assert where.sum() > 20, "too few voxels to compare"
    return float(np.median(image[where]))


def test_files_in_brats2021_layout(brain_set):
    names = sorted(p.name for p in (brain_set / "BraTS2021_00002").iterdir())
    assert names == [f"BraTS2021_00002_{s}.nii.gz" for s in ("flair", "seg", "seg_clean", "t1", "t1ce", "t2")]
    assert "Louis Collins" in (brain_set / "MNI-COPYRIGHT.txt").read_text()
    manifest = json.loads((brain_set / "phantom.json").read_text())
    assert manifest["kind"] == "brain" and len(manifest["records"]) == 4
    img = nib.load(brain_set / "BraTS2021_00002" / "BraTS2021_00002_t1ce.nii.gz")
    assert img.get_data_dtype() == np.int16
    assert np.allclose(np.linalg.norm(img.affine[:3, :3], axis=0), 2.0)


def test_label_values_follow_brats(cases):
    for case in cases:
        assert set(np.unique(case.truth)) <= {0, 1, 2, 4}
        assert set(np.unique(case.label)) <= {0, 1, 2, 4}
        assert {1, 2, 4} <= set(np.unique(case.truth)), "every case has all three compartments"


def test_contrast_ordering(cases):
    """Literature order of every tissue in every modality, checked on each case."""
    for case in cases:
        t = case.tissues
        wm = (t["wm"] > 0.9) & (case.truth == 0)
        gm = (t["gm"] > 0.8) & (case.truth == 0)
        csf = (t["csf"] > 0.9) & (case.truth == 0)
        nec, oed, enh = (case.truth == v for v in (1, 2, 4))
        m = {
            k: {
                name: _median(img, w)
                for name, w in [("wm", wm), ("gm", gm), ("csf", csf), ("nec", nec), ("oed", oed), ("enh", enh)]
            }
            for k, img in case.images.items()
        }
        # T1: white matter brighter than grey, CSF darkest.
        assert m["t1"]["wm"] > m["t1"]["gm"] > m["t1"]["csf"]
        # T1ce: the enhancing rim is the brightest tissue; necrosis dark.
        assert m["t1ce"]["enh"] > 1.3 * max(m["t1ce"]["wm"], m["t1ce"]["gm"], m["t1ce"]["oed"])
        assert m["t1ce"]["nec"] < m["t1ce"]["wm"] and m["t1ce"]["nec"] < 0.7 * m["t1ce"]["enh"]
        # T2: CSF brightest, oedema bright, grey above white.
        assert m["t2"]["csf"] > m["t2"]["oed"] > m["t2"]["gm"] > m["t2"]["wm"]
        # FLAIR: oedema bright, CSF dark (nulled).
        assert m["flair"]["oed"] > 1.2 * max(m["flair"]["wm"], m["flair"]["gm"])
        assert m["flair"]["csf"] < 0.5 * m["flair"]["wm"]


def test_background_is_zero_and_brain_is_not(cases):
    for case in cases:
        brain = case.images["t1"] > 0
        assert 0.3 < brain.mean() < 0.8
        for img in case.images.values():
            assert (img[~brain] == 0).mean() > 0.99


def test_lesion_volumes_plausible(cases):
    """BraTS glioblastomas: whole tumour tens to a few hundred ml, core and enhancing smaller."""
    for case in cases:
        v = case.info["volume_ml"]
        assert 5 < v["WT"] < 300
        assert 1 < v["TC"] < v["WT"]
        assert 0.5 < v["ET"] < v["TC"]
    centres = {tuple(c.info["centre_vox"]) for c in cases}
    assert len(centres) == len(cases), "lesions grow at different sites"


def test_inter_rater_dice_in_brats_range(cases):
    """Two raters of a fresh panel per case (averaging over panels), as BraTS reports pairs of raters."""
    cfg = BrainPhantomConfig()
    inter, vs_truth = [], []
    for i, case in enumerate(cases):
        habits = cfg.raters.panel(BRATS, np.random.default_rng([i, 0]))
        truth = BRATS.to_classes(case.truth)
        mask = case.images["t1"] > 0
        a = cfg.raters.draw(truth, habits[0], BRATS, (2.0,) * 3, np.random.default_rng([i, 1]), mask)
        b = cfg.raters.draw(truth, habits[1], BRATS, (2.0,) * 3, np.random.default_rng([i, 2]), mask)
        inter.append(list(region_dice(a, b, BRATS).values()))
        vs_truth.append(list(region_dice(BRATS.to_classes(case.label), truth, BRATS).values()))
    inter_mean = np.mean(inter, axis=0)
    assert ((inter_mean > 0.75) & (inter_mean < 0.95)).all(), inter_mean
    truth_mean = np.mean(vs_truth, axis=0)
    assert ((truth_mean > 0.8) & (truth_mean < 0.99)).all(), truth_mean


def test_raters_have_habits():
    """A rater with a positive habit draws larger regions than the truth, on average."""
    cfg = BrainPhantomConfig()
    case = make_brain_case(seed=3, index=0)
    truth = BRATS.to_classes(case.truth)
    grow = np.array([2.0, 2.0, 2.0])
    big = cfg.raters.draw(truth, grow, BRATS, (2.0,) * 3, np.random.default_rng(0))
    small = cfg.raters.draw(truth, -grow, BRATS, (2.0,) * 3, np.random.default_rng(0))
    assert (small > 0).sum() < (truth > 0).sum() < (big > 0).sum()


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    def digest(folder):
        h = hashlib.sha256()
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                h.update(p.name.encode() + p.read_bytes())
        return h.hexdigest()

    a = make_phantoms("brain", tmp_path / "a", cases=2, seed=5, progress=False)
    b = make_phantoms("brain", tmp_path / "b", cases=2, seed=5, progress=False)
    c = make_phantoms("brain", tmp_path / "c", cases=2, seed=6, progress=False)
    assert digest(a) == digest(b)
    assert digest(a) != digest(c)


def test_case_depends_only_on_seed_and_index():
    first = make_brain_case(seed=2, index=3)
    again = make_brain_case(seed=2, index=3)
    other = make_brain_case(seed=2, index=4)
    assert np.array_equal(first.images["flair"], again.images["flair"])
    assert not np.array_equal(first.truth, other.truth)


def test_anatomy_varies_between_cases(cases):
    brains = [c.images["t1"] > 0 for c in cases[:3]]
    overlap = (brains[0] & brains[1]).sum() / (brains[0] | brains[1]).sum()
    assert 0.7 < overlap < 0.99


@pytest.mark.timing
def test_generation_speed():
    load_tissue_template()  # once per process; not part of a case's cost
    # CPU time of this process, not wall time: on a shared machine other jobs stretch the wall clock
    # (2.25 s a case was measured with two other CPU-bound jobs on 2 cores), not the work done here.
    start = time.process_time()
    for i in range(3):
        make_brain_case(seed=0, index=i)
    per_case = (time.process_time() - start) / 3
    # The target is 0.5 s a case on one core; this bound only catches a large regression.
    assert per_case < 2.0, f"{per_case:.2f} s per case"


def test_one_millimetre_option():
    case = make_brain_case(seed=0, index=0, cfg=BrainPhantomConfig(voxel_mm=1.0))
    assert case.images["t1"].shape == load_tissue_template().shape
    assert np.allclose(np.linalg.norm(case.affine[:3, :3], axis=0), 1.0)


def test_bad_voxel_size():
    with pytest.raises(ValueError, match="voxel_mm"):
        BrainPhantomConfig(voxel_mm=10)


def test_rater_keeps_nesting_and_mask():
    """Drawn labels keep BraTS's nesting (ET inside TC inside WT) and stay inside the brain."""
    cfg = BrainPhantomConfig()
    case = make_brain_case(seed=8, index=1)
    truth = BRATS.to_classes(case.truth)
    mask = case.images["t1"] > 0
    for r in range(3):
        drawn = cfg.raters.draw(truth, np.array([3.0, -2.0, 1.0]), BRATS, (2.0,) * 3, np.random.default_rng(r), mask)
        wt, tc, et = BRATS.to_regions(drawn)
        assert not (et & ~tc).any() and not (tc & ~wt).any()
        assert not (drawn[~mask] > 0).any()
