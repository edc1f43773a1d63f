"""Result tables over methods and seeds: mean, spread, and paired differences against the baseline.

Distillation gains are small and noisy, so every number here comes with its spread: the standard
deviation over seeds, and a 95 % confidence interval for each method's difference from the
baseline, paired by seed and by case in the crossed design that
:mod:`~pkd_lessons.evaluation.statistics` models (the same interval as every verdict).
"""

from __future__ import annotations

import csv
import json
import os
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from pkd_lessons.atomic import atomic_file
from pkd_lessons.markdown import markdown_table


def long_rows(records: Sequence[dict], metric: str = "dice") -> list[dict]:
    """Flatten metrics records into ``{run, method, seed, case, region, value}`` rows."""
    rows = []
    for rec in records:
        for case, regions in rec["cases"].items():
            for region, values in regions.items():
                rows.append(
                    {
                        "run": rec.get("run", rec["method"]),
                        "method": rec["method"],
                        "seed": rec["seed"],
                        "case": case,
                        "region": region,
                        "value": float(values[metric]),
                    }
                )
    return rows


def summarize(
    records: Sequence[dict],
    baseline: str | None = "baseline",
    metric: str = "dice",
    level: float = 0.95,
    fixed_reference: bool = False,
) -> list[dict]:
    """One row per method and region: its mean and spread over seeds, and its comparison with the
    baseline from :func:`~pkd_lessons.evaluation.statistics.compare` (the one engine behind every
    table and verdict: paired by seed and case, crossed design).

    Args:
        records: metrics records from :func:`~pkd_lessons.evaluation.prediction.evaluate` (several seeds per method).
        baseline: method the others are compared with (None: no comparison).
        metric: ``"dice"`` or ``"hd95"``.
        level: confidence level.
        fixed_reference: the baseline is one run held fixed (a teacher), compared with every seed.

    Returns:
        Rows ``{method, region, seeds, mean, sd, diff, ci_low, ci_high, n, detectable,
        seeds_needed}``: ``mean`` is the mean over seeds of each seed's mean over cases, ``sd`` its
        standard deviation over seeds; the comparison's values are NaN (``n`` 0) for the baseline
        itself or without one.

    Raises:
        ValueError: the baseline is missing, a method has two records for one seed, or as
            :func:`~pkd_lessons.evaluation.statistics.compare` refuses (other seeds, cases or regions).
    """
    from pkd_lessons.evaluation.statistics import _by_method, compare

    table = _by_method(records)  # refuses two records of one (method, seed)
    if baseline is not None and baseline not in table:
        raise ValueError(f"baseline {baseline!r} not among the methods {sorted(table)}")
    by: dict = defaultdict(lambda: defaultdict(dict))  # method, region, seed -> mean over cases
    for r in long_rows(records, metric):
        by[r["method"]][r["region"]].setdefault(r["seed"], []).append(r["value"])
    compared = {}
    if baseline is not None and len(table) > 1:
        rows = compare(records, reference=baseline, metric=metric, level=level, fixed_reference=fixed_reference)
        compared = {(r["method"], r["region"]): r for r in rows}
    out = []
    for method, regions in by.items():
        for region, seeds in regions.items():
            seed_means = np.array([np.mean(values) for values in seeds.values()])
            c = compared.get((method, region))
            out.append(
                {
                    "method": method,
                    "region": region,
                    "seeds": len(seeds),
                    "mean": float(seed_means.mean()),
                    "sd": float(seed_means.std(ddof=1)) if len(seeds) > 1 else float("nan"),
                    "diff": c["diff"] if c else float("nan"),
                    "ci_low": c["low"] if c else float("nan"),
                    "ci_high": c["high"] if c else float("nan"),
                    "n": c["n"] if c else 0,
                    "detectable": c["detectable"] if c else float("nan"),
                    "seeds_needed": c["seeds_needed"] if c else None,
                }
            )
    return out


def summary_table(rows: Sequence[dict], scale: float = 100.0, baseline: str = "baseline", digits: int = 1) -> str:
    """A Markdown table: mean ± sd per region, and the difference from the baseline with its CI.

    Dice is shown in percent (``scale=100``); use ``scale=1`` for HD95 in mm.
    """
    methods = list(dict.fromkeys(r["method"] for r in rows))
    regions = list(dict.fromkeys(r["region"] for r in rows))
    by = {(r["method"], r["region"]): r for r in rows}
    f = lambda v: f"{v * scale:.{digits}f}"
    compared = any(not np.isnan(r["diff"]) for r in rows)
    head = ["method", "seeds"] + [f"{g} mean ± sd" for g in regions]
    if compared:
        head += [f"{g} Δ vs {baseline} [95% CI, seeds × cases]" for g in regions]
    table = []
    for m in methods:
        cells = [m, str(by[(m, regions[0])]["seeds"])]
        for g in regions:
            r = by[(m, g)]
            cells.append(f"{f(r['mean'])} ± {f(r['sd'])}" if r["seeds"] > 1 else f(r["mean"]))
        for g in regions if compared else ():
            r = by[(m, g)]
            cells.append("" if np.isnan(r["diff"]) else f"{f(r['diff'])} [{f(r['ci_low'])}, {f(r['ci_high'])}]")
        table.append(cells)
    return markdown_table(head, table)


def plot_summary(rows: Sequence[dict], scale: float = 100.0, ylabel: str = "Dice (%)") -> plt.Figure:
    """Grouped bars per region with the seeds' standard deviation as error bars."""
    methods = list(dict.fromkeys(r["method"] for r in rows))
    regions = list(dict.fromkeys(r["region"] for r in rows))
    by = {(r["method"], r["region"]): r for r in rows}
    fig, ax = plt.subplots(figsize=(1.2 + 1.1 * len(regions) * max(len(methods), 2) / 3, 3.2))
    width = 0.8 / len(methods)
    for i, m in enumerate(methods):
        x = np.arange(len(regions)) + (i - (len(methods) - 1) / 2) * width
        means = [by[(m, g)]["mean"] * scale for g in regions]
        sds = [np.nan_to_num(by[(m, g)]["sd"]) * scale for g in regions]
        ax.bar(x, means, width, yerr=sds, capsize=3, label=m)
    ax.set_xticks(np.arange(len(regions)), regions)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8, ncol=2, frameon=False)
    fig.tight_layout()
    return fig


def save_results(rows: Sequence[dict], out: str | os.PathLike, stem: str = "results", **markdown_kw) -> dict[str, Path]:
    """Write ``stem.csv``, ``stem.json``, ``stem.md`` and ``stem.png`` into ``out`` (atomically)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {k: out / f"{stem}.{k}" for k in ("csv", "json", "md", "png")}
    with atomic_file(paths["csv"]) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with atomic_file(paths["json"]) as tmp:
        tmp.write_text(json.dumps(list(rows), indent=1))
    with atomic_file(paths["md"]) as tmp:
        tmp.write_text(summary_table(rows, **markdown_kw) + "\n")
    fig = plot_summary(rows)
    with atomic_file(paths["png"]) as tmp:
        fig.savefig(tmp, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return paths
