"""A stored run is reused only when all that made it matches: settings, data, teacher, the code's
behaviour, and the checkpoint its record describes; a damaged or mismatched run is trained again
with one line naming the file; writers of one run take turns; the reference results say when the
code would no longer make them."""

from __future__ import annotations

import json
import shutil
import threading

import pytest

import pkd_lessons.losses as losses
import pkd_lessons.training.trainer as trainer_module
from pkd_lessons.data.labels import CONVENTIONS
from pkd_lessons.evaluation.prediction import score_case
from pkd_lessons.lessons.lesson import Lesson
from pkd_lessons.lessons.reference import REFERENCE_FILE, load_reference, reference_section, stale_runs
from pkd_lessons.phantoms.sets import physics_id
from pkd_lessons.training import behaviour
from pkd_lessons.training.behaviour import behaviour_fingerprint, probe
from pkd_lessons.training.config import TrainConfig

BRATS = CONVENTIONS["brats"]
TINY = {"teacher_steps": 4, "student_steps": 3, "validations": 0}


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory):
    """The tiny profile's brain phantoms, made once and copied into each test's data folder."""
    root = tmp_path_factory.mktemp("identity-data")
    lesson(root).brain()
    return root / "brain"


@pytest.fixture
def tmp_path(tmp_path, phantoms):
    shutil.copytree(phantoms, tmp_path / "brain")
    return tmp_path


def lesson(root, **settings) -> Lesson:
    return Lesson.start("tiny", root, root / "out", **{**TINY, **settings})


def test_a_run_is_reused_only_while_everything_that_made_it_matches(tmp_path, trained, capsys):
    first = lesson(tmp_path).run("rkd", progress=False)
    assert trained == ["teacher", "rkd"] and not first.reused
    again = lesson(tmp_path).run("rkd", progress=False)
    assert trained == ["teacher", "rkd"] and again.reused  # nothing trained again
    assert again.metrics == first.metrics and again.checkpoint_sha256 == first.checkpoint_sha256
    assert set(again.identity) == {"config", "data", "teacher", "code"}
    # the lessons' predictions are the maps the held-out scores were computed from
    reader = lesson(tmp_path)
    _, test = reader.split()
    assert all(
        score_case(reader.predict(again, v), v.truth, v.convention, v.spacing) == again.metrics["cases"][v.case_id]
        for v in test
    )

    # another teacher (trained longer): the teacher is trained again, and so is its student
    lesson(tmp_path, teacher_steps=5).run("rkd", progress=False)
    assert trained[2:] == ["teacher", "rkd"]
    out = capsys.readouterr().out
    assert "teacher-s0" in out and "other settings" in out
    assert "rkd-s0" in out and "another teacher" in out

    # other data: another split of the same phantoms (a held-out case becomes a training case); the
    # old runs, scored on other cases, are not returned (other phantoms or another real folder
    # change the same fingerprint: every case's bytes)
    capsys.readouterr()
    lesson(tmp_path, teacher_steps=5, split=(4, 1, 2)).run("rkd", progress=False)
    assert trained[4:] == ["teacher", "rkd"]
    assert "made with other data" in capsys.readouterr().out


def test_damaged_or_mismatched_records_are_trained_again_naming_the_file(tmp_path, trained, capsys):
    base = lesson(tmp_path).run("baseline", progress=False)
    record, checkpoint = base.folder / "run.json", base.folder / "checkpoint.pt"

    # a checkpoint that is not the one the record describes (written after it, as an interrupted
    # run leaves it): another valid checkpoint in its place
    teacher = lesson(tmp_path).run("teacher", progress=False)
    shutil.copyfile(teacher.checkpoint, checkpoint)
    capsys.readouterr()
    lesson(tmp_path).run("baseline", progress=False)
    line = capsys.readouterr().out.strip()
    assert str(checkpoint) in line and "not the checkpoint its record describes" in line
    assert line.count("\n") == 0

    # a truncated checkpoint
    checkpoint.write_bytes(checkpoint.read_bytes()[:1000])
    lesson(tmp_path).run("baseline", progress=False)
    assert "not the checkpoint its record describes" in capsys.readouterr().out

    # a truncated record: named, and trained again (not a raw JSONDecodeError on every rerun)
    record.write_text(record.read_text()[:50])
    lesson(tmp_path).run("baseline", progress=False)
    line = capsys.readouterr().out
    assert str(record) in line and "not readable" in line
    # a record from before runs had an identity
    saved = json.loads(record.read_text())
    del saved["identity"]
    record.write_text(json.dumps(saved))
    run = lesson(tmp_path).run("baseline", progress=False)
    assert "holds no run identity" in capsys.readouterr().out
    assert trained == ["baseline", "teacher", "baseline", "baseline", "baseline", "baseline"]
    assert lesson(tmp_path).run("baseline", progress=False).reused and run.folder == base.folder


