"""Coverage by simulation: does an interval that says 95 % hold a known answer 95 % of the time?

A statistical procedure is trusted here only after a simulation with a known answer shows that it
holds its level for the design it is used on. The design is the lessons' own: ``S`` seeds, each
scored on the same ``C`` held-out cases, paired differences

``D[s, c] = mu + a_s + b_c + e_sc``,  ``a_s ~ N(0, sd_seed^2)``, ``b_c ~ N(0, sd_case^2)``,
``e_sc ~ N(0, sd_resid^2)``,

with a true mean ``mu`` (0: no difference). An interval *covers* when it holds ``mu``; at ``mu = 0``
a verdict of "better" or "worse" is wrong exactly when it does not. :data:`DESIGNS` names the
variance patterns the suite checks; :func:`coverage` runs any interval over thousands of simulated
matrices at once.

Example::

    from pkd_lessons.evaluation.coverage import coverage, crossed, nested
    coverage(crossed, "balanced", seeds=3, cases=20)          # about 0.95
    coverage(nested, "balanced", seeds=3, cases=20, reps=400)  # well below
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import stats

from pkd_lessons.evaluation.statistics import _check_probability, crossed_halfwidth, mean_squares, nested_bootstrap
from pkd_lessons.markdown import markdown_table

#: Standard deviations ``(sd_seed, sd_case, sd_resid)`` of the simulated differences, in Dice units.
#: Seed-dominated: one seed's luck shifts all its cases; case-dominated: the method helps some
#: tumours and hurts others; balanced: all three alike (with 3 seeds x 20 cases the seed part of the
#: mean's variance is then about 7 times the case part, where a Satterthwaite t is at its worst);
#: residual-dominated: every (seed, case) pair on its own.
DESIGNS: dict[str, tuple[float, float, float]] = {
    "seed-dominated": (0.02, 0.005, 0.01),
    "case-dominated": (0.003, 0.03, 0.01),
    "balanced": (0.01, 0.01, 0.01),
    "residual-dominated": (0.002, 0.002, 0.03),
}

#: An interval: ``(diffs of shape (reps, seeds, cases), level) -> (low, high)``, arrays of ``reps``.
Interval = Callable[[np.ndarray, float], tuple[np.ndarray, np.ndarray]]


def simulate(
    design: str | tuple[float, float, float], seeds: int, cases: int, reps: int = 4000, mean: float = 0.0, seed: int = 0
) -> np.ndarray:
    """``reps`` matrices of paired differences from the crossed random-effects model.

    Args:
        design: a name from :data:`DESIGNS` or ``(sd_seed, sd_case, sd_resid)``.
        seeds: seeds ``S`` per matrix.
        cases: cases ``C`` per matrix.
        reps: number of matrices.
        mean: the true mean difference ``mu``.
        seed: seed of the ``np.random.default_rng`` that draws them.

    Returns:
        An array of shape ``(reps, seeds, cases)``.

    Raises:
        ValueError: an unknown design name, a negative standard deviation, or sizes below 1.
    """
    if isinstance(design, str):
        if design not in DESIGNS:
            raise ValueError(
                f"design must be one of {', '.join(DESIGNS)} or (sd_seed, sd_case, sd_resid), got {design!r}"
            )
        design = DESIGNS[design]
    if len(design) != 3 or any(not np.isfinite(v) or v < 0 for v in design):
        raise ValueError(f"design must be three standard deviations >= 0, got {design!r}")
    if min(seeds, cases, reps) < 1:
        raise ValueError(f"seeds, cases and reps must be >= 1, got {seeds}, {cases}, {reps}")
    sd_seed, sd_case, sd_resid = design
    rng = np.random.default_rng(seed)
    return (
        mean
        + sd_seed * rng.standard_normal((reps, seeds, 1))
        + sd_case * rng.standard_normal((reps, 1, cases))
        + sd_resid * rng.standard_normal((reps, seeds, cases))
    )


def crossed(diffs: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """The package's interval (:func:`~pkd_lessons.evaluation.statistics.crossed_halfwidth`), batched."""
    mean, _, half = crossed_halfwidth(diffs, level)
    return mean - half, mean + half


