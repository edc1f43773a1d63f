"""Segmentations written in each data set's own format, and scored back from disk.

A network trained for two steps on a tiny brain phantom predicts the same cases in three layouts
(BraTS 2021, BraTS 2023, the Decathlon's): same classes, each layout's own values, names and header.
An oracle in place of the network (it answers each case's truth) shows that every layout's label
values are written exactly as the data set's own label files hold them, MyoPS' included.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from pkd_lessons.cli import main
from pkd_lessons.data import LAYOUTS, find_cases
from pkd_lessons.data.nifti import read_nifti
from pkd_lessons.data.volumes import load_case
from pkd_lessons.errors import DataError
from pkd_lessons.evaluation import segmentation_files
from pkd_lessons.evaluation.prediction import inference_window, predict_volume
from pkd_lessons.evaluation.segmentation_files import MANIFEST, predict_folder, read_prediction, score_folder
from pkd_lessons.phantoms import make_phantoms
from pkd_lessons.phantoms.convert import to_brats2023, to_msd
from pkd_lessons.training.trainer import load_model

TOY = ["--steps", "2", "--widths", "4,8", "--batch-size", "2", "--device", "cpu", "--quiet", "--test-fraction", "0.34"]


@pytest.fixture(scope="module")
def brain(tmp_path_factory) -> dict[str, Path]:
    """A 3-case brain phantom at 4 mm in the three brain layouts, and a T1ce student trained on it."""
    root = tmp_path_factory.mktemp("predict")
    brats = make_phantoms("brain", root / "brats", cases=3, seed=5, voxel_mm=4.0, progress=False)
    run = root / "student"
    assert main(["train", "--method", "baseline", "--data", str(brats), "--out", str(run), *TOY]) == 0
    return {
        "brats": brats,
        "brats2023": to_brats2023(brats, root / "brats2023"),
        "msd": to_msd(brats, root / "msd"),
        "checkpoint": run / "checkpoint.pt",
    }


@pytest.fixture(scope="module")
def predicted(brain, tmp_path_factory) -> dict[str, Path]:
    """The student's predictions of each layout's folder, through the command line."""
    out = {}
    for layout in ("brats", "brats2023", "msd"):
        out[layout] = tmp_path_factory.mktemp("out") / layout
        argv = ["predict", str(brain["checkpoint"]), "--data", str(brain[layout]), "--out", str(out[layout])]
        assert main([*argv, "--device", "cpu", "--quiet"]) == 0
    return out


@pytest.mark.parametrize(
    ("layout", "names", "values"),
    [
        ("brats", ["BraTS2021_00000.nii.gz", "BraTS2021_00001.nii.gz", "BraTS2021_00002.nii.gz"], {0, 1, 2, 4}),
        ("brats2023", [f"BraTS-GLI-{i:05d}-000.nii.gz" for i in range(3)], {0, 1, 2, 3}),
        ("msd", ["BRATS_001.nii.gz", "BRATS_002.nii.gz", "BRATS_003.nii.gz"], {0, 1, 2, 3}),
    ],
)
def test_predictions_are_named_valued_and_placed_as_the_data_set_s_own(brain, predicted, layout, names, values):
    folder = predicted[layout]
    assert sorted(p.name for p in folder.glob("*.nii.gz")) == names
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["layout"] == layout and manifest["modalities"] == ["t1ce"]
    assert set(manifest["label_values"]) == values
    for case in find_cases(brain[layout]):
        written = nib.load(folder / LAYOUTS[layout].prediction_name(case.case_id))
        image = nib.load(case.images["t1ce"].path)
        assert written.shape == image.shape[:3]
        np.testing.assert_allclose(written.affine, image.affine)
        assert written.header.get_sform(coded=True)[1] == image.header.get_sform(coded=True)[1]
        assert np.issubdtype(written.get_data_dtype(), np.integer)
        assert set(np.unique(np.asarray(written.dataobj)).tolist()) <= values


def test_the_three_layouts_get_the_same_classes(brain, predicted):
    """Same network, same scans, three conventions: after each convention's own mapping, the same classes."""
    classes = {}
    for layout, folder in predicted.items():
        convention = LAYOUTS[layout].convention
        files = sorted(folder.glob("*.nii.gz"))
        classes[layout] = [convention.to_classes(read_nifti(f)[0]) for f in files]
    for a, b, c in zip(*classes.values()):
        assert len(np.unique(a)) >= 3  # the untrained network's noise: a comparison of several classes
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)


@pytest.fixture
def oracle(monkeypatch):
    """A 'network' that answers each case's truth: what is written must then be the truth's own file."""
    monkeypatch.setattr(segmentation_files, "predict_volume", lambda model, volume, *a, **k: volume.truth)


@pytest.mark.parametrize("layout", ["brats", "brats2023", "msd", "myops"])
def test_written_values_are_the_data_set_s_own_label_values(brain, oracle, tmp_path, layout):
    if layout == "myops":
        data = make_phantoms("cardiac", tmp_path / "heart", cases=2, seed=3, progress=False)
        run = tmp_path / "heart-run"
        assert main(["train", "--method", "baseline", "--data", str(data), "--out", str(run), *TOY]) == 0
        checkpoint = run / "checkpoint.pt"
    else:
        data, checkpoint = brain[layout], brain["checkpoint"]
    written = predict_folder(checkpoint, data, tmp_path / "out", device="cpu", progress=False)
    cases = find_cases(data)
    assert [p.name for p in written] == [LAYOUTS[layout].prediction_name(c.case_id) for c in cases]
    for case, path in zip(cases, written):
        truth, _ = read_nifti(case.truth or case.label)
        mine, _ = read_nifti(path)
        np.testing.assert_array_equal(mine, truth)  # 1/2/4, 1/2/3, MSD's swapped 1/2, MyoPS' 200...2221
    record = score_folder(tmp_path / "out", data, progress=False, lesion_wise=layout != "myops")
    trained = json.loads((tmp_path / "out" / MANIFEST).read_text())["trained_on"]
    assert sorted(record["cases"]) == sorted(set(c.case_id for c in cases) - set(trained))
    assert bool(trained) == (layout in ("brats", "myops"))  # the converted layouts rename the cases
    assert record["trained_on_left_out"] == sorted(trained)
    for scores in record["cases"].values():
        assert all((s["dice"], s["hd95"], s["hd95_pooled"]) == (1.0, 0.0, 0.0) for s in scores.values())
    for scores in record.get("lesion_wise", {}).values():
        assert all(
            (s["dice"], s["hd95"], s["missed"], s["false_positives"]) == (1.0, 0.0, 0, 0) for s in scores.values()
        )


