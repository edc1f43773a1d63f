"""Lesson 06's closing synthesis: the paper's claim, and when privileged knowledge can help, read
from the numbers of the run at hand.

Every sentence is computed from the rows it is given (:func:`pkd_lessons.evaluation.statistics.compare`
rows, region means, the annotation ceiling, a ratio of gradient sizes), so that the paragraph a
lesson prints never says more than its own tables show.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

#: The paper's claim, in its abstract's words (Chen et al., IEEE TMI 2022).
PAPER_CLAIM = (
    "Experimental results on both tasks demonstrate that our privileged knowledge learning is effective in "
    "improving unimodal segmentation and outperforms previous methods."
)


def _pts(value: float) -> str:
    return f"{100 * value:+.1f}"


def _row_text(row: Mapping) -> str:
    return (
        f"{row['region']} {_pts(row['diff'])} [{_pts(row['low'])}, {_pts(row['high'])}] "
        f"({row['verdict']}; detectable {100 * row['detectable']:.1f})"
    )


def claim_reading(rows: Sequence[Mapping], method: str = "pkl", source: str = "this run") -> str:
    """One sentence: where ``rows`` (``compare`` rows against the baseline) support the claim for
    ``method``, contradict it, or cannot tell.

    Args:
        rows: :func:`~pkd_lessons.evaluation.statistics.compare` rows.
        method: the paper's method's name in the rows.
        source: what the rows come from, named in the sentence.

    Returns:
        The sentence, or an empty string when the rows hold no ``method``.

    Examples:
        >>> rows = [
        ...     {"method": "pkl", "region": "WT", "diff": 0.008, "low": 0.001, "high": 0.014,
        ...      "verdict": "better", "detectable": 0.009},
        ...     {"method": "pkl", "region": "TC", "diff": -0.003, "low": -0.011, "high": 0.004,
        ...      "verdict": "no difference detected", "detectable": 0.008},
        ... ]
        >>> print(claim_reading(rows, source="the reference results"))
        In the reference results, pkl against the baseline: WT +0.8 [+0.1, +1.4] (better; detectable 0.9), TC -0.3 [-1.1, +0.4] (no difference detected; detectable 0.8). They support the claim in WT and cannot tell in TC (differences smaller than the detectable 0.8 points would go unseen).
    """  # noqa: E501
    mine = [r for r in rows if r["method"] == method]
    if not mine:
        return ""
    better = [r["region"] for r in mine if r["verdict"] == "better"]
    worse = [r["region"] for r in mine if r["verdict"] == "worse"]
    unsure = [r for r in mine if r["verdict"] not in ("better", "worse")]
    parts = []
    if better:
        parts.append(f"support the claim in {', '.join(better)}")
    if worse:
        parts.append(f"contradict it in {', '.join(worse)} (the student is worse than the baseline there)")
    if unsure:
        low, high = (100 * f(r["detectable"] for r in unsure) for f in (min, max))
        size = f"{low:.1f}" if f"{low:.1f}" == f"{high:.1f}" else f"{low:.1f}-{high:.1f}"
        parts.append(
            f"cannot tell in {', '.join(r['region'] for r in unsure)} (differences smaller than the detectable "
            f"{size} points would go unseen)"
        )
    listed = ", ".join(_row_text(r) for r in mine)
    return f"In {source}, {method} against the baseline: {listed}. They {' and '.join(parts)}."


def synthesis(
    run_rows: Sequence[Mapping],
    reference_rows: Sequence[Mapping],
    teacher: Mapping[str, float],
    baseline: Mapping[str, float],
    ceiling: Mapping[str, float],
    gradient_ratio: float,
    control_rows: Sequence[Mapping] = (),
    modality_rows: Sequence[Mapping] = (),
) -> str:
    """The closing paragraph of lesson 06, in Markdown.

    Args:
        run_rows: ``compare`` rows of this run's methods against its baseline.
        reference_rows: the same for the reference results.
        teacher: region -> the teacher's mean Dice on the test cases.
        baseline: region -> the baseline's mean Dice (over seeds and cases).
        ceiling: region -> the annotation ceiling (the rater's labels scored against the truth).
        gradient_ratio: how many times larger plain KD's gradient (T = 10, with T^2) is than the
            paper's pixel loss's (T = 10, without it), on a held-out slice.
        control_rows: ``compare`` rows of the positive control (the baseline trained on the clean
            truth) against the baseline.
        modality_rows: ``compare`` rows of a baseline on another modality against the T1ce one.

    Returns:
        The claim, where the numbers support it, and three conditions for privileged knowledge to
        help, each with the numbers it rests on.
    """
    gaps = {r: teacher[r] - baseline[r] for r in teacher}
    widest = max(gaps, key=gaps.get)
    lines = [
        f"**The claim.** The abstract: *\u201c{PAPER_CLAIM}\u201d*",
        "",
        claim_reading(run_rows, source="this run"),
        claim_reading(reference_rows, source="the reference results (more seeds, longer training)"),
        "",
        "**When can privileged knowledge help a unimodal student?** Three conditions, each with this run's numbers:",
        "",
    ]
    first = (
        "1. *The student's input must carry the information.* The teacher, which sees every modality, is "
        + ", ".join(f"{r} {_pts(g)}" for r, g in gaps.items())
        + f" points ahead of the T1ce baseline on average (lesson 03 gives the intervals); the widest gap is "
        f"{widest}. Distillation passes on the "
        "teacher's outputs, not its inputs: what T1ce does not show, the student must still find in T1ce."
    )
    if modality_rows:
        other = modality_rows[0]["method"]
        seen = [r for r in modality_rows if r["verdict"] in ("better", "worse")]
        first += f" The same baseline given {other} instead of T1ce: " + ", ".join(_row_text(r) for r in modality_rows)
        if seen:
            first += (
                f". Changing what the student sees moves {', '.join(r['region'] for r in seen)} by "
                + ", ".join(f"{_pts(r['diff'])}" for r in seen)
                + " points, beyond the detectable difference"
            )
        first += "."
    lines.append(first)
    above = {r: teacher[r] - ceiling[r] for r in teacher}
    cleaner = [r for r, d in above.items() if d > 0]
    second = (
        "2. *The teacher's targets must be better than the labels.* The teacher against the annotation ceiling "
        "(the rater's labels scored against the truth): "
        + ", ".join(f"{r} {_pts(d)}" for r, d in above.items())
        + " points: "
        + (
            f"above it in {', '.join(cleaner)}, where its targets are cleaner than the labels"
            if cleaner
            else "below it in every region, so this teacher's targets are no cleaner than the labels it learned from"
        )
    )
    if control_rows:
        gains = [r["region"] for r in control_rows if r["verdict"] == "better"]
        second += (
            ". In the reference results, a student trained on the clean truth instead of the rater's labels "
            "(the positive control): "
            + ", ".join(_row_text(r) for r in control_rows)
            + (f": cleaner targets do help, in {', '.join(gains)}" if gains else "")
        )
    lines.append(second + ".")
    lines.append(
        "3. *The signal must be strong enough to move the student.* On one held-out slice, the paper's pixel "
        f"loss at T = 10 (without T^2) sends the student's logits a gradient {gradient_ratio:.0f} times smaller "
        "than plain KD with T^2 at the same temperature and weight (lesson 04 measures it on another slice)."
    )
    return "\n".join(lines)
