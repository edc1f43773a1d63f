"""The documentation site: built with warnings as errors, then read in a headless Chromium.

``test_site_builds_from_the_sources`` builds it from the lesson notebooks as they are (no outputs: it
checks the pages, references and directives in about a minute, without executing anything).
``test_site_of_the_executed_lessons`` builds it from the quick series that tests/test_notebooks.py
executed (or from ``$PKD_EXECUTED_LESSONS``), as ``make docs`` does from ``make lessons``, serves it
on 127.0.0.1 and visits every lesson and API page in Chromium: figures load, math is typeset, the
console stays clean, nothing is requested from outside, previous/next and the links between lessons
and API pages work. Screenshots of a lesson page and an API page go to ``$PKD_BROWSER_SCREENSHOTS``
(default ``browser-screenshots/``).
"""

from __future__ import annotations

import functools
import html
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import NOTEBOOKS, REPO, screenshot_dir, whole_series

DOCS = REPO / "docs"
sys.path.insert(0, str(DOCS / "_ext"))
import pkd_site  # noqa: E402

#: Seconds a build may take: a guard, not the speed check (idle, about 30 s from scratch on 2 cores).
BUILD_LIMIT = 600
API_PAGES = [*pkd_site.AREAS, "root"]
GUIDES = ["index", "glossary", "fidelity", "phantom/index", "real-data", "performance/index", "api/index"]


def build_site(executed: Path, out: Path) -> float:
    """Build the site as ``make docs`` does (``-W``: a warning fails), from ``executed``; its seconds."""
    env = dict(os.environ, PKD_EXECUTED_LESSONS=str(executed), OMP_NUM_THREADS="1")
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", str(DOCS), str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=BUILD_LIMIT,
    )
    assert result.returncode == 0, result.stderr[-5000:]
    return time.monotonic() - start


def _text(page: Path) -> str:
    return page.read_text(encoding="utf-8")


def test_site_builds_from_the_sources(tmp_path):
    executed = tmp_path / "executed"
    executed.mkdir()
    for notebook in NOTEBOOKS[1:]:
        shutil.copy(notebook, executed)
    # the first lesson "executed": one of its cells displays a result table and a figure
    _executed_copy(executed, NOTEBOOKS[0], _with_outputs)
    site = tmp_path / "html"
    build_site(executed, site)
    first = _text(site / "lessons" / f"{NOTEBOOKS[0].stem}.html")
    assert re.search(r'class="cell_output.*?<table.*?<td[^>]*>(?:<p>)?0\.935', first, re.S), "the result table"
    assert re.search(r'class="cell_output.*?<img[^>]+src="\.\./_images/', first, re.S), "the figure"
    assert "Dice |" not in first

    for name in [nb.stem for nb in NOTEBOOKS]:
        page = _text(site / "lessons" / f"{name}.html")
        # each lesson links the API entries of what it imports
        assert re.search(r'href="\.\./api/\w+\.html#pkd_lessons\.', page), name
        assert "The package behind this lesson" in page
        assert "colab.research.google.com/github/" in page and "_images/colab-badge" in page
    for area in API_PAGES:
        page = _text(site / "api" / f"{area}.html")
        assert 'class="sig sig-object py"' in page, f"api/{area}: no documented object"
        assert ".. py:module::" not in page and ".. automodule::" not in page, f"api/{area}: reST read as Markdown"
    for guide in GUIDES:
        assert (site / f"{guide}.html").is_file(), guide
    # the API pages link back to the lessons that explain them, and show executable examples
    losses = _text(site / "api" / "losses.html")
    assert "Explained in" in losses and 'href="../lessons/04_pixel_distillation.html"' in losses
    assert sum(_text(site / "api" / f"{a}.html").count('class="doctest highlight') for a in API_PAGES) >= 10
    index = html.unescape(re.sub(r"<[^>]+>", "", _text(site / "index.html")))  # the page's text
    assert "make lessons   #" in index and "make test      #" in index, "the README's two commands"
    assert re.search(r'<img[^>]+src="\.\./_images/cpu-2core-batch16\.png"', _text(site / "performance" / "index.html"))
    assert "Decathlon" in _text(site / "real-data.html")
    phantom = _text(site / "phantom" / "index.html")  # the calibration: the phantom's T1ce loss beside real BraTS
    assert "real range" in phantom and phantom.count("<table") >= 3 and "mass_effect" in phantom
    # the site reads offline: no page loads a script, style sheet or image from elsewhere
    remote = re.compile(r'<(?:script|img|link)\b[^>]*\b(?:src|href)="(?:https?:)?//[^"]*"')
    for page in site.rglob("*.html"):
        found = [m.group(0) for m in remote.finditer(_text(page)) if 'rel="canonical"' not in m.group(0)]
        assert not found, f"{page.relative_to(site)} loads {found[:3]}"


#: A 1x1 PNG.
PIXEL = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="


