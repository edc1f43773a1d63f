"""Shared fixtures: small phantom sets, the quick series of lessons, the browser."""

from __future__ import annotations

import os

# One thread per PyTorch process, set before torch is first imported here and inherited by every
# notebook kernel and subprocess the tests start. A two-threaded process whose second core another
# job is using waits for that core at every parallel region: measured on 2 cores, a student's
# training step took 380-409 ms with two threads beside a single-threaded CPU-bound job and 107 ms
# with one (75 ms with two and 118 ms with one on the idle machine). The suite must keep its
# margin under CI's limit when it shares the machine; the lessons' pools use one thread per worker
# already.
os.environ.setdefault("OMP_NUM_THREADS", "1")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from pkd_lessons.lessons.runner import find_notebooks  # noqa: E402
from pkd_lessons.phantoms import make_phantoms  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = find_notebooks(REPO / "notebooks")

#: The browser of the browser tests: Debian's ``chromium`` package, or the executable named by
#: ``$PKD_CHROMIUM``; Playwright's own browser is never downloaded.
CHROMIUM = Path(os.environ.get("PKD_CHROMIUM", "/usr/bin/chromium"))
#: Headless, and quiet on this offline machine: no background networking, updates or sync.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    # WebGL 2 (the 3D viewer's NiiVue) from the software renderer, SwiftShader: Chromium falls back to it
    # without a GPU, a fallback it deprecates unless told
    "--enable-unsafe-swiftshader",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session", autouse=True)
def _private_data_root(tmp_path_factory):
    """Keep anything a test generates out of the user's home, and the user's runs folder and course
    profile out of the tests."""
    os.environ["PKD_LESSONS_DATA"] = str(tmp_path_factory.mktemp("pkd-data"))
    for name in ("PKD_LESSONS_RUNS", "PKD_LESSONS_PROFILE"):
        os.environ.pop(name, None)


@pytest.fixture
def trained(monkeypatch) -> list[str]:
    """The methods the lessons train (the trainer's ``train`` calls), in order."""
    import pkd_lessons.training.trainer as trainer_module

    calls: list[str] = []
    real = trainer_module.train

    def counting(cfg, *args, **kwargs):
        calls.append(cfg.method)
        return real(cfg, *args, **kwargs)

    monkeypatch.setattr(trainer_module, "train", counting)
    return calls


@pytest.fixture(scope="session")
def brain_set(tmp_path_factory) -> Path:
    """Four brain phantom cases (BraTS 2021 layout)."""
    return make_phantoms("brain", tmp_path_factory.mktemp("brain") / "set", cases=4, seed=0, progress=False)


@pytest.fixture(scope="session")
def cardiac_set(tmp_path_factory) -> Path:
    """Four cardiac phantom cases (MyoPS 2020 layout)."""
    return make_phantoms("cardiac", tmp_path_factory.mktemp("cardiac") / "set", cases=4, seed=0, progress=False)


@pytest.fixture(scope="session")
def series(tmp_path_factory) -> dict:
    """The quick series' output folder, and the lessons run so far (tests/test_notebooks.py runs them,
    one test per lesson; later modules, such as the site's, use what they left)."""
    return {"out": tmp_path_factory.mktemp("lessons"), "runs": {}}


def whole_series(series: dict) -> tuple[Path, dict]:
    """The series' folder once every lesson has run (skips when a selection left some out)."""
    missing = [nb.stem for nb in NOTEBOOKS if nb.stem not in series["runs"]]
    if missing:
        pytest.skip(f"needs the whole quick series; not run (or timed out) here: {', '.join(missing)}")
    return series["out"], series["runs"]


def screenshot_dir() -> Path:
    """Where the browser tests save screenshots: ``$PKD_BROWSER_SCREENSHOTS``, else
    ``browser-screenshots/`` in the repository."""
    folder = Path(os.environ.get("PKD_BROWSER_SCREENSHOTS") or REPO / "browser-screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium through Playwright (the system's browser; Playwright's own is never used)."""
    sync_api = pytest.importorskip(
        "playwright.sync_api",
        reason="Playwright's Python client is not installed (pip install playwright; no browser download needed)",
    )
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium, or set PKD_CHROMIUM)")
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()
