"""Write whole phantom sets: every case, a manifest and the template's notice, all or nothing."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

from tqdm.auto import tqdm

from pkd_lessons import __version__
from pkd_lessons.atomic import FOLDER_MARKER, atomic_dir, atomic_file, check_replaceable_dir
from pkd_lessons.phantoms import brain, cardiac

KINDS: tuple[str, ...] = ("brain", "cardiac")
MANIFEST = "phantom.json"


def make_phantoms(
    kind: str,
    out: str | os.PathLike,
    cases: int,
    seed: int = 0,
    voxel_mm: float | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Generate a phantom set into ``out``.

    The set is built in a temporary folder beside ``out`` and renamed into place at the end, so
    ``out`` is either absent or complete, never half-written. Case ``i`` depends only on
    ``(seed, i)``: a larger set extends a smaller one with the same seed.

    Args:
        kind: ``"brain"`` (BraTS 2021 layout) or ``"cardiac"`` (MyoPS 2020 layout).
        out: destination folder.
        cases: number of cases (at least 1).
        seed: random seed; the same seed gives the same bytes.
        voxel_mm: brain voxel size (default 2 mm; 1 mm is the template's grid); brain only.
        overwrite: replace an existing ``out``.
        progress: show a progress bar.

    Returns:
        The destination folder.

    Raises:
        ValueError: unknown ``kind``, a non-positive ``cases``, ``voxel_mm`` outside 0.5-4 mm or
            given for cardiac phantoms, or ``out`` is the current folder or one above it.
        FileExistsError: ``out`` exists and ``overwrite`` is False; or ``out`` is a file or a link;
            or ``out`` is a folder with content that this package did not write (no manifest):
            ``overwrite`` replaces phantom sets only, and never touches anything else.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if cases < 1:
        raise ValueError(f"cases must be at least 1, got {cases}")
    if voxel_mm is not None and kind != "brain":
        raise ValueError(f"voxel_mm sets the brain phantoms' grid; the {kind} phantoms have their own, leave it out")
    out = Path(out)
    check_replaceable(out, overwrite)
    if kind == "brain":
        cfg = brain.BrainPhantomConfig(voxel_mm=2.0 if voxel_mm is None else voxel_mm)
        habits = brain.rater_panel(seed, cfg)
    else:
        cfg = cardiac.CardiacPhantomConfig()
        habits = cardiac.rater_panel(seed, cfg)
    records = []
    with atomic_dir(out, overwrite=overwrite, is_ours=lambda p: read_manifest(p) is not None) as tmp:
        for index in tqdm(range(cases), desc=f"{kind} phantoms", unit="case", disable=not progress):
            if kind == "brain":
                case = brain.make_brain_case(seed, index, cfg, habits)
                name = brain.case_name(index)
                brain.write_brain_case(case, tmp / name, name)
            else:
                case = cardiac.make_cardiac_case(seed, index, cfg, habits)
                name = cardiac.case_name(index)
                cardiac.write_cardiac_case(case, tmp, name)
            records.append({"case": name, **case.info})
        if kind == "brain":
            (tmp / "MNI-COPYRIGHT.txt").write_text(brain.NOTICE)
        manifest = {
            "kind": kind,
            "cases": cases,
            "seed": seed,
            "generator": f"pkd-lessons {__version__}",
            "config": asdict(cfg),
            "rater_habits_mm": habits.round(3).tolist(),
            "records": records,
        }
        with atomic_file(tmp / MANIFEST) as path:
            path.write_text(json.dumps(manifest, indent=1))
    return out


def check_replaceable(out: Path, overwrite: bool) -> None:
    """Refuse destinations that :func:`make_phantoms` must not replace (see its Raises).

    :func:`~pkd_lessons.atomic.check_replaceable_dir` is the mechanism (files, links, the current
    folder, folders this package did not write); this adds the phantom set's own reason.
    """
    if not (out.exists() or out.is_symlink()):
        return
    if out.is_dir() and not out.is_symlink() and not overwrite:
        raise FileExistsError(
            f"{out} already exists; choose another folder or pass --overwrite to replace a phantom set"
        )
    if (
        out.is_dir()
        and not out.is_symlink()
        and any(out.iterdir())
        and read_manifest(out) is None
        and not (out / FOLDER_MARKER).is_file()
    ):
        raise FileExistsError(
            f"{out}: not a phantom set written by pkd-lessons (no {MANIFEST}); --overwrite replaces "
            "phantom sets only, so this folder is left as it is"
        )
    check_replaceable_dir(out, is_ours=lambda p: read_manifest(p) is not None)


def read_manifest(folder: str | os.PathLike) -> dict | None:
    """The manifest of a phantom set, or None when ``folder`` holds none."""
    path = Path(folder) / MANIFEST
    try:
        manifest = json.loads(path.read_text()) if path.is_file() else None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None  # unreadable: not treated as this package's, so never replaced
    return manifest if isinstance(manifest, dict) and "kind" in manifest else None


def ensure_phantoms(kind: str, out: str | os.PathLike, cases: int, seed: int = 0, progress: bool = True) -> Path:
    """Return ``out`` holding a phantom set of this kind, seed and size, generating it if needed.

    An existing folder made with other settings is regenerated; a folder that is not a phantom set
    is never touched.

    Raises:
        FileExistsError: ``out`` exists but was not made by :func:`make_phantoms`.
    """
    out = Path(out)
    manifest = read_manifest(out)
    if manifest and (manifest["kind"], manifest["cases"], manifest["seed"]) == (kind, cases, seed):
        return out
    if out.exists() and manifest is None and any(out.iterdir()):
        raise FileExistsError(f"{out} exists and is not a phantom set; choose another folder")
    return make_phantoms(kind, out, cases, seed, overwrite=out.exists(), progress=progress)
