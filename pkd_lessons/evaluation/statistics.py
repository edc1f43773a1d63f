"""Paired comparisons of methods in a crossed design: intervals that hold their level, detectable
differences and the seeds a comparison needs.

Every method is trained with several seeds and every seed is scored on the **same** held-out cases,
so a method is compared with a reference (usually the baseline) on paired differences: seed ``s``
against seed ``s`` (same initialisation and batch order) and case ``c`` against case ``c``. The
differences form a ``(seeds, cases)`` matrix ``D`` with ``D[s, c] = value(method, s, c) -
value(reference, s, c)``.

Seeds and cases are **crossed**, not nested: a hard case is hard for every seed. The model is the
two-way random-effects model without replication,

``D[s, c] = mu + a_s + b_c + e_sc``,  ``a_s ~ N(0, var_seed)``, ``b_c ~ N(0, var_case)``,
``e_sc ~ N(0, var_resid)``,

whose grand mean ``m`` has ``Var(m) = var_seed / S + var_case / C + var_resid / (S C)``. The
two-way ANOVA mean squares (``MS_seed`` with ``S - 1``, ``MS_case`` with ``C - 1`` and ``MS_resid``
with ``(S - 1)(C - 1)`` degrees of freedom) estimate it without bias:
``Var(m) = (MS_seed + MS_case - MS_resid) / (S C)``. That variance splits into a seed part
``MS_seed / (S C)`` (it estimates ``var_seed / S + var_resid / (S C)``, with ``S - 1`` degrees of
freedom) and a case part ``(MS_case - MS_resid) / (S C)`` (``var_case / C``, with ``C - 1``). The
interval gives each part its own t quantile (Banerjee's combination for a sum of independent
variance estimates, Sankhya A 23, 1961):

``m +- sqrt(t_{S-1}^2 MS_seed + t_{C-1}^2 max(MS_case - MS_resid, 0)) / sqrt(S C)``.

Why not the usual Satterthwaite t? Measured by simulation with a known zero
(:mod:`pkd_lessons.evaluation.coverage`), the Satterthwaite interval holds a true zero only 0.92
of the time with 3 seeds when the case part is 10-30 % of the seed part, because its estimated
degrees of freedom grow exactly when ``MS_seed`` comes out small. The combination above held
0.94-0.98 in every design tried (3, 5 and 10 seeds x 20 and 40 cases, seed-, case-,
residual-dominated and balanced); a bootstrap that draws seeds and then, independently within
each, cases (:func:`nested_bootstrap`, kept for lesson 06's exercise) treats the design as nested
and held 0.68-0.82. ``tests/test_statistics.py`` repeats the simulation.

Records look like ``{"run", "method", "seed", "modality", "cases": {case: {region: {metric: value}}}}``.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence

import numpy as np
from scipy import optimize, stats

from pkd_lessons.markdown import markdown_table

#: Metrics for which a smaller value is better (the verdict's direction flips).
LOWER_IS_BETTER = frozenset({"hd95"})

#: The three verdicts :func:`compare` can give.
VERDICTS = ("better", "worse", "no difference detected")

#: The difference whose seed count :func:`compare` reports, per metric (1 Dice point, 1 mm).
TARGETS = {"dice": 0.01, "hd95": 1.0}

#: The most seeds :func:`seeds_needed` considers.
MAX_SEEDS = 1000


def _check_probability(name: str, value: float) -> None:
    """Raise ValueError unless ``0 < value < 1``."""
    if not (isinstance(value, (int, float, np.floating)) and 0.0 < float(value) < 1.0):
        raise ValueError(f"{name} must be strictly between 0 and 1, got {value!r}")


def _check_scale(name: str, value: float) -> None:
    """Raise ValueError unless ``value`` is a finite number >= 0."""
    if not (isinstance(value, (int, float, np.floating)) and np.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


def _by_method(records: Sequence[dict]) -> dict[str, dict[int, dict]]:
    """Index records as ``{method: {seed: cases}}``, in record order.

    Raises:
        ValueError: a record lacks ``method``, ``seed`` or ``cases``, or one method has two records
            for the same seed (naming both runs).
    """
    table: dict[str, dict[int, dict]] = {}
    runs: dict[tuple, str] = {}
    for i, rec in enumerate(records):
        missing = [k for k in ("method", "seed", "cases") if k not in rec]
        if missing:
            raise ValueError(f"records[{i}] lacks the key(s) {missing}")
        seeds = table.setdefault(rec["method"], {})
        key = (rec["method"], rec["seed"])
        if rec["seed"] in seeds:
            raise ValueError(
                f"method {rec['method']!r} has two records for seed {rec['seed']!r} "
                f"({runs[key]!r} and {rec.get('run', f'records[{i}]')!r}); keep one"
            )
        seeds[rec["seed"]] = rec["cases"]
        runs[key] = rec.get("run", f"records[{i}]")
    return table


def _value(cases: dict, case: str, region: str, metric: str, where: str) -> float:
    """``cases[case][region][metric]`` as a float, with a ValueError that says what is missing."""
    try:
        return float(cases[case][region][metric])
    except KeyError as err:
        raise ValueError(f"{where}, case {case!r}: no {metric!r} for region {region!r}") from err


def _regions(cases: dict) -> list[str]:
    """The regions of a run's cases, in order of first appearance."""
    return list(dict.fromkeys(region for regs in cases.values() for region in regs))


def _seed_list(seeds) -> str:
    return "{" + ", ".join(map(str, sorted(seeds))) + "}"


