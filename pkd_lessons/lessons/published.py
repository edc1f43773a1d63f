"""Numbers from elsewhere, kept as data so that lessons can print them beside their own.

They come from other people's experiments on real data and are labelled as such wherever shown.
"""

from __future__ import annotations

from collections.abc import Sequence

from pkd_lessons.markdown import markdown_table

BRATS2018_REIMPLEMENTATION: dict = {
    "source": (
        "BraTS 2018, re-implementation by the ProtoKD authors (arXiv 2303.09830), "
        "split 200/28/57 cases, student modality T1ce"
    ),
    "metric": "Dice (%)",
    "regions": ("WT", "TC", "ET"),
    "rows": {
        "teacher (4 modalities)": {"WT": 86.3, "TC": 79.1, "ET": 77.4, "mean": 80.9},
        "unimodal T1ce": {"WT": 71.4, "TC": 73.3, "ET": 76.4, "mean": 73.7},
        "KD-Net (Hu et al. 2020)": {"WT": 78.9, "TC": 80.8, "ET": 70.5, "mean": 76.7},
        "PKL (Chen et al. 2022, this paper)": {"WT": 70.5, "TC": 76.9, "ET": 75.5, "mean": 74.3},
        "ProtoKD": {"WT": 74.7, "TC": 81.5, "ET": 76.0, "mean": 77.4},
    },
}


def published_markdown(table: dict = BRATS2018_REIMPLEMENTATION) -> str:
    """The published table as Markdown, with its source above it."""
    cols = [*table["regions"], "mean"]
    rows = [[name, *(f"{row[c]:.1f}" for c in cols)] for name, row in table["rows"].items()]
    return f"*From elsewhere: {table['source']}; {table['metric']}.*\n\n" + markdown_table(["method", *cols], rows)


#: What a T1ce-only network loses against all four modalities on real BraTS (Dice points, all four
#: minus T1ce only), as read from the papers' tables. Sources: SMU-Net (Azad et al. 2022) Table 1;
#: DeMoSeg's BraTS 2018 / 2020 tables, which carry RFNet, mmFormer and GSS; M3AE's supplementary
#: Table S3; ProtoKD (arXiv 2303.09830) Table 1, a student against its own teacher.
T1CE_GAPS: dict = {
    "source": (
        "ACN, SMU-Net, RFNet, mmFormer, GSS, DeMoSeg, M3AE and ProtoKD's re-implementation on real "
        "BraTS 2018 / 2020 (all four modalities minus T1ce only, Dice points)"
    ),
    "regions": ("WT", "TC", "ET"),
    "rows": {
        "ACN (BraTS 2018)": (9.3, 1.5, 0.2),
        "ACN (BraTS 2020)": (7.9, 0.7, -1.2),
        "SMU-Net (BraTS 2018)": (8.6, 3.2, 1.0),
        "SMU-Net (BraTS 2020)": (8.0, -0.6, -1.5),
        "RFNet (BraTS 2018)": (15.3, 3.0, 3.8),
        "RFNet (BraTS 2020)": (14.3, 3.7, 3.2),
        "mmFormer (BraTS 2018)": (13.0, 1.7, 0.4),
        "mmFormer (BraTS 2020)": (12.2, 0.6, -0.2),
        "GSS": (12.3, 2.3, 1.2),
        "DeMoSeg": (8.5, 0.5, 1.0),
        "M3AE": (11.5, 2.6, 3.9),
        "ProtoKD re-implementation, unimodal": (14.9, 5.8, 1.1),
        "ProtoKD re-implementation, PKL": (15.8, 2.2, 1.9),
    },
}


def gap_range(region: str, table: dict = T1CE_GAPS) -> tuple[float, float]:
    """The smallest and largest published T1ce gap of a region (Dice points).

    Examples:
        >>> gap_range("WT")
        (7.9, 15.8)
    """
    k = table["regions"].index(region)
    values = [row[k] for row in table["rows"].values()]
    return min(values), max(values)


def t1ce_gaps(records: Sequence[dict], teacher: str = "teacher", student: str = "baseline") -> dict[str, tuple]:
    """What the student's one modality loses: the teacher minus the student, region by region.

    The difference and its 95 % interval come from the one comparison of the package
    (:func:`~pkd_lessons.evaluation.statistics.compare`, the teacher one run held fixed), with the
    sign turned so that a positive gap is what the student loses.

    Args:
        records: metrics records of one teacher run and one or more student seeds (Dice).
        teacher: the teacher's method name in the records.
        student: the student's method name.

    Returns:
        region -> ``(gap, low, high)`` in Dice points.

    Raises:
        ValueError: as :func:`~pkd_lessons.evaluation.statistics.compare` raises (no teacher, cases
            that differ, ...).

    Examples:
        >>> def record(method, seed, dice):
        ...     cases = {f"c{j}": {"WT": {"dice": d}} for j, d in enumerate(dice)}
        ...     return {"method": method, "seed": seed, "cases": cases}
        >>> gaps = t1ce_gaps([record("teacher", 0, [0.9, 0.8, 0.85]), record("baseline", 0, [0.8, 0.7, 0.7])])
        >>> round(gaps["WT"][0], 1)
        11.7
    """
    from pkd_lessons.evaluation.statistics import compare

    rows = [r for r in records if r["method"] in (teacher, student)]
    out = {}
    for row in compare(rows, reference=teacher, fixed_reference=True):
        if row["method"] == student:
            out[row["region"]] = (-100 * row["diff"], -100 * row["high"], -100 * row["low"])
    return out


def gap_markdown(gaps: dict[str, tuple], label: str, table: dict = T1CE_GAPS) -> str:
    """The phantom's teacher-minus-student gap of each region beside the published range.

    Args:
        gaps: region -> ``(gap, low, high)`` in Dice points (:func:`t1ce_gaps`).
        label: where the phantom's gaps come from (profile, seeds, cases).
        table: the published gaps.

    Returns:
        Markdown: one row per region (the phantom's gap with its 95 % interval, the published range,
        and where the gap falls: inside, below or above it), with the sources of both.
    """
    rows = []
    for region in table["regions"]:
        if region not in gaps:
            continue
        gap, low, high = gaps[region]
        real_low, real_high = gap_range(region, table)
        where = "inside" if real_low <= gap <= real_high else ("below" if gap < real_low else "above")
        rows.append([region, f"{gap:+.1f} [{low:+.1f}, {high:+.1f}]", f"{real_low:+.1f} to {real_high:+.1f}", where])
    return f"*Phantom: {label}. Real: {table['source']}.*\n\n" + markdown_table(
        ["region", "phantom gap [95 % interval]", "real range", "the phantom's gap is"], rows
    )
