"""The BraTS and MyoPS / MS-CMRSeg checkers: each kind of defect reported per case, nothing written."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from conftest import REPO
from pkd_lessons.errors import DataError
from pkd_lessons.phantoms.convert import to_brats2023
from pkd_lessons.realdata import check_brats, check_myops
from pkd_lessons.realdata.checkers import NOT_COREGISTERED
from pkd_lessons.realdata.commands import check_brats_main, check_myops_main


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``folder`` with its size and modification time."""
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()
    }


def rewrite(path: Path, change) -> None:
    img = nib.load(str(path))
    data, affine = change(np.asarray(img.dataobj), img.affine.copy())
    nib.save(nib.Nifti1Image(data, affine), str(path))


@pytest.fixture()
def brats(brain_set, tmp_path) -> Path:
    """A copy of the four-case phantom in BraTS 2021 layout, one defect per case but the first."""
    root = shutil.copytree(brain_set, tmp_path / "BraTS2021")
    c = sorted(p for p in root.iterdir() if p.is_dir())
    (c[1] / f"{c[1].name}_t1ce.nii.gz").unlink()
    rewrite(c[2] / f"{c[2].name}_seg.nii.gz", lambda d, a: (np.where(d == 4, 3, d).astype(np.uint8), a))
    rewrite(c[3] / f"{c[3].name}_t2.nii.gz", lambda d, a: (d[:-2], a))
    (c[3] / f"{c[3].name}_flair.nii.gz").write_bytes(b"not a nifti file")
    return root


def problems(report) -> dict[str, list[str]]:
    return {c.case_id: c.problems for c in report.cases}


def test_brats_defects_reported_per_case_and_nothing_written(brats):
    before = snapshot(brats)
    report = check_brats(brats, 2021, progress=False)
    assert snapshot(brats) == before
    found = problems(report)
    ids = sorted(found)
    assert found[ids[0]] == []
    assert found[ids[1]] == ["missing t1ce"]
    assert found[ids[2]] == ["label: label values [3] not in the expected [0, 1, 2, 4]"]
    assert any("not a readable NIfTI" in p and "_flair.nii.gz" in p for p in found[ids[3]])
    assert any(p.startswith("t2: shape") and "one grid" in p for p in found[ids[3]])
    assert not report.ok and len(report.bad) == 3
    text = report.to_text()
    assert text.endswith("PROBLEMS: 4 case(s), 3 with problems") and f"{ids[1]}: missing t1ce" in text


def test_affine_mismatch_and_missing_label(brain_set, tmp_path):
    root = shutil.copytree(brain_set, tmp_path / "b")
    case = sorted(p for p in root.iterdir() if p.is_dir())[0]

    def shift(d, a):
        a[:3, 3] += 5.0
        return d, a

    rewrite(case / f"{case.name}_t1.nii.gz", shift)
    (case / f"{case.name}_seg.nii.gz").unlink()
    found = problems(check_brats(root, 2021, progress=False))[case.name]
    assert "missing label" in found and any(p.startswith("t1: affine") for p in found)
    # A validation set has no labels: not a problem then.
    assert "missing label" not in problems(check_brats(root, 2021, require_labels=False, progress=False))[case.name]


def test_clean_copy_and_its_zip_pass(brain_set, tmp_path):
    report = check_brats(brain_set, 2021, deep=True, progress=False)
    assert report.ok and len(report.cases) == 4
    archive = tmp_path / "BraTS2021_Training_Data.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(brain_set.rglob("*.nii.gz")):
            zf.write(path, f"BraTS2021_Training_Data/{path.relative_to(brain_set)}")
        zf.writestr("__MACOSX/._BraTS2021_00000_flair.nii.gz", b"resource fork")
    listing = sorted(os.listdir(tmp_path))
    from_zip = check_brats(archive, 2021, deep=True, progress=False)
    assert from_zip.ok and [c.case_id for c in from_zip.cases] == [c.case_id for c in report.cases]
    assert sorted(os.listdir(tmp_path)) == listing, "the archive is read in place, nothing extracted"


def test_year_decides_the_label_values_and_names(brain_set, tmp_path):
    b23 = to_brats2023(brain_set, tmp_path / "b23")
    assert check_brats(b23, 2023, progress=False).ok
    with pytest.raises(DataError, match="no BraTS 2018 case found"):
        check_brats(b23, 2018, progress=False)
    with pytest.raises(DataError, match="year=2016"):
        check_brats(brain_set, 2016, progress=False)
    with pytest.raises(DataError, match="not found"):
        check_brats(tmp_path / "nowhere", progress=False)


@pytest.fixture()
def myops(cardiac_set, tmp_path) -> Path:
    """A copy of the four-case cardiac phantom in MyoPS layout, one defect per case but the first."""
    root = shutil.copytree(cardiac_set, tmp_path / "MyoPS2020")
    images = sorted((root / "train25").glob("*_C0.nii.gz"))
    ids = [p.name[: -len("_C0.nii.gz")] for p in images]
    (root / "train25" / f"{ids[1]}_DE.nii.gz").unlink()
    rewrite(root / "train25_myops_gd" / f"{ids[2]}_gd.nii.gz", lambda d, a: (np.where(d == 600, 300, d), a))
    rewrite(root / "train25" / f"{ids[3]}_T2.nii.gz", lambda d, a: (d[:, :-4], a))
    return root


def test_myops_defects_reported_per_case(myops):
    before = snapshot(myops)
    report = check_myops(myops, progress=False)
    assert snapshot(myops) == before
    found = problems(report)
    ids = sorted(found)
    assert found[ids[0]] == []
    assert found[ids[1]] == ["missing lge"]
    assert found[ids[2]] == ["label: label values [300] not in the expected [0, 200, 500, 600, 1220, 2221]"]
    assert len(found[ids[3]]) == 1 and found[ids[3]][0].startswith("t2: shape")
    assert NOT_COREGISTERED not in report.notes


