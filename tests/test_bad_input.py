"""Every kind of bad input gets a clear error naming the file, and nothing half-written is left."""

from __future__ import annotations

import gzip
import re
import shutil

import nibabel as nib
import numpy as np
import pytest

from pkd_lessons import DataError
from pkd_lessons.atomic import atomic_file
from pkd_lessons.cli import main
from pkd_lessons.data import find_cases, load_case
from pkd_lessons.phantoms import ensure_phantoms, make_phantoms, sets


@pytest.fixture
def one_case(brain_set, tmp_path):
    """A writable copy of one BraTS phantom case: (data folder, case folder, case id)."""
    root = tmp_path / "data"
    shutil.copytree(brain_set / "BraTS2021_00001", root / "BraTS2021_00001")
    return root, root / "BraTS2021_00001", "BraTS2021_00001"


def _rewrite(path, array, affine=None):
    img = nib.load(path)
    nib.save(nib.Nifti1Image(array, img.affine if affine is None else affine), path)


def _load_all(root):
    return [load_case(c) for c in find_cases(root)]


def test_missing_modality(one_case):
    root, folder, cid = one_case
    (folder / f"{cid}_t1ce.nii.gz").unlink()
    with pytest.raises(DataError, match=rf"case {cid}: missing t1ce image \(expected .*{cid}_t1ce\.nii\.gz\)"):
        find_cases(root)


def test_missing_label(one_case):
    root, folder, cid = one_case
    (folder / f"{cid}_seg.nii.gz").unlink()
    with pytest.raises(DataError, match="missing label"):
        find_cases(root)
    assert find_cases(root, require_labels=False)[0].label is None


def test_modalities_of_different_shape(one_case):
    root, folder, cid = one_case
    path = folder / f"{cid}_t2.nii.gz"
    _rewrite(path, np.asarray(nib.load(path).dataobj)[:-2])
    with pytest.raises(DataError, match=rf"{cid}_t2\.nii\.gz: shape .* differs from .*{cid}_flair\.nii\.gz"):
        _load_all(root)


def test_modalities_of_different_affine(one_case):
    root, folder, cid = one_case
    path = folder / f"{cid}_t1.nii.gz"
    img = nib.load(path)
    shifted = img.affine.copy()
    shifted[0, 3] += 5.0
    _rewrite(path, np.asarray(img.dataobj), shifted)
    with pytest.raises(DataError, match=rf"{cid}_t1\.nii\.gz: affine .* differs from .*flair.*co-registered"):
        _load_all(root)


def test_label_of_different_shape(one_case):
    root, folder, cid = one_case
    path = folder / f"{cid}_seg.nii.gz"
    _rewrite(path, np.asarray(nib.load(path).dataobj)[:, :-1])
    with pytest.raises(DataError, match=rf"{cid}_seg\.nii\.gz: shape"):
        _load_all(root)


def test_not_nifti(one_case):
    root, folder, cid = one_case
    (folder / f"{cid}_flair.nii.gz").write_bytes(b"this is not an image")
    with pytest.raises(DataError, match=rf"{cid}_flair\.nii\.gz: not a readable NIfTI file"):
        _load_all(root)


def test_truncated_nifti(one_case):
    root, folder, cid = one_case
    path = folder / f"{cid}_t1ce.nii.gz"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=rf"{cid}_t1ce\.nii\.gz: not a readable NIfTI file"):
        _load_all(root)


