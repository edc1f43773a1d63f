"""The package's metrics beside the official BraTS evaluation's, on the same phantom prediction files.

The official package (``brats-evaluation`` on ``panoptica``) pins ``numpy<2.3``, so ``make test``
installs it in an environment of its own (``.venv-brats-eval``; or ``$PKD_BRATS_EVAL_PYTHON``) and
``official_brats_evaluation.py`` runs there. Four brain phantom cases are "predicted" by their human
rater's label (boundary noise), the same label without enhancing tumour (an empty region), shifted by
one voxel, and with a false enhancing lesion. The package scores the files with ``evaluate
--predictions``. What must hold:

* Dice equal to 1e-6 wherever the official value is a number;
* the package's ``hd95_pooled`` equal to the official HD95 (which is in voxels: the official global
  HD95 ignores the spacing) times the voxel size, to 1e-6 mm; the package's own HD95 (MONAI's, the
  larger directed 95th percentile) is reported beside it, and the difference is on the fidelity page;
* the empty-region conventions: official NaN where a region is absent from both, Dice 0 and HD95
  infinite where it is absent from one; the package's 1 and 0, and 0 and the volume's diagonal.

Lesion-wise, the official package matches one to one and averages over matched lesions only, while
BraTS 2023 merges and charges misses and false lesions: the two agree on lesions matched one to one,
which a synthetic case of separate lesions checks (counts, per-lesion Dice and HD95).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from conftest import REPO
from pkd_lessons.cli import main
from pkd_lessons.data import LAYOUTS, find_cases
from pkd_lessons.data.labels import BRATS
from pkd_lessons.data.nifti import read_nifti, write_like
from pkd_lessons.evaluation.lesion_wise import lesions
from pkd_lessons.evaluation.prediction import score_case

OFFICIAL_PYTHON = Path(os.environ.get("PKD_BRATS_EVAL_PYTHON") or REPO / ".venv-brats-eval" / "bin" / "python")
SCRIPT = Path(__file__).with_name("official_brats_evaluation.py")
REGIONS = {"WT": "wt", "TC": "tc", "ET": "et"}

pytestmark = pytest.mark.skipif(
    not OFFICIAL_PYTHON.is_file(),
    reason=f"the official BraTS evaluation is not installed at {OFFICIAL_PYTHON} (make test installs it)",
)


def official(pairs: list[dict], tmp: Path) -> dict:
    """The official package's scores of ``pairs`` (see official_brats_evaluation.py)."""
    (tmp / "pairs.json").write_text(json.dumps(pairs))
    subprocess.run(
        [str(OFFICIAL_PYTHON), str(SCRIPT), str(tmp / "pairs.json"), str(tmp / "scores.json")],
        check=True,
        capture_output=True,
        timeout=600,
    )
    return json.loads((tmp / "scores.json").read_text())


def pair(case: str, prediction: np.ndarray, truth: np.ndarray, spacing, folder: Path) -> dict:
    """Two label arrays in BraTS 2021 values written as files, as the official script takes them."""
    entry = {"case": case, "spacing": list(spacing), "enhancing": 4}
    for key, array in (("prediction", prediction), ("truth", truth)):
        entry[key] = str(folder / f"{case}-{key}.nii.gz")
        nib.save(nib.Nifti1Image(array.astype(np.uint8), np.diag([*spacing, 1.0])), entry[key])
    return entry


def perturbed(rater: np.ndarray, kind: str, brain: np.ndarray) -> np.ndarray:
    """A prediction made from the rater's label (BraTS 2021 values)."""
    out = rater.copy()
    if kind == "no enhancing":
        out[out == 4] = 1  # tumour core and whole tumour unchanged, enhancing tumour absent
    elif kind == "shifted":
        out = np.roll(out, 1, axis=0)
    elif kind == "false lesion":
        far = np.argwhere(brain & (rater == 0))
        centre = far[np.argmax(np.linalg.norm(far - np.argwhere(rater > 0).mean(0), axis=1))]
        box = tuple(slice(max(c - 2, 0), c + 2) for c in centre)
        out[box] = np.where(brain[box], 4, out[box])
    return out


