"""Download one file over HTTP(S): resumable, with a progress bar and a checksum.

MONAI's ``download_url`` fetches into a temporary folder and starts from zero every time; for the
7 GB Decathlon archive on a Colab session that may be cut off, that is not good enough. This module
writes to ``NAME.part`` beside the destination and, on the next call, asks the server for the rest
(an HTTP ``Range`` request); a server that does not honour ranges gets a fresh download. The file
takes its final name only after its checksum matched, so a file under the final name is complete.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import urllib.error
import urllib.request
from pathlib import Path

from tqdm.auto import tqdm

from pkd_lessons.errors import DataError

CHUNK = 1 << 20
USER_AGENT = "pkd-lessons-download"


class DownloadError(DataError):
    """A download failed; the message names the address and says whether a rerun will resume."""


def file_md5(path: str | os.PathLike, progress: bool = False) -> str:
    """MD5 hex digest of a file, read in 1 MiB blocks.

    Written here rather than taken from ``monai.apps.utils.check_hash``, which answers only
    True/False: a mismatch message must show the value that was found.
    """
    path = Path(path)
    digest = hashlib.md5(usedforsecurity=False)
    with (
        open(path, "rb") as f,
        tqdm(
            total=path.stat().st_size,
            unit="B",
            unit_scale=True,
            desc=f"md5 {path.name}",
            disable=not progress,
            leave=False,
        ) as bar,
    ):
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
            bar.update(len(block))
    return digest.hexdigest()


def part_path(dest: str | os.PathLike) -> Path:
    """Where the unfinished download of ``dest`` is kept between attempts."""
    dest = Path(dest)
    return dest.with_name(dest.name + ".part")


def _open(url: str, offset: int, timeout: float):
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        return urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 (the caller chose the address)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:
            return None  # the unfinished file already holds everything the server has
        raise DownloadError(
            f"{url}: the server answered {err.code} {err.reason}; nothing was saved from this attempt"
        ) from err
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise DownloadError(f"{url}: cannot connect ({reason}); check the address and the network") from err


def check_md5(md5: str | None, what: str = "md5") -> str | None:
    """``md5`` in lower case, checked before any download starts.

    Raises:
        ValueError: ``md5`` is not 32 hexadecimal digits (an empty string included).
    """
    if md5 is None:
        return None
    if not re.fullmatch(r"[0-9a-fA-F]{32}", md5):
        raise ValueError(f"{what} must be 32 hexadecimal digits, got {md5!r}")
    return md5.lower()


def _verify(part: Path, url: str, md5: str | None, progress: bool) -> None:
    if md5 is None:
        return
    actual = file_md5(part, progress)
    if actual != md5.lower():
        part.unlink(missing_ok=True)
        raise DownloadError(
            f"{url}: checksum mismatch: expected md5 {md5.lower()}, got {actual}; the damaged "
            "download was removed, run again to fetch it afresh"
        )


def download(
    url: str, dest: str | os.PathLike, md5: str | None = None, progress: bool = True, timeout: float = 60.0
) -> Path:
    """Fetch ``url`` to ``dest``, resuming an earlier interrupted attempt.

    Args:
        url: ``http(s)://`` address of the file.
        dest: final file path; its folder is created.
        md5: expected MD5 hex digest; None skips the check (a warning is printed).
        progress: show a tqdm progress bar.
        timeout: seconds to wait for the server on connecting and on each read.

    Returns:
        ``dest``.

    Raises:
        ValueError: ``md5`` is not 32 hexadecimal digits (checked before anything is fetched).
        DownloadError: ``dest`` exists with another checksum (it is left untouched), the server
            cannot be reached or answers with an error (nothing is kept from that attempt), the
            transfer stops early (what arrived is kept in ``dest.part`` and the next call
            resumes), or the download's checksum differs (the download is removed; the message
            gives both checksums).
    """
    md5 = check_md5(md5)
    dest = Path(dest)
    if dest.is_file():
        if md5 is not None and (actual := file_md5(dest, progress)) != md5:
            # Not ours to delete: a download only ever writes dest.part, so this file came from elsewhere.
            raise DownloadError(
                f"{dest}: a file of this name is already there and is not the expected one (md5 "
                f"{actual}, expected {md5}); it was left as it is: move it away and run again"
            )
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = part_path(dest)
    offset = part.stat().st_size if part.is_file() else 0
    response = _open(url, offset, timeout)
    if response is not None:
        with response:
            if response.status == 206:
                start = response.headers.get("Content-Range", "").split(" ")[-1].split("-")[0]
                if start != str(offset):
                    raise DownloadError(
                        f"{url}: the server resumed at byte {start!r}, not {offset}; delete {part} and run again"
                    )
                mode = "ab"
            else:  # 200: the server sent the whole file (ranges unsupported or nothing to resume)
                offset, mode = 0, "wb"
            length = response.headers.get("Content-Length")
            total = offset + int(length) if length is not None else None
            received = offset
            with (
                open(part, mode) as f,
                tqdm(
                    total=total,
                    initial=offset,
                    unit="B",
                    unit_scale=True,
                    unit_divisor=1024,
                    desc=dest.name,
                    disable=not progress,
                ) as bar,
            ):
                while True:
                    try:
                        block = response.read(CHUNK)
                    except (OSError, http.client.HTTPException) as err:
                        raise DownloadError(
                            f"{url}: transfer interrupted after {received} bytes ({err}); "
                            f"run again to resume from {part}"
                        ) from err
                    if not block:
                        break
                    try:
                        f.write(block)
                    except OSError as err:
                        raise DownloadError(
                            f"{part}: cannot write ({err}); free some space and run again to resume"
                        ) from err
                    received += len(block)
                    bar.update(len(block))
            if total is not None and received < total:
                raise DownloadError(
                    f"{url}: transfer interrupted after {received} of {total} bytes; run again to resume from {part}"
                )
    if md5 is None:
        print(f"warning: no checksum given for {url}; the file's integrity is not verified")
    _verify(part, url, md5, progress)
    os.replace(part, dest)
    return dest