def _with_outputs(nb: dict) -> None:
    """Give the last code cell the outputs a lesson displays: a Markdown table and a figure."""
    cell = [c for c in nb["cells"] if c["cell_type"] == "code"][-1]
    table = "| region | Dice |\n|---|---|\n| WT | 0.935 |"
    cell["outputs"] = [
        {"output_type": "display_data", "metadata": {}, "data": {"text/markdown": table}},
        {"output_type": "display_data", "metadata": {}, "data": {"image/png": PIXEL, "text/plain": "<Figure>"}},
    ]


def _executed_copy(folder: Path, notebook: Path, change=None) -> Path:
    nb = json.loads(notebook.read_text())
    if change:
        change(nb)
    folder.mkdir(exist_ok=True)
    path = folder / notebook.name
    path.write_text(json.dumps(nb))
    return path


def test_site_refuses_a_failed_or_stale_lesson(tmp_path, monkeypatch):
    from sphinx.errors import ExtensionError

    notebook = NOTEBOOKS[4]
    uses = pkd_site.lesson_uses(notebook, pkd_site._documented_constants())
    assert "regularized_kd_loss" in uses.targets

    def fail(nb):
        cell = next(c for c in nb["cells"] if c["cell_type"] == "code")
        cell["outputs"] = [{"output_type": "error", "ename": "RuntimeError", "evalue": "x", "traceback": []}]

    failed = _executed_copy(tmp_path / "failed", notebook, fail)
    with pytest.raises(ExtensionError, match="stopped on RuntimeError"):
        pkd_site.lesson_page(failed, notebook, uses)

    def edit(nb):
        nb["cells"][-1]["source"] = "an older version of the last cell"

    stale = _executed_copy(tmp_path / "stale", notebook, edit)
    with pytest.raises(ExtensionError, match="another version .* run `make lessons` again"):
        pkd_site.lesson_page(stale, notebook, uses)

    def with_widgets(nb):
        nb["metadata"]["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {"m": {}}}}

    fine = _executed_copy(tmp_path / "fine", notebook, with_widgets)
    page = json.loads(pkd_site.lesson_page(fine, notebook, uses))
    assert "widgets" not in page["metadata"], "the widgets' saved state is left out of the site's copy"
    opening = "".join(page["cells"][0]["source"])
    assert "../_static/colab-badge.svg" in opening and "colab.research.google.com/github/" in opening
    assert "](../glossary.md)" in opening
    assert "The package behind this lesson" in "".join(page["cells"][-1]["source"])

    class App:
        srcdir = str(tmp_path / "src")

    monkeypatch.setenv("PKD_EXECUTED_LESSONS", str(tmp_path / "nothing"))
    with pytest.raises(ExtensionError, match="run `make lessons` first"):
        pkd_site.generate(App())
    assert not (tmp_path / "src").exists(), "nothing is written when the lessons are missing"
    # what `make docs` runs first: one line saying what to do
    check = subprocess.run(
        [sys.executable, str(DOCS / "_ext" / "pkd_site.py"), str(tmp_path / "nothing")], capture_output=True, text=True
    )
    assert check.returncode == 2 and check.stderr.count("\n") == 1 and "run `make lessons` first" in check.stderr


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def served(tmp_path) -> Iterator[tuple[Path, str]]:
    """An empty folder for the site and the address it is served at on 127.0.0.1."""
    root = tmp_path / "html"
    root.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=root))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _image_outputs(notebook: Path) -> int:
    nb = json.loads(notebook.read_text())
    return sum(
        "image/png" in o.get("data", {}) for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])
    )


def _table_outputs(notebook: Path) -> int:
    """Markdown outputs that hold a table (the lessons' result tables)."""
    nb = json.loads(notebook.read_text())
    return sum(
        "|---" in "".join(o.get("data", {}).get("text/markdown", ""))
        for c in nb["cells"]
        if c["cell_type"] == "code"
        for o in c.get("outputs", [])
    )


RAW_TABLE = re.compile(r"\|\s*(?:-{3,}|—)\s*\|")  # a Markdown table shown as text


CODE = re.compile(r"```.*?```|`[^`]*`", re.S)  # fenced blocks and inline code: a `$DATA` there is no math
MATH = re.compile(r"\$[^$\s][^$]*\$")


def _has_math(notebook: Path) -> bool:
    nb = json.loads(notebook.read_text())
    return any(c["cell_type"] == "markdown" and MATH.search(CODE.sub("", "".join(c["source"]))) for c in nb["cells"])


