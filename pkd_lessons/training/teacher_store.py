"""Where a frozen teacher's outputs for the training slices are kept, so that students share one pass.

The file is named by the teacher's fingerprint, the training cases and their data, so a student of
another teacher or other slices never reads it. It sits beside the teacher's checkpoint, or in
:func:`fallback_cache_dir` when that folder cannot be written; failing both, in memory only.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from pkd_lessons.atomic import atomic_file
from pkd_lessons.training.inputs import TeacherOutputs


def fallback_cache_dir() -> Path:
    """Where teacher outputs are kept when the teacher's own folder cannot be written:
    ``$PKD_LESSONS_CACHE``, else ``$XDG_CACHE_HOME/pkd-lessons``, else ``~/.cache/pkd-lessons``."""
    if os.environ.get("PKD_LESSONS_CACHE"):
        return Path(os.environ["PKD_LESSONS_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pkd-lessons"


def outputs_file_name(teacher_id: str, case_ids: Sequence[str], data_id: str, size: Sequence[int]) -> str:
    """The cache file of one teacher's outputs for one set of training slices (of spatial ``size``)."""
    key = hashlib.sha256(json.dumps([teacher_id, list(case_ids), data_id, tuple(size), "features"]).encode())
    return f"teacher-outputs-{key.hexdigest()[:16]}.pt"


def read_teacher_outputs(path: Path, slices: int, size: Sequence[int], bottleneck: bool) -> TeacherOutputs | None:
    """Stored teacher outputs that fit, or None (missing, damaged, other slices, or no bottleneck
    where one is needed). A damaged file is reported with a warning."""
    if not path.is_file():
        return None
    try:
        stored = torch.load(path, weights_only=True)
        outputs = TeacherOutputs(**stored)
    except Exception as err:  # noqa: BLE001 (torch raises many kinds for a damaged file)
        warnings.warn(f"{path}: damaged teacher-output cache ({type(err).__name__}); computing it again", stacklevel=3)
        return None
    if not isinstance(outputs.logits, torch.Tensor):
        return None
    shape = (outputs.logits.shape[0], *outputs.logits.shape[2:])
    if shape != (slices, *size) or (bottleneck and outputs.bottleneck is None):
        return None  # made for other slices, or without the bottleneck KD-Net needs
    return outputs


def cached_teacher_outputs(
    compute: Callable[[], TeacherOutputs],
    name: str,
    cache_dir: str | os.PathLike,
    slices: int,
    size: Sequence[int],
    bottleneck: bool,
) -> TeacherOutputs:
    """The teacher's outputs from ``cache_dir`` (or the fallback folder) if stored there, else computed.

    A stored file that cannot be read or does not fit these slices is computed afresh and replaced
    (written atomically). When neither folder can be written, the outputs are kept in memory only.

    Args:
        compute: computes the outputs (every one: logits, features, bottleneck).
        name: the file name (:func:`outputs_file_name`).
        cache_dir: the preferred folder (beside the teacher's checkpoint).
        slices: number of training slices.
        size: their spatial size.
        bottleneck: the run needs the bottleneck.

    Returns:
        The outputs.
    """
    places = [Path(cache_dir), fallback_cache_dir()]
    for folder in places:
        stored = read_teacher_outputs(folder / name, slices, size, bottleneck)
        if stored is not None:
            return stored
    outputs = compute()
    state = {"logits": outputs.logits, "features": outputs.features, "bottleneck": outputs.bottleneck}
    for folder in places:
        try:
            with atomic_file(folder / name) as tmp:
                torch.save(state, tmp)
            return outputs
        except (OSError, RuntimeError) as err:  # torch's writer reports a full disk as RuntimeError
            reason = getattr(err, "strerror", None) or str(err).splitlines()[0]
            warnings.warn(f"{folder / name}: cannot store the teacher's outputs there ({reason})", stacklevel=3)
    return outputs
