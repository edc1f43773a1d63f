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
CONDA_NAMES = {"pytorch": "torch"}


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


def test_set_up_cells_install_this_release():
    """Every lesson's set-up cell installs the tagged release of the package's own version, and only
    where the package is missing."""
    from pkd_lessons import __version__
    from pkd_lessons.lessons.runner import find_notebooks

    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "version" in project["project"]["dynamic"], "one version source: pkd_lessons.__version__"
    for notebook in find_notebooks(REPO / "notebooks"):
        setup = "".join(json.loads(notebook.read_text())["cells"][1]["source"])
        assert 'if importlib.util.find_spec("pkd_lessons") is None:\n    %pip install' in setup, notebook.name
        pins = re.findall(r"pkd-lessons @ git\+\S+@v([0-9.]+)\"", setup)
        assert pins == [__version__], f"{notebook.name}: set-up cell pins {pins}, the package is {__version__}"


def test_readme_gives_the_two_commands_and_ci_runs_the_test_one():
    readme = (REPO / "README.md").read_text()
    assert "make lessons" in readme and "make test" in readme
    ci = (REPO / ".ci" / "run").read_text()
    assert re.search(r"^make test$", ci, re.M), ".ci/run must call the README's test command"
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^test:", makefile, re.M) and re.search(r"^lessons:", makefile, re.M)


def test_readme_layout_names_every_module():
    """README's layout section is the map of the package: every module and subpackage is on it."""
    readme = (REPO / "README.md").read_text()
    layout = readme[readme.index("## Layout") :]
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
    assert not missing, f"README's layout section does not name {missing}"


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
