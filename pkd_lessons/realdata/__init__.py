"""Real data: fetch the public Decathlon brain set; check BraTS and MyoPS / MS-CMRSeg downloads.

The scripts in ``data_download/`` are thin command-line wrappers over these functions; they are the
only code of the project that uses the network.
"""

from pkd_lessons.realdata.checkers import CaseReport, FolderReport, check_brats, check_myops
from pkd_lessons.realdata.decathlon import TASK01, default_root, fetch_archive, fetch_task01, is_complete
from pkd_lessons.realdata.transfer import DownloadError, download, file_md5

__all__ = [
    "CaseReport",
    "DownloadError",
    "FolderReport",
    "TASK01",
    "check_brats",
    "check_myops",
    "default_root",
    "download",
    "fetch_archive",
    "fetch_task01",
    "file_md5",
    "is_complete",
]
