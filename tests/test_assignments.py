"""Exercises: nbgrader's markup in the lessons, and the student versions written from it.

Both sides are proved: the instructor versions pass their checks (they run, solutions included,
in the executed series of ``test_notebooks.py``, which fails on any error), and the student
versions' stubs fail every check while the notebook still runs up to its first exercise
(``test_notebooks.py::test_student_versions_stop_at_their_exercises``).
"""

from __future__ import annotations

import nbformat
import pytest

from conftest import REPO
from pkd_lessons.cli import main
from pkd_lessons.lessons.assignments import exercises, student_version
from pkd_lessons.lessons.runner import find_notebooks

NOTEBOOKS = find_notebooks(REPO / "notebooks")
WITH_EXERCISES = [p for p in NOTEBOOKS if exercises(nbformat.read(p, as_version=4))]


def test_lessons_carry_exercises():
    assert [p.name[:2] for p in WITH_EXERCISES] == [f"{i:02d}" for i in range(10)]
    for notebook in WITH_EXERCISES:
        assert 2 <= len(exercises(nbformat.read(notebook, as_version=4))) <= 4, notebook.name


@pytest.mark.parametrize("notebook", WITH_EXERCISES, ids=lambda p: p.stem)
def test_exercise_markup_is_nbgrader_s(notebook):
    nb = nbformat.read(notebook, as_version=4)
    ids = [c.metadata["nbgrader"]["grade_id"] for c in nb.cells if "nbgrader" in c.metadata]
    assert len(ids) == len(set(ids)), "grade ids must be unique within a notebook"
    pending = None  # a code solution waits for its check cell
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader")
        if not meta:
            continue
        assert meta["schema_version"] == 3 and meta["grade_id"].startswith(f"ex-{notebook.name[:2]}-")
        if cell.cell_type == "code" and meta["solution"]:
            assert "### BEGIN SOLUTION" in cell.source and "### END SOLUTION" in cell.source
            assert pending is None, f"{pending}: a solution without its check cell"
            pending = meta["grade_id"]
        elif cell.cell_type == "code" and meta["grade"]:
            assert pending is not None, f"{meta['grade_id']}: a check without a solution before it"
            assert meta["locked"] and meta["points"] > 0 and "assert" in cell.source
            assert "### BEGIN HIDDEN TESTS" in cell.source, f"{meta['grade_id']}: no hidden tests"
            pending = None
        else:  # a written answer, graded by hand
            assert cell.cell_type == "markdown" and meta["solution"] and meta["grade"] and meta["points"] > 0
    assert pending is None


@pytest.mark.parametrize("notebook", WITH_EXERCISES, ids=lambda p: p.stem)
def test_student_version_has_stubs_and_no_answers(notebook):
    instructor = nbformat.read(notebook, as_version=4)
    student = student_version(instructor)
    assert instructor.cells[0].source == student.cells[0].source and "BEGIN SOLUTION" in nbformat.writes(instructor)
    text = nbformat.writes(student)
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "HIDDEN TESTS"):
        assert marker not in text
    for cell in student.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution"):
            stub = "raise NotImplementedError()" if cell.cell_type == "code" else "YOUR ANSWER HERE"
            assert stub in cell.source, meta["grade_id"]
    hidden = [c for c in instructor.cells if "BEGIN HIDDEN TESTS" in c.source]
    assert all(
        c.source.split("### BEGIN HIDDEN TESTS")[1].split("### END HIDDEN TESTS")[0].strip() not in text for c in hidden
    )


def test_assignments_command_writes_every_lesson_and_a_list(tmp_path, capsys):
    out = tmp_path / "students"
    assert main(["assignments", "--out", str(out), "--notebooks", str(REPO / "notebooks")]) == 0
    assert sorted(p.name for p in out.glob("*.ipynb")) == [p.name for p in NOTEBOOKS]
    listing = (out / "README.md").read_text()
    for notebook in WITH_EXERCISES:
        for ex in exercises(nbformat.read(notebook, as_version=4)):
            assert f"| {notebook.stem} |" in listing and ex.kind in listing
    assert main(["assignments", "--out", str(out), "--notebooks", str(REPO / "notebooks")]) == 2
    assert "already exists" in capsys.readouterr().err
