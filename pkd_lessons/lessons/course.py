"""An nbgrader course built from the lessons: the instructor versions as its source, a configuration
whose limits suit lessons that train networks, and the steps of nbgrader's own workflow.

:func:`write_course` writes::

    COURSE/
      nbgrader_config.py      course id, cell timeouts, where the phantoms and the runs live
      source/00_setup_and_data/00_setup_and_data.ipynb   one assignment per lesson (instructor version)
      ...
      README.md               the workflow, command by command, and the exercises with their points

Everything after that is nbgrader's: ``nbgrader generate_assignment`` writes ``release/`` (solutions
replaced by stubs, hidden tests removed), ``nbgrader autograde`` executes each submission with the
hidden tests put back and records the points in the gradebook (``gradebook.db``), and
``nbgrader generate_solution`` writes ``solution/``, the version to hand out after the deadline.

Autograding executes a whole lesson. A lesson that trains networks reuses the runs in the course's
runs folder (the lessons store every run by what made it; :mod:`pkd_lessons.lessons.store`), so an
instructor who executes the lessons once before grading (``pkd-lessons lessons --runs
COURSE/runs --data COURSE/data``) grades each submission in the time the lesson takes without
training; a lesson opened alone also finds the pretrained teachers shipped with the package. The
configuration sets the profile every submission is graded in (``PKD_LESSONS_PROFILE``), so that a
grading machine with a GPU does not grade in another profile than the runs were made in.
"""

from __future__ import annotations

import os
from pathlib import Path

import nbformat

from pkd_lessons.atomic import atomic_dir
from pkd_lessons.lessons.assignments import exercises
from pkd_lessons.markdown import markdown_table

#: Seconds one cell may run while nbgrader executes a submission (its default, 30 s, stops every
#: lesson that trains): the longest quick-profile training cell took about 4 minutes on 2 cores
#: shared with a second job, and a cell that needs a run the course has not stored trains it.
CELL_TIMEOUT = 1800


def config_text(course_id: str, profile: str) -> str:
    """The course's ``nbgrader_config.py``.

    Args:
        course_id: nbgrader's course identifier.
        profile: the profile submissions are graded in (``quick``, ``lab``, ...).

    Returns:
        The file's text.
    """
    return f'''"""nbgrader's configuration for the pkd-lessons course (written by `pkd-lessons course`)."""

import os
from pathlib import Path

here = Path(__file__).resolve().parent
c = get_config()  # noqa: F821 (nbgrader provides it)

c.CourseDirectory.course_id = {course_id!r}
c.CourseDirectory.root = str(here)

# A lesson's training and scoring cells run for minutes, not nbgrader's default 30 s.
c.Execute.timeout = {CELL_TIMEOUT}
c.Execute.interrupt_on_timeout = True

# Every submission is executed with the course's data and runs: the phantoms are generated once,
# and runs already stored (pkd-lessons lessons --runs runs --data data) are reused, not trained again.
os.environ.setdefault("PKD_LESSONS_DATA", str(here / "data"))
os.environ.setdefault("PKD_LESSONS_RUNS", str(here / "runs"))
# The profile submissions are graded in ("auto" in a notebook resolves to it): the runs' profile.
os.environ.setdefault("PKD_LESSONS_PROFILE", {profile!r})
# No progress bars in the graded copies.
os.environ.setdefault("PKD_LESSONS_PROGRESS", "0")
'''


def write_course(
    out: str | os.PathLike,
    notebooks: str | os.PathLike | None = None,
    only: list[str] | None = None,
    course_id: str = "pkd-lessons",
    profile: str = "quick",
    overwrite: bool = False,
) -> list[Path]:
    """Write an nbgrader course of the lessons (all or nothing).

    Args:
        out: the course folder (it must not exist unless ``overwrite``).
        notebooks: folder of the instructor notebooks (default: the lessons' own).
        only: lessons to include, by the prefix of their name (``["00", "03"]``); default all.
        course_id: nbgrader's course identifier.
        profile: the profile submissions are graded in.
        overwrite: replace an existing ``out`` written by this function.

    Returns:
        The source notebooks written.

    Raises:
        FileExistsError: ``out`` exists and ``overwrite`` is False.
        ValueError: ``only`` names no lesson, or ``profile`` is not a profile.
    """
    from pkd_lessons.lessons.profiles import PROFILES
    from pkd_lessons.lessons.runner import find_notebooks

    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {', '.join(PROFILES)}, got {profile!r}")
    lessons = [p for p in find_notebooks(notebooks) if not only or any(p.name.startswith(o) for o in only)]
    if not lessons:
        raise ValueError(f"no lesson starts with {', '.join(only or [])}")
    written = []
    with atomic_dir(out, overwrite=overwrite) as tmp:
        for path in lessons:
            folder = tmp / "source" / path.stem
            folder.mkdir(parents=True)
            notebook = nbformat.read(path, as_version=4)
            nbformat.write(notebook, folder / path.name)
            written.append(Path(out) / "source" / path.stem / path.name)
        (tmp / "nbgrader_config.py").write_text(config_text(course_id, profile))
        (tmp / "README.md").write_text(_readme(lessons, profile))
    return written


def _readme(lessons: list[Path], profile: str) -> str:
    first = lessons[0].stem
    rows = [
        [path.stem, ex.title or ex.grade_id, ex.kind, f"{ex.points:g}"]
        for path in lessons
        for ex in exercises(nbformat.read(path, as_version=4), path.stem)
    ]
    return f"""# pkd-lessons: the course

One nbgrader assignment per lesson, in `source/`. Run every command in this folder.

1. Once, before the course: store the runs the lessons train, so that grading never trains them
   (the {profile} profile, as `nbgrader_config.py` grades in):
   `pkd-lessons lessons --profile {profile} --runs runs --data data --out executed`
2. Release an assignment: `nbgrader generate_assignment {first}` writes `release/{first}/`
   (solutions replaced by `raise NotImplementedError()` or "YOUR ANSWER HERE", hidden tests
   removed, outputs cleared) and adds it to the gradebook; hand out that folder
   (`nbgrader release_assignment {first}` with an exchange, or your course site).
3. Collect the submissions into `submitted/<student>/{first}/` (`nbgrader collect {first}`).
4. Grade: `nbgrader autograde {first}` executes every submission with the hidden tests put back
   (each cell may run {CELL_TIMEOUT} s) and records the points in `gradebook.db`; grade the written
   answers by hand in the formgrader (`nbgrader formgrader`, or JupyterLab's nbgrader panel).
5. Feedback and solutions: `nbgrader generate_feedback {first}`; after the deadline,
   `nbgrader generate_solution {first}` writes `solution/{first}/`, the lesson with the solutions in
   place of the stubs, to hand out (nbgrader keeps the hidden tests in it: hand it out once no
   cohort still has to be graded on them).

## Exercises and points

{markdown_table(["lesson", "exercise", "kind", "points"], rows)}
"""
