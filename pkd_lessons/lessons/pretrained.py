"""Pretrained teachers shipped with the package, so that a lesson opened on its own starts in minutes.

Lessons 03-08 distil from the teacher that lesson 02 trains. A learner who opens one of them alone
(a Colab notebook from its badge, on a fresh machine) would first wait for that teacher to train;
instead :meth:`~pkd_lessons.lessons.lesson.Lesson.run` takes the teacher shipped in
``pkd_lessons/lessons/teachers/`` when it was made for the run asked for.

Each teacher is two files, written by ``pkd-lessons pretrain`` (:func:`export_teacher`):

- ``PROFILE-DATASET-teacher-s0.pt``: the weights only (the network's settings, step and weights;
  no optimiser state), a pkd-lessons checkpoint;
- ``PROFILE-DATASET-teacher-s0.json``: its run record: the identity it was trained for (settings,
  data fingerprint, behaviour fingerprint of the code), its held-out scores and history, the time
  and device it took, the version and commit that made it, and the SHA-256 of the ``.pt`` file.

A shipped teacher is used only when the data and the code's behaviour fingerprint are those of the
run asked for, and its settings are too except the settings of speed and precision (a teacher
trained in float32 on a CPU serves a lab run on a GPU, where the lesson would train in fp16). It is
copied into the run folder with a record for the run asked for, which names it as pretrained; the
lesson says so in one line. Lesson 02 trains its own teacher (``pretrained=False``).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from pkd_lessons.atomic import atomic_file
from pkd_lessons.lessons.store import CHECKPOINT, IDENTITY_KEYS, RECORD, clear_partial, file_sha256, write_record

#: Where the shipped teachers are.
TEACHERS = Path(__file__).resolve().parent / "teachers"
#: Settings in which a shipped teacher may differ from the run asked for: speed and precision.
LOOSE_KEYS = ("amp", "placement", "channels_last", "compile")
#: What a shipped teacher's checkpoint keeps: enough to load it, fingerprint it and distil from it.
WEIGHTS_KEYS = ("format", "version", "config", "step", "model", "heads")


def shipped(profile: str, dataset: str, name: str = "teacher-s0", folder: Path | None = None) -> tuple[Path, Path]:
    """The weights and the record of a shipped teacher (which may not exist).

    Args:
        profile: the lessons' profile (``quick``, ``lab``).
        dataset: ``brain`` or ``cardiac``.
        name: the run's name.
        folder: where the teachers are (default :data:`TEACHERS`).

    Returns:
        ``(weights, record)`` paths.
    """
    stem = (folder or TEACHERS) / f"{profile}-{dataset}-{name}"
    return stem.with_suffix(".pt"), stem.with_suffix(".json")


def mismatch(saved: dict, identity: dict) -> str:
    """Why a shipped teacher's identity does not serve the run asked for ("" when it does).

    Args:
        saved: the identity it was trained for.
        identity: the identity of the run asked for.

    Returns:
        An empty string, or the part that differs (``"data"``, ``"code"``, or the settings named).
    """
    for key in IDENTITY_KEYS:
        if key == "config":
            a, b = ({k: v for k, v in c.items() if k not in LOOSE_KEYS} for c in (saved["config"], identity["config"]))
            differ = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
            if differ:
                return "settings " + ", ".join(differ)
        elif saved.get(key) != identity.get(key):
            return key
    return ""


def install_pretrained(
    profile: str, dataset: str, name: str, folder: str | os.PathLike, identity: dict, teachers: Path | None = None
) -> dict | None:
    """Copy the shipped teacher into a run folder when it serves the run asked for.

    Args:
        profile: the lesson's profile.
        dataset: ``brain`` or ``cardiac``.
        name: the run's name (``teacher-s0``; other teachers are not shipped).
        folder: the run folder (held under :func:`~pkd_lessons.lessons.store.run_lock` by the caller).
        identity: the identity of the run asked for.
        teachers: where the teachers are (default :data:`TEACHERS`).

    Returns:
        The record written into ``folder`` (with a ``pretrained`` entry saying what made the weights),
        or None where no shipped teacher serves (none for this profile and data set, or one made for
        other data, code or settings: one line says which).
    """
    weights, record_file = shipped(profile, dataset, name, teachers)
    if not (weights.is_file() and record_file.is_file()):
        return None
    shipped_record = json.loads(record_file.read_text())
    why = mismatch(shipped_record["identity"], identity)
    if why:
        print(f"the pretrained {name} shipped for {profile}/{dataset} was made with other {why}; training one here")
        return None
    if file_sha256(weights) != shipped_record["checkpoint_sha256"]:
        print(f"{weights}: not the weights its record describes (damaged); training {name} here")
        return None
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_file(folder / CHECKPOINT) as tmp:
        shutil.copyfile(weights, tmp)
    made = shipped_record["provenance"]
    clear_partial(folder)  # an interrupted run of the same teacher left there is replaced, not resumed
    return write_record(
        folder,
        identity,
        config=identity["config"],
        metrics=shipped_record["metrics"],
        history=shipped_record["history"],
        info=shipped_record["info"],
        provenance=made,
        pretrained={
            "version": made.get("versions", {}).get("pkd_lessons"),
            "commit": made.get("commit"),
            "seconds": shipped_record["info"].get("seconds", 0.0),
            "device": shipped_record["info"].get("device"),
            "config": shipped_record["identity"]["config"],
        },
    )


def export_teacher(run, profile: str, dataset: str, out: str | os.PathLike | None = None) -> tuple[Path, Path]:
    """Write a trained teacher as a shipped one: its weights only, and its record.

    Args:
        run: the teacher's :class:`~pkd_lessons.lessons.lesson.Run` (trained, not itself pretrained).
        profile: its profile.
        dataset: its data set.
        out: the folder to write (default :data:`TEACHERS`).

    Returns:
        The ``(weights, record)`` paths written (each atomically).
    """
    from pkd_lessons.lessons.provenance import provenance
    from pkd_lessons.phantoms.sets import physics_id
    from pkd_lessons.training.checkpoint import load_checkpoint, save_checkpoint

    out = Path(out) if out else TEACHERS
    out.mkdir(parents=True, exist_ok=True)
    weights, record_file = shipped(profile, dataset, run.name, out)
    state = load_checkpoint(run.checkpoint)
    save_checkpoint({k: state[k] for k in WEIGHTS_KEYS if k not in ("format", "version")}, weights)  # atomic
    record = {
        "identity": run.identity,
        "metrics": run.metrics,
        "history": run.history,
        "info": run.info,
        # what trained it: the run's own record (the commit and versions when it was trained)
        "provenance": json.loads((run.folder / RECORD).read_text()).get("provenance") or provenance(),
        # the phantoms' physics: a shipped teacher made on other phantoms is out of date (the tests check)
        "phantom_physics": physics_id(dataset),
        "checkpoint_sha256": file_sha256(weights),
    }
    with atomic_file(record_file) as tmp:
        tmp.write_text(json.dumps(record))
    return weights, record_file


def pretrain(
    profile: str,
    datasets: tuple[str, ...] = ("brain", "cardiac"),
    data_root: str | os.PathLike | None = None,
    runs_dir: str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
) -> list[Path]:
    """Train (or reuse) the teachers of a profile as the lessons train them, and export them.

    Args:
        profile: the profile (``quick``, ``lab``).
        datasets: the data sets whose teacher to export.
        data_root: the phantoms' folder (default: the lessons' data folder).
        runs_dir: the runs' folder (default: the lessons').
        out: the folder to write (default :data:`TEACHERS`, inside the package).

    Returns:
        The files written.
    """
    import tempfile

    from pkd_lessons.lessons.lesson import Lesson

    written = []
    with tempfile.TemporaryDirectory(prefix="pkd-pretrain-") as scratch:
        lesson = Lesson.start(profile, data_root, scratch, runs_dir=runs_dir)
        for dataset in datasets:
            run = lesson.run("teacher", 0, dataset, pretrained=False)
            written += export_teacher(run, lesson.settings["profile"], dataset, out)
    return written