def paired_differences(
    records: Sequence[dict],
    method: str,
    reference: str = "baseline",
    region: str = "WT",
    metric: str = "dice",
    fixed_reference: bool = False,
    seeds: Collection[int] | None = None,
) -> np.ndarray:
    """Differences ``method - reference`` paired by seed and by case.

    ``D[i, j] = value(method, seed_i, case_j) - value(reference, seed_i, case_j)``, ``seed_i`` over
    the (sorted) seeds, ``case_j`` over the sorted case ids. Both methods must have the same seeds
    and every run the same cases: a comparison that silently dropped a seed or a case would report
    on other data than it names.

    With ``fixed_reference=True`` the reference is one trained network (the teacher, say) held
    fixed: ``D[i, j] = value(method, seed_i, case_j) - value(reference, case_j)``. The interval then
    counts the method's seeds and the cases, not the reference's own seed-to-seed variation.

    With ``seeds`` given, only those seeds are paired, and both methods must have every one of them:
    a method trained over 5 seeds is compared with a reference trained over 10 by naming the 5
    (``seeds=range(5)``), never by leaving the reference's other seeds out unasked.

    Args:
        records: metrics records, one per (method, seed).
        method: the method compared.
        reference: the method it is compared with.
        region: region whose metric is compared (e.g. ``"WT"``).
        metric: ``"dice"`` or ``"hd95"``.
        fixed_reference: compare every seed of ``method`` with the reference's single run.
        seeds: the seeds to pair (default: all of them, which both methods must then share).

    Returns:
        A float array of shape ``(seeds, cases)``.

    Raises:
        ValueError: ``method`` or ``reference`` is absent (the message names the known methods),
            their seeds differ (the message names the seeds each lacks), a fixed reference has other
            than one run, a run was scored on other cases than the rest (naming the cases), a case
            lacks ``region`` or ``metric``, or a method has two records for one seed.

    Examples:
        One seed of each method, scored on two cases:

        >>> records = [
        ...     {"method": "baseline", "seed": 0, "cases": {"a": {"WT": {"dice": 0.80}}, "b": {"WT": {"dice": 0.70}}}},
        ...     {"method": "pkl", "seed": 0, "cases": {"a": {"WT": {"dice": 0.83}}, "b": {"WT": {"dice": 0.72}}}},
        ... ]
        >>> diffs = paired_differences(records, "pkl")
        >>> diffs.shape  # (seeds, cases)
        (1, 2)
        >>> [round(float(d), 4) for d in diffs[0]]
        [0.03, 0.02]
    """
    table = _by_method(records)
    for name in (method, reference):
        if name not in table:
            raise ValueError(f"method {name!r} not among the methods {list(table)}")
    mine, theirs = table[method], table[reference]
    if seeds is not None:
        wanted = {int(s) for s in seeds}
        if not wanted:
            raise ValueError("seeds is empty: name at least one seed to pair")
        checked = [(method, mine)] if fixed_reference else [(method, mine), (reference, theirs)]
        for name, have in checked:
            if wanted - set(have):
                raise ValueError(
                    f"{name!r} (seeds {_seed_list(have)}) lacks the seed(s) {_seed_list(wanted - set(have))} asked for"
                )
        mine = {s: mine[s] for s in sorted(wanted)}
        if not fixed_reference:
            theirs = {s: theirs[s] for s in sorted(wanted)}
    seeds = sorted(mine)
    if fixed_reference:
        if len(theirs) != 1:
            raise ValueError(
                f"a fixed reference is one run; {reference!r} has {len(theirs)} (seeds {_seed_list(theirs)})"
            )
        (fixed,) = theirs.values()
        ref_cases = {s: fixed for s in seeds}
    else:
        if set(mine) != set(theirs):
            lacks = []
            for name, have, other in ((method, mine, theirs), (reference, theirs, mine)):
                if set(other) - set(have):
                    lacks.append(f"{name!r} lacks seed(s) {_seed_list(set(other) - set(have))}")
            raise ValueError(
                f"{method!r} (seeds {_seed_list(mine)}) and {reference!r} (seeds {_seed_list(theirs)}) must "
                f"have the same seeds to be paired: {'; '.join(lacks)}"
            )
        ref_cases = theirs
    cases = sorted(mine[seeds[0]])
    for who, runs in ((method, mine), (reference, ref_cases)):
        for s in seeds:
            if sorted(runs[s]) != cases:
                extra, missing = sorted(set(runs[s]) - set(cases)), sorted(set(cases) - set(runs[s]))
                raise ValueError(
                    f"{who!r}, seed {s!r} was scored on different cases than {method!r}, seed {seeds[0]!r}: "
                    f"extra {extra}, missing {missing}"
                )
    return np.array(
        [
            [
                _value(mine[s], c, region, metric, f"{method!r}, seed {s!r}")
                - _value(ref_cases[s], c, region, metric, f"{reference!r}")
                for c in cases
            ]
            for s in seeds
        ],
        dtype=float,
    )


def _check_diffs(diffs: np.ndarray) -> np.ndarray:
    """``diffs`` as a float array of at least 2 dimensions, or a ValueError if it is empty or non-finite."""
    diffs = np.asarray(diffs, dtype=float)
    if diffs.ndim < 2:
        raise ValueError(f"diffs must be a (seeds, cases) matrix, got shape {diffs.shape}")
    if diffs.size == 0:
        raise ValueError(f"diffs is empty (shape {diffs.shape})")
    if not np.all(np.isfinite(diffs)):
        raise ValueError(f"diffs has {int(np.sum(~np.isfinite(diffs)))} non-finite value(s)")
    return diffs


