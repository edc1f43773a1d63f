"""Faults and hostile input: no silent NaN model, nothing of the user's deleted, no work thrown away.

Each test reproduces one fault: a loss that turns NaN, a folder that is not ours to replace, an
output location that cannot be written (before the work, and at its very end), unreadable or
empty data, a damaged or unwritable teacher cache, headers that claim absurd sizes, options that
would be ignored, leftovers of killed processes. The rule throughout: one line naming the file or
option and the problem, a non-zero exit, nothing half-written, nothing of the user's lost.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import struct
import time

import nibabel as nib
import numpy as np
import pytest
import torch

from pkd_lessons import DataError
from pkd_lessons.atomic import atomic_file
from pkd_lessons.cli import main
from pkd_lessons.data import find_cases, load_cases
from pkd_lessons.data.nifti import read_nifti
from pkd_lessons.errors import TrainingError
from pkd_lessons.phantoms import make_phantoms
from pkd_lessons.realdata import download, fetch_task01
from pkd_lessons.training import checkpoint as checkpoint_module
from pkd_lessons.training import teacher_store
from pkd_lessons.training import trainer as train_module
from pkd_lessons.training.checkpoint import load_checkpoint
from pkd_lessons.training.config import TrainConfig
from pkd_lessons.training.device import pick_device

W = "4,8"
TINY = ["--steps", "4", "--batch-size", "2", "--widths", W, "--device", "cpu", "--quiet"]


def train_cli(method: str, data, out, *options: str) -> int:
    """``pkd-lessons train --method METHOD --data DATA --out OUT OPTIONS...``; its exit status."""
    return main(["train", "--method", method, "--data", str(data), "--out", str(out), *options])


def evaluate_cli(checkpoint, data, out, *options: str) -> int:
    """``pkd-lessons evaluate CHECKPOINT --data DATA --out OUT --quiet --device cpu OPTIONS...``."""
    return main(
        ["evaluate", str(checkpoint), "--data", str(data), "--out", str(out), "--quiet", "--device", "cpu", *options]
    )


def one_error_line(capsys) -> str:
    err = [line for line in capsys.readouterr().err.strip().splitlines() if line.strip()]
    assert len(err) == 1, err
    assert err[0].startswith("pkd-lessons: error:") or err[0].startswith("pkd-lessons: interrupted"), err
    return err[0]


@pytest.fixture
def data(brain_set, tmp_path):
    """A writable copy of the four-case brain phantom set."""
    return shutil.copytree(brain_set, tmp_path / "data")


def _train_cfg(method: str = "baseline", steps: int = 6) -> TrainConfig:
    return TrainConfig(method=method, widths=(4, 8), steps=steps, batch_size=2)


# --- 1. a loss that is not finite stops training --------------------------------------------------


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(brain_set, tmp_path, monkeypatch):
    calls = {"n": 0}
    real = train_module.segmentation_loss

    def turns_nan(*args, **kwargs):
        calls["n"] += 1
        loss = real(*args, **kwargs)
        return loss * float("nan") if calls["n"] == 5 else loss

    monkeypatch.setattr(train_module, "segmentation_loss", turns_nan)
    volumes = load_cases(find_cases(brain_set)[:2], progress=False)
    with pytest.raises(
        TrainingError,
        match=r"step 5 of baseline: loss term seg = nan.*last good checkpoint is "
        r".*checkpoint\.pt \(step 4\)",
    ):
        train_module.train(
            _train_cfg(), volumes, out=tmp_path / "run", device="cpu", progress=False, checkpoint_every=2
        )
    state = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert state["step"] == 4
    assert all(torch.isfinite(t).all() for t in state["model"].values() if t.is_floating_point())


def test_cli_refuses_a_nan_run_with_one_line(data, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(
        train_module, "segmentation_loss", lambda *a, **k: torch.tensor(float("inf"), requires_grad=True)
    )
    assert train_cli("baseline", data, tmp_path / "run", *TINY) == 2
    line = one_error_line(capsys)
    assert "step 1 of baseline" in line and "seg = inf" in line and "no checkpoint of this run was written" in line
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_infinite_temperature_is_refused(data, tmp_path, capsys):
    assert train_cli("kd", data, tmp_path / "run", "--temperature", "inf", *TINY) == 2
    assert "temperature" in one_error_line(capsys)


def test_weights_that_stop_being_finite_are_not_saved(brain_set, tmp_path, monkeypatch):
    real = train_module.Trainer.optimise

    def overflows(self, batch):
        terms = real(self, batch)
        if self.step == 3:  # the update of step 4 overflows, its loss was finite; the next save follows it
            with torch.no_grad():
                next(self.model.parameters()).fill_(float("inf"))
        return terms

    monkeypatch.setattr(train_module.Trainer, "optimise", overflows)
    volumes = load_cases(find_cases(brain_set)[:2], progress=False)
    with pytest.raises(
        TrainingError,
        match=r"step 4 of baseline: the weights are no longer finite.*"
        r"last good checkpoint is .*\(step 2\)",
    ):
        train_module.train(
            _train_cfg(), volumes, out=tmp_path / "run", device="cpu", progress=False, checkpoint_every=2
        )
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["step"] == 2


# --- 2. nothing of the user's is replaced or deleted ---------------------------------------------


def test_overwrite_refuses_a_folder_that_is_not_a_phantom_set(tmp_path, capsys):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    assert main(["phantoms", "brain", "--out", str(tmp_path / "mine"), "--cases", "1", "--overwrite", "--quiet"]) == 2
    assert "not a phantom set" in one_error_line(capsys)
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "precious"


def test_overwrite_refuses_the_current_folder(tmp_path, monkeypatch, capsys):
    make_phantoms("cardiac", tmp_path / "set", cases=1, progress=False)
    monkeypatch.chdir(tmp_path / "set")
    assert main(["phantoms", "cardiac", "--out", ".", "--cases", "1", "--overwrite", "--quiet"]) == 2
    assert "current folder" in one_error_line(capsys)
    assert (tmp_path / "set" / "phantom.json").is_file()


@pytest.mark.parametrize("kind", ["file", "link"])
def test_overwrite_refuses_a_file_or_a_link(tmp_path, capsys, kind):
    target = tmp_path / "target"
    if kind == "file":
        target.write_text("precious")
    else:
        make_phantoms("cardiac", tmp_path / "set", cases=1, progress=False)
        target.symlink_to(tmp_path / "set")
    assert main(["phantoms", "cardiac", "--out", str(target), "--cases", "1", "--overwrite", "--quiet"]) == 2
    assert "not a folder" in one_error_line(capsys)
    assert target.is_symlink() if kind == "link" else target.read_text() == "precious"


def test_assignments_never_replace_a_users_folder(tmp_path, monkeypatch, capsys):
    from conftest import REPO

    (tmp_path / "course").mkdir()
    (tmp_path / "course" / "grades.csv").write_text("precious")
    args = ["assignments", "--notebooks", str(REPO / "notebooks"), "--overwrite"]
    assert main([*args, "--out", str(tmp_path / "course")]) == 2
    assert "not a folder written by pkd-lessons" in one_error_line(capsys)
    assert (tmp_path / "course" / "grades.csv").read_text() == "precious"
    monkeypatch.chdir(tmp_path / "course")
    assert main([*args, "--out", "."]) == 2
    assert "current folder" in one_error_line(capsys)
    assert main([*args, "--out", str(tmp_path / "students")]) == 0
    assert main([*args, "--out", str(tmp_path / "students")]) == 0, "its own folder may be replaced"


def test_overwrite_replaces_a_phantom_set(tmp_path):
    make_phantoms("cardiac", tmp_path / "set", cases=1, seed=0, progress=False)
    make_phantoms("cardiac", tmp_path / "set", cases=2, seed=1, overwrite=True, progress=False)
    assert json.loads((tmp_path / "set" / "phantom.json").read_text())["seed"] == 1


def test_fetcher_never_deletes_a_users_file_of_the_archives_name(tmp_path):
    mine = tmp_path / "Task01_BrainTumour.tar"
    mine.write_bytes(b"the user's own file")
    # The file is there, so nothing is fetched: the address is never contacted.
    with pytest.raises(DataError, match="already there and is not the expected one.*left as it is"):
        download("http://127.0.0.1:9/Task01_BrainTumour.tar", mine, md5="0" * 32, progress=False)
    assert mine.read_bytes() == b"the user's own file"


# --- 3. output locations are checked before the work; a failed final write keeps the work ----------


@pytest.fixture
def no_training(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("training started although the output location is unusable")

    monkeypatch.setattr(train_module.Trainer, "fit", fail)


@pytest.mark.parametrize("where", ["file", "under a file"])
def test_train_checks_its_output_folder_first(data, tmp_path, capsys, no_training, where):
    (tmp_path / "taken").write_text("not a folder")
    out = tmp_path / "taken" if where == "file" else tmp_path / "taken" / "run"
    assert train_cli("baseline", data, out, *TINY) == 2
    assert str(tmp_path / "taken") in one_error_line(capsys)


def test_a_failed_final_write_saves_the_run_elsewhere_and_says_where(data, tmp_path, monkeypatch, capsys):
    real = checkpoint_module.write_bytes
    out = tmp_path / "run"

    def disk_full(path, data):
        if str(path).startswith(str(out)):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, data)

    monkeypatch.setattr(checkpoint_module, "write_bytes", disk_full)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    assert train_cli("baseline", data, out, *TINY) == 2
    line = one_error_line(capsys)
    assert "No space left on device" in line and "was saved to" in line
    (rescued,) = (tmp_path / "tmp").glob("pkd-lessons-rescued-baseline-s0-step4-*.pt")
    assert str(rescued) in line and load_checkpoint(rescued)["step"] == 4
    assert [p.name for p in out.iterdir()] == [], "no half-written checkpoint left in the run folder"


def test_evaluate_checks_its_output_file_first(data, tmp_path, capsys):
    assert train_cli("baseline", data, tmp_path / "run", *TINY) == 0
    capsys.readouterr()
    (tmp_path / "metrics").mkdir()
    assert evaluate_cli(tmp_path / "run" / "checkpoint.pt", data, tmp_path / "metrics") == 2
    assert "is a folder" in one_error_line(capsys)


def test_a_failed_metrics_write_keeps_the_metrics(data, tmp_path, monkeypatch, capsys):
    assert train_cli("baseline", data, tmp_path / "run", *TINY) == 0
    capsys.readouterr()
    real = os.replace

    def disk_full(src, dst):
        if str(dst).endswith("m.json"):
            raise OSError(errno.ENOSPC, "No space left on device", str(dst))
        return real(src, dst)

    monkeypatch.setattr(os, "replace", disk_full)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    assert evaluate_cli(tmp_path / "run" / "checkpoint.pt", data, tmp_path / "m.json") == 2
    line = one_error_line(capsys)
    (kept,) = tmp_path.glob("pkd-lessons-rescued-m-*.json")
    assert str(kept) in line and json.loads(kept.read_text())[0]["method"] == "baseline"
    assert not (tmp_path / "m.json").exists()


# --- 4. discovery and loading never drop data silently ---------------------------------------------


def test_an_unreadable_case_folder_is_an_error_not_a_missing_case(data, monkeypatch, capsys):
    blocked = data / "BraTS2021_00002"
    real = os.scandir

    def scandir(path="."):
        if os.fspath(path) == os.fspath(blocked):  # what chmod 000 does for a user other than root
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    assert main(["check", str(data)]) == 2
    line = one_error_line(capsys)
    assert str(blocked) in line and "cannot read this folder" in line


@pytest.mark.parametrize("which", ["one modality", "every modality"])
def test_an_all_zero_image_is_refused(data, capsys, which):
    case = data / "BraTS2021_00001"
    for m in ["t1ce"] if which == "one modality" else ["flair", "t1", "t1ce", "t2"]:
        path = case / f"BraTS2021_00001_{m}.nii.gz"
        img = nib.load(path)
        nib.save(nib.Nifti1Image(np.zeros(img.shape, np.float32), img.affine), path)
    assert main(["check", str(data)]) == 2
    line = one_error_line(capsys)
    assert "every voxel" in line and "BraTS2021_00001" in line


# --- 5. the teacher-output cache -------------------------------------------------------------------


@pytest.fixture
def teacher_ckpt(brain_set, tmp_path):
    volumes = load_cases(find_cases(brain_set)[:2], progress=False)
    train_module.train(_train_cfg("teacher", steps=2), volumes, out=tmp_path / "teacher", device="cpu", progress=False)
    return tmp_path / "teacher" / "checkpoint.pt", volumes


def test_a_damaged_teacher_cache_is_rebuilt(teacher_ckpt, tmp_path):
    ckpt, volumes = teacher_ckpt
    train_module.train(_train_cfg("pkl", steps=2), volumes, ckpt, device="cpu", progress=False)
    (cache,) = ckpt.parent.glob("teacher-outputs-*.pt")
    cache.write_bytes(cache.read_bytes()[:100])  # truncated
    with pytest.warns(UserWarning, match="damaged teacher-output cache"):
        train_module.train(_train_cfg("pkl", steps=2), volumes, ckpt, device="cpu", progress=False)
    assert torch.load(cache, weights_only=True)["logits"].ndim == 4, "rebuilt in place"


def test_a_read_only_teacher_folder_moves_the_cache(teacher_ckpt, tmp_path, monkeypatch):
    ckpt, volumes = teacher_ckpt
    real = teacher_store.atomic_file

    def read_only(path):
        if ckpt.parent in path.parents:
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real(path)

    monkeypatch.setattr(teacher_store, "atomic_file", read_only)
    monkeypatch.setenv("PKD_LESSONS_CACHE", str(tmp_path / "cache"))
    with pytest.warns(UserWarning, match="cannot store the teacher's outputs there"):
        train_module.train(_train_cfg("pkl", steps=2), volumes, ckpt, device="cpu", progress=False)
    assert len(list((tmp_path / "cache").glob("teacher-outputs-*.pt"))) == 1
    assert not list(ckpt.parent.glob("teacher-outputs-*.pt"))


# --- 6. clear errors where tracebacks were ----------------------------------------------------------


@pytest.mark.parametrize("shape", [(32767, 32767, 32767), (1000, 1000, 500)])
def test_a_header_claiming_a_huge_image_is_refused_before_reading(tmp_path, shape):
    header = nib.Nifti1Header()
    header.set_data_dtype(np.float32)
    header.set_data_shape(shape)
    path = tmp_path / "huge.nii"
    path.write_bytes(header.binaryblock + struct.pack("<i", 0) + b"\0" * 64)  # header, extension flag, a little data
    with pytest.raises(DataError, match=r"huge\.nii: the header gives .* voxels"):
        read_nifti(path)


def test_a_brain_checkpoint_on_cardiac_data(data, cardiac_set, tmp_path, capsys):
    assert train_cli("baseline", data, tmp_path / "run", *TINY) == 0
    capsys.readouterr()
    assert evaluate_cli(tmp_path / "run" / "checkpoint.pt", cardiac_set, tmp_path / "m.json") == 2
    assert "trained on flair, t1, t1ce, t2" in one_error_line(capsys)


def test_an_unknown_device_name(capsys, data, tmp_path):
    with pytest.raises(ValueError, match="'banana' is not a device name"):
        pick_device("banana")
    assert (
        train_cli("baseline", data, tmp_path / "run", "--steps", "4", "--widths", W, "--quiet", "--device", "banana")
        == 2
    )
    assert "banana" in one_error_line(capsys)


@pytest.mark.parametrize("content", ["[]", '{"foo": 1}', "[1, 2]", "null"])
def test_compare_refuses_files_that_are_not_metrics(tmp_path, capsys, content):
    (tmp_path / "m.json").write_text(content)
    assert main(["compare", str(tmp_path / "m.json"), "--out", str(tmp_path / "out")]) == 2
    assert "m.json" in one_error_line(capsys)
    assert not (tmp_path / "out").exists(), "no empty output folder left"


@pytest.mark.parametrize(
    "seeds, duplicate, message",
    [
        (({0, 1, 2}, {0, 1}), False, r"'baseline' lacks seed(s) {2}"),
        (({3, 4}, {0, 1}), False, r"'kd' lacks seed(s) {0, 1}"),
        (({0, 1}, {0, 1}), True, "two records for seed 0"),
    ],
)
def test_compare_refuses_what_it_cannot_pair(tmp_path, capsys, seeds, duplicate, message):
    """Seeds one method lacks, or two records of one seed, are named and refused, never dropped."""

    def rec(method, seed, value):
        cases = {f"c{j}": {"WT": {"dice": value + 0.01 * j, "hd95": 2.0}} for j in range(3)}
        return {"run": f"{method}-s{seed}", "method": method, "seed": seed, "cases": cases}

    kd, base = seeds
    records = [rec("kd", s, 0.5 - 0.3 * (s == 2)) for s in sorted(kd)] + [rec("baseline", s, 0.4) for s in sorted(base)]
    if duplicate:
        records.append(dict(rec("kd", 0, 0.9), run="kd-s0-copy"))
    (tmp_path / "m.json").write_text(json.dumps(records))
    assert main(["compare", str(tmp_path / "m.json"), "--out", str(tmp_path / "out")]) == 2
    line = one_error_line(capsys)
    assert message in line and "m.json" in line
    assert not (tmp_path / "out").exists()


def test_ctrl_c_says_where_the_checkpoint_is_and_how_to_resume(data, tmp_path, monkeypatch, capsys):
    real = train_module.Trainer.train_step

    def interrupted(self):
        if self.step == 3:
            raise KeyboardInterrupt
        return real(self)

    monkeypatch.setattr(train_module.Trainer, "train_step", interrupted)
    assert train_cli("baseline", data, tmp_path / "run", "--checkpoint-every", "2", *TINY) == 130
    line = one_error_line(capsys)
    assert "holds step 2 of 4" in line and "--resume" in line


# --- 7. options are used or refused, never ignored ---------------------------------------------------


def test_a_teacher_given_to_the_baseline_is_refused(data, tmp_path, capsys):
    assert train_cli("baseline", data, tmp_path / "run", "--teacher", str(tmp_path / "whatever.pt"), *TINY) == 2
    assert "does not learn from a teacher" in one_error_line(capsys)


@pytest.mark.parametrize(
    "args, message",
    [
        (["brain", "--voxel-mm", "0"], "voxel_mm must be between"),
        (["cardiac", "--voxel-mm", "1"], "voxel_mm sets the brain phantoms' grid"),
    ],
)
def test_voxel_size_is_used_or_refused(tmp_path, capsys, args, message):
    assert main(["phantoms", *args, "--out", str(tmp_path / "set"), "--cases", "1", "--quiet"]) == 2
    assert message in one_error_line(capsys)
    assert not (tmp_path / "set").exists()


@pytest.mark.parametrize("md5", ["", "not-a-checksum", "0" * 31])
def test_a_bad_md5_is_refused_before_any_download(tmp_path, md5):
    with pytest.raises(ValueError, match="--md5 must be 32 hexadecimal digits"):
        fetch_task01(tmp_path, url="http://127.0.0.1:9/never-contacted.tar", md5=md5, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_resume_refuses_other_data_under_the_same_case_ids(data, tmp_path, capsys):
    args = [
        "train",
        "--method",
        "baseline",
        "--data",
        str(data),
        "--out",
        str(tmp_path / "run"),
        "--checkpoint-every",
        "2",
        *TINY,
    ]
    assert main(args) == 0
    for case in find_cases(data):  # change the images, keep every identifier
        path = case.images["t1ce"].path
        img = nib.load(path)
        nib.save(nib.Nifti1Image(np.asarray(img.dataobj, np.float32) * 1.5 + 1, img.affine), path)
    capsys.readouterr()
    assert main([*args, "--resume"]) == 2
    assert "other data under the same case identifiers" in one_error_line(capsys)


# --- 8. no leftovers ----------------------------------------------------------------------------------

DEAD_PID = 2**22 + 12345  # above Linux's largest process id: never a running process


def test_leftovers_of_killed_writers_are_removed_on_the_next_run(tmp_path):
    stale_dir = tmp_path / f".set.{DEAD_PID}.x1y2z3w4.part"
    stale_dir.mkdir()
    (stale_dir / "case.nii.gz").write_bytes(b"\0" * 1000)
    older = tmp_path / ".set.ab12cd34.part"  # the naming before process ids were recorded, two days old
    older.mkdir()
    os.utime(older, (time.time() - 2 * 86400,) * 2)
    recent = tmp_path / ".set.ef56gh78.part"  # the same naming, but recent: its writer may still run
    recent.mkdir()
    stale_file = tmp_path / f".checkpoint.pt.{DEAD_PID}.zzzzzzzz.part.pt"
    stale_file.write_bytes(b"half")
    live = tmp_path / f".checkpoint.pt.{os.getppid()}.qqqqqqqq.part.pt"  # a writer that still runs: kept
    live.write_bytes(b"in progress")
    sibling = tmp_path / f".set.json.{DEAD_PID}.aaaaaaaa.part.json"  # another destination's: not ours to judge
    sibling.write_bytes(b"{}")
    make_phantoms("cardiac", tmp_path / "set", cases=1, progress=False)
    with atomic_file(tmp_path / "checkpoint.pt") as tmp:
        tmp.write_bytes(b"done")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["set", "checkpoint.pt", live.name, recent.name, sibling.name]
    )


def test_phantom_folders_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        out = make_phantoms("cardiac", tmp_path / "set", cases=1, progress=False)
    finally:
        os.umask(old)
    assert out.stat().st_mode & 0o777 == 0o755


def test_checkpoint_fingerprint_covers_every_weight():
    """A change anywhere in a tensor (here its last element, far past the first 4 KB) changes the
    identifier a student records of its teacher."""
    from pkd_lessons.training.checkpoint import fingerprint

    state = {"config": {"method": "teacher"}, "step": 10, "model": {"w": torch.zeros(10_000), "b": torch.ones(3)}}
    before = fingerprint(state)
    state["model"]["w"][-1] = 1e-6
    assert fingerprint(state) != before
    state["model"]["w"][-1] = 0.0
    assert fingerprint(state) == before
    state["model"]["w"] = torch.zeros(100, 100)  # same bytes, another shape
    assert fingerprint(state) != before
