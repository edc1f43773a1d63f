"""Fetch the Medical Segmentation Decathlon's Task01_BrainTumour and leave it ready for the loader.

The address and MD5 checksum are MONAI's own (``monai.apps.DecathlonDataset``), so this package
fetches the very archive MONAI's tutorials use. Steps, each safe to interrupt:

1. download ``Task01_BrainTumour.tar`` into the cache folder (resumable, see
   :mod:`pkd_lessons.realdata.transfer`), checked against the MD5;
2. extract it with MONAI's ``extractall`` into a hidden staging folder, drop the macOS ``._*``
   resource-fork files the archive carries, and check that the loader finds the cases;
3. write a completion marker and rename the staging folder to ``Task01_BrainTumour``.

A folder named ``Task01_BrainTumour`` therefore only ever appears complete; a later run that finds
it with its marker does nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlparse

from monai.apps import DecathlonDataset
from monai.apps.utils import extractall

from pkd_lessons.atomic import atomic_file, exclusive_lock
from pkd_lessons.data.layouts import find_cases
from pkd_lessons.errors import DataError
from pkd_lessons.lessons.profiles import default_data_root
from pkd_lessons.realdata.transfer import check_md5, download

TASK = "Task01_BrainTumour"
MARKER = ".pkd-lessons-complete.json"
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".zip")


class ArchiveError(DataError):
    """The archive itself is damaged or unsafe (as opposed to, say, a full disk)."""


@dataclass(frozen=True)
class Archive:
    """A downloadable data set archive.

    Attributes:
        name: folder the archive extracts to (its single top-level folder).
        url: where to fetch it.
        md5: published MD5 of the archive.
        licence: terms of use.
    """

    name: str
    url: str
    md5: str
    licence: str


TASK01 = Archive(
    TASK,
    DecathlonDataset.resource[TASK],
    DecathlonDataset.md5[TASK],
    "CC-BY-SA 4.0 (Medical Segmentation Decathlon, Simpson et al. 2019)",
)


def default_root() -> Path:
    """The download cache: ``$MONAI_DATA_DIRECTORY`` (as MONAI's tutorials use) or ``DATA_ROOT/real``.

    ``DATA_ROOT`` is ``$PKD_LESSONS_DATA`` or ``~/pkd-lessons-data``.
    """
    monai_dir = os.environ.get("MONAI_DATA_DIRECTORY")
    return Path(monai_dir) if monai_dir else default_data_root() / "real"


def is_complete(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` was fully extracted and checked by :func:`fetch_archive`."""
    return (Path(folder) / MARKER).is_file()


def _remove_macos_forks(folder: Path) -> int:
    """Delete the ``._*`` AppleDouble files a macOS tar leaves beside every file; returns how many."""
    forks = [p for p in folder.rglob("._*") if p.is_file()]
    for p in forks:
        p.unlink()
    return len(forks)


def extract_checked(archive_path: Path, archive: Archive, root: Path, source: str) -> Path:
    """Extract, clean and check an archive, then move it into place in one rename.

    Args:
        archive_path: the downloaded archive.
        archive: what it should hold.
        root: the cache folder; the result is ``root / archive.name``.
        source: where the archive came from, recorded in the marker.

    Returns:
        The data folder.

    Raises:
        ArchiveError: the archive is damaged or unsafe, lacks its top-level folder, or holds no
            readable cases.
        DataError: extraction failed for another reason (e.g. a full disk).
        Either way nothing is left in ``root`` but the archive.
    """
    target = root / archive.name
    staging = Path(tempfile.mkdtemp(prefix=f".{archive.name}.extracting-", dir=root))
    try:
        try:
            # MONAI's extractall refuses absolute paths, '..' and links in the archive.
            extractall(archive_path, staging, hash_val=None, has_base=True)
        except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, ValueError) as err:
            raise ArchiveError(f"{archive_path}: damaged or unsafe archive ({type(err).__name__}: {err})") from err
        except OSError as err:
            raise DataError(
                f"{archive_path}: extraction failed ({err}); the archive is kept: free some space and run again"
            ) from err
        extracted = staging / archive.name
        if not extracted.is_dir():
            found = sorted(p.name for p in staging.iterdir())[:5]
            raise ArchiveError(f"{archive_path}: expected a top-level folder {archive.name}/, found {found}")
        forks = _remove_macos_forks(extracted)
        try:
            cases = find_cases(extracted)
        except DataError as err:
            raise ArchiveError(f"{archive_path}: the extracted folder is not usable: {err}") from err
        with atomic_file(extracted / MARKER) as path:
            path.write_text(
                json.dumps(
                    {
                        "archive": archive.name,
                        "source": source,
                        "md5": archive.md5,
                        "cases": len(cases),
                        "layout": cases[0].layout,
                        "macos_files_removed": forks,
                        "extracted": datetime.now(UTC).isoformat(timespec="seconds"),
                    },
                    indent=1,
                )
            )
        os.replace(extracted, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def fetch_archive(
    archive: Archive,
    root: str | os.PathLike | None = None,
    keep_archive: bool = False,
    progress: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Download, verify and extract ``archive`` into ``root`` unless it is there already.

    Args:
        archive: what to fetch (e.g. :data:`TASK01`).
        root: the cache folder; None: :func:`default_root`.
        keep_archive: keep the downloaded archive after a successful extraction (it is removed by
            default: it doubles the disk space).
        progress: progress bars for the download and the checksum.
        timeout: seconds to wait for the server.

    Returns:
        The extracted data folder, ready for :func:`~pkd_lessons.data.layouts.find_cases`.

    Raises:
        DataError: a folder of that name exists without the completion marker (a hand-made or
            foreign copy, which is left untouched), or the archive is damaged.
        DownloadError: see :func:`~pkd_lessons.realdata.transfer.download`.
    """
    root = Path(root) if root is not None else default_root()
    target = root / archive.name
    if is_complete(target):
        return target
    root.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(root / f".{archive.name}.lock"):  # two kernels fetching at once: the second waits
        if is_complete(target):
            return target
        if target.exists():
            raise DataError(
                f"{target} exists but was not completed by this tool (no {MARKER}); if you extracted "
                "it yourself, pass that folder to the lessons directly, otherwise move it away and run "
                "again"
            )
        for stale in root.glob(f".{archive.name}.extracting-*"):  # left by a process that was killed
            shutil.rmtree(stale, ignore_errors=True)
        name = Path(urlparse(archive.url).path).name
        # MONAI's extractall tells the format from the name: a mirror's "/download" is saved as .tar.
        filename = name if name.endswith(ARCHIVE_SUFFIXES) else f"{archive.name}.tar"
        # A file already there under the archive's name is the user's (a download writes NAME.part
        # until its checksum matched): it is used when its checksum matches, and never deleted.
        theirs = (root / filename).is_file()
        archive_path = download(archive.url, root / filename, archive.md5, progress, timeout)
        try:
            target = extract_checked(archive_path, archive, root, archive.url)
        except ArchiveError:
            if not theirs:
                archive_path.unlink(missing_ok=True)  # a damaged archive must not satisfy the next run
            raise
        if not keep_archive and not theirs:
            archive_path.unlink(missing_ok=True)
    return target


def fetch_task01(
    root: str | os.PathLike | None = None,
    url: str | None = None,
    md5: str | None = None,
    keep_archive: bool = False,
    progress: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Fetch the Decathlon's Task01_BrainTumour (484 labelled and 266 unlabelled cases,
    about 7 GB) with MONAI's address and MD5.

    Args:
        root: cache folder (None: :func:`default_root`).
        url: another address of the same archive (a mirror); None: MONAI's.
        md5: its MD5 when ``url`` points at a different file; None: MONAI's published value.
        keep_archive: keep ``Task01_BrainTumour.tar`` after extraction.
        progress: progress bars.
        timeout: seconds to wait for the server.

    Returns:
        The ``Task01_BrainTumour`` folder (``imagesTr/``, ``labelsTr/``, ``imagesTs/``, ``dataset.json``).

    Raises:
        ValueError: ``md5`` is not 32 hexadecimal digits (checked before anything is fetched).
        DataError: see :func:`fetch_archive`.
    """
    archive = TASK01
    md5 = check_md5(md5, "--md5")  # before anything is fetched; "" is an error, not the default
    if url is not None or md5 is not None:
        archive = Archive(TASK, TASK01.url if url is None else url, TASK01.md5 if md5 is None else md5, TASK01.licence)
    return fetch_archive(archive, root, keep_archive, progress, timeout)
