"""The viewers live in JupyterLab, driven in a headless Chromium: every control redraws the view.

Lesson 07, shrunk to tiny sizes, runs in a JupyterLab server started for the test; the browser moves the
slice viewer's slice slider, switches the modality and the overlay, ticks the errors box, and each time the
picture must change, with no error in the browser console. The 3D viewer (NiiVue, WebGL 2) must draw the
case on its canvas, and switching its overlay must redraw it. Saved from JupyterLab, both viewers' outputs
must keep their static pictures. Screenshots of each state go to ``$PKD_BROWSER_SCREENSHOTS`` (default
``browser-screenshots/`` in the repository).

Chromium runs headless with ``--disable-gpu``: WebGL 2 then comes from its software renderer
(SwiftShader), and NiiVue draws on it. Where a browser gives NiiVue no WebGL 2 and its canvas stays blank,
the 3D viewer's test checks what it can (the widget on the page, the overlay reaching the kernel) and
skips, saying so.

Skipped when Playwright's Python client or a Chromium is missing; no browser is ever downloaded. The
browser is Debian's ``chromium`` package, or the executable named by ``$PKD_CHROMIUM``.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import nbformat
import psutil  # an ipykernel dependency
import pytest

from conftest import CHROMIUM, REPO, screenshot_dir
from pkd_lessons.project import COLAB_BADGE_URL

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Locator, Page

LESSON = REPO / "notebooks" / "07_exploring_errors.ipynb"
VIEWER_CELL = "07-09"
VOLUME_VIEWER_CELL = "07-3d"
#: The smallest lesson that still trains a teacher and a student, with one training, one validation and one
#: held-out case (seconds on a CPU).
TINY = {
    "brain_cases": 3,
    "seeds": 1,
    "teacher_steps": 2,
    "student_steps": 2,
    "widths": (4, 8, 16, 32),
    "batch_size": 2,
    "device": "cpu",
}
#: JupyterLab settings that keep it off the network (news, update checks, the PyPI extension manager).
OFFLINE_CONFIG = {
    "LabApp": {
        "news_url": None,
        "check_for_updates_class": "jupyterlab.NeverCheckForUpdate",
        "extension_manager": "readonly",
    }
}
#: User settings: never ask about (or fetch) news and updates, whose toast would cover the notebook;
#: attach every cell to the page, so that waiting on cells does not depend on scrolling.
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {
        "windowingMode": "none",
        "autoStartDefaultKernel": True,
    },
}
SERVER_START_S = 60
LESSON_RUN_S = 180
REDRAW_S = 30

playwright_api = pytest.importorskip(
    "playwright.sync_api",
    reason="Playwright's Python client is not installed (pip install playwright; no browser download needed)",
)
pytestmark = [
    pytest.mark.browser,
    pytest.mark.timeout(420),
    pytest.mark.skipif(
        not os.access(CHROMIUM, os.X_OK),
        reason=f"no Chromium at {CHROMIUM} (apt-get install chromium, or set PKD_CHROMIUM)",
    ),
]


@dataclass
class Lab:
    """A running JupyterLab server of the test.

    Attributes:
        root: the folder it serves.
        port: its port on 127.0.0.1.
        token: its authentication token.
        process: the server process.
        log: its output file.
    """

    root: Path
    port: int
    token: str
    process: subprocess.Popen
    log: Path

    def url(self, path: str) -> str:
        """Address of a server path, with the token."""
        return f"http://127.0.0.1:{self.port}/{path}?token={self.token}"

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the server's output, for failure messages."""
        return self.log.read_text(errors="replace")[-chars:]