@pytest.fixture(scope="module")
def scored(brain_set, tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("official")
    predictions = tmp / "predictions"
    predictions.mkdir()
    kinds = ["rater", "no enhancing", "shifted", "false lesion"]
    pairs = []
    for case, kind in zip(find_cases(brain_set), kinds):
        rater, _ = read_nifti(case.label)
        brain = read_nifti(case.images["t1ce"].path)[0] != 0
        path = predictions / LAYOUTS["brats"].prediction_name(case.case_id)
        write_like(perturbed(rater.astype(np.uint8), kind, brain), case.images["t1ce"].path, path)
        spacing = [float(s) for s in nib.load(case.truth).header.get_zooms()[:3]]
        pairs.append(
            {
                "case": case.case_id,
                "prediction": str(path),
                "truth": str(case.truth),
                "spacing": spacing,
                "enhancing": 4,
            }
        )
    metrics = tmp / "metrics.json"
    argv = ["evaluate", "--predictions", str(predictions), "--data", str(brain_set), "--out", str(metrics)]
    assert main([*argv, "--lesion-wise", "--quiet"]) == 0
    (record,) = json.loads(metrics.read_text())
    return {
        "package": record,
        "official": official(pairs, tmp),
        "pairs": pairs,
        "kinds": dict(zip(record["cases"], kinds)),
    }


def test_dice_and_pooled_hd95_equal_the_official_values(scored):
    rows = []
    for pair in scored["pairs"]:
        case, spacing = pair["case"], pair["spacing"]
        assert len(set(spacing)) == 1  # isotropic: the official HD95 in voxels times one voxel size
        for region, key in REGIONS.items():
            mine, theirs = scored["package"]["cases"][case][region], scored["official"][case][key]
            if math.isnan(theirs["global_bin_dsc"]):  # absent from both: the official package abstains
                assert (mine["dice"], mine["hd95"]) == (1.0, 0.0)
                continue
            assert mine["dice"] == pytest.approx(theirs["global_bin_dsc"], abs=1e-6), (case, region)
            if math.isinf(theirs["global_bin_hd95"]):  # absent from one: Dice 0, and a convention for HD95
                diagonal = math.dist((0, 0, 0), [n * s for n, s in zip(nib.load(pair["truth"]).shape, spacing)])
                assert mine["dice"] == 0.0 and mine["hd95"] == pytest.approx(diagonal)
                rows.append((case, region, mine["dice"], theirs["global_bin_dsc"], mine["hd95"], math.inf, math.inf))
                continue
            official_mm = theirs["global_bin_hd95"] * spacing[0]
            assert mine["hd95_pooled"] == pytest.approx(official_mm, abs=1e-6), (case, region)
            rows.append(
                (case, region, mine["dice"], theirs["global_bin_dsc"], mine["hd95"], mine["hd95_pooled"], official_mm)
            )
    kinds = scored["kinds"]
    print(
        "\n| case | prediction | region | Dice (package) | Dice (official) | HD95 MONAI (mm) | HD95 pooled (mm) "
        "| HD95 official (mm) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for case, region, d, od, h, hp, oh in rows:
        print(f"| {case} | {kinds[case]} | {region} | {d:.6f} | {od:.6f} | {h:.2f} | {hp:.2f} | {oh:.2f} |")
    assert any(kinds[r[0]] == "no enhancing" and r[1] == "ET" for r in rows)  # the empty-region case was met


def test_lesion_matching_agrees_with_the_official_package_on_separate_lesions(tmp_path):
    """Separate lesions: one found shifted, one missed, one false. With no dilation, no size limit and
    the official HD95, the package's lesion machinery and the official one must count and score them
    the same."""
    shape, spacing = (48, 48, 48), (1.5, 1.5, 1.5)
    grid = np.indices(shape)

    def ball(centre, radius):
        return ((grid - np.array(centre)[:, None, None, None]) ** 2).sum(0) <= radius**2

    truth = np.zeros(shape, np.uint8)
    truth[ball((14, 14, 14), 8)] = 2
    truth[ball((14, 14, 14), 5)] = 4
    truth[ball((36, 36, 12), 3)] = 4  # missed
    prediction = np.zeros(shape, np.uint8)
    prediction[ball((15, 13, 15), 7)] = 2
    prediction[ball((15, 13, 15), 5)] = 4
    prediction[ball((36, 10, 36), 3)] = 4  # false
    theirs = official([pair("c", prediction, truth, spacing, tmp_path)], tmp_path)["c"]
    pred_regions, truth_regions = (
        BRATS.to_regions(BRATS.to_classes(prediction)),
        BRATS.to_regions(BRATS.to_classes(truth)),
    )
    for (region, key), pred, ref in zip(REGIONS.items(), pred_regions, truth_regions):
        mine = lesions(pred, ref, spacing, dilation=0, min_volume_mm3=0, pooled=True)
        tp = len(mine["dice"]) - mine["missed"]
        assert (tp, mine["false_positives"], mine["missed"]) == (
            theirs[key]["tp"],
            theirs[key]["fp"],
            theirs[key]["fn"],
        )
        found = [(d, h) for d, h in zip(mine["dice"], mine["hd95"]) if d > 0]
        assert np.mean([d for d, _ in found]) == pytest.approx(theirs[key]["sq_dsc"], abs=1e-6), region
        assert np.mean([h for _, h in found]) == pytest.approx(theirs[key]["sq_hd95"], abs=1e-6), region
    assert theirs["et"]["fp"] == 1 and theirs["et"]["fn"] == 1  # the case holds what it claims to


def test_empty_region_conventions(tmp_path):
    """The fidelity page's table of empty regions, both sides: enhancing tumour absent from both, and
    present in both without overlapping (a distance the package measures, the official package calls
    infinite)."""
    shape, spacing = (32, 32, 32), (1.0, 1.0, 1.0)
    truth, apart = np.zeros(shape, np.uint8), np.zeros(shape, np.uint8)
    truth[4:14, 4:14, 4:14] = 2  # oedema only: no enhancing tumour
    apart[4:14, 4:14, 4:14] = 2
    truth[7:10, 7:10, 7:10], apart[10:13, 10:13, 10:13] = 4, 4  # enhancing in both, apart
    no_et = truth.copy()
    no_et[no_et == 4] = 2
    theirs = official(
        [pair("both", no_et, no_et, spacing, tmp_path), pair("apart", apart, truth, spacing, tmp_path)], tmp_path
    )
    mine = {
        "both": score_case(BRATS.to_classes(no_et), BRATS.to_classes(no_et), BRATS, spacing, pooled=True)["ET"],
        "apart": score_case(BRATS.to_classes(apart), BRATS.to_classes(truth), BRATS, spacing, pooled=True)["ET"],
    }
    assert math.isnan(theirs["both"]["et"]["global_bin_dsc"]) and math.isnan(theirs["both"]["et"]["global_bin_hd95"])
    assert (mine["both"]["dice"], mine["both"]["hd95"], mine["both"]["hd95_pooled"]) == (1.0, 0.0, 0.0)
    assert theirs["apart"]["et"]["global_bin_dsc"] == 0.0 and math.isinf(theirs["apart"]["et"]["global_bin_hd95"])
    assert mine["apart"]["dice"] == 0.0 and 0 < mine["apart"]["hd95"] < math.dist((0, 0, 0), shape)
