"""Execute the lesson notebooks end to end and write a summary of what they found.

Each notebook receives, through papermill, the profile, the data folder and an output folder of its
own. A notebook may write ``summary.md`` (and figures) there; the runner collects them, with the
time each notebook took, into ``SUMMARY.md``.
"""

from __future__ import annotations

import os
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from pkd_lessons.atomic import atomic_file
from pkd_lessons.lessons.lesson import Lesson
from pkd_lessons.lessons.profiles import get_profile
from pkd_lessons.markdown import markdown_table


@dataclass
class LessonRun:
    """Outcome of one notebook."""

    name: str
    seconds: float
    ok: bool
    error: str = ""


def find_notebooks(folder: str | os.PathLike | None = None) -> list[Path]:
    """The lesson notebooks in order (``NN_*.ipynb``).

    Args:
        folder: where they are; when None, ``./notebooks``, else the copy installed with the package
            (``pkd_lessons/notebooks`` in the wheel), else the repository's.

    Raises:
        FileNotFoundError: no notebooks found.
    """
    package = Path(__file__).resolve().parents[1]
    candidates = [Path(folder)] if folder else [Path("notebooks"), package / "notebooks", package.parent / "notebooks"]
    for c in candidates:
        found = sorted(p for p in c.glob("[0-9][0-9]_*.ipynb"))
        if found:
            return found
    raise FileNotFoundError(f"no lesson notebooks (NN_*.ipynb) in {', '.join(map(str, candidates))}")


def prepare_data(data_root: Path, profile: dict) -> dict[str, Path]:
    """Generate (or reuse) the phantom sets the lessons need, once, before the notebooks run."""
    lesson = Lesson(profile, data_root, data_root)
    return {"brain": lesson.brain(), "cardiac": lesson.cardiac()}


def run_lessons(
    out: str | os.PathLike,
    profile: str = "auto",
    notebooks: str | os.PathLike | None = None,
    only: list[str] | None = None,
    data_root: str | os.PathLike | None = None,
    timeout: int = 7200,
    runs_dir: str | os.PathLike | None = None,
) -> tuple[Path, list[LessonRun]]:
    """Execute the lessons with papermill and write ``OUT/SUMMARY.md``.

    Args:
        out: output folder: ``notebooks/`` (executed copies), ``outputs/NN_*/`` (what each lesson
            wrote), ``data/`` (phantoms, unless ``data_root`` is given) and ``SUMMARY.md``.
        profile: ``quick``, ``full`` or ``auto``.
        notebooks: folder of the lesson notebooks.
        only: run only notebooks whose name starts with one of these prefixes (e.g. ``["00", "03"]``).
        data_root: folder holding (or to hold) the phantom sets.
        runs_dir: folder of the trained runs (None: the lessons' own, :attr:`Lesson.runs_root`).
        timeout: seconds a single cell may run: a guard against a hung kernel, not a speed check (lesson
            02's training cell took over 1800 s on 2 cores shared with a second PyTorch job).

    Returns:
        The summary's path and one :class:`LessonRun` per notebook.
    """
    out = Path(out).resolve()
    settings = get_profile(profile)
    data_root = Path(data_root).resolve() if data_root else out / "data"
    print(f"profile {settings['profile']}: data in {data_root}")
    prepare_data(data_root, settings)
    selected = [nb for nb in find_notebooks(notebooks) if not only or any(nb.name.startswith(p) for p in only)]
    runs = []
    # The kernels inherit this process's environment: no progress bars in the executed copies,
    # where each would be a frozen "0%" line (the lessons show them when run interactively).
    saved = os.environ.get("PKD_LESSONS_PROGRESS")
    os.environ["PKD_LESSONS_PROGRESS"] = "0"
    try:
        runs = _execute(selected, out, settings, data_root, timeout, runs_dir)
    finally:
        if saved is None:
            os.environ.pop("PKD_LESSONS_PROGRESS", None)
        else:
            os.environ["PKD_LESSONS_PROGRESS"] = saved
    return write_summary(out, settings, runs), runs


def _execute(
    selected: list[Path], out: Path, settings: dict, data_root: Path, timeout: int, runs_dir: str | os.PathLike | None
) -> list[LessonRun]:
    try:
        import papermill as pm  # imported here: slow to import, and only the runner needs it
    except ImportError as err:
        raise ImportError(
            "running the lessons needs papermill and a Jupyter kernel: pip install 'pkd-lessons[jupyter]'"
        ) from err

    runs = []
    for nb in selected:
        stem = nb.stem
        target = out / "notebooks" / nb.name
        lesson_out = out / "outputs" / stem
        lesson_out.mkdir(parents=True, exist_ok=True)
        # a summary left by an earlier execution must not stand under this one's status if this one fails
        (lesson_out / "summary.md").unlink(missing_ok=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        try:
            pm.execute_notebook(
                str(nb),
                str(target),
                kernel_name="python3",
                progress_bar=False,
                cwd=str(lesson_out),
                parameters={
                    "profile": settings["profile"],
                    "data_root": str(data_root),
                    "output_dir": str(lesson_out),
                    **({"runs_dir": str(Path(runs_dir).resolve())} if runs_dir else {}),
                },
                execution_timeout=timeout,
            )
            run = LessonRun(stem, time.perf_counter() - start, True)
        except Exception as err:  # a failed lesson is reported, the others still run
            message = str(err).strip().splitlines()
            run = LessonRun(
                stem, time.perf_counter() - start, False, message[-1] if message else traceback.format_exc(limit=1)
            )
        error = f"  {run.error}" if run.error else ""
        print(f"{'ok  ' if run.ok else 'FAIL'} {stem:<32} {run.seconds:6.1f} s{error}")
        runs.append(run)
    return runs


def write_summary(out: Path, settings: dict, runs: list[LessonRun]) -> Path:
    """Write ``SUMMARY.md``: the run table, then each lesson's own summary."""
    lines = [
        "# pkd-lessons: results of the lessons",
        "",
        f"Profile **{settings['profile']}**; executed notebooks in `notebooks/`, each lesson's files in "
        "`outputs/`. Each lesson says from its validation curves whether its runs converged; comparisons the "
        "profile does not train come from the reference results (`pkd-lessons reference`), labelled as such.",
        "",
    ]
    rows = [[r.name, "ok" if r.ok else "failed: " + r.error.replace("|", "/"), f"{r.seconds:.1f}"] for r in runs]
    rows.append(["**total**", f"{sum(r.ok for r in runs)}/{len(runs)} ok", f"{sum(r.seconds for r in runs):.1f}"])
    lines.append(markdown_table(["lesson", "status", "time (s)"], rows))
    for r in runs:
        part = out / "outputs" / r.name / "summary.md"
        if part.is_file():
            text = part.read_text().strip()
            # Figures are referenced relative to the lesson's folder; make them relative to OUT.
            text = text.replace("](./", f"](outputs/{r.name}/")
            lines += ["", f"## {r.name}", "", text]
    path = out / "SUMMARY.md"
    with atomic_file(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return path