@dataclass
class Browsing:
    """What a page did besides showing the lesson.

    Attributes:
        errors: console messages of type error and uncaught page errors.
        outside: requests for anything but the test's server, answered locally with an empty response.
    """

    errors: list[str] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)

    def watch(self, page: Page, lab: Lab) -> None:
        """Collect the errors of a page and keep it on the test's server.

        The lesson's markdown links an image on the web (the Colab badge); the sandboxes that run the
        tests are offline, and the test must not depend on the network where they are not.
        """
        page.on("console", lambda m: m.type == "error" and self.errors.append(f"console: {m.text} ({m.location})"))
        page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))

        def answer_locally(route) -> None:
            self.outside.append(route.request.url)
            route.fulfill(status=204)

        page.route(re.compile(rf"^https?://(?!127\.0\.0\.1:{lab.port}/)"), answer_locally)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tiny_lesson(folder: Path) -> Path:
    """Copy lesson 07 into ``folder`` with its parameters cell set to :data:`TINY`."""
    nb = nbformat.read(LESSON, as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    source = cell.source
    for name, value in TINY.items():
        source, found = re.subn(rf"^{name}\s*=.*$", f"{name} = {value!r}", source, flags=re.M)
        assert found == 1, f"lesson 07's parameters cell has no single {name!r}"
    cell.source = source
    path = folder / "viewer.ipynb"
    nbformat.write(nb, path)
    return path


def _isolated_env(home: Path) -> dict[str, str]:
    """Environment of the server: its own Jupyter and IPython folders and data root, nothing of the user's."""
    dirs = {
        name: home / name.lower()
        for name in (
            "JUPYTER_CONFIG_DIR",
            "JUPYTER_DATA_DIR",
            "JUPYTER_RUNTIME_DIR",
            "IPYTHONDIR",
            "PKD_LESSONS_DATA",
            "MPLCONFIGDIR",
        )
    }
    for folder in dirs.values():
        folder.mkdir(parents=True, exist_ok=True)
    (dirs["JUPYTER_CONFIG_DIR"] / "jupyter_server_config.json").write_text(json.dumps(OFFLINE_CONFIG))
    settings = dirs["JUPYTER_CONFIG_DIR"] / "lab" / "user-settings"
    for name, values in LAB_SETTINGS.items():
        (settings / name).parent.mkdir(parents=True, exist_ok=True)
        (settings / name).write_text(json.dumps(values))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "JPY_"))}
    env.update({k: str(v) for k, v in dirs.items()})
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["JUPYTER_PLATFORM_DIRS"] = "1"  # no deprecation warning on start
    return env


def _wait_until_up(lab: Lab) -> None:
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if lab.process.poll() is not None:
            pytest.fail(f"JupyterLab exited with {lab.process.returncode}:\n{lab.log_tail()}")
        try:
            with urllib.request.urlopen(lab.url("api/status"), timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.3)
    pytest.fail(f"JupyterLab did not answer on 127.0.0.1:{lab.port} within {SERVER_START_S} s:\n{lab.log_tail()}")


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def stop_lab(lab: Lab) -> None:
    """Shut the server and its kernels down; kill whatever is left.

    Kernels run in their own sessions (jupyter_client starts them so), so killing the server's
    process group alone would leave them behind: they are listed before the server goes.
    """
    children = _descendants(lab.process.pid)
    try:
        request = urllib.request.Request(lab.url("api/shutdown"), method="POST")
        urllib.request.urlopen(request, timeout=5).close()
        lab.process.wait(timeout=15)
    except (urllib.error.URLError, ConnectionError, TimeoutError, subprocess.TimeoutExpired):
        pass
    if lab.process.poll() is None:
        os.killpg(lab.process.pid, signal.SIGKILL)
        lab.process.wait(timeout=10)
    _, alive = psutil.wait_procs(children, timeout=5)
    for child in alive:
        child.kill()
    psutil.wait_procs(alive, timeout=5)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """JupyterLab serving a tiny copy of lesson 07, isolated from the user's settings, on 127.0.0.1."""
    home = tmp_path_factory.mktemp("lab")
    root = home / "notebooks"
    root.mkdir()
    tiny_lesson(root)
    port, token = _free_port(), secrets.token_hex(16)
    log = home / "server.log"
    command = [
        sys.executable,
        "-m",
        "jupyter",
        "lab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        "--ServerApp.terminals_enabled=False",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")  # CI containers run as root; the server refuses it unless told
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            env=_isolated_env(home),
            cwd=root,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    server = Lab(root, port, token, process, log)
    try:
        _wait_until_up(server)
        yield server
    finally:
        stop_lab(server)


@dataclass
class LessonPage:
    """The tiny lesson 07, run in JupyterLab in the browser.

    Attributes:
        page: the browser tab.
        browsing: what the tab reported besides the lesson.
        viewer: the viewer's output area.
        image: the viewer's picture.
    """

    page: Page
    browsing: Browsing
    viewer: Locator
    image: Locator

    def assert_no_errors(self) -> None:
        """Fail on any error the browser reported so far."""
        assert not self.browsing.errors, (
            "the browser reported errors:\n"
            + "\n".join(self.browsing.errors)
            + f"\n(requests answered locally: {self.browsing.outside})"
        )