def mean_squares(diffs: np.ndarray) -> dict:
    """The two-way ANOVA mean squares of a ``(..., seeds, cases)`` array (no replication).

    With row (seed) means ``r_s``, column (case) means ``k_c`` and grand mean ``m``:
    ``MS_seed = C sum_s (r_s - m)^2 / (S - 1)``, ``MS_case = S sum_c (k_c - m)^2 / (C - 1)`` and
    ``MS_resid = sum_sc (D_sc - r_s - k_c + m)^2 / ((S - 1)(C - 1))``. They equal statsmodels'
    ``anova_lm`` of ``D ~ C(seed) + C(case)`` (the suite checks it); written out here because the
    simulation of :mod:`pkd_lessons.evaluation.coverage` needs them for thousands of matrices at once.

    Args:
        diffs: paired differences, shape ``(seeds, cases)`` or a batch ``(..., seeds, cases)``, with
            at least 2 seeds and 2 cases.

    Returns:
        ``{"seed", "case", "resid"}`` mean squares (floats, or arrays over the batch) and
        ``{"df_seed", "df_case", "df_resid"}``.

    Raises:
        ValueError: fewer than 2 seeds or 2 cases, an empty or non-finite array.

    Examples:
        Seeds that differ by a constant shift and cases by another leave no residual:

        >>> import numpy as np
        >>> D = np.array([[0.0, 1.0, 2.0], [1.0, 2.0, 3.0]])  # seed 1 is 1 higher; cases 0, 1, 2
        >>> ms = mean_squares(D)
        >>> [round(float(ms[k]), 6) for k in ("seed", "case", "resid")], ms["df_resid"]
        ([1.5, 2.0, 0.0], 2)
    """
    diffs = _check_diffs(diffs)
    n_seeds, n_cases = diffs.shape[-2:]
    if n_seeds < 2 or n_cases < 2:
        raise ValueError(f"mean squares need at least 2 seeds and 2 cases, got {n_seeds} x {n_cases}")
    grand = diffs.mean(axis=(-2, -1), keepdims=True)
    rows, cols = diffs.mean(axis=-1, keepdims=True), diffs.mean(axis=-2, keepdims=True)
    df_s, df_c = n_seeds - 1, n_cases - 1
    seed = n_cases * ((rows - grand) ** 2).sum(axis=(-2, -1)) / df_s
    case = n_seeds * ((cols - grand) ** 2).sum(axis=(-2, -1)) / df_c
    resid = ((diffs - rows - cols + grand) ** 2).sum(axis=(-2, -1)) / (df_s * df_c)
    as_out = (lambda a: float(a)) if diffs.ndim == 2 else (lambda a: a)
    return {
        "seed": as_out(seed),
        "case": as_out(case),
        "resid": as_out(resid),
        "df_seed": df_s,
        "df_case": df_c,
        "df_resid": df_s * df_c,
    }


def _pieces(diffs: np.ndarray) -> tuple:
    """``(mean, seed part, case part, df_seed, df_case)`` of the mean's variance, over a batch.

    With one seed the seed part is 0 and the case part is the variance of the single seed's
    differences over ``C`` (a t interval over cases, for these runs only).
    """
    n_seeds, n_cases = diffs.shape[-2:]
    if n_cases < 2:
        raise ValueError(f"a comparison needs at least 2 cases, got {n_cases}")
    mean = diffs.mean(axis=(-2, -1))
    if n_seeds == 1:
        case = diffs[..., 0, :].var(axis=-1, ddof=1) / n_cases
        return mean, np.zeros_like(case), case, 0, n_cases - 1
    ms = mean_squares(diffs)
    scale = n_seeds * n_cases
    seed = np.asarray(ms["seed"]) / scale
    case = np.maximum(np.asarray(ms["case"]) - np.asarray(ms["resid"]), 0.0) / scale
    return mean, seed, case, ms["df_seed"], ms["df_case"]


