"""Where the package lives, in one place: its home and release tag, and what the notebooks say of them.

The home is ``[project.urls]`` of ``pyproject.toml`` (read from the installed package's metadata).
Every lesson's Colab badge, its set-up cell (which installs the package where it is missing) and the
site's repository links are written from it, and all name the same release tag, ``v<version>``, so
that a notebook opened from its badge installs the package it was written for.
:func:`sync_notebook` rewrites a notebook's badge, set-up cell and Colab metadata; the tests fail
when a notebook has drifted (``python -m pkd_lessons.project notebooks`` puts them right).

Example::

    >>> release_tag().startswith("v")
    True
"""

from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path

from pkd_lessons import __version__

#: The package's home where no metadata can be read (a source tree without an installed package).
DEFAULT_HOME = "https://github.com/pkd-lessons/pkd-lessons"
COLAB = "https://colab.research.google.com/github"
COLAB_BADGE_URL = "https://colab.research.google.com/assets/colab-badge.svg"
#: The notebook metadata that makes Colab open a notebook on a GPU runtime (the lab profile).
COLAB_METADATA = {"accelerator": "GPU", "colab": {"gpuType": "T4", "provenance": []}}
SETUP_TAG = "# Set-up:"


def home() -> str:
    """The repository's URL, from ``[project.urls] Repository`` of the installed package."""
    try:
        urls = metadata.metadata("pkd-lessons").get_all("Project-URL") or []
    except metadata.PackageNotFoundError:
        urls = []
    for entry in urls:
        label, _, url = entry.partition(",")
        if label.strip().lower() == "repository":
            return url.strip().rstrip("/")
    return DEFAULT_HOME


def release_tag() -> str:
    """The git tag of this version's release, ``v<version>``."""
    return f"v{__version__}"


def install_spec() -> str:
    """What ``pip install`` takes to install this release from its home."""
    return f"pkd-lessons @ git+{home()}@{release_tag()}"


def colab_url(notebook: str) -> str:
    """The Colab address that opens a lesson of this release (``notebook``: its file name)."""
    owner_repo = home().removeprefix("https://github.com/")
    return f"{COLAB}/{owner_repo}/blob/{release_tag()}/notebooks/{notebook}"


def badge(notebook: str) -> str:
    """The Markdown of a lesson's "Open in Colab" badge."""
    return f"[![Open In Colab]({COLAB_BADGE_URL})]({colab_url(notebook)})"


def setup_cell() -> str:
    """The source of every lesson's set-up cell: install where missing, then check, or stop in one line."""
    return f'''{SETUP_TAG} where pkd-lessons is missing (a fresh Colab session), install the release these lessons
# were written for (it leaves the notebook server's own Jupyter and ipywidgets alone), then check that
# it imports: where it does not, the cell stops with one line saying what failed and what to run.
import importlib
import importlib.util

release = "{install_spec()}"
if importlib.util.find_spec("pkd_lessons") is None:
    %pip install --quiet "{{release}}"
    importlib.invalidate_caches()
try:
    for module in ("torch", "monai", "nibabel", "pkd_lessons"):
        importlib.import_module(module)
except ImportError as err:
    raise SystemExit(
        f"pkd-lessons cannot run here: {{err}}. Install it with  pip install '{{release}}'  "
        "then restart the kernel (Colab: Runtime > Restart session)."
    ) from None'''


def sync_notebook(notebook: dict, name: str) -> list[str]:
    """Write the badge, the set-up cell and the Colab metadata into a lesson notebook (in place).

    Args:
        notebook: the notebook as a dict (``nbformat`` JSON).
        name: its file name.

    Returns:
        What was changed (empty when the notebook was already in step).

    Raises:
        ValueError: the notebook has no badge line in its first cell or no set-up cell.
    """
    changed = []
    first = "".join(notebook["cells"][0]["source"])
    fixed = re.sub(r"\[!\[Open In Colab\]\([^)]*\)\]\([^)]*\)", lambda _: badge(name), first, count=1)
    if "[![Open In Colab]" not in first:
        raise ValueError(f"{name}: no Colab badge in the first cell")
    if fixed != first:
        notebook["cells"][0]["source"] = fixed.splitlines(keepends=True)
        changed.append("badge")
    setup = [c for c in notebook["cells"] if "".join(c["source"]).startswith(SETUP_TAG)]
    if len(setup) != 1:
        raise ValueError(f"{name}: {len(setup)} set-up cells (a code cell starting {SETUP_TAG!r}); one expected")
    if "".join(setup[0]["source"]) != setup_cell():
        setup[0]["source"] = setup_cell().splitlines(keepends=True)
        changed.append("set-up cell")
    for key, value in COLAB_METADATA.items():
        if notebook["metadata"].get(key) != value:
            notebook["metadata"][key] = value
            changed.append(f"metadata.{key}")
    return changed


def main(argv: list[str] | None = None) -> int:
    """``python -m pkd_lessons.project FOLDER [--check]``: sync (or check) the lessons of FOLDER."""
    import json

    args = list(sys.argv[1:] if argv is None else argv)
    check = "--check" in args
    folders = [a for a in args if a != "--check"] or ["notebooks"]
    drift = 0
    for path in sorted(p for f in folders for p in Path(f).glob("[0-9][0-9]_*.ipynb")):
        notebook = json.loads(path.read_text())
        changed = sync_notebook(notebook, path.name)
        if changed:
            drift += 1
            print(f"{path}: {'out of step' if check else 'updated'}: {', '.join(changed)}")
            if not check:
                path.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n")
    return 1 if check and drift else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