def test_truncated_uncompressed_nifti(one_case):
    root, folder, cid = one_case
    path = folder / f"{cid}_t1ce.nii.gz"
    raw = gzip.decompress(path.read_bytes())
    path.unlink()
    (folder / f"{cid}_t1ce.nii").write_bytes(raw[: len(raw) // 3])
    with pytest.raises(DataError, match=rf"{cid}_t1ce\.nii: not a readable NIfTI file"):
        _load_all(root)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_intensities(one_case, bad):
    root, folder, cid = one_case
    path = folder / f"{cid}_t2.nii.gz"
    array = np.asarray(nib.load(path).dataobj).astype(np.float32)
    array[10, 10, 10] = bad
    _rewrite(path, array)
    with pytest.raises(DataError, match=rf"{cid}_t2\.nii\.gz: 1 voxels are NaN or infinite"):
        _load_all(root)


def test_label_values_outside_convention(one_case):
    root, folder, cid = one_case
    path = folder / f"{cid}_seg.nii.gz"
    label = np.asarray(nib.load(path).dataobj).copy()
    label[label == 4] = 3  # a BraTS 2023 label in a BraTS 2021 folder
    _rewrite(path, label)
    with pytest.raises(DataError, match=rf"{cid}_seg\.nii\.gz: label values \[3\] are not in the brats convention"):
        _load_all(root)


def test_missing_folder(tmp_path):
    with pytest.raises(DataError, match="data folder not found"):
        find_cases(tmp_path / "nowhere")


def test_empty_folder(tmp_path):
    with pytest.raises(DataError, match="data folder is empty"):
        find_cases(tmp_path)


def test_folder_without_cases(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match="no cases found; expected BraTS"):
        find_cases(tmp_path)


def test_folder_mixing_layouts(one_case, cardiac_set):
    root, _, _ = one_case
    shutil.copytree(cardiac_set, root / "myops")
    with pytest.raises(DataError, match=r"folder mixes layouts \(1 brats case\(s\).*; 4 myops case\(s\)"):
        find_cases(root)


def test_msd_image_must_be_4d(one_case, tmp_path):
    _, folder, cid = one_case
    task = tmp_path / "Task01_BrainTumour"
    (task / "imagesTr").mkdir(parents=True)
    (task / "labelsTr").mkdir()
    shutil.copy(folder / f"{cid}_flair.nii.gz", task / "imagesTr" / "BRATS_001.nii.gz")
    shutil.copy(folder / f"{cid}_seg.nii.gz", task / "labelsTr" / "BRATS_001.nii.gz")
    with pytest.raises(DataError, match=r"BRATS_001\.nii\.gz: expected a 4-D image with 4 modalities"):
        _load_all(task)


def test_myops_missing_sequence_and_label(cardiac_set, tmp_path):
    root = tmp_path / "myops"
    shutil.copytree(cardiac_set, root)
    (root / "train25_myops_gd" / "myops_training_102_gd.nii.gz").unlink()
    with pytest.raises(DataError, match="case myops_training_102: missing label"):
        find_cases(root)
    (root / "train25" / "myops_training_101_DE.nii.gz").unlink()
    with pytest.raises(DataError, match=r"case myops_training_101: missing lge \(DE\) image"):
        find_cases(root)


def test_failed_phantom_run_leaves_nothing(tmp_path, monkeypatch):
    calls = {"n": 0}
    real = sets.brain.write_brain_case

    def failing(case, folder, name):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("disk full")
        real(case, folder, name)

    monkeypatch.setattr(sets.brain, "write_brain_case", failing)
    with pytest.raises(OSError, match="disk full"):
        make_phantoms("brain", tmp_path / "out", cases=3, progress=False)
    assert list(tmp_path.iterdir()) == [], "no output and no temporary folder left behind"


def test_existing_output_refused(brain_set):
    with pytest.raises(FileExistsError, match="already exists"):
        make_phantoms("brain", brain_set, cases=1, progress=False)


def test_ensure_phantoms_never_touches_foreign_folders(tmp_path):
    (tmp_path / "mine.txt").write_text("precious")
    with pytest.raises(FileExistsError, match="is not a phantom set"):
        ensure_phantoms("brain", tmp_path, cases=1)
    assert (tmp_path / "mine.txt").read_text() == "precious"


def test_atomic_file_cleans_up(tmp_path):
    target = tmp_path / "model.pt"
    with pytest.raises(RuntimeError), atomic_file(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_cli_one_line_error(tmp_path, capsys):
    assert main(["check", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("pkd-lessons: error:") and "empty" in err[0]


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"seeds": 0}, "seeds=0: a lesson needs at least 1 training seed"),
        ({"split": (3, 1, 0)}, "split=(3, 1, 0): give three positive shares"),
        ({"brain_cases": 2}, "brain_cases=2: the split needs at least 3 cases"),
        ({"student_steps": 0}, "student_steps=0: must be at least 1"),
    ],
)
def test_lesson_settings_refused_before_any_work(tmp_path, setting, message):
    from pkd_lessons.lessons import Lesson

    with pytest.raises(ValueError, match=re.escape(message)):
        Lesson.start("tiny", tmp_path / "data", tmp_path / "out", **setting)
    assert not (tmp_path / "data").exists()  # no phantom made, nothing replaced


def test_lesson_refuses_an_output_folder_it_cannot_write(tmp_path):
    """Refused at the start, not at the first figure after the training."""
    from pkd_lessons.lessons import Lesson

    (tmp_path / "a-file").write_text("")
    with pytest.raises(PermissionError, match="output_dir .*a-file/out.*: cannot write the lesson's figures"):
        Lesson.start("tiny", tmp_path / "data", tmp_path / "a-file" / "out")