READ_PAGE = """() => {
  const images = [...document.querySelectorAll('article img')];
  return {
    images: images.map(i => ({src: i.getAttribute('src'), ok: i.complete && i.naturalWidth > 0})),
    outputImages: document.querySelectorAll('article .cell_output img').length,
    outputTables: document.querySelectorAll('article .cell_output table').length,
    text: document.querySelector('article').innerText,
    mathSource: document.querySelectorAll('article .math').length,
    mathTypeset: document.querySelectorAll('article mjx-container').length,
    prev: document.querySelector('a.left-prev')?.getAttribute('href') ?? null,
    next: document.querySelector('a.right-next')?.getAttribute('href') ?? null,
    apiLinks: [...document.querySelectorAll('article a[href*="../api/"]')].map(a => a.getAttribute('href')),
    lessonLinks: [...document.querySelectorAll('article a[href*="../lessons/"]')].map(a => a.getAttribute('href')),
  };
}"""
#: MathJax is loaded (deferred) only by pages with math; wait until it has started there.
MATH_READY = """() => !document.querySelector('script[src*="mathjax"]')
  || !!(window.MathJax && window.MathJax.startup && window.MathJax.startup.promise)"""


@pytest.mark.notebook
@pytest.mark.browser
@pytest.mark.timeout(BUILD_LIMIT + 600)
def test_site_of_the_executed_lessons(series, browser, served, capsys):
    # $PKD_EXECUTED_LESSONS (e.g. results/notebooks after `make lessons`) checks the site of a series
    # executed earlier, without running the lessons here
    given = os.environ.get("PKD_EXECUTED_LESSONS")
    executed_dir = Path(given) if given else whole_series(series)[0] / "notebooks"
    site, address = served
    seconds = build_site(executed_dir, site)
    with capsys.disabled():
        print(f"\nsite built in {seconds:.0f} s from the executed series: {len(list(site.rglob('*.html')))} pages")

    errors: list[str] = []
    outside: list[str] = []
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.on("console", lambda m: m.type in ("error", "warning") and errors.append(f"{page.url}: {m.text}"))
    page.on("pageerror", lambda e: errors.append(f"{page.url}: page error {e}"))
    page.on("requestfailed", lambda r: errors.append(f"{page.url}: request failed {r.url}"))

    def outside_request(route) -> None:
        outside.append(route.request.url)
        route.abort()

    page.route(re.compile(rf"^(?!{re.escape(address)}/).*"), outside_request)

    def visit(path: str) -> dict:
        page.goto(f"{address}/{path}", wait_until="load")
        page.wait_for_function(MATH_READY)
        page.evaluate("() => window.MathJax && window.MathJax.startup ? window.MathJax.startup.promise : null")
        return page.evaluate(READ_PAGE)

    lessons = [nb.stem for nb in NOTEBOOKS]
    api_targets: set[str] = set()
    for i, name in enumerate(lessons):
        seen = visit(f"lessons/{name}.html")
        executed = executed_dir / f"{name}.ipynb"
        broken = [img["src"] for img in seen["images"] if not img["ok"]]
        assert not broken, f"{name}: images that did not load: {broken}"
        assert seen["outputImages"] >= _image_outputs(executed) > 0 or _image_outputs(executed) == 0, (name, seen)
        assert seen["outputTables"] >= _table_outputs(executed), f"{name}: a result table is not rendered"
        assert not RAW_TABLE.search(seen["text"]), f"{name}: Markdown table markup shown as text"
        if _has_math(executed):
            assert seen["mathSource"] > 0 and seen["mathTypeset"] >= seen["mathSource"], f"{name}: math not typeset"
        assert seen["prev"] == (f"{lessons[i - 1]}.html" if i else "../index.html"), (name, seen["prev"])
        if i + 1 < len(lessons):
            assert seen["next"] == f"{lessons[i + 1]}.html", (name, seen["next"])
        assert seen["apiLinks"], f"{name}: no link to the API pages"
        api_targets.update(seen["apiLinks"])
        if name == "04_pixel_distillation":  # at its first equation
            page.evaluate("() => document.querySelector('article mjx-container[display]').scrollIntoView()")
            page.screenshot(path=screenshot_dir() / "site-lesson.png", full_page=False)
    assert sum(_image_outputs(executed_dir / f"{n}.ipynb") for n in lessons) >= 10

    backlinks = set()
    for area in API_PAGES:
        seen = visit(f"api/{area}.html")
        assert not [img["src"] for img in seen["images"] if not img["ok"]], area
        backlinks.update(seen["lessonLinks"])
        if area == "losses":  # at an entry with its formula, its lesson and an example
            page.evaluate("() => document.getElementById('pkd_lessons.losses.pixel.kd_loss').scrollIntoView()")
            page.screenshot(path=screenshot_dir() / "site-api.png", full_page=False)
    assert {f"../lessons/{n}.html" for n in ("04_pixel_distillation", "05_contrastive_distillation")} <= backlinks
    # every link from a lesson to the API lands on an entry that exists
    for target in sorted(api_targets):
        path, _, anchor = target.removeprefix("../").partition("#")
        assert (site / path).is_file(), target
        assert not anchor or f'id="{html.escape(anchor)}"' in (site / path).read_text(encoding="utf-8"), target
    for guide in GUIDES:
        seen = visit(f"{guide}.html")
        assert not [img["src"] for img in seen["images"] if not img["ok"]], guide
    page.close()
    assert not errors, "the browser reported:\n" + "\n".join(errors[:20])
    assert not outside, f"the site requested addresses outside it: {outside[:10]}"