def test_mscmrseg_grids_differ_by_design(cardiac_set, tmp_path):
    """MS-CMRSeg naming, per-sequence labels, LGE on another grid: fine, with the note about distillation."""
    root = tmp_path / "MSCMRSeg"
    root.mkdir()
    for i, c0 in enumerate(sorted((cardiac_set / "train25").glob("*_C0.nii.gz")), start=1):
        cid = c0.name[: -len("_C0.nii.gz")]
        gd = nib.load(str(cardiac_set / "train25_myops_gd" / f"{cid}_gd.nii.gz"))
        label = np.asarray(gd.dataobj).astype(np.int16)
        label[(label == 1220) | (label == 2221)] = 200  # MS-CMRSeg labels only the three structures
        for seq in ("C0", "DE", "T2"):
            img = nib.load(str(cardiac_set / "train25" / f"{cid}_{seq}.nii.gz"))
            data, lab = np.asarray(img.dataobj), label
            if seq == "DE":  # another field of view, as acquired
                data, lab = data[8:-8, 8:-8], label[8:-8, 8:-8]
            nib.save(nib.Nifti1Image(data, img.affine), str(root / f"patient{i}_{seq}.nii.gz"))
            nib.save(nib.Nifti1Image(lab, img.affine), str(root / f"patient{i}_{seq}_manual.nii.gz"))
    report = check_myops(root, "mscmrseg", progress=False)
    assert report.ok and len(report.cases) == 4
    assert report.notes == [NOT_COREGISTERED]
    assert all(any("different grids" in n for n in c.notes) for c in report.cases)
    (root / "patient2_C0_manual.nii.gz").write_bytes(b"broken")
    (root / "patient3_T2.nii.gz").unlink()
    found = problems(check_myops(root, "mscmrseg", progress=False))
    assert any("not a readable NIfTI" in p for p in found["patient2"])
    assert "missing t2" in found["patient3"]


def test_scripts_exit_codes(brats, brain_set, myops, capsys):
    assert check_brats_main([str(brain_set), "--quiet"]) == 0
    assert "OK: 4 case(s), 0 with problems" in capsys.readouterr().out
    assert check_brats_main([str(brats), "--quiet"]) == 1
    assert "missing t1ce" in capsys.readouterr().out
    assert check_myops_main([str(myops), "--quiet"]) == 1
    assert check_brats_main([str(brats / "nowhere"), "--quiet"]) == 2
    assert capsys.readouterr().err.startswith("check_brats.py: error: ")


def test_package_command_runs_the_same_checkers(brats, brain_set, myops, capsys):
    from pkd_lessons.cli import main

    assert main(["data", "check", "brats", str(brain_set), "--quiet"]) == 0
    assert "OK: 4 case(s), 0 with problems" in capsys.readouterr().out
    assert main(["data", "check", "brats", str(brats), "--quiet"]) == 1
    assert main(["data", "check", "myops", str(myops), "--quiet"]) == 1
    assert main(["data", "check", "brats", str(brats / "nowhere")]) == 2
    assert capsys.readouterr().err.startswith("pkd-lessons data check brats: error: ")
    assert main(["data", "fetch", "brats"]) == 2
    assert "no command fetch brats; known: fetch decathlon" in capsys.readouterr().err


@pytest.mark.parametrize("script", ["fetch_decathlon_task01.py", "check_brats.py", "check_myops.py"])
def test_data_download_scripts_run(script):
    result = subprocess.run(
        [sys.executable, str(REPO / "data_download" / script), "--help"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0 and result.stdout.startswith(f"usage: {script}")


def test_only_the_download_code_opens_connections():
    """No network at run time: only pkd_lessons/realdata/transfer.py may open a URL."""
    users = [
        p.relative_to(REPO).as_posix()
        for p in (REPO / "pkd_lessons").rglob("*.py")
        if any(word in p.read_text() for word in ("urlopen", "urlretrieve", "import requests", "download_url("))
    ]
    assert users == ["pkd_lessons/realdata/transfer.py"]


def test_truncated_files_are_problems_not_crashes(brain_set, tmp_path):
    root = shutil.copytree(brain_set, tmp_path / "b")
    case = sorted(p for p in root.iterdir() if p.is_dir())[0]
    for name in (f"{case.name}_seg.nii.gz", f"{case.name}_t2.nii.gz"):
        data = (case / name).read_bytes()
        (case / name).write_bytes(data[: len(data) // 2])  # a half-finished download
    quick = problems(check_brats(root, 2021, progress=False))[case.name]
    assert len(quick) == 1 and quick[0].startswith("label: ") and "data unreadable" in quick[0]
    deep = problems(check_brats(root, 2021, deep=True, progress=False))[case.name]
    assert any(p.startswith("t2: ") and "data unreadable" in p for p in deep)


def test_compressed_tar_refused_with_advice(brain_set, tmp_path):
    import tarfile

    archive = tmp_path / "BraTS.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(brain_set, arcname="BraTS")
    with pytest.raises(DataError, match="compressed .tar cannot be checked in place.*extract it"):
        check_brats(archive, progress=False)


def test_report_lists_case_notes(cardiac_set, tmp_path):
    root = shutil.copytree(cardiac_set, tmp_path / "m")
    gd = sorted((root / "train25_myops_gd").glob("*_gd.nii.gz"))[0]
    rewrite(gd, lambda d, a: (np.zeros_like(d), a))
    report = check_myops(root, progress=False)
    assert report.ok and f"{gd.name[: -len('_gd.nii.gz')]}: note: label: label is empty" in report.to_text()