def test_code_that_computes_differently_is_not_reused(tmp_path, trained, monkeypatch, capsys):
    lesson(tmp_path).run("baseline", progress=False)
    real = trainer_module.segmentation_loss
    monkeypatch.setattr(trainer_module, "segmentation_loss", lambda *a, **k: 1.01 * real(*a, **k))
    monkeypatch.setattr(behaviour, "_FOUND", {})
    lesson(tmp_path).run("baseline", progress=False)
    assert trained == ["baseline", "baseline"]
    assert "code that computes differently" in capsys.readouterr().out


def test_two_writers_of_one_run_take_turns(tmp_path, trained):
    lesson(tmp_path).run("teacher", progress=False)  # the phantoms and the teacher exist first
    runs, errors = [], []

    def ask():
        try:
            runs.append(lesson(tmp_path).run("baseline", progress=False))
        except Exception as err:  # pragma: no cover (reported below)
            errors.append(err)

    threads = [threading.Thread(target=ask) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert trained == ["teacher", "baseline"]  # the second waited for the first, then reused its run
    assert sorted(r.reused for r in runs) == [False, True]


def test_behaviour_fingerprint_follows_what_is_computed_not_sizes_or_seeds(monkeypatch):
    cfg = TrainConfig(method="pkl", widths=(8, 16, 32, 64), slice_crop=(64, 64), dropout=0.0)
    print_ = behaviour_fingerprint(cfg, BRATS)
    assert probe(cfg, BRATS) == probe(cfg, BRATS)  # deterministic
    same = TrainConfig.from_dict({**cfg.to_dict(), "seed": 2, "steps": 700, "batch_size": 16})
    assert behaviour_fingerprint(same, BRATS) == print_
    for change in ({"temperature": 4.0}, {"pixel_weight": 1.0}, {"method": "rkd"}, {"lr": 1e-3}):
        assert behaviour_fingerprint(TrainConfig.from_dict({**cfg.to_dict(), **change}), BRATS) != print_, change
    real = losses.regularized_kd_loss  # the rkd method reads it from pkd_lessons.losses when it computes
    monkeypatch.setattr(losses, "regularized_kd_loss", lambda *a, **k: 0.5 * real(*a, **k))
    monkeypatch.setattr(behaviour, "_FOUND", {})
    assert behaviour_fingerprint(cfg, BRATS) != print_


def test_reference_results_say_which_runs_the_code_would_not_make_again(tmp_path):
    data = {
        "provenance": {"convention": "brats", "phantom_physics": physics_id("brain")},
        "records": [{"run": "baseline-s0", "method": "baseline"}],
        "histories": {},
    }
    assert stale_runs(data) == ["baseline-s0: no identity stored (made before runs had one)"]
    cfg = TrainConfig(method="baseline", widths=(4, 8, 16, 32), dropout=0.0)
    data["records"][0]["identity"] = {"config": cfg.to_dict(), "code": behaviour_fingerprint(cfg, BRATS)}
    assert stale_runs(data) == []
    data["records"][0]["identity"]["code"] = "0" * 16
    assert "computes differently" in stale_runs(data)[0]
    data["provenance"]["phantom_physics"] = "0" * 12  # phantoms made by other physics
    assert "phantoms of other physics" in stale_runs(data)[0]


def test_committed_reference_results_say_whether_the_code_would_make_them():
    """Wherever the lessons show the stored reference results, they say when this code would not
    make them again (every run's behaviour fingerprint is checked against the code's)."""
    data = load_reference(REFERENCE_FILE)
    assert data is not None
    stale = stale_runs(data)
    assert ("earlier version of the code" in reference_section(("pkl",))) == bool(stale)
