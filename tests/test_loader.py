"""The loader reads every layout into the same regions, normalises, and serves slices and crops."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pkd_lessons.data import CropDataset, SliceDataset, find_cases, load_case, load_cases, split_cases
from pkd_lessons.phantoms.convert import to_brats2023, to_msd


@pytest.fixture(scope="module")
def layouts(brain_set, tmp_path_factory):
    root = tmp_path_factory.mktemp("layouts")
    msd = to_msd(brain_set, root / "decathlon" / "Task01_BrainTumour")
    (msd / "imagesTr" / "._BRATS_001.nii.gz").write_bytes(b"macOS resource fork, not NIfTI")
    return {"brats": brain_set, "msd": msd, "brats2023": to_brats2023(brain_set, root / "brats2023")}


def test_finds_brats_phantom(brain_set):
    cases = find_cases(brain_set)
    assert [c.case_id for c in cases] == [f"BraTS2021_{i:05d}" for i in range(4)]
    assert cases[0].layout == "brats" and cases[0].modalities == ("flair", "t1", "t1ce", "t2")
    assert cases[0].truth is not None and cases[0].truth.name.endswith("_seg_clean.nii.gz")


@pytest.mark.parametrize("layout", ["msd", "brats2023"])
def test_every_brain_layout_gives_the_same_regions_and_images(layouts, layout):
    reference = load_case(find_cases(layouts["brats"])[1])
    cases = find_cases(layouts[layout])
    assert len(cases) == 4 and all(c.layout == layout for c in cases)
    other = load_case(cases[1])
    assert other.modalities == reference.modalities
    np.testing.assert_allclose(other.image, reference.image, atol=1e-5)
    # The annotation, whatever its numbers on disk, gives the same WT/TC/ET.
    assert np.array_equal(other.regions("label"), reference.regions("label"))


def test_msd_reads_parent_folder_and_skips_macos_files(layouts):
    cases = find_cases(layouts["msd"].parent)
    assert len(cases) == 4
    assert all(not c.images["flair"].path.name.startswith("._") for c in cases)
    assert [cases[0].images[m].channel for m in ("flair", "t1", "t1ce", "t2")] == [0, 1, 2, 3]


def test_myops_phantom(cardiac_set):
    cases = find_cases(cardiac_set)
    assert len(cases) == 4 and cases[0].layout == "myops"
    v = load_case(cases[0])
    assert v.modalities == ("bssfp", "lge", "t2")
    assert v.spacing == pytest.approx((1.5, 1.5, 10.0))
    assert set(np.unique(v.truth)) <= set(range(6))
    assert v.mask.all()


def test_clean_truth_used_for_scoring(brain_set):
    v = load_case(find_cases(brain_set)[0])
    assert v.truth is not None and v.label is not None
    assert not np.array_equal(v.truth, v.label), "phantom labels carry annotation noise"


def test_normalisation_zscores_the_brain(brain_set):
    v = load_case(find_cases(brain_set)[0])
    assert (v.image[:, ~v.mask] == 0).all()
    for channel in v.image:
        inside = channel[v.mask]
        lo, hi = np.percentile(inside, [1, 99])
        kept = inside[(inside >= lo) & (inside <= hi)]
        assert abs(kept.mean()) < 1e-3 and abs(kept.std() - 1) < 1e-3


def test_slice_dataset(brain_set):
    volumes = load_cases(find_cases(brain_set), progress=False)
    ds = SliceDataset(volumes, modalities=("t1ce",))
    item = ds[len(ds) // 2]
    assert item["image"].shape == (1, *volumes[0].shape[:2]) and item["image"].dtype == torch.float32
    assert item["label"].dtype == torch.long and item["truth"].shape == volumes[0].shape[:2]
    assert len(ds) < sum(v.shape[2] for v in volumes), "empty slices are left out"
    full = SliceDataset(volumes)
    assert full[0]["image"].shape[0] == 4
    with pytest.raises(ValueError, match="bssfp"):
        SliceDataset(volumes, modalities=("bssfp",))


def test_crop_dataset_is_repeatable_and_inside_bounds(brain_set):
    volumes = load_cases(find_cases(brain_set), progress=False)
    a = CropDataset(volumes, (32, 40, 24), samples=8, seed=3)
    b = CropDataset(volumes, (32, 40, 24), samples=8, seed=3)
    for k in range(8):
        x, y = a[k], b[k]
        assert x["image"].shape == (4, 32, 40, 24) and x["label"].shape == (32, 40, 24)
        assert torch.equal(x["image"], y["image"]) and x["start"] == y["start"]
    assert len({a[k]["start"] for k in range(0, 8, 4)}) == 2
    big = CropDataset(volumes[:1], (128, 128, 128), samples=1)[0]
    assert big["image"].shape == (4, 128, 128, 128), "small volumes are padded"


def test_split_by_case():
    train, val, test = split_cases(list(range(10)), (0.6, 0.2, 0.2), seed=1)
    assert sorted(train + val + test) == list(range(10))
    assert (len(train), len(val), len(test)) == (6, 2, 2)
    assert split_cases(list(range(10)), seed=1) == [train, val, test]
    with pytest.raises(ValueError, match="cannot split 2 cases"):
        split_cases([1, 2], (0.5, 0.25, 0.25))
