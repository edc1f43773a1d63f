"""Check a BraTS or MyoPS / MS-CMRSeg download case by case, writing nothing.

Unlike the loader, which stops at the first bad file, a checker reads every case and lists every
problem of each, so a user sees at once what their download lacks:

* every modality and the label present (no label expected for validation/test sets);
* every file readable NIfTI, 3-D;
* the modalities and the label of a case on one grid (same shape and affine);
* label values those of the data set's convention for that year.

MS-CMRSeg 2019 (the predecessor of MyoPS) stores bSSFP (C0), LGE (DE) and T2 **not co-registered**:
different slice counts, in-plane sizes and positions per sequence. That is no defect of the
download, so it is reported as a note; but pixel-level distillation pairs teacher and student
pixels, so it needs MyoPS 2020 (co-registered) or a registration step first.
"""

from __future__ import annotations

import os
import re
import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import PurePosixPath

import numpy as np
from tqdm.auto import tqdm

from pkd_lessons.data.labels import BRATS, BRATS2023, MYOPS
from pkd_lessons.data.layouts import BRAIN_MODALITIES, BRATS2023_NAMES, MYOPS_SUFFIX
from pkd_lessons.data.volumes import AFFINE_TOLERANCE_MM
from pkd_lessons.errors import DataError
from pkd_lessons.realdata.sources import NiftiSource

#: Label values by BraTS edition: enhancing tumour is 4 until 2021, 3 from 2023.
BRATS_LABELS = {year: tuple(sorted(BRATS.values)) for year in range(2017, 2022)} | {
    2023: tuple(sorted(BRATS2023.values))
}
MYOPS_LABELS = tuple(sorted(MYOPS.values))  # background, myocardium, LV, RV, oedema, scar
MSCMRSEG_LABELS = (0, 200, 500, 600)  # MS-CMRSeg 2019: background, myocardium, LV, RV (MyoPS's values)
HEART_SEQUENCES = {suffix: m for m, suffix in MYOPS_SUFFIX.items()}  # file suffix -> sequence
NOT_COREGISTERED = (
    "MS-CMRSeg's sequences are not co-registered; pixel-level distillation needs MyoPS 2020 "
    "or a registration step first"
)


@dataclass
class CaseReport:
    """What was checked of one case and what is wrong with it."""

    case_id: str
    files: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No problem found."""
        return not self.problems


@dataclass
class FolderReport:
    """The result of checking a download."""

    source: str
    dataset: str
    cases: list[CaseReport]
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """At least one case, and no case with a problem."""
        return bool(self.cases) and all(c.ok for c in self.cases)

    @property
    def bad(self) -> list[CaseReport]:
        """The cases with problems."""
        return [c for c in self.cases if not c.ok]

    def to_text(self, limit: int = 50) -> str:
        """A readable report: one line per problem, then a summary line."""
        lines = [f"{self.dataset}: {self.source}"]
        lines += [f"  note: {n}" for n in self.notes]
        for case in self.bad[:limit]:
            lines += [f"  {case.case_id}: {p}" for p in case.problems]
        noted = [c for c in self.cases if c.notes]
        for case in noted[:limit]:
            lines += [f"  {case.case_id}: note: {n}" for n in case.notes]
        if len(noted) > limit:
            lines.append(f"  ... and {len(noted) - limit} more case(s) with notes")
        if len(self.bad) > limit:
            lines.append(f"  ... and {len(self.bad) - limit} more case(s) with problems")
        verdict = "OK" if self.ok else "PROBLEMS"
        lines.append(f"{verdict}: {len(self.cases)} case(s), {len(self.bad)} with problems")
        return "\n".join(lines)


def _stem(name: str) -> str:
    return re.sub(r"\.nii(\.gz)?$", "", PurePosixPath(name).name)


def _check_case(
    source: NiftiSource,
    report: CaseReport,
    expected_labels: tuple[int, ...],
    images: list[str],
    label: str | None,
    same_grid: bool,
    deep: bool,
) -> dict:
    """Read one case's files and add what is wrong to ``report``; returns ``{key: (shape, affine)}``."""
    grids = {}
    for key in [*images, *([label] if label else [])]:
        name = report.files[key]
        try:
            img = source.load(name)
        except DataError as err:
            report.problems.append(str(err))
            continue
        if len(img.shape) != 3:
            report.problems.append(f"{key}: expected a 3-D image, got shape {img.shape}")
            continue
        grids[key] = (img.shape, img.affine)
        if key != label and not deep:
            continue
        try:  # nibabel reads a file's header first and its data only now: a truncated file fails here
            data = np.asarray(img.dataobj, dtype=np.float32)
        except (EOFError, OSError, zlib.error, ValueError) as err:
            report.problems.append(
                f"{key}: {source.where(name)}: data unreadable, truncated? ({type(err).__name__}: {err})"
            )
            continue
        if key == label:
            values = np.unique(data)
            if not np.array_equal(values, np.rint(values)):
                report.problems.append(f"{key}: label holds non-integer values")
            unexpected = sorted(set(np.rint(values).astype(int).tolist()) - set(expected_labels))
            if unexpected:
                report.problems.append(f"{key}: label values {unexpected} not in the expected {list(expected_labels)}")
            if values.max(initial=0) == 0:
                report.notes.append(f"{key}: label is empty")
        else:
            if not np.isfinite(data).all():
                report.problems.append(f"{key}: {int((~np.isfinite(data)).sum())} non-finite voxel(s)")
            elif not data.any():
                report.problems.append(f"{key}: image is all zeros")
    if not grids:
        return grids
    ref_key = next(iter(grids))
    ref_shape, ref_affine = grids[ref_key]
    differing = [
        k
        for k, (shape, affine) in grids.items()
        if shape != ref_shape or not np.allclose(affine, ref_affine, atol=AFFINE_TOLERANCE_MM)
    ]
    if differing and same_grid:
        for k in differing:
            shape, affine = grids[k]
            what = f"shape {shape} vs {ref_shape}" if shape != ref_shape else "affine (position/orientation)"
            report.problems.append(f"{k}: {what} of {ref_key}; the files of a case must share one grid")
    elif differing:
        report.notes.append("sequences on different grids (" + ", ".join(f"{k} {grids[k][0]}" for k in grids) + ")")
    return grids


