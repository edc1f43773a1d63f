"""Read the NIfTI files of a download as it is: a folder, a ``.zip`` or a ``.tar(.gz)``, never extracted.

The checkers read through this so that they write nothing, not even a temporary copy of an archive
(BraTS 2021's is 12 GB unpacked): archive members are decompressed in memory one at a time.
"""

from __future__ import annotations

import gzip
import os
import tarfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath

import nibabel as nib

from pkd_lessons.errors import DataError


class NiftiSource:
    """The NIfTI files under a folder or inside an archive.

    Args:
        path: a folder, a ``.zip``, or a ``.tar`` / ``.tar.gz`` / ``.tgz`` file.

    Attributes:
        names: relative POSIX paths of the ``.nii`` / ``.nii.gz`` files, sorted, without hidden
            files and macOS ``._*`` resource forks.

    Raises:
        DataError: ``path`` does not exist, is an unsupported file, or a damaged archive.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._zip: zipfile.ZipFile | None = None
        self._tar: tarfile.TarFile | None = None
        if self.path.is_dir():
            names = [p.relative_to(self.path).as_posix() for p in self.path.rglob("*") if p.is_file()]
        elif not self.path.exists():
            raise DataError(f"{self.path}: not found")
        elif zipfile.is_zipfile(self.path):
            self._zip = zipfile.ZipFile(self.path)
            names = [i.filename for i in self._zip.infolist() if not i.is_dir()]
        else:
            try:
                self._tar = tarfile.open(self.path)  # noqa: SIM115 (kept open across reads; closed by close())
                # A compressed tar has no random access: every file read would decompress it again
                # from the start (hours for a BraTS download).
                if self._tar.fileobj is not None and type(self._tar.fileobj).__module__ in ("gzip", "bz2", "lzma"):
                    raise DataError(
                        f"{self.path}: a compressed .tar cannot be checked in place (each file would "
                        "decompress the archive again from its start); extract it, or check a .zip or "
                        "an uncompressed .tar"
                    )
                self._members = {m.name: m for m in self._tar.getmembers() if m.isfile()}
            except (tarfile.TarError, EOFError, OSError, zlib.error) as err:
                self.close()
                raise DataError(f"{self.path}: neither a folder nor a readable .zip/.tar archive ({err})") from err
            except DataError:
                self.close()
                raise
            names = list(self._members)
        self.names = sorted(n for n in names if _is_nifti(n))

    def __enter__(self) -> NiftiSource:
        return self

    def __exit__(self, *_) -> None:
        self.close()

    def close(self) -> None:
        """Close an open archive."""
        for handle in (self._zip, self._tar):
            if handle is not None:
                handle.close()

    def where(self, name: str) -> str:
        """How messages name a file: its path, or ``archive.zip:member``."""
        return str(self.path / name) if self.path.is_dir() else f"{self.path}:{name}"

    def load(self, name: str) -> nib.Nifti1Image:
        """Open one image (header read; the data are read when asked for).

        Raises:
            DataError: the file is not readable NIfTI.
        """
        try:
            if self._zip is None and self._tar is None:
                return nib.load(str(self.path / name))
            if self._zip is not None:
                raw = self._zip.read(name)
            else:
                raw = self._tar.extractfile(self._members[name]).read()
            if name.endswith(".gz"):
                raw = gzip.decompress(raw)
            return nib.Nifti1Image.from_bytes(raw)
        except (
            EOFError,
            OSError,
            zlib.error,
            gzip.BadGzipFile,
            KeyError,
            tarfile.TarError,
            zipfile.BadZipFile,
            nib.filebasedimages.ImageFileError,
            ValueError,
        ) as err:
            raise DataError(f"{self.where(name)}: not a readable NIfTI file ({type(err).__name__}: {err})") from err


def _is_nifti(name: str) -> bool:
    base = PurePosixPath(name).name
    hidden = any(part.startswith(".") for part in PurePosixPath(name).parts)
    return (base.endswith(".nii") or base.endswith(".nii.gz")) and not hidden