def crossed_halfwidth(diffs: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, standard error and interval half-width of ``(..., seeds, cases)`` paired differences.

    ``se = sqrt(MS_seed / (S C) + max(MS_case - MS_resid, 0) / (S C))`` and
    ``half = sqrt(t_{S-1}^2 MS_seed + t_{C-1}^2 max(MS_case - MS_resid, 0)) / sqrt(S C)``, ``t_k``
    the ``1 - alpha/2`` quantile of Student's t with ``k`` degrees of freedom (see the module's
    text). With one seed: ``se = sd / sqrt(C)`` and ``half = t_{C-1} se``, an interval for these
    runs only. Vectorised over leading dimensions, for simulations.

    Args:
        diffs: paired differences, shape ``(seeds, cases)`` or ``(..., seeds, cases)``.
        level: confidence level.

    Returns:
        ``(mean, se, half)``, arrays over the leading dimensions (0-d for one matrix).

    Raises:
        ValueError: fewer than 2 cases, an empty or non-finite array, or ``level`` not in (0, 1).
    """
    diffs = _check_diffs(diffs)
    _check_probability("level", level)
    mean, seed, case, df_s, df_c = _pieces(diffs)
    q = 1.0 - (1.0 - level) / 2
    t_s = stats.t.ppf(q, df_s) if df_s else 0.0
    half = np.sqrt(t_s**2 * seed + stats.t.ppf(q, df_c) ** 2 * case)
    return mean, np.sqrt(seed + case), half


def _effective_df(se: float, half: float, df_s: int, df_c: int, level: float) -> float:
    """The degrees of freedom ``k`` with ``t_k = half / se`` (between ``df_s`` and ``df_c``)."""
    q = 1.0 - (1.0 - level) / 2
    if se == 0:
        return float(max(df_s, df_c))
    ratio = half / se
    dfs = [d for d in (df_s, df_c) if d > 0]
    low, high = min(dfs), max(dfs)
    f = lambda k: stats.t.ppf(q, k) - ratio  # noqa: E731  (decreasing in k)
    if low == high or f(low) <= 0:
        return float(low)
    if f(high) >= 0:
        return float(high)
    return float(optimize.brentq(f, low, high, xtol=1e-10))


def crossed_interval(diffs: np.ndarray, level: float = 0.95) -> dict:
    """Interval for the mean of a ``(seeds, cases)`` matrix of paired differences, crossed design.

    See the module's text for the model and :func:`crossed_halfwidth` for the formula. The
    variance components come with it: ``var_seed = max(MS_seed - MS_resid, 0) / C``,
    ``var_case = max(MS_case - MS_resid, 0) / S`` and ``var_resid = MS_resid``; ``df`` is the
    effective degrees of freedom, ``t_df = half / se``, which :func:`detectable_difference` uses.

    Args:
        diffs: paired differences, shape ``(seeds, cases)``, e.g. from :func:`paired_differences`.
        level: confidence level of the interval.

    Returns:
        ``{"mean", "low", "high", "se", "df", "seeds", "cases", "n", "var_seed", "var_case",
        "var_resid"}``; with one seed the seed component is ``nan`` (not estimable) and
        ``var_resid`` holds the case-to-case variance.

    Raises:
        ValueError: ``diffs`` is not 2D, has fewer than 2 cases, is empty or non-finite, or
            ``level`` is not in (0, 1).

    Examples:
        Differences that never vary give a point:

        >>> import numpy as np
        >>> out = crossed_interval(np.full((3, 20), 0.02))
        >>> [round(out[k], 4) for k in ("mean", "low", "high", "se")], out["n"]
        ([0.02, 0.02, 0.02, 0.0], 60)

        A seed effect (one seed 2 points lower) widens the interval with only 2 degrees of
        freedom; the same values without it give a narrow one:

        >>> noise = 0.005 * np.random.default_rng(0).standard_normal((3, 20))
        >>> shifted = 0.01 + noise + np.array([[0.0], [0.0], [-0.02]])
        >>> wide, narrow = crossed_interval(shifted), crossed_interval(0.01 + noise)
        >>> round(wide["low"], 4), round(wide["high"], 4), round(wide["df"], 1)
        (-0.022, 0.0295, 2.0)
        >>> round(narrow["low"], 4), round(narrow["high"], 4)
        (0.0071, 0.0137)
    """
    diffs = _check_diffs(diffs)
    if diffs.ndim != 2:
        raise ValueError(f"diffs must be a 2D (seeds, cases) matrix, got shape {diffs.shape}")
    mean, se, half = (float(v) for v in crossed_halfwidth(diffs, level))
    n_seeds, n_cases = diffs.shape
    if n_seeds > 1:
        ms = mean_squares(diffs)
        components = {
            "var_seed": max(ms["seed"] - ms["resid"], 0.0) / n_cases,
            "var_case": max(ms["case"] - ms["resid"], 0.0) / n_seeds,
            "var_resid": ms["resid"],
        }
        df_s, df_c = ms["df_seed"], ms["df_case"]
    else:
        components = {"var_seed": float("nan"), "var_case": float("nan"), "var_resid": float(diffs.var(ddof=1))}
        df_s, df_c = 0, n_cases - 1
    return {
        "mean": mean,
        "low": mean - half,
        "high": mean + half,
        "se": se,
        "df": _effective_df(se, half, df_s, df_c, level),
        "seeds": n_seeds,
        "cases": n_cases,
        "n": n_seeds * n_cases,
        **components,
    }


def nested_bootstrap(diffs: np.ndarray, level: float = 0.95, resamples: int = 4000, seed: int = 0) -> dict:
    """Percentile interval of a bootstrap that treats seeds and cases as **nested** (do not report it).

    Each resample draws ``S`` seeds with replacement, then, within each drawn seed and independently
    of the others, ``C`` cases with replacement, and takes the mean of the ``S * C`` drawn values.
    That is right when every seed has cases of its own. Here every seed is scored on the same cases
    (a crossed design): a case's difficulty is shared by all seeds, and drawing cases anew per seed
    averages it over ``S`` independent draws, so the case part of the variance is under-counted by
    a factor of about ``S``; with 3 seeds the percentile interval also ignores that the seed level
    has 2 degrees of freedom. Measured with a known zero, its 95 % intervals hold it 0.68-0.82 of
    the time. It is kept so that lesson 06's exercise can measure that; :func:`crossed_interval`
    is the interval the package reports.

    Args:
        diffs: paired differences, shape ``(seeds, cases)``.
        level: confidence level of the interval.
        resamples: number of bootstrap resamples (at least 2).
        seed: seed of the ``np.random.default_rng`` that draws them.

    Returns:
        ``{"mean", "low", "high", "se", "seeds", "cases", "n"}``.

    Raises:
        ValueError: ``diffs`` is not 2D, is empty or has non-finite values, ``level`` is not in
            (0, 1), or ``resamples`` is below 2.

    Examples:
        Differences that never vary leave nothing to resample:

        >>> import numpy as np
        >>> boot = nested_bootstrap(np.full((3, 20), 0.02))
        >>> [round(boot[k], 4) for k in ("mean", "low", "high", "se")], boot["n"]
        ([0.02, 0.02, 0.02, 0.0], 60)
    """
    diffs = _check_diffs(diffs)
    if diffs.ndim != 2:
        raise ValueError(f"diffs must be a 2D (seeds, cases) matrix, got shape {diffs.shape}")
    _check_probability("level", level)
    if not (isinstance(resamples, (int, np.integer)) and resamples >= 2):
        raise ValueError(f"resamples must be an integer >= 2, got {resamples!r}")
    n_seeds, n_cases = diffs.shape
    rng = np.random.default_rng(seed)
    seed_idx = rng.integers(0, n_seeds, size=(resamples, n_seeds))
    case_idx = rng.integers(0, n_cases, size=(resamples, n_seeds, n_cases))
    means = diffs[seed_idx[:, :, None], case_idx].mean(axis=(1, 2))
    alpha = 1.0 - level
    low, high = np.percentile(means, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return {
        "mean": float(diffs.mean()),
        "low": float(low),
        "high": float(high),
        "se": float(means.std(ddof=1)),
        "seeds": n_seeds,
        "cases": n_cases,
        "n": n_seeds * n_cases,
    }


def _power_nc(nc: float, df: float, level: float) -> float:
    """Two-sided t-test power at noncentrality ``nc`` with ``df`` degrees of freedom.

    The lower tail ``P(T_nc < -t*)`` is computed as ``P(T_{-nc} > t*)`` (the same by symmetry):
    scipy's ``nct.cdf`` far in the tail returns NaN for moderate ``nc`` (about 8 and above), its
    ``nct.sf`` does not.
    """
    crit = stats.t.ppf(1 - (1 - level) / 2, df)
    return float(stats.nct.sf(crit, df, nc) + stats.nct.sf(crit, df, -nc))


def detectable_difference(se: float, level: float = 0.95, power: float = 0.8, df: float = math.inf) -> float:
    """Smallest true difference a two-sided test with standard error ``se`` detects with ``power``.

    With ``df`` degrees of freedom the test rejects when ``|mean| / se > t_{1 - alpha/2, df}``;
    ``delta = nc * se``, where the noncentrality ``nc`` solves ``P(T > t*) + P(T < -t*) = power``
    for ``T ~ nct(df, nc)`` (``scipy.optimize.brentq``). For ``df = inf`` (the default) that is the
    normal approximation ``delta = (z_{1 - alpha/2} + z_{power}) * se``, ``2.80 * se`` at the
    defaults; :func:`compare` passes the comparison's own effective degrees of freedom.

    Args:
        se: standard error of the estimated difference.
        level: confidence level of the test (``1 - alpha``).
        power: probability of detecting a true difference of ``delta``.
        df: degrees of freedom of the test (> 0; ``math.inf`` for the normal approximation).

    Returns:
        The detectable difference, in the units of ``se``.

    Raises:
        ValueError: ``se`` is negative or not finite, ``level`` or ``power`` is not in (0, 1),
            ``power`` does not exceed ``1 - level``, or ``df`` is not positive.

    Examples:
        With a standard error of 1 Dice point, a normal test detects (80 % power) about 2.8 points;
        with 2 degrees of freedom, as 3 seeds give, about twice as much:

        >>> round(detectable_difference(0.01), 4)
        0.028
        >>> round(detectable_difference(0.01, df=2), 4)
        0.0565
    """
    _check_scale("se", se)
    _check_probability("level", level)
    _check_probability("power", power)
    if not (isinstance(df, (int, float, np.integer, np.floating)) and df > 0):
        raise ValueError(f"df must be > 0, got {df!r}")
    if power <= 1 - level:
        raise ValueError(f"power must exceed 1 - level = {1 - level:g} (the power at no difference), got {power!r}")
    if math.isinf(df):
        return float((stats.norm.ppf(1 - (1 - level) / 2) + stats.norm.ppf(power)) * se)
    high = 2 * (stats.norm.ppf(1 - (1 - level) / 2) + stats.norm.ppf(power)) + 1
    while _power_nc(high, df, level) < power:
        high *= 2
    nc = optimize.brentq(lambda x: _power_nc(x, df, level) - power, 0.0, high, xtol=1e-12)
    return float(nc * se)


def _check_n(n: int) -> None:
    """Raise ValueError unless ``n`` is an integer >= 2."""
    if not (isinstance(n, (int, np.integer)) and n >= 2):
        raise ValueError(f"n must be an integer >= 2 for a t-test, got {n!r}")


def paired_t_power(effect: float, sd: float, n: int, level: float = 0.95) -> float:
    """Power of a two-sided paired t-test on ``n`` independent differences with true mean ``effect``.

    With ``df = n - 1``, ``t* = t_{1 - alpha/2, df}`` and noncentrality ``nc = effect * sqrt(n) / sd``:
    ``power = P(T > t*) + P(T < -t*)`` for ``T ~ nct(df, nc)``.

    Args:
        effect: true mean difference.
        sd: standard deviation of the differences (> 0).
        n: number of differences (at least 2).
        level: confidence level of the test (``1 - alpha``).

    Returns:
        The probability of rejecting "no difference".

    Raises:
        ValueError: ``sd`` is not positive and finite, ``n`` is below 2, or ``level`` is not in (0, 1).

    Examples:
        With no true difference the test rejects at its false-positive rate ``alpha``; an effect of
        one standard deviation is found 80 % of the time with 10 differences:

        >>> round(paired_t_power(0.0, sd=1.0, n=10), 4)
        0.05
        >>> round(paired_t_power(1.0, sd=1.0, n=10), 4)
        0.8031
    """
    _check_scale("sd", sd)
    if sd == 0:
        raise ValueError("sd must be > 0 to compute a power")
    _check_n(n)
    _check_probability("level", level)
    return _power_nc(effect * np.sqrt(n) / sd, n - 1, level)


def detectable_difference_t(sd: float, n: int, level: float = 0.95, power: float = 0.8) -> float:
    """Smallest true difference a two-sided paired t-test on ``n`` independent differences detects.

    :func:`detectable_difference` with ``se = sd / sqrt(n)`` and ``df = n - 1``: exact, via the
    noncentral t distribution, and larger than the normal approximation, most so for small ``n``.

    Args:
        sd: standard deviation of the paired differences.
        n: number of paired differences.
        level: confidence level of the test (``1 - alpha``).
        power: probability of detecting a true difference of ``delta``.

    Returns:
        The detectable difference, in the units of ``sd`` (0 when ``sd`` is 0).

    Raises:
        ValueError: ``sd`` is negative or not finite, ``n`` is below 2, ``level`` or ``power`` is not
            in (0, 1), or ``power`` does not exceed ``1 - level`` (the test's power at no difference).

    Examples:
        With 5 differences the exact value is a third larger than the normal approximation; with 50
        the two nearly agree:

        >>> import math
        >>> round(detectable_difference_t(1.0, n=5), 3), round(detectable_difference(1.0 / math.sqrt(5)), 3)
        (1.682, 1.253)
        >>> round(detectable_difference_t(1.0, n=50), 3), round(detectable_difference(1.0 / math.sqrt(50)), 3)
        (0.404, 0.396)
    """
    _check_scale("sd", sd)
    _check_n(n)
    return detectable_difference(sd / math.sqrt(n), level, power, df=n - 1)


def _design_detectable(components: dict, seeds: int, cases: int, level: float, power: float) -> float:
    """The detectable difference of a crossed design of ``seeds x cases`` with these components."""
    seed = (components["var_seed"] + components["var_resid"] / cases) / seeds
    case = components["var_case"] / cases
    q = 1.0 - (1.0 - level) / 2
    se = math.sqrt(seed + case)
    half = math.sqrt(stats.t.ppf(q, seeds - 1) ** 2 * seed + stats.t.ppf(q, cases - 1) ** 2 * case)
    df = _effective_df(se, half, seeds - 1, cases - 1, level)
    return detectable_difference(se, level, power, df=df)


def seeds_needed(components: dict, cases: int, target: float, level: float = 0.95, power: float = 0.8) -> int | None:
    """The fewest seeds with which a crossed comparison on ``cases`` cases detects ``target``.

    The design's variance with ``S`` seeds is ``(var_seed + var_resid / C) / S + var_case / C``
    (the components of :func:`crossed_interval`); its detectable difference is
    :func:`detectable_difference` with the interval's own effective degrees of freedom. The case
    part does not shrink with seeds: when it alone hides ``target``, no number of seeds suffices.

    Args:
        components: ``{"var_seed", "var_case", "var_resid"}``, e.g. a row of :func:`compare`.
        cases: the number of held-out cases (at least 2).
        target: the difference to detect (e.g. 0.01, one Dice point).
        level: confidence level of the test.
        power: probability of detecting ``target``.

    Returns:
        The number of seeds (at least 2), or None when even :data:`MAX_SEEDS` seeds cannot detect
        ``target`` with these cases, or the components are not estimable (one seed: ``nan``).

    Raises:
        ValueError: ``target`` is not positive or ``cases`` is below 2.

    Examples:
        Seed-to-seed spread of 2 points and case-to-case spread of 1 point over 20 cases:

        >>> comps = {"var_seed": 0.02**2, "var_case": 0.01**2, "var_resid": 0.01**2}
        >>> seeds_needed(comps, cases=20, target=0.02), seeds_needed(comps, cases=20, target=0.01)
        (11, 59)
        >>> seeds_needed(dict(comps, var_case=0.03**2), cases=20, target=0.01) is None  # more cases needed
        True
    """
    if not (isinstance(target, (int, float, np.floating)) and target > 0):
        raise ValueError(f"target must be > 0, got {target!r}")
    if not (isinstance(cases, (int, np.integer)) and cases >= 2):
        raise ValueError(f"cases must be an integer >= 2, got {cases!r}")
    if any(not np.isfinite(components[k]) for k in ("var_seed", "var_case", "var_resid")):
        return None
    detect = lambda s: _design_detectable(components, s, cases, level, power)  # noqa: E731
    if detect(MAX_SEEDS) > target:
        return None
    low, high = 2, MAX_SEEDS  # detect(high) <= target; find the first such seed count
    if detect(low) <= target:
        return low
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if detect(mid) <= target else (mid, high)
    return high


def _verdict(low: float, high: float, metric: str) -> str:
    """``"better"``/``"worse"`` when the interval excludes 0, else ``"no difference detected"``."""
    if low <= 0 <= high:
        return "no difference detected"
    higher = low > 0
    return "better" if higher != (metric in LOWER_IS_BETTER) else "worse"


def _check_regions(table: dict, method: str, reference: str) -> list[str]:
    """The regions both methods were scored on, after checking that every run has the same ones."""
    regions = None
    for name in (method, reference):
        for s, cases in table[name].items():
            mine = _regions(cases)
            if regions is None:
                regions, first = mine, (name, s)
            elif set(mine) != set(regions):
                raise ValueError(
                    f"{name!r}, seed {s!r} was scored on regions {mine}, {first[0]!r}, seed {first[1]!r} on "
                    f"{regions}: a comparison needs the same regions"
                )
    return regions


def compare(
    records: Sequence[dict],
    reference: str = "baseline",
    metric: str = "dice",
    level: float = 0.95,
    power: float = 0.8,
    fixed_reference: bool = False,
    target: float | None = None,
    match_reference_seeds: bool = False,
) -> list[dict]:
    """Compare every method with ``reference``, region by region: the one engine behind every
    table, verdict, CLI command and lesson.

    For each method other than ``reference`` (in record order) and each region:
    ``D = paired_differences(...)``, :func:`crossed_interval` of ``D``, the detectable difference
    from the same standard error and effective degrees of freedom, and the seeds the design would
    need to detect ``target``. The verdict is ``"better"`` or ``"worse"`` when the interval excludes
    0 (for metrics in :data:`LOWER_IS_BETTER`, such as ``"hd95"``, a negative difference is better),
    else ``"no difference detected"``.

    Args:
        records: metrics records, one per (method, seed).
        reference: the method every other method is compared with.
        metric: ``"dice"`` or ``"hd95"``.
        level: confidence level of the intervals.
        power: power at which the detectable difference is given.
        fixed_reference: the reference is one run held fixed (see :func:`paired_differences`).
        target: the difference whose seed count is reported (default :data:`TARGETS`: 1 Dice point,
            1 mm of HD95).
        match_reference_seeds: pair each method with the reference's runs of the same seeds, when
            the reference was trained over more seeds (the paper's method and its baseline over 10,
            the other methods over 5, say). The reference must have every seed of the method; each
            row names the reference's seeds it left out (``reference_seeds_left_out``).

    Returns:
        Rows ``{"method", "region", "diff", "low", "high", "se", "df", "detectable", "seeds",
        "cases", "n", "var_seed", "var_case", "var_resid", "target", "seeds_needed",
        "fixed_reference", "reference_seeds_left_out", "verdict"}``; ``diff`` is the mean paired
        difference ``method - reference``.

    Raises:
        ValueError: ``reference`` is absent, the runs were scored on different regions, or as
            :func:`paired_differences` and :func:`crossed_interval` raise.

    Examples:
        Two seeds of a baseline and of the paper's method, scored on the same four cases:

        >>> def record(method, seed, dice):
        ...     cases = {f"case{j}": {"WT": {"dice": d}} for j, d in enumerate(dice)}
        ...     return {"method": method, "seed": seed, "cases": cases}
        >>> records = [
        ...     record("baseline", 0, [0.80, 0.70, 0.75, 0.85]),
        ...     record("pkl", 0, [0.84, 0.73, 0.80, 0.88]),
        ...     record("baseline", 1, [0.78, 0.72, 0.74, 0.86]),
        ...     record("pkl", 1, [0.83, 0.75, 0.78, 0.90]),
        ... ]
        >>> (row,) = compare(records)
        >>> row["method"], row["region"], row["verdict"], row["seeds"] * row["cases"]
        ('pkl', 'WT', 'better', 8)
        >>> [round(100 * row[k], 1) for k in ("diff", "low", "high", "detectable")]
        [3.9, 2.0, 5.7, 2.4]
        >>> row["seeds_needed"] is None  # 4 cases: their own spread hides 1 point whatever the seeds
        True
    """
    table = _by_method(records)
    if reference not in table:
        raise ValueError(f"reference {reference!r} not among the methods {list(table)}")
    target = TARGETS.get(metric, 1.0) if target is None else target
    rows = []
    for method in table:
        if method == reference:
            continue
        paired = sorted(table[method]) if match_reference_seeds and not fixed_reference else None
        left_out = sorted(set(table[reference]) - set(paired)) if paired is not None else []
        for region in _check_regions(table, method, reference):
            diffs = paired_differences(records, method, reference, region, metric, fixed_reference, paired)
            ci = crossed_interval(diffs, level)
            rows.append(
                {
                    "method": method,
                    "region": region,
                    "diff": ci["mean"],
                    "low": ci["low"],
                    "high": ci["high"],
                    "se": ci["se"],
                    "df": ci["df"],
                    "detectable": detectable_difference(ci["se"], level, power, df=ci["df"]),
                    "seeds": ci["seeds"],
                    "cases": ci["cases"],
                    "n": ci["n"],
                    "var_seed": ci["var_seed"],
                    "var_case": ci["var_case"],
                    "var_resid": ci["var_resid"],
                    "target": target,
                    "seeds_needed": seeds_needed(ci, ci["cases"], target, level, power),
                    "fixed_reference": fixed_reference,
                    "reference_seeds_left_out": left_out,
                    "verdict": _verdict(ci["low"], ci["high"], metric),
                }
            )
    return rows


def _fmt(value: float, scale: float, digits: int, sign: bool = True) -> str:
    """``value * scale`` rounded to ``digits``, with a sign if asked, never as ``-0.0``."""
    v = round(value * scale, digits) + 0.0
    return f"{v:+.{digits}f}" if sign else f"{v:.{digits}f}"


def _bound(value: float, scale: float, digits: int) -> str:
    """An interval's bound as :func:`_fmt` writes it, except that a bound that rounds to 0 keeps the
    sign of its value (``-0.0``): the reader sees on which side of 0 the interval ends."""
    text = _fmt(value, scale, digits)
    if value != 0 and round(value * scale, digits) == 0:
        return ("-" if value < 0 else "+") + text[1:]
    return text


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _checked_verdict(row: dict) -> str:
    """The row's verdict, after checking that it agrees with its interval.

    Raises:
        ValueError: the verdict is unknown, or says a difference was (not) detected while the
            interval includes (excludes) 0.
    """
    verdict = row["verdict"]
    if verdict not in VERDICTS:
        raise ValueError(f"verdict of {row['method']!r}, {row['region']!r} must be one of {VERDICTS}, got {verdict!r}")
    includes_zero = row["low"] <= 0 <= row["high"]
    if includes_zero != (verdict == "no difference detected"):
        raise ValueError(
            f"verdict {verdict!r} of {row['method']!r}, {row['region']!r} contradicts its interval "
            f"[{row['low']:g}, {row['high']:g}]"
        )
    return verdict


def seeds_note(row: dict, scale: float = 100.0, unit: str = "point") -> str:
    """How many seeds the row's design would need to detect its target, in words.

    Args:
        row: a row of :func:`compare`.
        scale: factor applied to the target (100 for Dice in points).
        unit: the target's unit, singular.

    Returns:
        For example ``"1.0 point needs 14 seeds"``, ``"1.0 point needs more cases than seeds can
        make up"`` or, with one seed, ``"one seed: seed-to-seed variation not counted"``.
    """
    target = f"{_fmt(row['target'], scale, 1, sign=False)} {unit}"
    if row["seeds"] < 2:
        return "one seed: seed-to-seed variation not counted"
    if row["seeds_needed"] is None:
        return f"{target} needs more cases: no number of seeds detects it with {row['cases']} cases"
    return f"{target} needs {_plural(row['seeds_needed'], 'seed')}"


def _left_out_note(row: dict, reference: str) -> str:
    """``", the baseline's seed(s) 5-9 left out"``, or "" when every seed of the reference is paired."""
    left = row.get("reference_seeds_left_out") or []
    if not left:
        return ""
    return f", the {reference}'s seed(s) {_seed_span(left)} left out"


def _seed_span(seeds: Sequence[int]) -> str:
    """``"5-9"`` for consecutive seeds, else ``"1, 4, 7"``."""
    seeds = sorted(seeds)
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"{seeds[0]}-{seeds[-1]}"
    return ", ".join(map(str, seeds))


def verdict_lines(
    rows: Sequence[dict], reference: str = "baseline", scale: float = 100.0, unit: str = "Dice points"
) -> str:
    """One Markdown bullet per row of :func:`compare`, worded only from its numbers.

    For example ``- pkl, WT: +0.6 Dice points [-0.9, +2.1] (5 seeds x 20 cases; detectable: 2.2;
    1.0 point needs 21 seeds): no difference detected (the interval includes 0; this comparison can
    only detect differences of about 2.2 points or more)``; a verdict of ``better`` or ``worse``
    reads ``better than the baseline`` / ``worse than the baseline``. Values are ``value * scale``
    with one decimal.

    Args:
        rows: rows of :func:`compare`.
        reference: name of the reference method in the wording.
        scale: factor applied to every value (100 for Dice in points, 1 for HD95 in mm).
        unit: unit after the difference; its last word is used in the notes.

    Returns:
        The bullets, one per line (an empty string for no rows).

    Raises:
        ValueError: a row's verdict is unknown or contradicts its interval.
    """
    short = unit.split()[-1] if unit.split() else unit
    lines = []
    for r in rows:
        verdict = _checked_verdict(r)
        detectable = _fmt(r["detectable"], scale, 1, sign=False)
        head = (
            f"- {r['method']}, {r['region']}: {_fmt(r['diff'], scale, 1)} {unit} "
            f"[{_bound(r['low'], scale, 1)}, {_bound(r['high'], scale, 1)}] "
            f"({_plural(r['seeds'], 'seed')} x {_plural(r['cases'], 'case')}{_left_out_note(r, reference)}; "
            f"detectable: {detectable}; "
            f"{seeds_note(r, scale, short.rstrip('s'))})"
        )
        if verdict == "no difference detected":
            tail = (
                f"no difference detected (the interval includes 0; this comparison can only detect "
                f"differences of about {detectable} {short} or more)"
            )
        else:
            tail = f"{verdict} than the {reference}"
        lines.append(f"{head}: {tail}")
    return "\n".join(lines)


def comparison_table(
    rows: Sequence[dict],
    scale: float = 100.0,
    reference: str = "baseline",
    digits: int = 1,
    *,
    level: float = 0.95,
    power: float = 0.8,
    unit: str = "point",
) -> str:
    """A Markdown table of the rows of :func:`compare`.

    Columns: method, region, ``Δ vs reference [95% CI]``, ``detectable Δ (80% power)``,
    ``seeds × cases``, the seeds needed to detect the target, and the verdict. Values are
    ``value * scale`` (100 for Dice in points, 1 for HD95 in mm) with ``digits`` decimals.

    Args:
        rows: rows of :func:`compare`.
        scale: factor applied to every value.
        reference: name of the reference method in the header.
        digits: decimals shown.
        level: confidence level the rows were computed at (for the header only).
        power: power the detectable difference was computed at (for the header only).
        unit: the target's unit, singular (for the header).

    Returns:
        The table, header and separator included.

    Raises:
        ValueError: a row's verdict is unknown or contradicts its interval.
    """
    target = _fmt(rows[0]["target"], scale, digits, sign=False) if rows else "1"
    head = [
        "method",
        "region",
        f"Δ vs {reference} [{level * 100:g}% CI]",
        f"detectable Δ ({power * 100:g}% power)",
        "seeds × cases",
        f"seeds to detect {target} {unit}",
        "verdict",
    ]
    table = []
    for r in rows:
        low, high = _bound(r["low"], scale, digits), _bound(r["high"], scale, digits)
        needed = "-" if r["seeds"] < 2 else "more cases" if r["seeds_needed"] is None else str(r["seeds_needed"])
        cells = [
            str(r["method"]),
            str(r["region"]),
            f"{_fmt(r['diff'], scale, digits)} [{low}, {high}]",
            _fmt(r["detectable"], scale, digits, sign=False),
            f"{r['seeds']} × {r['cases']}",
            needed,
            _checked_verdict(r),
        ]
        table.append(cells)
    return markdown_table(head, table)
