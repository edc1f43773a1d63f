"""The checks of .pre-commit-config.yaml, run by the suite so that CI enforces them too."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from conftest import REPO

BIN = str(Path(sys.executable).parent)  # the environment the tests run in (make test: .venv)
RUFF = shutil.which("ruff", path=BIN) or shutil.which("ruff")
NBSTRIPOUT = shutil.which("nbstripout", path=BIN) or shutil.which("nbstripout")


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=300)


def _hook_revs() -> dict[str, str]:
    config = yaml.safe_load((REPO / ".pre-commit-config.yaml").read_text())
    return {r["repo"].rsplit("/", 1)[-1]: r["rev"].lstrip("v") for r in config["repos"]}


@pytest.mark.skipif(RUFF is None, reason="ruff is in the test extra: pip install -e '.[test]'")
def test_ruff_lint_is_clean():
    result = _run(RUFF, "check", "--no-cache", "--output-format", "concise", ".")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


@pytest.mark.skipif(RUFF is None, reason="ruff is in the test extra: pip install -e '.[test]'")
def test_ruff_format_is_applied():
    result = _run(RUFF, "format", "--no-cache", "--check", ".")
    assert result.returncode == 0, "run `ruff format .`:\n" + result.stdout[-4000:] + result.stderr[-2000:]


@pytest.mark.skipif(NBSTRIPOUT is None, reason="nbstripout is in the test extra: pip install -e '.[test]'")
def test_notebooks_are_stripped():
    notebooks = sorted(str(p) for p in (REPO / "notebooks").glob("*.ipynb"))
    result = _run(NBSTRIPOUT, "--keep-id", "--verify", *notebooks)
    assert result.returncode == 0, "run `nbstripout --keep-id notebooks/*.ipynb`:\n" + result.stdout + result.stderr


def test_tool_versions_agree_with_the_hooks():
    """Formatting changes between ruff versions: the hook and the test extra pin the same one."""
    extra = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["test"]
    pins = dict(re.match(r"([\w-]+)==(\S+)", p).groups() for p in extra if "==" in p)
    revs = _hook_revs()
    assert pins["ruff"] == revs["ruff-pre-commit"]
    assert pins["nbstripout"] == revs["nbstripout"]


def test_ruff_targets_the_oldest_python_declared():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    oldest = re.match(r">=\s*3\.(\d+)", project["project"]["requires-python"]).group(1)
    environment = yaml.safe_load((REPO / "environment.yml").read_text())
    assert f"python=3.{oldest}" in environment["dependencies"], "environment.yml: the oldest Python declared"
    assert project["tool"]["ruff"]["target-version"] == f"py3{oldest}"
    assert sys.version_info >= (3, int(oldest))
