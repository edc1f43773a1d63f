"""Fetching the Decathlon archive, against a local HTTP server on 127.0.0.1 (no internet).

The archive is built from the brain phantom in the Decathlon's layout (``to_msd``), with the macOS
``._*`` files the real archive carries, and served with and without faults.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import socket
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest
from monai.transforms import ConvertToMultiChannelBasedOnBratsClasses

from pkd_lessons.data import find_cases, load_case
from pkd_lessons.errors import DataError
from pkd_lessons.phantoms.convert import to_msd
from pkd_lessons.realdata import DownloadError, default_root, fetch_task01, is_complete
from pkd_lessons.realdata.commands import fetch_task01_main
from pkd_lessons.realdata.transfer import part_path


class Server(http.server.ThreadingHTTPServer):
    """Serves ``files`` (path -> bytes); ``faults`` (path -> list of fault names, one used per request)."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.files: dict[str, bytes] = {}
        self.faults: dict[str, list[str]] = {}
        self.requests: list[tuple[str, str | None]] = []

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"


class Handler(http.server.BaseHTTPRequestHandler):
    server: Server

    def log_message(self, *args) -> None:  # keep the test output quiet
        pass

    def do_GET(self) -> None:  # noqa: N802 (the http.server API)
        self.server.requests.append((self.path, self.headers.get("Range")))
        fault = self.server.faults.get(self.path, [None]).pop(0) if self.server.faults.get(self.path) else None
        body = self.server.files.get(self.path)
        if fault == "error":
            self.send_error(500, "Internal Server Error")
            return
        if body is None:
            self.send_error(404, "Not Found")
            return
        start = 0
        ranged = self.headers.get("Range")
        if ranged and fault != "no-range":
            start = int(ranged.split("=")[1].split("-")[0])
            if start >= len(body):
                self.send_error(416, "Range Not Satisfiable")
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        if fault == "cut":  # announce everything, send a third, hang up
            self.wfile.write(body[start : start + (len(body) - start) // 3])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body[start:])


@pytest.fixture(scope="module")
def archive(brain_set, tmp_path_factory) -> bytes:
    """A Task01_BrainTumour.tar from the phantom, with macOS resource forks as in the real one."""
    folder = to_msd(brain_set, tmp_path_factory.mktemp("msd") / "Task01_BrainTumour")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(folder, arcname="Task01_BrainTumour")
        for sub in ("imagesTr", "labelsTr"):
            fork = b"\x00\x05\x16\x07 macOS resource fork"
            info = tarfile.TarInfo(f"Task01_BrainTumour/{sub}/._BRATS_001.nii.gz")
            info.size = len(fork)
            tar.addfile(info, io.BytesIO(fork))
    return buffer.getvalue()


@pytest.fixture()
def server(archive):
    srv = Server()
    srv.files["/Task01_BrainTumour.tar"] = archive
    thread = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def fetch(server: Server, root: Path, path: str = "/Task01_BrainTumour.tar", **kwargs) -> Path:
    options = {"md5": md5(server.files[path])} | kwargs
    return fetch_task01(root, url=server.url(path), progress=False, timeout=10, **options)


def left_behind(root: Path) -> list[str]:
    """What a fetch left in ``root``, but its (empty, hidden) lock file."""
    return sorted(p.name for p in root.iterdir() if not p.name.endswith(".lock")) if root.exists() else []


def test_download_extract_and_load(server, brain_set, tmp_path):
    folder = fetch(server, tmp_path)
    assert folder == tmp_path / "Task01_BrainTumour" and is_complete(folder)
    assert left_behind(tmp_path) == ["Task01_BrainTumour"], "archive removed, no staging folder left"
    assert not list(folder.rglob("._*")), "macOS resource forks skipped"
    cases = find_cases(folder)
    assert len(cases) == 4 and {c.layout for c in cases} == {"msd"}
    # The Decathlon's labels (1 oedema, 2 non-enhancing, 3 enhancing) give the same regions as the
    # BraTS original; MONAI's BraTS-class transform, applied to the same file, does not.
    msd_case, original = load_case(cases[1]), load_case(find_cases(brain_set)[1])
    assert np.array_equal(msd_case.regions("label"), original.regions("label"))
    raw = np.rint(np.asarray(__import__("nibabel").load(cases[1].label).dataobj)).astype(int)
    monai_regions = np.asarray(ConvertToMultiChannelBasedOnBratsClasses()(raw[None]))[:, 0]  # TC, WT, ET
    assert not np.array_equal(monai_regions[0], original.regions("label")[1]), "MONAI's TC is wrong on MSD labels"


def test_second_run_does_nothing(server, tmp_path):
    fetch(server, tmp_path)
    asked = len(server.requests)
    marker_time = (tmp_path / "Task01_BrainTumour" / ".pkd-lessons-complete.json").stat().st_mtime_ns
    fetch(server, tmp_path)
    assert len(server.requests) == asked, "no request when the data are already there"
    assert (tmp_path / "Task01_BrainTumour" / ".pkd-lessons-complete.json").stat().st_mtime_ns == marker_time


def test_checksum_mismatch_names_both_and_leaves_nothing(server, tmp_path):
    with pytest.raises(DownloadError) as err:
        fetch(server, tmp_path, md5="0" * 32)
    message = str(err.value)
    assert "expected md5 " + "0" * 32 in message and md5(server.files["/Task01_BrainTumour.tar"]) in message
    assert left_behind(tmp_path) == []


def test_truncated_archive(server, tmp_path):
    whole = server.files["/Task01_BrainTumour.tar"]
    server.files["/short.tar"] = whole[: len(whole) // 2]
    # Against the published checksum: refused before extraction.
    with pytest.raises(DownloadError, match="checksum mismatch"):
        fetch(server, tmp_path, path="/short.tar", md5=md5(whole))
    assert left_behind(tmp_path) == []
    # A mirror whose checksum describes the truncated file: extraction fails, nothing is left.
    with pytest.raises(DataError, match="damaged or unsafe archive"):
        fetch(server, tmp_path, path="/short.tar")
    assert left_behind(tmp_path) == []


def test_server_error_leaves_nothing(server, tmp_path):
    server.faults["/Task01_BrainTumour.tar"] = ["error"]
    with pytest.raises(DownloadError, match="answered 500"):
        fetch(server, tmp_path)
    assert left_behind(tmp_path) == []
    with pytest.raises(DownloadError, match="answered 404"):
        fetch_task01(tmp_path, url=server.url("/missing.tar"), md5="0" * 32, progress=False, timeout=10)
    assert left_behind(tmp_path) == []


def test_connection_refused_leaves_nothing(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nobody listens there
    with pytest.raises(DownloadError, match="cannot connect"):
        fetch_task01(
            tmp_path, url=f"http://127.0.0.1:{port}/Task01_BrainTumour.tar", md5="0" * 32, progress=False, timeout=5
        )
    assert left_behind(tmp_path) == []


def test_interrupted_download_resumes(server, tmp_path):
    path = "/Task01_BrainTumour.tar"
    total = len(server.files[path])
    server.faults[path] = ["cut"]
    with pytest.raises(DownloadError, match=rf"interrupted after \d+ of {total} bytes; run again to resume"):
        fetch(server, tmp_path)
    kept = part_path(tmp_path / "Task01_BrainTumour.tar").stat().st_size
    assert 0 < kept < total and not (tmp_path / "Task01_BrainTumour").exists()
    folder = fetch(server, tmp_path)
    assert server.requests[-1] == (path, f"bytes={kept}-"), "the second attempt asks only for the rest"
    assert len(find_cases(folder)) == 4 and left_behind(tmp_path) == ["Task01_BrainTumour"]


def test_server_without_ranges_restarts_cleanly(server, tmp_path):
    path = "/Task01_BrainTumour.tar"
    server.faults[path] = ["cut", "no-range"]
    with pytest.raises(DownloadError, match="interrupted"):
        fetch(server, tmp_path)
    folder = fetch(server, tmp_path)  # the server sends the whole file again: written from the start
    assert len(find_cases(folder)) == 4


def test_foreign_folder_is_left_alone(server, tmp_path):
    (tmp_path / "Task01_BrainTumour" / "imagesTr").mkdir(parents=True)
    with pytest.raises(DataError, match="not completed by this tool"):
        fetch(server, tmp_path)
    assert server.requests == [] and left_behind(tmp_path / "Task01_BrainTumour") == ["imagesTr"]


def test_default_root_honours_monai_data_directory(monkeypatch, tmp_path):
    monkeypatch.setenv("MONAI_DATA_DIRECTORY", str(tmp_path / "monai"))
    assert default_root() == tmp_path / "monai"
    monkeypatch.delenv("MONAI_DATA_DIRECTORY")
    monkeypatch.setenv("PKD_LESSONS_DATA", str(tmp_path / "pkd"))
    assert default_root() == tmp_path / "pkd" / "real"


def test_script_reports_and_exits(server, tmp_path, capsys):
    url = server.url("/Task01_BrainTumour.tar")
    digest = md5(server.files["/Task01_BrainTumour.tar"])
    args = ["--root", str(tmp_path), "--url", url, "--md5", digest, "--quiet"]
    assert fetch_task01_main(args) == 0
    assert "ready: " in capsys.readouterr().out
    assert fetch_task01_main(args) == 0
    assert "already there" in capsys.readouterr().out
    assert fetch_task01_main(["--root", str(tmp_path / "b"), "--url", url, "--md5", "f" * 32, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fetch_decathlon_task01.py: error: ") and "checksum mismatch" in err


def test_package_command_fetches(server, tmp_path, capsys):
    from pkd_lessons.cli import main

    url = server.url("/Task01_BrainTumour.tar")
    digest = md5(server.files["/Task01_BrainTumour.tar"])
    assert main(["data", "fetch", "decathlon", "--root", str(tmp_path), "--url", url, "--md5", digest, "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "ready: " in out and len(find_cases(tmp_path / "Task01_BrainTumour")) == 4


def test_mirror_address_without_archive_suffix(server, tmp_path):
    server.files["/files/download"] = server.files["/Task01_BrainTumour.tar"]
    folder = fetch(server, tmp_path, path="/files/download")
    assert len(find_cases(folder)) == 4 and left_behind(tmp_path) == ["Task01_BrainTumour"]


def test_full_disk_keeps_the_verified_archive(server, tmp_path, monkeypatch):
    def no_space(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("pkd_lessons.realdata.decathlon.extractall", no_space)
    with pytest.raises(DataError, match="extraction failed .*No space left.*the archive is kept"):
        fetch(server, tmp_path)
    assert left_behind(tmp_path) == ["Task01_BrainTumour.tar"], "no staging folder, the archive kept"
    monkeypatch.undo()
    asked = len(server.requests)
    fetch(server, tmp_path)
    assert len(server.requests) == asked, "the kept archive is used, not downloaded again"
