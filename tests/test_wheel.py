"""The package as a Colab user gets it: built into an sdist and a wheel (``make dist``), installed
into a fresh environment with no repository beside it, where lesson 00 runs and the student versions
of the exercises are written from the notebooks inside the wheel."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from conftest import REPO

pytestmark = pytest.mark.notebook  # it executes a lesson


def run(*argv, cwd: Path, env: dict | None = None) -> str:
    done = subprocess.run(list(map(str, argv)), cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{argv}: {done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def test_the_wheel_alone_runs_a_lesson_and_writes_the_assignments(tmp_path):
    dist = tmp_path / "dist"
    # sdist first, then the wheel from the sdist (as make dist): both carry the notebooks
    run(sys.executable, "-m", "build", "--no-isolation", "--outdir", dist, REPO, cwd=tmp_path)
    wheel = next(dist.glob("pkd_lessons-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    notebooks = sorted(n for n in names if n.startswith("pkd_lessons/notebooks/") and n.endswith(".ipynb"))
    assert [Path(n).name for n in notebooks] == sorted(p.name for p in (REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert "pkd_lessons/lessons/reference_brain.json" in names
    shipped = {p.name for p in (REPO / "pkd_lessons" / "lessons" / "teachers").glob("*.*")}
    assert shipped <= {Path(n).name for n in names if n.startswith("pkd_lessons/lessons/teachers/")}

    # a fresh environment: the wheel installed alone; its dependencies are this environment's (no
    # network here), read from its site-packages without its editable install of the repository
    env_dir = tmp_path / "env"
    run(sys.executable, "-m", "venv", env_dir, cwd=tmp_path)
    python = env_dir / "bin" / "python"
    run(python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", wheel, cwd=tmp_path)
    site = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=tmp_path).strip())
    (site / "zz-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    home = tmp_path / "user"
    home.mkdir()
    env = {
        **os.environ,
        "PATH": f"{env_dir / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "PKD_LESSONS_DATA": str(home / "data"),
        "PKD_LESSONS_PROGRESS": "0",
    }
    where = run(python, "-c", "import pkd_lessons; print(pkd_lessons.__file__)", cwd=home, env=env)
    assert Path(where.strip()).is_relative_to(env_dir), where

    run(
        env_dir / "bin" / "pkd-lessons",
        "lessons",
        "--profile",
        "tiny",
        "--only",
        "00",
        "--out",
        "results",
        cwd=home,
        env=env,
    )
    executed = json.loads((home / "results" / "notebooks" / "00_setup_and_data.ipynb").read_text())
    printed = "".join("".join(o.get("text", "")) for c in executed["cells"] for o in c.get("outputs", []))
    assert (
        f"pkd-lessons {run(python, '-c', 'import pkd_lessons; print(pkd_lessons.__version__)', cwd=home).strip()}"
        in printed
    )
    assert "| 00_setup_and_data | ok |" in (home / "results" / "SUMMARY.md").read_text()

    run(env_dir / "bin" / "pkd-lessons", "assignments", "--out", "students", cwd=home, env=env)
    assert len(list((home / "students").glob("*.ipynb"))) == len(notebooks)
