"""Runs that survive a lost session: a runs folder of its own, a run interrupted part-way resumed
where its last checkpoint stopped (the same weights as a run never interrupted), one line on what is
done, and the pretrained teachers shipped with the package (used only when made for the run asked
for; lesson 02 trains its own)."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

import pkd_lessons.lessons.lesson as lesson_module
import pkd_lessons.lessons.pretrained as pretrained
import pkd_lessons.training.trainer as trainer_module
from pkd_lessons.data.labels import CONVENTIONS
from pkd_lessons.lessons.lesson import Lesson
from pkd_lessons.lessons.store import PARTIAL
from pkd_lessons.phantoms.sets import physics_id
from pkd_lessons.training.behaviour import behaviour_fingerprint
from pkd_lessons.training.config import TrainConfig

TINY = {"teacher_steps": 5, "student_steps": 3, "validations": 0}


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory):
    root = tmp_path_factory.mktemp("surviving-data")
    Lesson.start("tiny", root, root / "out").brain()
    return root


def lesson(data, runs, **settings) -> Lesson:
    return Lesson.start("tiny", data, runs / "out", runs_dir=runs, **{**TINY, **settings})


def weights(run) -> dict:
    return torch.load(run.checkpoint, weights_only=True)["model"]


def test_an_interrupted_run_resumes_where_it_stopped_and_ends_as_an_uninterrupted_one(
    phantoms, tmp_path, trained, monkeypatch, capsys
):
    whole = lesson(phantoms, tmp_path / "whole").run("teacher", progress=False)
    assert whole.folder.parent.parent.parent == tmp_path / "whole"  # the runs folder, not DATA_ROOT/runs
    assert not (phantoms / "runs").exists()

    monkeypatch.setattr(lesson_module, "CHECKPOINT_SECONDS", 1e-9)  # a checkpoint after every step
    real_step = trainer_module.Trainer.train_step

    def disconnect_at_step_3(self):
        if self.step == 3:
            raise KeyboardInterrupt  # the session is lost part-way
        return real_step(self)

    monkeypatch.setattr(trainer_module.Trainer, "train_step", disconnect_at_step_3)
    with pytest.raises(KeyboardInterrupt):
        lesson(phantoms, tmp_path / "cut").run("teacher", progress=False)
    folder = tmp_path / "cut" / "tiny" / "brain" / "teacher-s0"
    assert (folder / PARTIAL).is_file() and not (folder / "run.json").exists()
    monkeypatch.setattr(trainer_module.Trainer, "train_step", real_step)
    resumed = lesson(phantoms, tmp_path / "cut").run("teacher", progress=False)
    assert resumed.info["resumed_at_step"] == 3 and not (folder / PARTIAL).exists()
    assert "training teacher-s0 (5 steps, resuming at step 3): about" in capsys.readouterr().out
    assert all(torch.equal(a, b) for a, b in zip(weights(whole).values(), weights(resumed).values()))
    assert resumed.metrics == whole.metrics

    # asked for again: reused, in one line
    again = lesson(phantoms, tmp_path / "cut").run("teacher", progress=False)
    assert again.reused and "reusing teacher-s0" in capsys.readouterr().out
    # a checkpoint left by a run of other settings is not resumed: that run is trained from step 0
    (folder / "run.json").unlink()
    other = lesson(phantoms, tmp_path / "cut", teacher_steps=6).run("teacher", progress=False)
    assert "resumed_at_step" not in other.info and trained.count("teacher") == 4


def test_a_shipped_teacher_serves_a_lesson_opened_alone_and_only_the_run_it_was_made_for(
    phantoms, tmp_path, trained, monkeypatch, capsys
):
    made = lesson(phantoms, tmp_path / "maker").run("teacher", progress=False)
    shipped = tmp_path / "teachers"
    files = pretrained.export_teacher(made, "tiny", "brain", shipped)
    assert set(torch.load(files[0], weights_only=True)) == set(pretrained.WEIGHTS_KEYS)  # no optimiser state
    monkeypatch.setattr(pretrained, "TEACHERS", shipped)
    trained.clear()

    student = lesson(phantoms, tmp_path / "colab").run("rkd", progress=False)
    assert trained == ["rkd"]  # the teacher was not trained
    out = capsys.readouterr().out
    assert "using the pretrained teacher-s0 shipped with pkd-lessons" in out
    teacher = lesson(phantoms, tmp_path / "colab").run("teacher", progress=False)
    assert teacher.reused and teacher.checkpoint_sha256 == student.identity["teacher"]

    # lesson 02 trains its own: the stored pretrained teacher is trained again, and students follow it
    own = lesson(phantoms, tmp_path / "colab").run("teacher", progress=False, pretrained=False)
    assert not own.reused and trained == ["rkd", "teacher"]
    assert "holds the pretrained teacher" in capsys.readouterr().out

    # made for other settings: not used, and one line says why
    lesson(phantoms, tmp_path / "other", teacher_steps=6).run("teacher", progress=False)
    assert trained[-1] == "teacher" and "made with other settings steps" in capsys.readouterr().out

    # a damaged shipped file is not used
    shutil.rmtree(tmp_path / "colab")
    files[0].write_bytes(files[0].read_bytes()[:-10])
    lesson(phantoms, tmp_path / "colab").run("teacher", progress=False)
    assert trained[-1] == "teacher" and "damaged" in capsys.readouterr().out


@pytest.mark.parametrize("record", sorted(pretrained.TEACHERS.glob("*.json")), ids=lambda p: p.stem)
def test_shipped_teachers_are_what_this_code_would_train(record):
    """A shipped teacher is used only for runs of the same behaviour fingerprint and phantoms: one
    made by code that now computes differently would never be used, so it must be made again."""
    saved = json.loads(record.read_text())
    profile, dataset, _ = record.stem.split("-", 2)
    cfg = TrainConfig.from_dict(saved["identity"]["config"])
    convention = CONVENTIONS["brats" if dataset == "brain" else "myops"]
    assert saved["identity"]["code"] == behaviour_fingerprint(cfg, convention), "run `pkd-lessons pretrain` again"
    assert saved["phantom_physics"] == physics_id(dataset), "the phantoms changed: run `pkd-lessons pretrain` again"
    assert pretrained.file_sha256(record.with_suffix(".pt")) == saved["checkpoint_sha256"]
    assert record.with_suffix(".pt").stat().st_size < 10e6  # weights only, a few MB
