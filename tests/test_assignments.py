"""Exercises: nbgrader's markup in the lessons, and the student versions written from it.

Both sides are proved: the instructor versions pass their checks (they run, solutions included,
in the executed series of ``test_notebooks.py``, which fails on any error), and the student
versions' stubs fail every check while the notebook still runs up to its first exercise
(``test_notebooks.py::test_student_versions_stop_at_their_exercises``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from unittest import mock

import nbformat
import pytest

from conftest import REPO
from pkd_lessons.cli import main
from pkd_lessons.lessons.assignments import exercises, student_edition, student_version
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


def test_course_is_graded_by_nbgrader_s_own_commands(tmp_path):
    """The course folder goes through nbgrader's workflow: generate_assignment releases lesson 00,
    autograde executes two submissions with a real gradebook (one answered from the model solutions,
    one handing in the stubs) and records full and zero points for the code exercises, and
    generate_solution writes the version to hand out after the deadline (nbgrader's: the solutions
    in place of the stubs)."""
    from nbgrader.api import Gradebook
    from traitlets.config.loader import PyFileConfigLoader

    from pkd_lessons.lessons.course import CELL_TIMEOUT

    course, lesson = tmp_path / "course", "00_setup_and_data"
    argv = ["course", "--out", str(course), "--only", "00", "--profile", "tiny", "--notebooks", str(REPO / "notebooks")]
    assert main(argv) == 0
    with mock.patch.dict(os.environ):  # loading the configuration sets the course's variables: not ours
        config = PyFileConfigLoader("nbgrader_config.py", path=str(course)).load_config()
        assert os.environ["PKD_LESSONS_PROFILE"] == "tiny" and os.environ["PKD_LESSONS_PROGRESS"] == "0"
    assert config.Execute.timeout == CELL_TIMEOUT and config.CourseDirectory.course_id == "pkd-lessons"
    # nbgrader starts the gradebook's migrations as a command (alembic): the environment's own, first on PATH
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    env = {
        **os.environ,
        "PATH": path,
        "PKD_LESSONS_DATA": str(tmp_path / "data"),
        "PKD_LESSONS_RUNS": str(tmp_path / "runs"),
    }

    def nbgrader(*args):
        done = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, env=env, capture_output=True)
        assert done.returncode == 0, done.stderr.decode()[-3000:]

    nbgrader("generate_assignment", lesson, "--create")
    released = nbformat.read(course / "release" / lesson / f"{lesson}.ipynb", as_version=4)
    assert "BEGIN SOLUTION" not in nbformat.writes(released) and "raise NotImplementedError()" in nbformat.writes(
        released
    )
    source = {
        c.metadata["nbgrader"]["grade_id"]: c
        for c in nbformat.read(course / "source" / lesson / f"{lesson}.ipynb", 4).cells
        if "nbgrader" in c.metadata
    }
    answered = nbformat.from_dict(released)
    for cell in answered.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution"):  # the model solution, as a student who got it right would write it
            lines = source[meta["grade_id"]].source.splitlines()
            cell.source = "\n".join(
                line for line in lines if "### BEGIN SOLUTION" not in line and "### END SOLUTION" not in line
            )
    for student, notebook in (("alice", answered), ("bob", released)):
        (course / "submitted" / student / lesson).mkdir(parents=True)
        nbformat.write(notebook, course / "submitted" / student / lesson / f"{lesson}.ipynb")
    nbgrader("autograde", lesson)
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        scores = {}
        for student in ("alice", "bob"):
            graded = gradebook.find_submission_notebook(lesson, lesson, student)
            code = [g for g in graded.grades if g.cell.cell_type == "code"]
            scores[student] = (sum(g.score for g in code), sum(g.max_score for g in code))
    assert scores["alice"][0] == scores["alice"][1] > 0, scores
    assert scores["bob"][0] == 0, scores
    nbgrader("generate_solution", lesson)
    solution = nbformat.writes(nbformat.read(course / "solution" / lesson / f"{lesson}.ipynb", as_version=4))
    model = [c.source for c in answered.cells if c.metadata.get("nbgrader", {}).get("solution")]
    assert "raise NotImplementedError()" not in solution and all(m.splitlines()[-1] in solution for m in model)


@pytest.mark.parametrize("notebook", WITH_EXERCISES[:3], ids=lambda p: p.stem)
def test_student_edition_of_the_site_keeps_the_lesson_and_hides_the_answers(notebook):
    executed = nbformat.read(notebook, as_version=4)
    for cell in executed.cells:
        if cell.cell_type == "code":
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="a result\n")]
    edition = student_edition(executed)
    text = nbformat.writes(edition)
    for marker in ("BEGIN SOLUTION", "HIDDEN TESTS"):
        assert marker not in text
    for before, after in zip(executed.cells, edition.cells):
        meta = before.metadata.get("nbgrader", {})
        if before.cell_type == "code":
            exercise = meta.get("solution") or meta.get("grade")
            assert bool(after.outputs) != bool(exercise), meta.get("grade_id", after.source[:40])
