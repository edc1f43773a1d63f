"""Reference results: every method trained longer than a lesson can afford, once, kept as data.

The quick profile trains what a CPU can afford in a lesson; the ``reference`` profile trains every
method (and the positive control) for longer on the same phantom data, split and networks. Its
metrics, validation curves and provenance (commit, command, device, date, duration) are stored in
``pkd_lessons/lessons/reference_brain.json``, and lessons 03-06 show them beside their own numbers
as "what longer training gives". One command regenerates the file::

    pkd-lessons reference --out pkd_lessons/lessons/reference_brain.json
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from pkd_lessons.atomic import atomic_file

REFERENCE_FILE = Path(__file__).resolve().parent / "reference_brain.json"
#: Every student variant the reference can train (``control``: the baseline on the clean truth).
REFERENCE_METHODS = ("baseline", "control", "kd", "rkd", "ckd", "pkl", "kdnet")
#: What ``pkd-lessons reference`` trains by default: all of them.
DEFAULT_METHODS = REFERENCE_METHODS
#: History entries kept (the loss is thinned to at most this many points).
_LOSS_POINTS = 200


def _commit() -> str:
    """The git commit of the package's source tree, or ``"unknown"`` outside a checkout."""
    try:
        root = Path(__file__).resolve().parents[2]
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
        )
        if out.returncode == 0:
            return out.stdout.strip() + ("+uncommitted changes" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return "unknown"


def _thin(history: dict) -> dict:
    """The validation curves whole, the per-step loss thinned to about :data:`_LOSS_POINTS` points."""
    out = {k: v for k, v in history.items() if k.startswith("val_")}
    loss = history.get("loss", [])
    every = max(1, len(loss) // _LOSS_POINTS)
    out["loss_step"] = list(range(1, len(loss) + 1))[::every]
    out["loss"] = loss[::every]
    return out


def run_name(method: str) -> str:
    """Display name of a reference method."""
    return "control (baseline on the clean truth)" if method == "control" else method


def build_reference(
    out: str | os.PathLike = REFERENCE_FILE,
    profile: str = "reference",
    data_root: str | os.PathLike | None = None,
    methods: tuple[str, ...] = DEFAULT_METHODS,
    progress: bool = True,
    **overrides,
) -> Path:
    """Train the reference runs (or reuse them from ``data_root``) and write their results as JSON.

    Args:
        out: the JSON file to write (atomically).
        profile: the profile of the runs (``"reference"``; ``"tiny"`` in the tests).
        data_root: folder for the phantoms and the runs (default: the lessons' data folder).
        methods: student variants, from :data:`REFERENCE_METHODS`.
        progress: progress bars.
        **overrides: profile settings to change.

    Returns:
        The path written.

    Raises:
        ValueError: an unknown method.
    """
    from pkd_lessons.lessons.lesson import Lesson
    from pkd_lessons.training.device import describe_device, pick_device

    unknown = [m for m in methods if m not in REFERENCE_METHODS]
    if unknown:
        raise ValueError(f"unknown reference method(s) {unknown}; known: {', '.join(REFERENCE_METHODS)}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    start, commit = time.perf_counter(), _commit()  # the code as it was when the runs started
    scratch = tempfile.mkdtemp(prefix="pkd-reference-")  # the Lesson's figure folder: nothing is kept there
    lesson = Lesson.start(profile, data_root, output_dir=scratch, **overrides)
    teacher = lesson.run("teacher", progress=progress)
    runs = {"teacher": [teacher]}
    for method in methods:
        if method == "control":
            runs[method] = [lesson.run("baseline", seed=s, progress=progress, train_on="truth") for s in lesson.seeds]
        else:
            runs[method] = [lesson.run(method, seed=s, progress=progress) for s in lesson.seeds]
    records, histories = [], {}
    for method, method_runs in runs.items():
        for r in method_runs:
            records.append(dict(r.metrics, method=method))
            histories[f"{method}-s{r.config.seed}"] = _thin(r.history)
    settings = {k: list(v) if isinstance(v, tuple) else v for k, v in lesson.settings.items()}
    data = {
        "provenance": {
            "commit": commit,
            "command": " ".join(["pkd-lessons reference", *sys.argv[2:]])
            if sys.argv[1:2] == ["reference"]
            else f"build_reference(profile={profile!r})",
            "device": describe_device(pick_device(lesson.settings["device"])),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPU core(s)",
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "seconds": round(time.perf_counter() - start, 1),
            "train_seconds": round(sum(r.info.get("seconds", 0.0) for rs in runs.values() for r in rs), 1),
            "profile": profile,
            "settings": settings,
            "versions": _versions(),
        },
        "records": records,
        "histories": histories,
    }
    with atomic_file(out) as tmp:
        tmp.write_text(json.dumps(data, indent=1))
    shutil.rmtree(scratch, ignore_errors=True)
    return out


def _versions() -> dict[str, str]:
    import monai
    import numpy
    import torch

    from pkd_lessons import __version__

    return {
        "pkd_lessons": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "monai": monai.__version__,
        "numpy": numpy.__version__,
    }


def load_reference(path: str | os.PathLike = REFERENCE_FILE) -> dict | None:
    """The stored reference results, or None when none have been generated.

    Raises:
        ValueError: the file exists but is not a reference-results file.
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not a readable reference-results file ({err})") from err
    if not {"provenance", "records", "histories"} <= set(data):
        raise ValueError(f"{path}: not a reference-results file (needs provenance, records and histories)")
    return data


def provenance_line(data: dict) -> str:
    """One sentence saying where the reference numbers come from."""
    p, s = data["provenance"], data["provenance"]["settings"]
    split = s.get("split")
    return (
        f"*Reference results: profile `{p['profile']}` ({s['teacher_steps']} teacher / {s['student_steps']} "
        f"student steps, {s['seeds']} seeds, widths {'-'.join(map(str, s['widths']))}, split "
        f"{'/'.join(map(str, split)) if split else '?'} train/validation/test cases), run by "
        f"`{p['command'].strip()}` at commit `{p['commit'][:12]}` on {p['device']} ({p['machine']}), "
        f"{p['date']}, {max(p['seconds'], p.get('train_seconds', 0)) / 60:.0f} min of training.*"
    )


def reference_records(data: dict, methods: tuple[str, ...] | None = None) -> list[dict]:
    """The stored metrics records (optionally only some methods), ready for the statistics."""
    return [r for r in data["records"] if methods is None or r["method"] in methods]


def reference_section(
    methods: tuple[str, ...],
    reference: str = "baseline",
    path: str | os.PathLike = REFERENCE_FILE,
    regions: tuple[str, ...] = ("WT", "TC", "ET"),
) -> str:
    """Markdown for a lesson: the reference results of some methods, their comparison with
    ``reference`` (crossed-design interval, n, detectable difference, seeds needed) and where they come from.

    Returns a short note instead when no reference results are stored.
    """
    from pkd_lessons.evaluation.statistics import compare, verdict_lines
    from pkd_lessons.evaluation.tables import summarize, summary_table

    data = load_reference(path)
    if data is None:
        return "*No reference results are stored with this copy of the package: run `pkd-lessons reference`.*"
    wanted = tuple(dict.fromkeys((reference, *methods)))
    records = [r for r in reference_records(data, wanted)]
    if not records:
        return f"*The stored reference results hold none of {', '.join(wanted)}.*"
    rows = [r for r in summarize(records, baseline=None) if r["region"] in regions]
    table = summary_table(rows)
    present = {r["method"] for r in records}
    lines = (
        verdict_lines([r for r in compare(records, reference=reference) if r["region"] in regions], reference=reference)
        if reference in present and len(present) > 1
        else ""
    )
    return "\n\n".join(part for part in (provenance_line(data), table, lines) if part)