@pytest.fixture(scope="module")
def lesson(lab: Lab, browser: Browser) -> Iterator[LessonPage]:
    """Lesson 07 opened in JupyterLab, every cell run, the viewer drawn."""
    browsing = Browsing()
    # Tall enough for the whole viewer (controls and picture) to fit in the notebook panel, so that
    # its screenshots are not overlapped by the status bar.
    page = browser.new_page(viewport={"width": 1280, "height": 1800})
    browsing.watch(page, lab)
    try:
        page.goto(lab.url("lab/tree/viewer.ipynb"))
        run_all_cells(page)
        wait_for_lesson(page)
        viewer = page.locator(".jp-OutputArea-output", has=page.locator("img.widget-image"))
        image = viewer.locator("img.widget-image")
        image.wait_for()
        playwright_api.expect(image).not_to_have_js_property("naturalWidth", 0)  # a decoded picture, not a blank
        yield LessonPage(page, browsing, viewer, image)
    finally:
        with contextlib.suppress(playwright_api.Error):  # a crashed page: keep the error that crashed it
            page.screenshot(path=screenshot_dir() / "page.png")
        page.close()


def _prompts_match(pattern: str, how: str = "every") -> str:
    """A page function: do the code cells' prompts (``[ ]:``, ``[*]:``, ``[3]:``) match ``pattern``?"""
    return f"""() => {{
        const prompts = [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt')];
        return prompts.length > 0 && prompts.{how}(p => /{pattern}/.test(p.textContent));
    }}"""


