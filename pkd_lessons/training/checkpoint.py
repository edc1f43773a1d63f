"""Checkpoints: written atomically, checked on load against the run that wants them."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

from pkd_lessons.atomic import atomic_file
from pkd_lessons.errors import DataError
from pkd_lessons.training.config import SPEED_KEYS, TrainConfig

FORMAT = "pkd-lessons-checkpoint"
VERSION = 1


def save_checkpoint(state: dict, path: str | os.PathLike) -> Path:
    """Write a checkpoint dict atomically (never a half-written file).

    Serialised in memory first and then written by Python: ``torch.save`` to a file reports a full
    disk as a ``RuntimeError`` from its C++ writer, Python's own write as the ``OSError`` it is.

    Raises:
        OSError: the file cannot be written (a full disk, a read-only folder); nothing is left.
    """
    path = Path(path)
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, "version": VERSION, **state}, buffer)
    with atomic_file(path) as tmp:
        write_bytes(tmp, buffer.getbuffer())
    return path


def write_bytes(path: Path, data) -> None:
    """Write ``data`` to ``path`` (one place, so that tests can make the disk full)."""
    with open(path, "wb") as f:
        f.write(data)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Raises:
        DataError: the file is missing, unreadable, or not a pkd-lessons checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises many kinds for a damaged file
        raise DataError(f"{path}: not a readable checkpoint ({type(err).__name__}: {err})") from err
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise DataError(f"{path}: not a pkd-lessons checkpoint")
    if state.get("version") != VERSION:
        raise DataError(f"{path}: checkpoint format version {state.get('version')}, this code reads {VERSION}")
    return state


def check_compatible(state: dict, cfg: TrainConfig, path: str | os.PathLike, strict: bool = False) -> None:
    """Refuse a checkpoint made for another network (or, with ``strict``, another run).

    Args:
        state: the loaded checkpoint.
        cfg: the run that wants to use it.
        path: the checkpoint's file, for the message.
        strict: require every setting to match (resuming); otherwise only the network's.

    Raises:
        DataError: naming the settings that differ.
    """
    saved = TrainConfig.from_dict(state["config"])
    if strict:  # everything but the settings of speed (placement, channels-last, compile)
        a, b = ({k: v for k, v in c.to_dict().items() if k not in SPEED_KEYS} for c in (saved, cfg))
    else:
        a, b = saved.model_signature(), cfg.model_signature()
    diff = {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}
    if diff:
        detail = "; ".join(f"{k}: checkpoint {x!r}, this run {y!r}" for k, (x, y) in diff.items())
        raise DataError(f"{path}: checkpoint was made for a different {'run' if strict else 'model'} ({detail})")


def fingerprint(state: dict) -> str:
    """A short identifier of a trained model: its settings, step and every byte of its weights.

    Two models that differ in any weight (or in a weight's dtype or shape) get different
    identifiers; hashing whole tensors costs about a millisecond per million weights.
    """
    h = hashlib.sha256(json.dumps(state["config"], sort_keys=True).encode())
    h.update(str(state["step"]).encode())
    for name, tensor in sorted(state["model"].items()):
        tensor = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        h.update(tensor.reshape(-1).view(torch.uint8).numpy().data)  # reshape: 0-d tensors too
    return h.hexdigest()[:16]


def save_or_rescue(save: Callable[[Path], Path], path: str | os.PathLike, rescue_name: str) -> Path:
    """Write a checkpoint with ``save``; where that fails, write it to the system's temporary folder.

    A full disk or a folder gone read-only at the end of a long run must not lose the run: the
    checkpoint goes to ``tempfile.gettempdir() / rescue_name`` instead, and the error says where.

    Args:
        save: writes the checkpoint to the path it is given (raises ``OSError`` when it cannot).
        path: where the checkpoint belongs.
        rescue_name: the file name of the rescued copy (unique to the run and step).

    Returns:
        ``path``, written.

    Raises:
        DataError: the checkpoint could not be written at ``path``; the message names the rescued
            copy, or says that none could be written either.
    """
    try:
        return save(Path(path))
    except OSError as err:
        rescue = Path(tempfile.gettempdir()) / rescue_name
        try:
            save(rescue)
        except OSError:
            raise DataError(
                f"{path}: cannot write the checkpoint ({err.strerror or err}), nor a copy in "
                f"{rescue.parent}; the run is lost"
            ) from err
        raise DataError(
            f"{path}: cannot write the checkpoint ({err.strerror or err}); the run was saved to "
            f"{rescue} instead: move it to {path} once there is room, and use it from there "
            "(or continue it with --resume)"
        ) from err