def _run(
    source: NiftiSource,
    dataset: str,
    groups: dict[str, dict[str, str]],
    required: list[str],
    label_key: str | None,
    expected_labels: tuple[int, ...],
    same_grid: bool,
    deep: bool,
    progress: bool,
) -> list[CaseReport]:
    reports = []
    for case_id in tqdm(sorted(groups), desc=f"checking {dataset}", unit="case", disable=not progress):
        report = CaseReport(case_id, dict(groups[case_id]))
        missing = [k for k in required if k not in report.files]
        report.problems += [f"missing {k}" for k in missing]
        images = [k for k in report.files if k != label_key]
        label = label_key if label_key in report.files else None
        _check_case(source, report, expected_labels, images, label, same_grid, deep)
        reports.append(report)
    return reports


def check_brats(
    path: str | os.PathLike, year: int = 2021, require_labels: bool = True, deep: bool = False, progress: bool = True
) -> FolderReport:
    """Check a BraTS download (folder, ``.zip`` or ``.tar``) case by case; nothing is written.

    Args:
        path: the download as the organisers deliver it (2018's ``HGG/`` and ``LGG/`` are fine).
        year: the edition, 2017-2021 (enhancing tumour = 4) or 2023 (``-t2f`` naming, enhancing = 3).
        require_labels: a case without ``seg`` is a problem (False for validation sets).
        deep: also read every image and check its values are finite and not all zero (slow).
        progress: progress bar.

    Returns:
        The :class:`FolderReport`.

    Raises:
        DataError: ``path`` is missing or unreadable, holds no BraTS case, or ``year`` is unknown.
    """
    if year not in BRATS_LABELS:
        raise DataError(f"year={year}: BraTS editions checked are {sorted(BRATS_LABELS)}")
    sep, names = ("-", BRATS2023_NAMES) if year == 2023 else ("_", {m: m for m in BRAIN_MODALITIES})
    keys = {v: k for k, v in names.items()} | {"seg": "label"}
    pattern = re.compile(rf"^(.+){re.escape(sep)}({'|'.join(map(re.escape, keys))})$")
    with NiftiSource(path) as source:
        groups: dict[str, dict[str, str]] = defaultdict(dict)
        for name in source.names:
            m = pattern.match(_stem(name))
            if m:
                folder = str(PurePosixPath(name).parent)
                groups[f"{folder}/{m.group(1)}" if folder != "." else m.group(1)][keys[m.group(2)]] = name
        if not groups:
            raise DataError(
                f"{path}: no BraTS {year} case found (expected CASE/CASE{sep}"
                f"{names['flair']}.nii.gz and the other modalities)"
            )
        groups = {k.split("/")[-1]: v for k, v in groups.items()} if _unique_tails(groups) else groups
        required = [*BRAIN_MODALITIES, *(["label"] if require_labels else [])]
        cases = _run(source, f"BraTS {year}", groups, required, "label", BRATS_LABELS[year], True, deep, progress)
    return FolderReport(str(path), f"BraTS {year}", cases)