def test_a_t1ce_student_needs_only_t1ce_scans(brain, tmp_path):
    only = tmp_path / "t1ce-only"
    shutil.copytree(brain["brats"], only)
    for path in only.rglob("*.nii.gz"):
        if not path.name.endswith(("_t1ce.nii.gz", "_seg.nii.gz", "_seg_clean.nii.gz")):
            path.unlink()
    written = predict_folder(brain["checkpoint"], only, tmp_path / "out", device="cpu", progress=False)
    assert len(written) == 3
    assert json.loads((tmp_path / "out" / MANIFEST).read_text())["modalities_read"] == ["t1ce"]
    assert score_folder(tmp_path / "out", only, progress=False)["cases"]  # scored without the other modalities


def test_a_full_folder_is_predicted_as_evaluate_predicts_it(brain, predicted):
    """Every modality read for the brain mask and the normalisation, as in training and evaluate."""
    model, cfg, _ = load_model(brain["checkpoint"])
    volume = load_case(find_cases(brain["brats"])[0])
    expected = predict_volume(model, volume, cfg.input_modalities, **inference_window(cfg))
    np.testing.assert_array_equal(read_prediction(predicted["brats"], volume), expected)
    assert json.loads((predicted["brats"] / MANIFEST).read_text())["modalities_read"] == list(volume.modalities)


def test_only_the_cases_asked_for(brain, tmp_path):
    ids = [c.case_id for c in find_cases(brain["brats"])]
    written = predict_folder(brain["checkpoint"], brain["brats"], tmp_path / "out", only=ids[1:2], progress=False)
    assert [p.name for p in written] == [f"{ids[1]}.nii.gz"]
    with pytest.raises(ValueError, match="a list of case identifiers"):
        predict_folder(brain["checkpoint"], brain["brats"], tmp_path / "x", only=ids[0], progress=False)
    with pytest.raises(DataError, match="has no case BraTS2021_99999"):
        predict_folder(brain["checkpoint"], brain["brats"], tmp_path / "x", only=["BraTS2021_99999"], progress=False)


def test_bad_requests_are_refused_before_anything_is_written(brain, tmp_path, capsys):
    heart = make_phantoms("cardiac", tmp_path / "heart", cases=1, seed=3, progress=False)
    with pytest.raises(DataError, match=r"trained on brain data .* holds cardiac cases \(myops layout\)"):
        predict_folder(brain["checkpoint"], heart, tmp_path / "a", device="cpu", progress=False)
    assert not (tmp_path / "a").exists()

    broken = tmp_path / "broken"
    shutil.copytree(brain["brats"], broken)
    next(broken.rglob("*_t1ce.nii.gz")).unlink()
    with pytest.raises(DataError, match=r"missing t1ce image .*the network, .*, reads t1ce"):
        predict_folder(brain["checkpoint"], broken, tmp_path / "b", device="cpu", progress=False)
    assert not (tmp_path / "b").exists()

    (tmp_path / "taken").mkdir()
    argv = ["predict", str(brain["checkpoint"]), "--data", str(brain["brats"]), "--out", str(tmp_path / "taken")]
    assert main(argv) == 2
    assert "already exists" in capsys.readouterr().err
    # --overwrite replaces only a folder of segmentations: never the data, the run, or another folder
    assert main([*argv, "--overwrite"]) == 2
    assert "not a folder of segmentations written by predict" in capsys.readouterr().err
    for out in (brain["brats"], brain["checkpoint"].parent, brain["checkpoint"].parent.parent):
        argv[-1] = str(out)
        assert main([*argv, "--overwrite"]) == 2
        assert "write the segmentations to a folder of their own" in capsys.readouterr().err
    assert brain["checkpoint"].is_file() and find_cases(brain["brats"])


def test_evaluate_scores_a_folder_and_names_what_is_missing(brain, predicted, tmp_path, capsys):
    metrics = tmp_path / "metrics.json"
    argv = ["evaluate", "--predictions", str(predicted["brats"]), "--data", str(brain["brats"])]
    assert main([*argv, "--out", str(metrics), "--quiet"]) == 0
    (record,) = json.loads(metrics.read_text())
    assert record["method"] == "baseline" and record["modality"] == "t1ce"
    held_out = set(c.case_id for c in find_cases(brain["brats"])) - set(record["trained_on_left_out"])
    assert sorted(record["cases"]) == sorted(held_out) and len(held_out) == 1
    assert "(2 case(s) the network trained on left out)" in capsys.readouterr().out
    gappy = tmp_path / "gappy"
    shutil.copytree(predicted["brats"], gappy)
    (gappy / f"{held_out.pop()}.nii.gz").unlink()
    assert main(["evaluate", "--predictions", str(gappy), "--data", str(brain["brats"]), "--out", str(metrics)]) == 2
    assert re.search(r"no segmentation for 1 of the \d labelled cases", capsys.readouterr().err)
