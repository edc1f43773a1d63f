"""A stored run: its record and checkpoint as one unit, reused only when all that made it matches.

A lesson run lives in a folder with ``checkpoint.pt`` and ``run.json``. The record holds the run's
metrics and history and its **identity**, everything that determines it:

- ``config``: its training settings;
- ``data``: a fingerprint of its data: the training, validation and test cases' identifiers,
  images, annotations, truths and brain masks (:func:`split_fingerprint`), so that other phantoms,
  another split or another real folder is other data;
- ``teacher``: the identity of the teacher it was distilled from (the teacher record's checkpoint
  hash, which itself depends on the teacher's identity), or None;
- ``code``: the fingerprint of the code's behaviour for runs of its kind
  (:func:`~pkd_lessons.training.behaviour.behaviour_fingerprint`).

The commit and version that made it are kept beside the identity (``provenance``), not in it: a
commit that changes no number keeps the runs. The record also carries the SHA-256 of the checkpoint
it describes and is written after it, atomically; a checkpoint replaced or damaged after its record
was written no longer matches it. A run is reused only when its record is readable, its identity is
the one asked for and its checkpoint is the one recorded; otherwise one line names the file and
says why, and the run is trained again. Writers of one run folder take turns (:func:`run_lock`).

A run being trained has no record yet: ``training.json`` holds its identity (:func:`write_partial`),
so that a checkpoint written part-way is resumed only by the run that wrote it.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from pkd_lessons.atomic import atomic_file, exclusive_lock
from pkd_lessons.data.volumes import CaseVolume

RECORD = "run.json"
CHECKPOINT = "checkpoint.pt"
#: The identity of a run being trained, written before its first step and removed with its record:
#: a checkpoint beside it is a run interrupted part-way, resumed only for the same identity.
PARTIAL = "training.json"
#: The parts of a run's identity, in the order a mismatch is reported.
IDENTITY_KEYS = ("config", "data", "teacher", "code")
_WHAT = {
    "config": "other settings",
    "data": "other data (cases, images, labels or split)",
    "teacher": "another teacher",
    "code": "code that computes differently (its behaviour fingerprint differs)",
}


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes, read in 1 MiB blocks.

    Args:
        path: the file.

    Returns:
        64 hexadecimal digits.
    """
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def split_fingerprint(groups: Sequence[Sequence[CaseVolume]]) -> str:
    """A short identifier of a split's data: every group's cases, in order, all their bytes.

    Args:
        groups: the training, validation and test cases (any number of groups).

    Returns:
        16 hexadecimal digits; it changes with any case identifier, image, annotation, truth, mask,
        with the group a case is in, and with the order of the groups.
    """
    h = hashlib.sha256()
    for g, group in enumerate(groups):
        h.update(f"group{g}:{len(group)}".encode())
        for v in group:
            h.update(v.case_id.encode())
            for array in (v.image, v.label, v.truth, v.mask):
                if array is None:
                    h.update(b"none")
                    continue
                h.update(str((array.dtype, array.shape)).encode())
                h.update(np.ascontiguousarray(array).data)
    return h.hexdigest()[:16]


@contextmanager
def run_lock(folder: str | os.PathLike) -> Iterator[None]:
    """Hold the run folder's lock: a second lesson that wants the same run waits, then reuses it.

    Args:
        folder: the run folder (created when missing).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(folder / ".lock"):
        yield


def reusable(folder: str | os.PathLike, identity: dict) -> tuple[dict | None, str]:
    """The stored record of a run, if it can be reused for ``identity``, and why not otherwise.

    Args:
        folder: the run folder.
        identity: ``{"config", "data", "teacher", "code"}`` of the run wanted.

    Returns:
        ``(record, "")`` when the record is readable, made for ``identity`` and its checkpoint is the
        one it names; else ``(None, reason)``, the reason naming the file (an empty reason when
        there is no record at all: a new run).
    """
    folder = Path(folder)
    record, checkpoint = folder / RECORD, folder / CHECKPOINT
    if not record.exists():
        return None, ""
    try:
        saved = json.loads(record.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        return None, f"{record}: not readable ({type(err).__name__}: {err})"
    if not isinstance(saved, dict) or not isinstance(saved.get("identity"), dict):
        return None, f"{record}: holds no run identity (written by an earlier version of the package)"
    for key in IDENTITY_KEYS:
        if saved["identity"].get(key) != identity.get(key):
            return None, f"{record}: made with {_WHAT[key]}"
    if not checkpoint.is_file():
        return None, f"{checkpoint}: missing beside its record"
    if file_sha256(checkpoint) != saved.get("checkpoint_sha256"):
        return None, f"{checkpoint}: not the checkpoint its record describes (replaced or damaged after it)"
    return saved, ""


def write_record(folder: str | os.PathLike, identity: dict, **content) -> dict:
    """Write a run's record for the checkpoint now in its folder (atomically).

    Args:
        folder: the run folder; its ``checkpoint.pt`` must be written already.
        identity: the run's identity.
        **content: the rest of the record (metrics, history, info, provenance, ...).

    Returns:
        The record written, with ``identity`` and ``checkpoint_sha256``.
    """
    folder = Path(folder)
    record = {**content, "identity": identity, "checkpoint_sha256": file_sha256(folder / CHECKPOINT)}
    with atomic_file(folder / RECORD) as tmp:
        tmp.write_text(json.dumps(record))
    return record


def write_partial(folder: str | os.PathLike, identity: dict) -> None:
    """Note, before a run's first step, the identity of the run being trained in ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_file(folder / PARTIAL) as tmp:
        tmp.write_text(json.dumps(identity))


def partial_identity(folder: str | os.PathLike) -> dict | None:
    """The identity of the run interrupted in ``folder`` (None: none, or the note is unreadable)."""
    try:
        return json.loads((Path(folder) / PARTIAL).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None


def clear_partial(folder: str | os.PathLike) -> None:
    """Remove the note of :func:`write_partial` once the run's record is written."""
    (Path(folder) / PARTIAL).unlink(missing_ok=True)
