"""Reference results: every method trained longer than a lesson can afford, once, kept as data.

Each stored run carries its identity (settings, data, teacher and the code's behaviour fingerprint,
:mod:`pkd_lessons.lessons.store`); :func:`stale_runs` says which stored runs this code would no
longer make, and the lessons say so beside them. ``pkd-lessons reference`` can be stopped and run
again: it reuses every run already trained whose identity matches.

The quick profile trains what a CPU can afford in a lesson; the ``reference`` profile trains every
method (and the positive control) for longer on the same phantom data, split and networks. Its
metrics, validation curves (removed where the runs were scored again since) and provenance (commit,
command, device, date, duration) are stored in ``pkd_lessons/lessons/reference_brain.json``, and
lessons 03-06 show them beside their own numbers as "what longer training gives". One command regenerates the file::

    pkd-lessons reference --out pkd_lessons/lessons/reference_brain.json

After a change that alters only how trained networks are scored, ``pkd-lessons reference
--rescore`` scores the stored runs again without training them (:mod:`pkd_lessons.lessons.rescore`).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from pkd_lessons.atomic import atomic_file
from pkd_lessons.lessons.profiles import ALL_METHODS
from pkd_lessons.lessons.provenance import source_commit, versions
from pkd_lessons.phantoms.sets import physics_id

REFERENCE_FILE = Path(__file__).resolve().parent / "reference_brain.json"
#: Every student variant the reference can train (``control``: the baseline on the clean truth).
REFERENCE_METHODS = ("baseline", *ALL_METHODS)
#: What ``pkd-lessons reference`` trains by default: all of them.
DEFAULT_METHODS = REFERENCE_METHODS
#: Methods trained over more seeds than the profile's: the comparison the series is about, the
#: paper's method against the baseline, must detect 1.5 Dice points or less in every region. With 3
#: seeds it detected 0.6 (WT), 2.4 (TC) and 3.2 (ET) points, and its variance components
#: (:func:`~pkd_lessons.evaluation.statistics.seeds_needed`) asked for about 9 seeds for ET; with 10
#: it detects 0.9, 0.8 and 0.9 (tests/test_measurement.py checks the stored results).
EXTRA_SEEDS = {"baseline": 10, "pkl": 10}
#: History entries kept (the loss is thinned to at most this many points).
_LOSS_POINTS = 200


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
    seeds_of: dict[str, int] | None = None,
    **overrides,
) -> Path:
    """Train the reference runs (or reuse them from ``data_root``) and write their results as JSON.

    Every student method is trained over the profile's seeds (``seeds=N`` among ``overrides``
    changes them), the methods in ``seeds_of`` over their own number; the teacher once. Each method
    is later compared with the baseline's runs of the same seeds, so no method may have more seeds
    than the baseline.

    Args:
        out: the JSON file to write (atomically).
        profile: the profile of the runs (``"reference"``; ``"tiny"`` in the tests).
        data_root: folder for the phantoms and the runs (default: the lessons' data folder).
        methods: student variants, from :data:`REFERENCE_METHODS`.
        progress: progress bars.
        seeds_of: seeds of some methods, more than the profile's (default :data:`EXTRA_SEEDS`;
            ``{}`` for none).
        **overrides: profile settings to change.

    Returns:
        The path written.

    Raises:
        ValueError: an unknown method, a seed count below 2, or a method with more seeds than the
            baseline.
    """
    from pkd_lessons.lessons.lesson import Lesson
    from pkd_lessons.lessons.profiles import get_profile
    from pkd_lessons.training.device import describe_device, pick_device

    seeds_of = dict(EXTRA_SEEDS if seeds_of is None else seeds_of)
    unknown = [m for m in dict.fromkeys((*methods, *seeds_of)) if m not in REFERENCE_METHODS]
    if unknown:
        raise ValueError(f"unknown reference method(s) {unknown}; known: {', '.join(REFERENCE_METHODS)}")
    default = get_profile(profile, **overrides)["seeds"]
    counts = {m: max(seeds_of.get(m, 0), default) for m in methods}
    bad = {m: n for m, n in counts.items() if n < 2}
    if bad:
        raise ValueError(f"every method needs at least 2 seeds (a comparison needs two); got {bad}")
    if "baseline" in counts:
        over = {m: n for m, n in counts.items() if n > counts["baseline"]}
        if over:
            raise ValueError(
                f"method(s) {over} would have more seeds than the baseline ({counts['baseline']}), "
                "whose runs of the same seeds each is compared with"
            )
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    start, commit = time.perf_counter(), source_commit()  # the code as it was when the runs started
    scratch = tempfile.mkdtemp(prefix="pkd-reference-")  # the Lesson's figure folder: nothing is kept there
    lesson = Lesson.start(profile, data_root, output_dir=scratch, **overrides)
    teacher = lesson.run("teacher", progress=progress)
    runs = {"teacher": [teacher]}
    for method in methods:
        seeds = range(counts[method])
        if method == "control":
            runs[method] = [lesson.run("baseline", seed=s, progress=progress, train_on="truth") for s in seeds]
        else:
            runs[method] = [lesson.run(method, seed=s, progress=progress) for s in seeds]
    records, histories = [], {}
    for method, method_runs in runs.items():
        for r in method_runs:
            records.append(dict(r.metrics, method=method, identity=r.identity, checkpoint_sha256=r.checkpoint_sha256))
            histories[f"{method}-s{r.config.seed}"] = _thin(r.history)
    every = [r for rs in runs.values() for r in rs]
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
            # every run's own training time, those trained by an earlier, interrupted invocation too
            # (reused only when their settings, data, teacher and code fingerprints are this code's)
            "train_seconds": round(sum(r.info.get("seconds", 0.0) for r in every), 1),
            "runs": len(every),
            "reused_runs": sum(r.reused for r in every),
            "profile": profile,
            "seeds": counts,
            "convention": lesson.split("brain")[0][0].convention.name,
            "phantom_physics": physics_id("brain"),
            "settings": settings,
            "versions": versions(),
        },
        "records": records,
        "histories": histories,
    }
    with atomic_file(out) as tmp:
        tmp.write_text(json.dumps(data, indent=1))
    shutil.rmtree(scratch, ignore_errors=True)
    return out


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
    split, seeds = s.get("split"), seeds_phrase(p.get("seeds") or {}, s["seeds"])
    return (
        f"*Reference results: profile `{p['profile']}` ({s['teacher_steps']} teacher / {s['student_steps']} "
        f"student steps, {seeds}, widths {'-'.join(map(str, s['widths']))}, split "
        f"{'/'.join(map(str, split)) if split else '?'} train/validation/test cases), run by "
        f"`{p['command'].strip()}` at commit `{p['commit'][:12]}` on {p['device']} ({p['machine']}), "
        f"{p['date']}, {max(p['seconds'], p.get('train_seconds', 0)) / 60:.0f} min of training"
        + (f"; scored by commit `{p['scored']['commit'][:12]}`, {p['scored']['date']}" if "scored" in p else "")
        + ".*"
    )


def seeds_phrase(counts: dict[str, int], default: int) -> str:
    """``"5 seeds (baseline, pkl: 10)"``: the seeds of most methods and of those that have others."""
    values = list(counts.values())
    common = min(set(values), key=lambda n: (-values.count(n), n)) if values else default
    others: dict[int, list[str]] = {}
    for method, n in counts.items():
        if n != common:
            others.setdefault(n, []).append(method)
    extra = "; ".join(f"{', '.join(ms)}: {n}" for n, ms in sorted(others.items()))
    return f"{common} seeds" + (f" ({extra})" if extra else "")


def stale_runs(data: dict) -> list[str]:
    """The stored runs that this code would not make again, each with the reason.

    A run is stale when it carries no identity (written before runs had one), when its phantoms were
    made with other physics than this code's (:func:`~pkd_lessons.phantoms.sets.physics_id`), or
    when the code's behaviour fingerprint for its settings
    (:func:`~pkd_lessons.training.behaviour.behaviour_fingerprint`) is not the one stored: a loss,
    network, sampler, schedule, prediction or metric has changed since.

    Args:
        data: the reference results (:func:`load_reference`).

    Returns:
        One line per stale run (empty when every run matches the code).
    """
    from pkd_lessons.data.labels import CONVENTIONS
    from pkd_lessons.training.behaviour import behaviour_fingerprint
    from pkd_lessons.training.config import TrainConfig

    stale = []
    physics, now = data["provenance"].get("phantom_physics"), physics_id("brain")
    for rec in data["records"]:
        identity = rec.get("identity")
        if not identity:
            stale.append(f"{rec.get('run', rec['method'])}: no identity stored (made before runs had one)")
            continue
        if physics != now:
            stale.append(f"{rec.get('run', rec['method'])}: made on phantoms of other physics ({physics}, now {now})")
            continue
        cfg = TrainConfig.from_dict(identity["config"])
        code = behaviour_fingerprint(cfg, CONVENTIONS[data["provenance"].get("convention", "brats")])
        if code != identity["code"]:
            name = rec.get("run", rec["method"])
            stale.append(f"{name}: made by code that computes differently ({identity['code']}, now {code})")
    return stale


def stale_warning(data: dict) -> str:
    """One italic line when some stored runs would not come out the same now (:func:`stale_runs`), else ""."""
    stale = stale_runs(data)
    if not stale:
        return ""
    return (
        f"*Made by an earlier version of the code: {len(stale)} of {len(data['records'])} stored runs would "
        "not come out the same now (`pkd-lessons reference` makes them again).*"
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
    warning = stale_warning(data)
    rows = [r for r in summarize(records, baseline=None) if r["region"] in regions]
    table = summary_table(rows)
    present = {r["method"] for r in records}
    lines = (
        verdict_lines(
            [r for r in compare(records, reference=reference, match_reference_seeds=True) if r["region"] in regions],
            reference=reference,
        )
        if reference in present and len(present) > 1
        else ""
    )
    return "\n\n".join(part for part in (provenance_line(data), warning, table, lines) if part)


def reference_gap_section(path: str | os.PathLike = REFERENCE_FILE) -> str:
    """Markdown: what the T1ce student loses against the teacher in the reference results, region by
    region, beside what a T1ce-only network loses on real BraTS (:data:`~pkd_lessons.lessons.published.T1CE_GAPS`).

    The brain phantom's physics is calibrated against this table: at the reference profile each gap
    should fall inside the published range.

    Returns:
        The table with the reference results' provenance (and a staleness warning when the code
        would no longer make them), or a short note when none are stored.
    """
    from pkd_lessons.lessons.published import gap_markdown, t1ce_gaps

    data = load_reference(path)
    if data is None:
        return "*No reference results are stored with this copy of the package: run `pkd-lessons reference`.*"
    records = reference_records(data, ("teacher", "baseline"))
    seeds = sorted({r["seed"] for r in records if r["method"] == "baseline"})
    cases = len(records[0]["cases"]) if records else 0
    label = f"reference results, the one teacher run against {len(seeds)} T1ce baseline seeds x {cases} held-out cases"
    warning = stale_warning(data)
    table = gap_markdown(t1ce_gaps(records), label)
    return "\n\n".join(part for part in (provenance_line(data), warning, table) if part)
