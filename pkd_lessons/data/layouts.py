"""Find the cases of a data folder in any of the supported layouts.

=============  ===============================================================  ==============
layout         files                                                            labels
=============  ===============================================================  ==============
``brats``      ``CASE/CASE_{flair,t1,t1ce,t2,seg}.nii.gz`` (BraTS 2017-2021;     1, 2, 4
               2018's ``HGG/`` and ``LGG/`` sub-folders are fine)
``brats2023``  ``CASE/CASE-{t2f,t1n,t1c,t2w,seg}.nii.gz``                        1, 2, 3
``msd``        ``imagesTr/BRATS_001.nii.gz`` (4-D: FLAIR, T1w, T1gd, T2w) and    1 oedema,
               ``labelsTr/BRATS_001.nii.gz`` (Decathlon Task01)                  2 non-enh., 3
``myops``      ``*/myops_training_101_{C0,DE,T2}.nii.gz`` and                    MyoPS values
               ``*/myops_training_101_gd.nii.gz`` (MyoPS 2020)
=============  ===============================================================  ==============

The phantoms add a clean truth beside the rater's label (``CASE_seg_clean.nii.gz``,
``..._gd_clean.nii.gz``); it is used for scoring when present.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pkd_lessons.data.labels import BRATS, BRATS2023, MSD, MYOPS, LabelConvention
from pkd_lessons.errors import DataError

BRAIN_MODALITIES: tuple[str, ...] = ("flair", "t1", "t1ce", "t2")
HEART_MODALITIES: tuple[str, ...] = ("bssfp", "lge", "t2")
#: The one modality a student sees by default, per anatomy: T1ce for the brain (the paper's main
#: setting) and LGE for the heart (the scar's modality in MyoPS).
STUDENT_MODALITY: dict[str, str] = {"brain": "t1ce", "cardiac": "lge"}
#: MyoPS 2020 (and MS-CMRSeg 2019) file suffix of each cardiac sequence: ``{case}_{suffix}.nii.gz``.
MYOPS_SUFFIX: dict[str, str] = {"bssfp": "C0", "lge": "DE", "t2": "T2"}
#: BraTS 2023 file suffix of each modality.
BRATS2023_NAMES: dict[str, str] = {"flair": "t2f", "t1": "t1n", "t1ce": "t1c", "t2": "t2w"}
MAX_DEPTH = 4  # how deep below the given folder cases are looked for
_NII = re.compile(r"\.nii(\.gz)?$")


def student_modality(modalities: Sequence[str]) -> str:
    """The default student modality of a data set: :data:`STUDENT_MODALITY` of its anatomy.

    Args:
        modalities: the data set's modalities (a case's or a volume's ``modalities``).

    Returns:
        ``"lge"`` for cardiac data (with an LGE image and no T1ce), ``"t1ce"`` otherwise.

    Examples:
        >>> student_modality(BRAIN_MODALITIES)
        't1ce'
        >>> student_modality(HEART_MODALITIES)
        'lge'
    """
    cardiac = "lge" in modalities and "t1ce" not in modalities
    return STUDENT_MODALITY["cardiac" if cardiac else "brain"]


@dataclass(frozen=True)
class ImageRef:
    """Where one modality of a case is stored: a file, and a channel for 4-D files."""

    path: Path
    channel: int | None = None


@dataclass(frozen=True)
class Case:
    """One case of a data set, as files on disk (nothing is read yet).

    Attributes:
        case_id: the data set's identifier of the case.
        layout: ``brats``, ``brats2023``, ``msd`` or ``myops``.
        images: modality -> :class:`ImageRef`, in the layout's modality order.
        label: the annotation file (a rater's label in the phantoms), or None.
        truth: a clean truth file (phantoms only), or None.
    """

    case_id: str
    layout: str
    images: dict[str, ImageRef] = field(hash=False)
    label: Path | None = None
    truth: Path | None = None

    @property
    def convention(self) -> LabelConvention:
        """The label convention of this case's layout."""
        return LAYOUT_CONVENTIONS[self.layout]

    @property
    def modalities(self) -> tuple[str, ...]:
        """Modality names, in order."""
        return tuple(self.images)


LAYOUT_CONVENTIONS: dict[str, LabelConvention] = {"brats": BRATS, "brats2023": BRATS2023, "msd": MSD, "myops": MYOPS}


def _walk(root: Path) -> list[Path]:
    """NIfTI files under ``root`` down to :data:`MAX_DEPTH`, skipping hidden and macOS ``._`` files."""
    found = []
    base = len(root.parts)

    def refuse(err: OSError) -> None:  # os.walk would skip the folder silently: a case would go missing
        raise DataError(
            f"{err.filename}: cannot read this folder ({err.strerror}); fix its permissions or move "
            "it out of the data folder"
        ) from err

    for dirpath, dirnames, filenames in os.walk(root, onerror=refuse):
        depth = len(Path(dirpath).parts) - base
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")) if depth < MAX_DEPTH else []
        found.extend(Path(dirpath) / f for f in sorted(filenames) if _NII.search(f) and not f.startswith("."))
    return found


def _sibling(folder: Path, stem: str) -> Path | None:
    for suffix in (".nii.gz", ".nii"):
        if (folder / f"{stem}{suffix}").is_file():
            return folder / f"{stem}{suffix}"
    return None


def _require(folder: Path, stem: str, case_id: str, what: str) -> Path:
    path = _sibling(folder, stem)
    if path is None:
        raise DataError(f"case {case_id}: missing {what} (expected {folder / stem}.nii.gz)")
    return path


def _brats_like(files: list[Path], layout: str, sep: str, names: dict[str, str], require_labels: bool) -> list[Case]:
    anchor = names["flair"]
    cases = []
    for path in files:
        m = re.match(rf"(.+){re.escape(sep + anchor)}\.nii(\.gz)?$", path.name)
        if not m:
            continue
        cid, folder = m.group(1), path.parent
        images = {
            mod: ImageRef(_require(folder, f"{cid}{sep}{names[mod]}", cid, f"{mod} image")) for mod in BRAIN_MODALITIES
        }
        label = (
            _require(folder, f"{cid}{sep}seg", cid, "label") if require_labels else _sibling(folder, f"{cid}{sep}seg")
        )
        cases.append(Case(cid, layout, images, label, _sibling(folder, f"{cid}{sep}seg_clean")))
    return cases


def _find_brats(files: list[Path], require_labels: bool) -> list[Case]:
    return _brats_like(files, "brats", "_", {m: m for m in BRAIN_MODALITIES}, require_labels)


def _find_brats2023(files: list[Path], require_labels: bool) -> list[Case]:
    return _brats_like(files, "brats2023", "-", BRATS2023_NAMES, require_labels)


def _find_msd(files: list[Path], require_labels: bool) -> list[Case]:
    cases = []
    for path in files:
        if path.parent.name != "imagesTr":
            continue
        cid = _NII.sub("", path.name)
        labels_dir = path.parent.parent / "labelsTr"
        label = _require(labels_dir, cid, cid, "label") if require_labels else _sibling(labels_dir, cid)
        images = {mod: ImageRef(path, channel) for channel, mod in enumerate(BRAIN_MODALITIES)}
        cases.append(Case(cid, "msd", images, label, None))
    return cases


def _find_myops(files: list[Path], require_labels: bool) -> list[Case]:
    by_name = {p.name: p for p in files}
    cases = []
    for path in files:
        m = re.match(rf"(.+)_{MYOPS_SUFFIX['bssfp']}\.nii(\.gz)?$", path.name)
        if not m:
            continue
        cid, folder = m.group(1), path.parent
        images = {
            mod: ImageRef(_require(folder, f"{cid}_{suffix}", cid, f"{mod} ({suffix}) image"))
            for mod, suffix in MYOPS_SUFFIX.items()
        }

        def lookup(stem: str) -> Path | None:
            return by_name.get(f"{stem}.nii.gz") or by_name.get(f"{stem}.nii")

        label = lookup(f"{cid}_gd")
        if label is None and require_labels:
            raise DataError(
                f"case {cid}: missing label (expected a file named {cid}_gd.nii.gz anywhere under the data folder)"
            )
        cases.append(Case(cid, "myops", images, label, lookup(f"{cid}_gd_clean")))
    return cases


FINDERS: dict[str, Callable[[list[Path], bool], list[Case]]] = {
    "brats": _find_brats,
    "brats2023": _find_brats2023,
    "msd": _find_msd,
    "myops": _find_myops,
}
LAYOUT_HELP = (
    "expected BraTS 2017-2021 (CASE/CASE_flair.nii.gz ...), BraTS 2023 (CASE/CASE-t2f.nii.gz ...), "
    "Decathlon Task01 (imagesTr/ and labelsTr/) or MyoPS 2020 (*_C0.nii.gz, *_DE.nii.gz, *_T2.nii.gz, *_gd.nii.gz)"
)


def find_cases(root: str | os.PathLike, require_labels: bool = True) -> list[Case]:
    """Find every case under ``root`` and check that each has all its files.

    Args:
        root: the data folder (phantom output, an extracted BraTS/MSD/MyoPS download).
        require_labels: a case without its label file is an error (set False for test sets).

    Returns:
        The cases, sorted by identifier, all of one layout.

    Raises:
        DataError: ``root`` is missing or empty, holds a folder that cannot be read, holds no
            cases, mixes layouts, holds a case with a missing file, or holds two cases with the
            same identifier.

    Examples:
        A folder without any case is an error that says which layouts were looked for, rather than
        an empty list that would surface later as a data set of no slices:

        >>> import tempfile
        >>> from pathlib import Path
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     _ = (Path(tmp) / "notes.txt").write_text("not an image")
        ...     find_cases(tmp)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
          ...
        pkd_lessons.errors.DataError: ...: no cases found; expected BraTS 2017-2021 (CASE/CASE_flair.nii.gz ...), ...
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: data folder not found")
    try:
        empty = not any(p for p in root.iterdir() if not p.name.startswith("."))
    except OSError as err:
        raise DataError(f"{root}: cannot read the data folder ({err.strerror})") from err
    if empty:
        raise DataError(f"{root}: data folder is empty")
    files = _walk(root)
    found = {name: finder(files, require_labels) for name, finder in FINDERS.items()}
    found = {name: cases for name, cases in found.items() if cases}
    if not found:
        raise DataError(f"{root}: no cases found; {LAYOUT_HELP}")
    if len(found) > 1:
        detail = "; ".join(
            f"{len(c)} {name} case(s), e.g. {c[0].images[next(iter(c[0].images))].path}" for name, c in found.items()
        )
        raise DataError(f"{root}: folder mixes layouts ({detail}); keep one data set per folder")
    (cases,) = found.values()
    ids = [c.case_id for c in cases]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise DataError(f"{root}: case identifiers appear more than once: {duplicates[:5]}")
    return sorted(cases, key=lambda c: c.case_id)