def _unique_tails(groups: dict[str, dict]) -> bool:
    tails = [k.split("/")[-1] for k in groups]
    return len(set(tails)) == len(tails)


def check_myops(
    path: str | os.PathLike,
    dataset: str = "myops",
    require_labels: bool = True,
    deep: bool = False,
    progress: bool = True,
) -> FolderReport:
    """Check a MyoPS 2020 or MS-CMRSeg 2019 download case by case; nothing is written.

    MyoPS 2020: ``*/myops_training_101_{C0,DE,T2}.nii.gz`` and a label ``*_gd.nii.gz`` anywhere
    (``train25_myops_gd/``), values 200/500/600/1220/2221, all on one grid.
    MS-CMRSeg 2019: ``patient1_{C0,DE,T2}.nii.gz`` and per-sequence labels
    ``patient1_{C0,DE,T2}_manual.nii.gz`` (values 200/500/600) where the organisers gave them; the
    sequences are on different grids by design (reported as a note).

    Args:
        path: folder, ``.zip`` or ``.tar``.
        dataset: ``"myops"`` or ``"mscmrseg"``.
        require_labels: MyoPS: a case without ``_gd`` is a problem (False for the test set).
        deep: also check image values (finite, not all zero).
        progress: progress bar.

    Returns:
        The :class:`FolderReport`.

    Raises:
        DataError: ``path`` is missing or unreadable, holds no case, or ``dataset`` is unknown.
    """
    if dataset not in ("myops", "mscmrseg"):
        raise DataError(f"dataset={dataset!r}: expected 'myops' or 'mscmrseg'")
    myops = dataset == "myops"
    pattern = re.compile(r"^(.+)_(C0|DE|T2|gd)$" if myops else r"^(.+)_(C0|DE|T2)(_manual)?$")
    title = "MyoPS 2020" if myops else "MS-CMRSeg 2019"
    with NiftiSource(path) as source:
        groups: dict[str, dict[str, str]] = defaultdict(dict)
        for name in source.names:
            m = pattern.match(_stem(name))
            if not m:
                continue
            seq = m.group(2)
            key = "label" if seq == "gd" else HEART_SEQUENCES[seq]
            if not myops and m.group(3):
                key = f"{HEART_SEQUENCES[seq]} label"
            groups[m.group(1)][key] = name
        if not groups:
            raise DataError(
                f"{path}: no {title} case found (expected CASE_C0.nii.gz, CASE_DE.nii.gz, CASE_T2.nii.gz"
                + (" and CASE_gd.nii.gz)" if myops else ")")
            )
        required = list(HEART_SEQUENCES.values()) + (["label"] if myops and require_labels else [])
        if myops:
            cases = _run(source, title, groups, required, "label", MYOPS_LABELS, True, deep, progress)
            notes = []
        else:
            cases = []
            for case_id, files in tqdm(
                sorted(groups.items()), desc=f"checking {title}", unit="case", disable=not progress
            ):
                report = _check_mscmrseg_case(source, case_id, files, deep)
                report.problems[:0] = [f"missing {k}" for k in required if k not in files]
                cases.append(report)
            notes = [NOT_COREGISTERED]
    return FolderReport(str(path), title, cases, notes)


def _check_mscmrseg_case(source: NiftiSource, case_id: str, files: dict[str, str], deep: bool) -> CaseReport:
    """MS-CMRSeg: each sequence with its own label on its own grid; the sequences compared only for a note."""
    report = CaseReport(case_id, dict(files))
    shapes = {}
    for seq in HEART_SEQUENCES.values():
        if seq in files:
            label = f"{seq} label" if f"{seq} label" in files else None
            grids = _check_case(source, report, MSCMRSEG_LABELS, [seq], label, True, deep)
            if seq in grids:
                shapes[seq] = grids[seq][0]
    if len(set(shapes.values())) > 1:
        report.notes.append("sequences on different grids (" + ", ".join(f"{k} {v}" for k, v in shapes.items()) + ")")
    return report