def run_all_cells(page: Page) -> None:
    """Run > Run All Cells, once the notebook's kernel is connected and idle."""
    # The execution indicator reads idle before the kernel is connected; the status bar's
    # "<kernel> | Idle" only once it is, and a Run All before then does nothing.
    status = page.locator(".jp-StatusBar-Widget", has_text=re.compile(r"\| Idle"))
    status.first.wait_for(timeout=SERVER_START_S * 1000)
    page.locator(".lm-MenuBar-item", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-item", has_text=re.compile(r"^Run All Cells")).click()
    page.wait_for_function(_prompts_match(r"\[(\*|\d+)\]", "some"), timeout=10_000)


def wait_for_lesson(page: Page) -> None:
    """Wait until every code cell has run (an execution count in each prompt); fail on an error output."""
    page.wait_for_function(_prompts_match(r"\[\d+\]"), timeout=LESSON_RUN_S * 1000)
    errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.error']")
    assert errors.count() == 0, "the lesson raised:\n" + "\n".join(errors.all_inner_texts())


def wait_for_new_picture(image: Locator, before: bytes, what: str) -> bytes:
    """Wait until the viewer's picture differs from ``before`` and holds still; fail if it never changes.

    Pictures are compared as screenshots of the image element: what the reader sees, whatever the
    widget does with its data.
    """
    deadline = time.monotonic() + REDRAW_S
    shot = image.screenshot()
    while time.monotonic() < deadline:
        time.sleep(0.3)
        again = image.screenshot()
        if again == shot != before:
            return shot
        shot = again
    pytest.fail(f"the viewer's picture did not change after {what} (waited {REDRAW_S} s)")


def test_controls_redraw_the_view(lesson: LessonPage) -> None:
    """Slice slider, modality dropdown, overlay buttons and the errors box each redraw the picture."""
    viewer, image, page, shots = lesson.viewer, lesson.image, lesson.page, screenshot_dir()
    picture = wait_for_new_picture(image, b"", "drawing the viewer")
    viewer.screenshot(path=shots / "1-initial.png")

    slider = viewer.locator(".widget-slider", has=page.locator(".widget-label", has_text=re.compile("^slice$")))
    readout = slider.locator(".widget-readout")
    first = int(readout.inner_text())
    step, moved = ("ArrowLeft", first - 3) if first >= 3 else ("ArrowRight", first + 3)
    slider.locator(".noUi-handle").focus()  # noUiSlider's handle takes the arrow keys once focused
    for _ in range(3):
        page.keyboard.press(step)
    playwright_api.expect(readout).to_have_text(str(moved))
    picture = wait_for_new_picture(image, picture, f"moving the slice from {first} to {moved}")
    viewer.screenshot(path=shots / "2-slice.png")

    dropdown = viewer.locator(".widget-dropdown select")
    current = dropdown.input_value()
    other = next(m for m in dropdown.locator("option").all_inner_texts() if m != current)
    dropdown.select_option(other)
    picture = wait_for_new_picture(image, picture, f"switching the modality from {current} to {other}")
    viewer.screenshot(path=shots / "3-modality.png")

    viewer.locator(".widget-toggle-button", has_text=re.compile("^none$")).click()
    picture = wait_for_new_picture(image, picture, "switching the overlay from truth to none")
    viewer.screenshot(path=shots / "4-overlay.png")

    viewer.locator(".widget-checkbox input").check()
    wait_for_new_picture(image, picture, "ticking the errors box")
    viewer.screenshot(path=shots / "5-errors.png")

    playwright_api.expect(readout).to_have_text(str(moved))  # the other controls left the slice alone
    lesson.assert_no_errors()


def test_saved_notebook_keeps_a_static_picture(lab: Lab, lesson: LessonPage) -> None:
    """Saved from JupyterLab, the viewer's output carries a PNG besides the widget (GitHub, nbviewer show it)."""
    lesson.page.keyboard.press("Control+s")
    deadline = time.monotonic() + REDRAW_S
    outputs: list = []
    while not outputs and time.monotonic() < deadline:
        time.sleep(0.3)
        saved = nbformat.read(lab.root / "viewer.ipynb", as_version=4)
        outputs = next(c for c in saved.cells if c.get("id") == VIEWER_CELL).outputs
    assert outputs, f"the viewer cell has no output in the saved notebook after {REDRAW_S} s"
    data = outputs[-1]["data"]
    assert "application/vnd.jupyter.widget-view+json" in data, f"no widget in the saved output: {sorted(data)}"
    assert "image/png" in data, f"no static picture beside the widget in the saved output: {sorted(data)}"
    assert base64.b64decode(data["image/png"]).startswith(b"\x89PNG")
    assert data["text/plain"].startswith("SliceViewer(")
    volume = next(c for c in saved.cells if c.get("id") == VOLUME_VIEWER_CELL).outputs[-1]["data"]
    assert {"application/vnd.jupyter.widget-view+json", "image/png"} <= set(volume), sorted(volume)
    assert base64.b64decode(volume["image/png"]).startswith(b"\x89PNG")
    assert volume["text/plain"].startswith("VolumeViewer(")
    lesson.assert_no_errors()


def _picture(png: bytes):
    """A screenshot as an ``(H, W, 3)`` array in [0, 1]."""
    from matplotlib import image as mpimg

    return mpimg.imread(io.BytesIO(png), format="png")[..., :3]


def test_volume_viewer_draws_and_follows_its_overlay(lesson: LessonPage) -> None:
    """The 3D viewer (NiiVue) draws the case on its canvas; the overlay dropdown reaches the kernel (the
    colour key it sends back changes) and redraws the canvas."""
    page, shots = lesson.page, screenshot_dir()
    viewer = page.locator(".jp-OutputArea-output", has=page.locator("canvas")).filter(
        has=page.locator(".widget-dropdown select")
    )
    canvas, key = viewer.locator("canvas").first, viewer.locator(".widget-html-content").first
    canvas.wait_for()
    dropdown = viewer.locator(".widget-dropdown select")
    assert dropdown.input_value() == "truth"
    options = dropdown.locator("option").all_inner_texts()
    assert options == ["truth", "teacher", "student", "errors", "none"], options
    playwright_api.expect(key).to_contain_text("oedema")  # the truth's classes
    picture = wait_for_new_picture(canvas, b"", "drawing the 3D viewer")
    viewer.screenshot(path=shots / "6-volume-truth.png")
    drawn = _picture(picture)

    dropdown.select_option("errors")  # through the kernel: it hides the truth, shows the errors, sends their key
    playwright_api.expect(key).to_contain_text("student wrong, teacher right")
    if drawn.std() < 0.01:  # one flat colour: NiiVue drew nothing (no WebGL 2 in this browser, or no software GL)
        webgl2 = page.evaluate("() => !!document.createElement('canvas').getContext('webgl2')")
        pytest.skip(
            f"NiiVue's canvas stays blank in this headless Chromium (WebGL 2 context: {webgl2}); "
            "checked: its widget is on the page and the overlay dropdown reaches the kernel"
        )
    picture = wait_for_new_picture(canvas, picture, "switching the 3D viewer's overlay from truth to errors")
    viewer.screenshot(path=shots / "7-volume-errors.png")
    dropdown.select_option("none")
    playwright_api.expect(key).to_have_text("")
    plain = _picture(wait_for_new_picture(canvas, picture, "switching the 3D viewer's overlay from errors to none"))
    viewer.screenshot(path=shots / "8-volume-none.png")
    # the overlays are colour; the image alone is grey (the cross-hair and labels aside: a few pixels)
    colour = lambda rgb: (rgb.max(-1) - rgb.min(-1) > 0.2).mean()
    assert colour(drawn) > colour(plain), "the truth's overlay added no colour to the 3D viewer's canvas"
    # NiiVue's code and the volumes come through the kernel: nothing asked the web for anything but the badge
    assert set(lesson.browsing.outside) <= {COLAB_BADGE_URL}, lesson.browsing.outside
    lesson.assert_no_errors()