def satterthwaite(diffs: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """The textbook alternative, measured and not used: one t quantile with Satterthwaite's df.

    ``m +- t_nu sqrt(V)``, ``V = (MS_seed + MS_case - MS_resid) / (S C)`` (``max(MS_seed, MS_case)``
    when that is not positive) and ``nu = V^2 / sum_k (MS_k^2 / df_k)`` over the three mean squares.
    """
    ms = mean_squares(diffs)
    n_seeds, n_cases = np.shape(diffs)[-2:]
    total = ms["seed"] + ms["case"] - ms["resid"]
    total = np.where(total > 0, total, np.maximum(ms["seed"], ms["case"]))
    df = total**2 / (
        ms["seed"] ** 2 / ms["df_seed"] + ms["case"] ** 2 / ms["df_case"] + ms["resid"] ** 2 / ms["df_resid"]
    )
    half = stats.t.ppf(1 - (1 - level) / 2, df) * np.sqrt(total / (n_seeds * n_cases))
    mean = np.mean(diffs, axis=(-2, -1))
    return mean - half, mean + half


def nested(diffs: np.ndarray, level: float = 0.95, resamples: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """The nested bootstrap (:func:`~pkd_lessons.evaluation.statistics.nested_bootstrap`), one matrix
    at a time (slow: use a few hundred ``reps``)."""
    out = [
        nested_bootstrap(d, level, resamples, seed=i)
        for i, d in enumerate(np.reshape(diffs, (-1, *np.shape(diffs)[-2:])))
    ]
    return np.array([o["low"] for o in out]), np.array([o["high"] for o in out])


def coverage(
    interval: Interval,
    design: str | tuple[float, float, float],
    seeds: int,
    cases: int,
    reps: int = 4000,
    level: float = 0.95,
    mean: float = 0.0,
    seed: int = 0,
) -> float:
    """The fraction of simulated comparisons whose interval holds the true mean.

    Args:
        interval: ``(diffs, level) -> (low, high)`` over a batch, e.g. :func:`crossed`.
        design: a name from :data:`DESIGNS` or ``(sd_seed, sd_case, sd_resid)``.
        seeds: seeds per comparison.
        cases: held-out cases per comparison.
        reps: simulated comparisons (the coverage's Monte Carlo error is about
            ``sqrt(0.05 * 0.95 / reps)``, 0.0034 at 4000).
        level: the interval's nominal level.
        mean: the true mean difference.
        seed: seed of the simulation.

    Returns:
        The coverage, between 0 and 1; at ``mean = 0``, one minus the rate of wrong verdicts.

    Raises:
        ValueError: as :func:`simulate` raises, or ``level`` not in (0, 1).
    """
    _check_probability("level", level)
    low, high = interval(simulate(design, seeds, cases, reps, mean, seed), level)
    return float(np.mean((low <= mean) & (mean <= high)))


def coverage_table(
    intervals: dict[str, Interval],
    sizes: tuple[tuple[int, int], ...] = ((3, 20), (5, 40), (10, 40)),
    designs: tuple[str, ...] = tuple(DESIGNS),
    reps: int = 4000,
    level: float = 0.95,
) -> str:
    """A Markdown table of the coverage of each interval, design and ``seeds x cases``.

    Args:
        intervals: column name -> interval.
        sizes: ``(seeds, cases)`` designs.
        designs: names from :data:`DESIGNS`.
        reps: simulated comparisons per cell.
        level: nominal level.

    Returns:
        The table: one row per design and size, one coverage column per interval.
    """
    rows = []
    for design in designs:
        for s, c in sizes:
            cells = [f"{coverage(f, design, s, c, reps, level):.3f}" for f in intervals.values()]
            rows.append([design, f"{s} × {c}", *cells])
    return markdown_table(["design", "seeds × cases", *(f"{name}: holds 0" for name in intervals)], rows)
