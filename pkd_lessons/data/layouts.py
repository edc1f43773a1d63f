"""Find the cases of a data folder in any of the supported layouts.

=============  ===============================================================  ==============
layout         files                                                            labels
=============  ===============================================================  ==============
``brats``      ``CASE/CASE_{flair,t1,t1ce,t2,seg}.nii.gz`` (BraTS 2017-2021;     1, 2, 4
               2018's ``HGG/`` and ``LGG/`` sub-folders are fine)
``brats2023``  ``CASE/CASE-{t2f,t1n,t1c,t2w,seg}.nii.gz``                        1, 2, 3
``msd``        ``imagesTr/BRATS_001.nii.gz`` (4-D: FLAIR, T1w, T1gd, T2w) and    1 oedema,
               ``labelsTr/BRATS_001.nii.gz`` (Decathlon Task01; ``imagesTs/``    2 non-enh., 3
               too where labels are not required)
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
    return STUDENT_MODALITY[anatomy(modalities)]


def anatomy(modalities: Sequence[str]) -> str:
    """``"cardiac"`` for a data set with an LGE image and no T1ce, ``"brain"`` otherwise.

    Examples:
        >>> anatomy(("bssfp", "lge", "t2")), anatomy(("t1ce",))
        ('cardiac', 'brain')
    """
    return "cardiac" if "lge" in modalities and "t1ce" not in modalities else "brain"


@dataclass(frozen=True)
class ImageRef:
    """Where one modality of a case is stored: a file, and for 4-D files the channel and how many
    channels the file holds."""

    path: Path
    channel: int | None = None
    channels: int | None = None


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
        return LAYOUTS[self.layout].convention

    @property
    def modalities(self) -> tuple[str, ...]:
        """Modality names, in order."""
        return tuple(self.images)


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


def _wanted(names: Sequence[str], modalities: Sequence[str] | None) -> tuple[str, ...]:
    """The layout's modalities a caller asked for, in the layout's order (all of them for None)."""
    return tuple(m for m in names if modalities is None or m in modalities)


def _grouped(files: list[Path], sep: str, suffixes: Sequence[str]) -> dict[tuple[Path, str], None]:
    """``(folder, case id)`` of every file named ``{case}{sep}{suffix}.nii[.gz]``, in order of discovery."""
    pattern = re.compile(rf"(.+){re.escape(sep)}({'|'.join(map(re.escape, suffixes))})\.nii(\.gz)?$")
    found: dict[tuple[Path, str], None] = {}
    for path in files:
        m = pattern.match(path.name)
        if m:
            found.setdefault((path.parent, m.group(1)), None)
    return found


def _brats_like(
    files: list[Path],
    layout: str,
    sep: str,
    names: dict[str, str],
    require_labels: bool,
    modalities: Sequence[str] | None,
) -> list[Case]:
    cases = []
    for folder, cid in _grouped(files, sep, list(names.values())):
        images = {
            mod: ImageRef(_require(folder, f"{cid}{sep}{names[mod]}", cid, f"{mod} image"))
            for mod in _wanted(BRAIN_MODALITIES, modalities)
        }
        label = (
            _require(folder, f"{cid}{sep}seg", cid, "label") if require_labels else _sibling(folder, f"{cid}{sep}seg")
        )
        cases.append(Case(cid, layout, images, label, _sibling(folder, f"{cid}{sep}seg_clean")))
    return cases


def _find_brats(files: list[Path], require_labels: bool, modalities: Sequence[str] | None) -> list[Case]:
    return _brats_like(files, "brats", "_", {m: m for m in BRAIN_MODALITIES}, require_labels, modalities)


def _find_brats2023(files: list[Path], require_labels: bool, modalities: Sequence[str] | None) -> list[Case]:
    return _brats_like(files, "brats2023", "-", BRATS2023_NAMES, require_labels, modalities)


def _find_msd(files: list[Path], require_labels: bool, modalities: Sequence[str] | None) -> list[Case]:
    cases = []
    folders = ("imagesTr",) if require_labels else ("imagesTr", "imagesTs")  # the test set has no labels
    wanted = _wanted(BRAIN_MODALITIES, modalities)
    for path in files:
        if path.parent.name not in folders:
            continue
        cid = _NII.sub("", path.name)
        labels_dir = path.parent.parent / path.parent.name.replace("images", "labels")
        label = _require(labels_dir, cid, cid, "label") if require_labels else _sibling(labels_dir, cid)
        images = {
            mod: ImageRef(path, channel, len(BRAIN_MODALITIES))
            for channel, mod in enumerate(BRAIN_MODALITIES)
            if mod in wanted
        }
        cases.append(Case(cid, "msd", images, label, None))
    return cases


def _find_myops(files: list[Path], require_labels: bool, modalities: Sequence[str] | None) -> list[Case]:
    by_name = {p.name: p for p in files}
    cases = []
    for folder, cid in _grouped(files, "_", list(MYOPS_SUFFIX.values())):
        images = {
            mod: ImageRef(_require(folder, f"{cid}_{MYOPS_SUFFIX[mod]}", cid, f"{mod} ({MYOPS_SUFFIX[mod]}) image"))
            for mod in _wanted(HEART_MODALITIES, modalities)
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


@dataclass(frozen=True)
class Layout:
    """One data set's layout: how its cases are found, labelled, and how its challenge names predictions.

    Attributes:
        name: ``brats``, ``brats2023``, ``msd`` or ``myops``.
        anatomy: ``brain`` or ``cardiac``.
        modalities: every modality the layout stores, in its order.
        convention: its label values.
        find: ``find(files, require_labels, modalities)`` -> the cases among ``files``.
        prediction_suffix: what follows the case identifier in a prediction's file name.
    """

    name: str
    anatomy: str
    modalities: tuple[str, ...]
    convention: LabelConvention
    find: Callable[[list[Path], bool, Sequence[str] | None], list[Case]] = field(repr=False)
    prediction_suffix: str = ""

    def prediction_name(self, case_id: str) -> str:
        """The file name the challenge expects for a case's segmentation.

        BraTS 2021 and 2023 submissions and the Decathlon name the file after the case
        (``BraTS2021_00001.nii.gz``, ``BraTS-GLI-00000-000.nii.gz``, ``BRATS_485.nii.gz``); MyoPS 2020
        adds ``_seg`` (``myops_test_201_seg.nii.gz``).

        Examples:
            >>> LAYOUTS["brats2023"].prediction_name("BraTS-GLI-00000-000")
            'BraTS-GLI-00000-000.nii.gz'
            >>> LAYOUTS["myops"].prediction_name("myops_test_201")
            'myops_test_201_seg.nii.gz'
        """
        return f"{case_id}{self.prediction_suffix}.nii.gz"


LAYOUTS: dict[str, Layout] = {
    layout.name: layout
    for layout in (
        Layout("brats", "brain", BRAIN_MODALITIES, BRATS, _find_brats),
        Layout("brats2023", "brain", BRAIN_MODALITIES, BRATS2023, _find_brats2023),
        Layout("msd", "brain", BRAIN_MODALITIES, MSD, _find_msd),
        Layout("myops", "cardiac", HEART_MODALITIES, MYOPS, _find_myops, "_seg"),
    )
}
LAYOUT_HELP = (
    "expected BraTS 2017-2021 (CASE/CASE_flair.nii.gz ...), BraTS 2023 (CASE/CASE-t2f.nii.gz ...), "
    "Decathlon Task01 (imagesTr/ and labelsTr/) or MyoPS 2020 (*_C0.nii.gz, *_DE.nii.gz, *_T2.nii.gz, *_gd.nii.gz)"
)


def find_cases(
    root: str | os.PathLike, require_labels: bool = True, modalities: Sequence[str] | None = None
) -> list[Case]:
    """Find every case under ``root`` and check that each has all its files.

    Args:
        root: the data folder (phantom output, an extracted BraTS/MSD/MyoPS download).
        require_labels: a case without its label file is an error (set False for test sets; the
            Decathlon's ``imagesTs/`` is then searched too).
        modalities: the modalities each case must have, and the only ones read (a student's
            one modality: a folder of T1ce scans alone is then enough); None: all of the layout's.

    Returns:
        The cases, sorted by identifier, all of one layout.

    Raises:
        DataError: ``root`` is missing or empty, holds a folder that cannot be read, holds no
            cases, mixes layouts, holds a case with a missing file, holds two cases with the
            same identifier, or its layout lacks one of ``modalities`` (another anatomy).

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
    found = {name: layout.find(files, require_labels, modalities) for name, layout in LAYOUTS.items()}
    found = {name: cases for name, cases in found.items() if cases}
    if not found:
        raise DataError(f"{root}: no cases found; {LAYOUT_HELP}")
    if len(found) > 1:
        detail = "; ".join(f"{len(c)} {name} case(s), e.g. {c[0].case_id}" for name, c in found.items())
        raise DataError(f"{root}: folder mixes layouts ({detail}); keep one data set per folder")
    ((name, cases),) = found.items()
    layout = LAYOUTS[name]
    foreign = [m for m in modalities or () if m not in layout.modalities]
    if foreign:
        raise DataError(
            f"{root}: holds {layout.anatomy} cases ({name} layout: {', '.join(layout.modalities)}), "
            f"which have no {', '.join(foreign)}"
        )
    ids = [c.case_id for c in cases]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise DataError(f"{root}: case identifiers appear more than once: {duplicates[:5]}")
    return sorted(cases, key=lambda c: c.case_id)
