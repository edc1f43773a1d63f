"""Score the stored reference runs again after a change of how networks are scored, not trained.

Training the reference takes about 2 hours on 2 cores. A change that only alters how a trained
network is scored (where the sliding windows go, a metric) leaves every network as it was, so
:func:`rescore_reference` computes each stored run's held-out metrics again from its checkpoint and
stores this code's behaviour fingerprint with them, after three checks:

1. every run's checkpoint is the one its record describes (SHA-256), on the same data;
2. **training is unchanged**: for every kind of run (method and settings), training is repeated up
   to the step of the :data:`CHECK_STEPS`-th stored loss (the stored losses are thinned, every few
   steps: 1, 4, 7 for the reference's students) and those losses must equal the stored ones to the
   behaviour fingerprint's precision (:data:`~pkd_lessons.training.behaviour.DIGITS` significant
   digits: a change in the last bits, such as another summation order, passes, as it does for
   reusing a run); where they do not, nothing is written and the runs must be trained again
   (``pkd-lessons reference``);
3. the result is written atomically, with the commit that scored it (``provenance["scored"]``)
   beside the commit that trained; each run folder's own record is scored again too, so that a later
   ``pkd-lessons reference`` reuses the runs.

The validation curves were scored during training by the earlier code and cannot be scored again
without the networks of those steps: they are removed (the training losses stay).

Example::

    pkd-lessons reference --rescore
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from tqdm.auto import tqdm

from pkd_lessons.atomic import atomic_file
from pkd_lessons.errors import DataError
from pkd_lessons.lessons.provenance import source_commit
from pkd_lessons.lessons.reference import REFERENCE_FILE, load_reference
from pkd_lessons.training.behaviour import PROBE_STEPS

#: Stored losses of every kind of run reproduced to show that training is unchanged: as many as the
#: behaviour fingerprint's probe has steps (a changed loss, network or sampler shows in the first
#: steps; a change in the last bits, such as the projection head's running-sum pooling, grows with
#: the steps and reaches the 5th digit of ckd's loss by step 10, which the fingerprint, like this
#: check, accepts).
CHECK_STEPS = PROBE_STEPS

_WORKER: dict = {}


def rescore_reference(
    path: str | os.PathLike = REFERENCE_FILE,
    data_root: str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
    progress: bool = True,
    check_steps: int = CHECK_STEPS,
) -> Path:
    """Score the stored reference runs again with this code (see the module docstring).

    Args:
        path: the reference results to score again.
        data_root: the folder the runs were trained in (their checkpoints are read from
            ``RUNS_DIR/<profile>/brain/<run>``, :attr:`Lesson.runs_root`; default: the lessons' data folder).
        out: where to write (default: ``path``).
        progress: progress bars.
        check_steps: steps of every kind of run trained again.

    Returns:
        The path written.

    Raises:
        FileNotFoundError: no reference results at ``path``.
        DataError: a checkpoint missing or not the recorded one, other data, or training that no
            longer reproduces the stored losses (nothing is written).
    """
    from pkd_lessons.lessons.lesson import Lesson, _one_thread
    from pkd_lessons.lessons.store import file_sha256
    from pkd_lessons.training.behaviour import DIGITS, behaviour_fingerprint, significant
    from pkd_lessons.training.config import TrainConfig
    from pkd_lessons.training.trainer import train

    data = load_reference(path)
    if data is None:
        raise FileNotFoundError(f"{path}: no reference results to score again")
    start = time.perf_counter()
    commit = source_commit()
    profile = data["provenance"]["profile"]
    scratch = tempfile.mkdtemp(prefix="pkd-rescore-")
    try:
        lesson = Lesson.start(profile, data_root, output_dir=scratch)
        train_volumes, _ = lesson.split("brain")
        runs = lesson.runs_root / profile / "brain"
        data_id = lesson.fingerprint("brain")
        for rec in data["records"]:
            checkpoint = runs / rec["run"] / "checkpoint.pt"
            if rec["identity"]["data"] != data_id:
                raise DataError(f"{rec['run']}: trained on other data than {lesson.brain} holds now")
            if not checkpoint.is_file():
                raise DataError(f"{checkpoint}: missing; the run must be trained again (pkd-lessons reference)")
            if file_sha256(checkpoint) != rec["checkpoint_sha256"]:
                raise DataError(f"{checkpoint}: not the checkpoint its record describes")

        teacher = next(runs / r["run"] / "checkpoint.pt" for r in data["records"] if r["method"] == "teacher")
        kinds: dict[str, dict] = {}
        for rec in data["records"]:
            settings = {k: v for k, v in rec["identity"]["config"].items() if k != "seed"}
            kinds.setdefault(json.dumps(settings, sort_keys=True), rec)
        checked: set[str] = set()  # the steps compared, per kind of run
        for rec in tqdm(kinds.values(), desc="training unchanged?", unit="kind", disable=not progress):
            cfg = TrainConfig.from_dict(rec["identity"]["config"])
            stored = data["histories"].get(f"{rec['method']}-s{cfg.seed}", {})
            # the stored loss is thinned (every few steps): compare its first check_steps points
            points = list(zip(stored.get("loss_step", []), stored.get("loss", [])))[:check_steps]
            if len(points) < min(check_steps, 2) or points[-1][0] < 2:
                raise DataError(
                    f"{rec['run']}: too few stored losses to show that training is unchanged "
                    f"({len(points)} point(s) up to step {points[-1][0] if points else 0})"
                )
            trainer = train(
                cfg,
                train_volumes,
                teacher if cfg.needs_teacher else None,
                device="cpu",
                progress=False,
                until=points[-1][0],
            )
            again = trainer.history["loss"]
            differ = [
                (step, value, again[step - 1])
                for step, value in points
                if significant(again[step - 1]) != significant(value)
            ]
            if differ:
                step, value, now = differ[0]
                raise DataError(
                    f"{rec['run']}: training no longer reproduces the stored losses to {DIGITS} significant "
                    f"digits (step {step}: stored {value!r}, now {now!r}); train the runs again with "
                    "`pkd-lessons reference`"
                )
            checked.add(", ".join(str(step) for step, _ in points))

        jobs = [
            (profile, str(lesson.data_root), scratch, str(runs / r["run"] / "checkpoint.pt"), r["run"])
            for r in data["records"]
        ]
        bar = partial(tqdm, total=len(jobs), desc="scoring", unit="run", disable=not progress)
        workers = min(len(jobs), os.cpu_count() or 1)
        toy = len(train_volumes) < 4
        if workers > 1 and not toy:
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(workers, mp_context=context, initializer=_one_thread) as pool:
                scored = list(bar(pool.map(_score, jobs)))
        else:  # toy runs: starting the processes would cost more than it saves
            try:
                scored = list(bar(map(_score, jobs)))
            finally:
                _WORKER.clear()
        convention = train_volumes[0].convention
        records = []
        for rec, metrics in zip(data["records"], scored):
            cfg = TrainConfig.from_dict(rec["identity"]["config"])
            identity = dict(rec["identity"], code=behaviour_fingerprint(cfg, convention))
            records.append(
                dict(metrics, method=rec["method"], identity=identity, checkpoint_sha256=rec["checkpoint_sha256"])
            )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    histories = {
        name: {k: v for k, v in h.items() if not k.startswith("val_")} for name, h in data["histories"].items()
    }
    provenance = dict(data["provenance"])
    provenance["scored"] = {
        "commit": commit,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "seconds": round(time.perf_counter() - start, 1),
        "what": (
            "held-out metrics scored again from the stored checkpoints (pkd-lessons reference --rescore); "
            f"training unchanged: every kind of run trained again reproduced its first stored losses "
            f"(steps {' or '.join(sorted(checked))}) to {DIGITS} significant digits; validation curves removed"
        ),
    }
    out = Path(out or path)
    with atomic_file(out) as tmp:
        tmp.write_text(
            json.dumps({**data, "provenance": provenance, "records": records, "histories": histories}, indent=1)
        )
    for rec, metrics in zip(records, scored):  # after the results file: a failure before it changes no run
        _update_run_record(runs / rec["run"], metrics, rec["identity"])
    return out


def _update_run_record(folder: Path, metrics: dict, identity: dict) -> None:
    """The run folder's own record scored again too (atomically), so that ``pkd-lessons reference``
    reuses the run instead of training it again; its validation curves go as in the results file."""
    from pkd_lessons.lessons.store import RECORD

    record = json.loads((folder / RECORD).read_text())
    history = {k: v for k, v in record.get("history", {}).items() if not k.startswith("val_")}
    with atomic_file(folder / RECORD) as tmp:
        tmp.write_text(json.dumps({**record, "metrics": metrics, "history": history, "identity": identity}))


def _score(job: tuple[str, str, str, str, str]) -> dict:
    """A worker: the held-out metrics of one stored run, as :meth:`Lesson.run` computes them."""
    from pkd_lessons.evaluation.prediction import evaluate
    from pkd_lessons.lessons.lesson import Lesson
    from pkd_lessons.training.precision import choose_precision
    from pkd_lessons.training.trainer import load_model

    profile, data_root, scratch, checkpoint, name = job
    if "test" not in _WORKER:  # the held-out cases, loaded once per worker
        _WORKER["test"] = Lesson.start(profile, data_root, output_dir=scratch).split("brain")[1]
    model, cfg, _ = load_model(checkpoint)
    precision = choose_precision("cpu", cfg.amp)
    return evaluate(
        model, cfg, _WORKER["test"], "cpu", progress=False, name=name, precision=precision if precision.dtype else None
    )
