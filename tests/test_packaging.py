"""The install files agree with each other and with the README."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib

import pytest
import yaml

from conftest import REPO

# conda-forge names that differ from PyPI's
CONDA_NAMES = {"pytorch": "torch", "python-build": "build"}


def _split(requirement: str) -> tuple[str, str]:
    m = re.match(r"\s*([A-Za-z0-9_.\-]+)\s*(.*)$", requirement)
    assert m, requirement
    return m.group(1).lower().replace("_", "-"), m.group(2).replace(" ", "")


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pip_side = dict(_split(r) for r in project["dependencies"] + project["optional-dependencies"]["test"])
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    conda_side = {}
    # a package conda-forge lacks goes in the one pip: list; every other one is a conda package
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    pip_lists = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and set(d) == {"pip"}]
    assert len(conda) + len(pip_lists) == len(env["dependencies"]) and len(pip_lists) <= 1, env["dependencies"]
    for dep in conda + [d for lst in pip_lists for d in lst]:
        name, spec = _split(dep)
        if name in {"python", "pip"}:
            continue
        conda_side[CONDA_NAMES.get(name, name)] = spec
    assert conda_side == pip_side, (
        f"environment.yml and pyproject.toml drifted apart: only in environment.yml "
        f"{sorted(set(conda_side) - set(pip_side))}, only in pyproject.toml "
        f"{sorted(set(pip_side) - set(conda_side))}, different versions "
        f"{sorted(k for k in set(pip_side) & set(conda_side) if pip_side[k] != conda_side[k])}"
    )


def test_required_dependencies_declared():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    names = {_split(r)[0] for r in project["dependencies"]}
    assert {"torch", "monai", "nibabel", "nilearn", "matplotlib", "ipywidgets", "tqdm"} <= names
    # the notebook server and runner are extras: Colab's own must not be replaced by an install
    assert not names & {"jupyterlab", "notebook", "papermill", "ipykernel", "jupyter"}
    extras = project["optional-dependencies"]
    tests = {_split(r)[0] for r in extras["test"]}
    assert {"pytest", "nbval"} <= tests and {_split(r)[0] for r in extras["jupyter"]} <= tests


def test_notebooks_name_the_package_s_one_home_and_release():
    """Every lesson's badge, set-up cell and Colab metadata are written from ``[project.urls]`` and the
    version (``python -m pkd_lessons.project notebooks`` puts a drifted notebook right)."""
    from pkd_lessons import project as home
    from pkd_lessons.lessons.runner import find_notebooks

    meta = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert "version" in meta["dynamic"], "one version source: pkd_lessons.__version__"
    assert home.home() == meta["urls"]["Repository"]
    for notebook in find_notebooks(REPO / "notebooks"):
        nb = json.loads(notebook.read_text())
        assert home.sync_notebook(nb, notebook.name) == [], f"{notebook.name} drifted: python -m pkd_lessons.project"
        text = json.dumps(nb)
        assert text.count(f"@{home.release_tag()}") == 1 and f"/blob/{home.release_tag()}/notebooks/" in text
        assert nb["metadata"]["accelerator"] == "GPU"  # Colab opens a GPU runtime: the lab profile


def test_set_up_cell_stops_in_one_line_when_the_package_cannot_import():
    """The set-up cell installs only where the package is missing, then imports what the lessons need;
    where that fails it stops with one line naming what failed and the command to run."""
    from pkd_lessons.project import install_spec, setup_cell

    script = f"""
import sys
from IPython.core.interactiveshell import InteractiveShell
sys.modules["monai"] = None  # an install that left MONAI out
result = InteractiveShell.instance().run_cell({setup_cell()!r})
print("ERROR:", type(result.error_in_exec).__name__, result.error_in_exec)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    line = [x for x in done.stdout.splitlines() if x.startswith("ERROR:")][0]
    assert line.startswith("ERROR: SystemExit pkd-lessons cannot run here: import of monai halted")
    assert f"pip install '{install_spec()}'" in line and "%pip" not in done.stdout  # nothing installed


def test_packages_listed_for_the_wheel_are_the_package_s_folders():
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {
        ".".join(p.relative_to(REPO).parts) for p in (REPO / "pkd_lessons").rglob("*") if (p / "__init__.py").is_file()
    }
    assert listed == {"pkd_lessons", *found, "pkd_lessons.notebooks"}


def test_readme_gives_the_two_commands_and_ci_runs_the_test_one():
    readme = (REPO / "README.md").read_text()
    assert "make lessons" in readme and "make test" in readme
    ci = (REPO / ".ci" / "run").read_text()
    assert re.search(r"^make test$", ci, re.M), ".ci/run must call the README's test command"
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^test:", makefile, re.M) and re.search(r"^lessons:", makefile, re.M)


def test_package_map_names_every_module():
    """The site's package page is the map of the package: every module and subpackage is on it."""
    page = (REPO / "docs" / "package.md").read_text()
    layout = page[page.index("## Layout") :]
    layout = layout[: layout.index("```", layout.index("```") + 3)]
    package = REPO / "pkd_lessons"
    missing = []
    for path in sorted(package.rglob("*.py")):
        if path.name in ("__init__.py", "_exports.py"):
            continue
        if not re.search(rf"\b{re.escape(path.stem)}\b", layout):
            missing.append(str(path.relative_to(REPO)))
    for folder in sorted(p for p in package.rglob("*") if (p / "__init__.py").is_file()):
        if f"{folder.name}/" not in layout:
            missing.append(str(folder.relative_to(REPO)) + "/")
    assert not missing, f"docs/package.md's layout does not name {missing}"


def test_import_is_light_and_every_export_resolves():
    """``import pkd_lessons`` and ``pkd-lessons --help`` load neither torch nor MONAI; every name a
    package exports exists."""
    code = (
        "import sys, importlib, pkd_lessons, pkd_lessons.cli\n"
        "pkd_lessons.cli.build_parser()  # pkd-lessons --help\n"
        "assert not {'torch', 'monai', 'matplotlib'} & set(sys.modules), sorted(sys.modules)\n"
        "for pkg in ('pkd_lessons', 'pkd_lessons.data', 'pkd_lessons.training', 'pkd_lessons.evaluation',\n"
        "            'pkd_lessons.lessons', 'pkd_lessons.lessons.figures'):\n"
        "    module = importlib.import_module(pkg)\n"
        "    for name in module.__all__:\n"
        "        assert getattr(module, name) is not None, (pkg, name)\n"
        "    assert set(module.__all__) <= set(dir(module))\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-3000:]


def test_an_unknown_name_is_an_attribute_error():
    import pkd_lessons

    with pytest.raises(AttributeError, match="no attribute 'Lesosn'"):
        pkd_lessons.Lesosn  # noqa: B018


def test_notebooks_are_found_from_any_folder(tmp_path, monkeypatch):
    """Without --notebooks, the commands find the repository's lessons from any working folder."""
    from pkd_lessons.lessons.runner import find_notebooks

    monkeypatch.chdir(tmp_path)
    assert [p.parent for p in find_notebooks()] == [REPO / "notebooks"] * 10
