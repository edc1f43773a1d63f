"""Write files and folders so that a reader never sees them half-written.

Everything is first written under a temporary name in the same folder, then moved into place
with :func:`os.replace`, which is atomic on one file system. If writing fails, the temporary
copy is removed and the destination is left as it was. A process killed while writing cannot
remove its copy: temporary names carry the writer's process id, and the next write of the same
destination removes copies whose writer is gone.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from pkd_lessons.errors import DataError


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


#: Temporary copies left without a process id (written before ids were recorded) count as stale
#: only after this many seconds, since their writer cannot be asked whether it still runs.
UNNAMED_STALE_AFTER = 24 * 3600
_RANDOM = r"[a-z0-9_]{8}"  # what tempfile.mkstemp/mkdtemp put between prefix and suffix


def remove_stale(path: Path) -> list[Path]:
    """Remove the temporary copies of ``path`` left by writers that no longer run.

    Only names this module makes are considered, ``.NAME.PID.XXXXXXXX.part[...]`` (removed when
    process PID no longer exists) and, from before process ids were recorded,
    ``.NAME.XXXXXXXX.part[...]`` (removed once a day old); a sibling destination's copies (for
    ``NAME.json`` beside ``NAME``) never match.

    Args:
        path: the final destination whose siblings are examined.

    Returns:
        The paths removed.
    """
    removed = []
    name = re.escape(path.name)
    with_pid = re.compile(rf"^\.{name}\.(\d+)\.{_RANDOM}\.part(\..*)?$")
    without_pid = re.compile(rf"^\.{name}\.{_RANDOM}\.part(\..*)?$")
    for tmp in path.parent.glob(f"{glob.escape(f'.{path.name}.')}*.part*"):
        owner = with_pid.match(tmp.name)
        if owner:
            pid = int(owner.group(1))
            if pid == os.getpid() or _alive(pid):
                continue  # being written now, by this process or another one
        elif not without_pid.match(tmp.name):
            continue  # not a name this module makes
        else:
            try:
                if time.time() - tmp.lstat().st_mtime < UNNAMED_STALE_AFTER:
                    continue
            except FileNotFoundError:
                continue
        if tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        removed.append(tmp)
    return removed


def _umask() -> int:
    """The process's umask, read without changing it where the system says it (Linux)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o077)  # elsewhere: set and restore, with a restrictive value in between
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write; move it to ``path`` when the block succeeds.

    Args:
        path: final destination. Its parent folder is created if needed.

    Yields:
        A path in the same folder to write the content to (it does not exist yet).

    An exception raised in the block propagates, after the temporary file is removed.

    Examples:
        While the block writes, the destination does not exist yet (a reader sees the old file or
        none, never half of the new one); a block that fails leaves the old file as it was:

        >>> import tempfile
        >>> from pathlib import Path
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     dest = Path(folder) / "metrics.json"
        ...     with atomic_file(dest) as tmp:
        ...         _ = tmp.write_text('{"WT": 0.81}')
        ...         print(dest.exists(), tmp.parent == dest.parent, tmp.suffix)
        ...     try:
        ...         with atomic_file(dest) as tmp:
        ...             _ = tmp.write_text('{"WT": 0.')
        ...             raise OSError("disk full")
        ...     except OSError as err:
        ...         print(err)
        ...     print(dest.read_text(), [p.name for p in Path(folder).iterdir()])
        False True .json
        disk full
        {"WT": 0.81} ['metrics.json']
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".part", dir=path.parent)
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


#: Written into every folder :func:`atomic_dir` makes: only such folders may be replaced.
FOLDER_MARKER = ".pkd-lessons-folder"


def check_replaceable_dir(path: Path, is_ours: Callable[[Path], bool] | None = None) -> None:
    """Refuse to replace anything but a folder this package wrote.

    Args:
        path: the folder to be replaced.
        is_ours: another test of ownership (e.g. a phantom set's manifest), besides
            :data:`FOLDER_MARKER`.

    Raises:
        FileExistsError: ``path`` is a file or a link, or a folder with content this package did
            not write.
        ValueError: ``path`` is the current folder or one above it.
    """
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        raise FileExistsError(f"{path}: exists and is not a folder (a file or a link); choose a folder")
    here = Path.cwd().resolve()
    if path.resolve() in (here, *here.parents):
        raise ValueError(f"{path}: is the current folder or one above it; write to a folder of its own")
    if any(path.iterdir()) and not ((path / FOLDER_MARKER).is_file() or (is_ours is not None and is_ours(path))):
        raise FileExistsError(
            f"{path}: not a folder written by pkd-lessons, so it is not replaced; choose another folder"
        )


