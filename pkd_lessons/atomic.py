"""Write files and folders so that a reader never sees them half-written.

Everything is first written under a temporary name in the same folder, then moved into place
with :func:`os.replace`, which is atomic on one file system. If writing fails, the temporary
copy is removed and the destination is left as it was.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write; move it to ``path`` when the block succeeds.

    Args:
        path: final destination. Its parent folder is created if needed.

    Yields:
        A path in the same folder to write the content to (it does not exist yet).

    Raises:
        Whatever the block raises; the temporary file is removed first.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    os.unlink(tmp)
    # Keep the final suffixes (e.g. ".nii.gz") so that writers that look at them still work.
    tmp_path = Path(tmp + "".join(path.suffixes))
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder to fill; rename it to ``path`` when the block succeeds.

    Args:
        path: final folder.
        overwrite: replace an existing ``path``; otherwise an existing folder is an error.

    Yields:
        An empty temporary folder beside ``path``.

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is False.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; choose another folder or allow overwriting")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
