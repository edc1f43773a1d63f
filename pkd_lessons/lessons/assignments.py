"""Exercises in nbgrader's markup, and the student versions of the lessons.

The lesson notebooks are the *instructor* versions: each exercise is a cell whose solution lies
between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` (a written answer: a Markdown cell marked as
a solution), followed by an autograded test cell whose hidden part lies between
``### BEGIN HIDDEN TESTS`` and ``### END HIDDEN TESTS``. The cells carry nbgrader's own metadata
(``metadata.nbgrader``: ``grade_id``, ``solution``, ``grade``, ``points``), so an instructor can
also hand the notebooks to nbgrader as they are.

:func:`write_assignments` writes the student versions with nbgrader's own preprocessors:
solutions replaced by ``raise NotImplementedError()`` (or "YOUR ANSWER HERE"), hidden tests
removed, outputs cleared.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import nbformat

from pkd_lessons.atomic import atomic_dir
from pkd_lessons.markdown import markdown_table

NBGRADER_SCHEMA = 3


@dataclass(frozen=True)
class Exercise:
    """One exercise of a lesson: its identifier, kind and the points its checks carry."""

    notebook: str
    grade_id: str
    kind: str  # "code" (autograded) or "written" (graded by hand)
    points: float
    title: str


def exercises(notebook: nbformat.NotebookNode, name: str = "") -> list[Exercise]:
    """The exercises of a lesson notebook, in order (one per graded cell).

    Args:
        notebook: the notebook.
        name: the notebook's name, recorded in each :class:`Exercise`.

    Returns:
        One :class:`Exercise` per cell that nbgrader grades.
    """
    found, title = [], ""
    for cell in notebook.cells:
        if cell.cell_type == "markdown" and cell.source.lstrip().startswith("### Exercise"):
            title = cell.source.lstrip().splitlines()[0].lstrip("#").strip()
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade"):
            kind = "written" if cell.cell_type == "markdown" else "code"
            found.append(Exercise(name, meta["grade_id"], kind, float(meta.get("points", 0)), title))
    return found


def student_version(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The notebook as a learner gets it: solutions and hidden tests removed, outputs cleared.

    Uses nbgrader's preprocessors (``ClearSolutions``, ``ClearHiddenTests``, ``ClearOutput``), the
    ones its ``generate_assignment`` step runs.

    Raises:
        ImportError: nbgrader is not installed (``pip install "pkd-lessons[course]"``).
    """
    try:
        from nbgrader.preprocessors import ClearHiddenTests, ClearOutput, ClearSolutions
    except ImportError as err:
        raise ImportError("writing student versions needs nbgrader: pip install 'pkd-lessons[course]'") from err
    notebook = nbformat.from_dict(notebook)  # a copy: the instructor version stays as it is
    notebook.metadata.setdefault("kernelspec", {"name": "python3", "language": "python", "display_name": "Python 3"})
    resources: dict = {}
    for preprocessor in (ClearSolutions(), ClearHiddenTests(), ClearOutput()):
        notebook, resources = preprocessor.preprocess(notebook, resources)
    return notebook


def student_edition(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """An executed lesson as the site's student edition shows it: the lesson's outputs kept, its
    exercises as a learner gets them (solutions replaced by stubs, hidden tests and model answers
    removed, the exercise cells' outputs cleared).

    Uses nbgrader's ``ClearSolutions`` and ``ClearHiddenTests``; only the exercise cells lose their
    outputs (which could show a solution's results).

    Raises:
        ImportError: nbgrader is not installed.
    """
    try:
        from nbgrader.preprocessors import ClearHiddenTests, ClearSolutions
    except ImportError as err:
        raise ImportError("the student edition needs nbgrader: pip install 'pkd-lessons[course]'") from err
    notebook = nbformat.from_dict(notebook)
    resources: dict = {}
    for preprocessor in (ClearSolutions(), ClearHiddenTests()):
        notebook, resources = preprocessor.preprocess(notebook, resources)
    for cell in notebook.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "code" and (meta.get("solution") or meta.get("grade")):
            cell.outputs, cell.execution_count = [], None
    return notebook


def write_assignments(
    out: str | os.PathLike, notebooks: str | os.PathLike | None = None, overwrite: bool = False
) -> list[Path]:
    """Write the student version of every lesson into ``out`` (all or nothing).

    Args:
        out: the folder to write (it must not exist unless ``overwrite``).
        notebooks: folder of the instructor notebooks (default: the lessons' own).
        overwrite: replace an existing ``out`` written by this function.

    Returns:
        The student notebooks written.

    Raises:
        FileExistsError: ``out`` exists and ``overwrite`` is False.
        ImportError: nbgrader is not installed.
    """
    from pkd_lessons.lessons.runner import find_notebooks

    written = []
    with atomic_dir(out, overwrite=overwrite) as tmp:
        for path in find_notebooks(notebooks):
            student = student_version(nbformat.read(path, as_version=4))
            nbformat.write(student, tmp / path.name)
            written.append(Path(out) / path.name)
        (tmp / "README.md").write_text(_readme(find_notebooks(notebooks)))
    return written


def _readme(paths: list[Path]) -> str:
    lines = [
        "# Exercises: student versions",
        "",
        "Each exercise ends with a check cell: run it after your answer; it fails until the answer is right.",
        "Written answers are graded by hand.",
        "",
    ]
    rows = [
        [path.stem, ex.title or ex.grade_id, ex.kind, f"{ex.points:g}"]
        for path in paths
        for ex in exercises(nbformat.read(path, as_version=4), path.stem)
    ]
    return "\n".join([*lines, markdown_table(["lesson", "exercise", "kind", "points"], rows)]) + "\n"