@contextlib.contextmanager
def atomic_dir(
    path: str | os.PathLike, overwrite: bool = False, is_ours: Callable[[Path], bool] | None = None
) -> Iterator[Path]:
    """Yield a temporary folder to fill; rename it to ``path`` when the block succeeds.

    Args:
        path: final folder.
        overwrite: replace an existing ``path``, if this package wrote it (see
            :func:`check_replaceable_dir`); otherwise an existing folder is an error.
        is_ours: passed to :func:`check_replaceable_dir`.

    Yields:
        An empty temporary folder beside ``path`` (holding only :data:`FOLDER_MARKER`).

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is False, or it is not this package's.
        ValueError: ``path`` is the current folder or one above it.

    Examples:
        The finished folder carries the marker that later allows ``overwrite=True`` to replace it:

        >>> import tempfile
        >>> from pathlib import Path
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     with atomic_dir(Path(folder) / "run") as tmp:
        ...         _ = (tmp / "history.json").write_text("{}")
        ...     print(sorted(p.name for p in (Path(folder) / "run").iterdir()))
        ...     with atomic_dir(Path(folder) / "run", overwrite=True) as tmp:
        ...         _ = (tmp / "history.json").write_text('{"step": [1]}')
        ...     print((Path(folder) / "run" / "history.json").read_text())
        ['.pkd-lessons-folder', 'history.json']
        {"step": [1]}
    """
    path = Path(path)
    if path.exists() or path.is_symlink():
        if not overwrite:
            raise FileExistsError(f"{path} already exists; choose another folder or allow overwriting")
        check_replaceable_dir(path, is_ours)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".part", dir=path.parent))
    tmp.chmod(0o777 & ~_umask())  # mkdtemp makes it private (0700); the result follows the umask like mkdir
    try:
        (tmp / FOLDER_MARKER).write_text("written by pkd-lessons, which may replace this folder\n")
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def check_writable_folder(path: str | os.PathLike, what: str = "output folder") -> Path:
    """Make sure ``path`` is (or can become) a folder this process can write, before any work.

    Args:
        path: the folder; it is created when missing.
        what: what the folder is for, for the message.

    Returns:
        ``path``.

    Raises:
        DataError: ``path`` is a file, lies under a file, or cannot be written (the message names it).
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise DataError(f"{path}: the {what} is an existing file, not a folder; choose a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as err:
        raise DataError(f"{path}: cannot write the {what} there ({err.strerror or err})") from err
    return path


def check_writable_file(path: str | os.PathLike, what: str = "output file") -> Path:
    """Make sure ``path`` can be written as a file, before any work (see :func:`check_writable_folder`).

    Raises:
        DataError: ``path`` is a folder, or its folder cannot be written.
    """
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path}: the {what} is a folder; give a file name, e.g. {path / 'metrics.json'}")
    check_writable_folder(path.parent, f"folder of the {what}")
    return path


def write_text_or_rescue(path: str | os.PathLike, text: str, what: str = "results") -> Path:
    """Write ``text`` to ``path`` atomically; if that fails, keep it in the temporary folder and say where.

    For the last write of a long piece of work (metrics of an evaluation, a run's history): a full
    disk at that moment must not throw the work away.

    Returns:
        ``path``.

    Raises:
        DataError: ``path`` could not be written; the message names the copy that was kept.
    """
    path = Path(path)
    try:
        with atomic_file(path) as tmp:
            tmp.write_text(text)
        return path
    except OSError as err:
        fd, rescue = tempfile.mkstemp(prefix=f"pkd-lessons-rescued-{path.stem}-", suffix=path.suffix)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        raise DataError(
            f"{path}: cannot write the {what} ({err.strerror or err}); they were saved to {rescue} instead"
        ) from err


@contextlib.contextmanager
def exclusive_lock(path: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` while the block runs, so that writers take turns.

    POSIX ``flock`` on the file (created when missing); the lock goes with the process, so a killed
    writer never leaves it held. Where the platform has no ``flock`` (Windows) nothing is locked.

    Args:
        path: the lock file.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover (Windows)
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
