"""Paired comparisons of methods: hierarchical bootstrap intervals and detectable differences.

Every method is trained with several seeds and scored on the same held-out cases, so a method is
compared with a reference (usually the baseline) on paired differences: seed ``s`` against seed
``s`` (same initialisation and batch order) and case ``c`` against case ``c``. The differences form
a ``(seeds, cases)`` matrix ``D`` with ``D[s, c] = value(method, s, c) - value(reference, s, c)``.

Two sources of variation matter: which seeds were run and which cases were held out. A hierarchical
bootstrap resamples both (seeds, then cases within each seed), so the interval for the mean
difference reflects both. Next to each interval goes the smallest difference the comparison could
detect, so that "no difference detected" is never read as "no difference".

Records look like ``{"run", "method", "seed", "modality", "cases": {case: {region: {metric: value}}}}``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import optimize, stats

from pkd_lessons.markdown import markdown_table

#: Metrics for which a smaller value is better (the verdict's direction flips).
LOWER_IS_BETTER = frozenset({"hd95"})

#: The three verdicts :func:`compare` can give.
VERDICTS = ("better", "worse", "no difference detected")


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
            for the same seed.
    """
    table: dict[str, dict[int, dict]] = {}
    for i, rec in enumerate(records):
        missing = [k for k in ("method", "seed", "cases") if k not in rec]
        if missing:
            raise ValueError(f"records[{i}] lacks the key(s) {missing}")
        seeds = table.setdefault(rec["method"], {})
        if rec["seed"] in seeds:
            raise ValueError(f"method {rec['method']!r} has two records for seed {rec['seed']!r}")
        seeds[rec["seed"]] = rec["cases"]
    return table


def _value(cases: dict, case: str, region: str, metric: str, where: str) -> float:
    """``cases[case][region][metric]`` as a float, with a ValueError that says what is missing."""
    try:
        return float(cases[case][region][metric])
    except KeyError as err:
        raise ValueError(f"{where}, case {case!r}: no {metric!r} for region {region!r}") from err


def paired_differences(
    records: Sequence[dict], method: str, reference: str = "baseline", region: str = "WT", metric: str = "dice"
) -> np.ndarray:
    """Differences ``method - reference`` paired by seed and by case.

    ``D[i, j] = value(method, seed_i, case_j) - value(reference, seed_i, case_j)``, where ``seed_i``
    runs over the seeds present for both methods (sorted) and ``case_j`` over the sorted case ids.

    Args:
        records: metrics records, one per (method, seed).
        method: the method compared.
        reference: the method it is compared with.
        region: region whose metric is compared (e.g. ``"WT"``).
        metric: ``"dice"`` or ``"hd95"``.

    Returns:
        A float array of shape ``(seeds, cases)``.

    Raises:
        ValueError: ``method`` or ``reference`` is absent (the message names the known methods), the
            two have no seed in common, were scored on different cases, a method's seeds were scored
            on different cases, or a case lacks ``region`` or ``metric``.

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
    seeds = sorted(set(mine) & set(theirs))
    if not seeds:
        raise ValueError(
            f"{method!r} (seeds {sorted(mine)}) and {reference!r} (seeds {sorted(theirs)}) have no seed in common"
        )
    cases = sorted(mine[seeds[0]])
    for s in seeds:
        if sorted(theirs[s]) != sorted(mine[s]):
            raise ValueError(f"{method!r} and {reference!r} were scored on different cases for seed {s!r}")
        if sorted(mine[s]) != cases:
            raise ValueError(f"{method!r} was scored on different cases for seed {s!r} than for seed {seeds[0]!r}")
    return np.array(
        [
            [
                _value(mine[s], c, region, metric, f"{method!r}, seed {s!r}")
                - _value(theirs[s], c, region, metric, f"{reference!r}, seed {s!r}")
                for c in cases
            ]
            for s in seeds
        ],
        dtype=float,
    )


def _check_diffs(diffs: np.ndarray) -> np.ndarray:
    """``diffs`` as a 2D float array, or a ValueError if it is not 2D, empty or non-finite."""
    diffs = np.asarray(diffs, dtype=float)
    if diffs.ndim != 2:
        raise ValueError(f"diffs must be a 2D (seeds, cases) matrix, got shape {diffs.shape}")
    if diffs.size == 0:
        raise ValueError(f"diffs is empty (shape {diffs.shape})")
    if not np.all(np.isfinite(diffs)):
        raise ValueError(f"diffs has {int(np.sum(~np.isfinite(diffs)))} non-finite value(s)")
    return diffs


def hierarchical_bootstrap(diffs: np.ndarray, level: float = 0.95, resamples: int = 4000, seed: int = 0) -> dict:
    """Percentile interval for the mean of a ``(seeds, cases)`` matrix of paired differences.

    Each resample draws ``S`` seeds with replacement, then, within each drawn seed, ``C`` cases with
    replacement, and takes the mean of the ``S * C`` drawn values:
    ``m_b = 1/(S*C) * sum_i sum_j D[s_bi, c_bij]``. The interval is the ``alpha/2`` and
    ``1 - alpha/2`` percentiles of the ``m_b`` (``alpha = 1 - level``) and the standard error is
    ``se = sqrt(1/(B-1) * sum_b (m_b - mean(m))^2)``. All resamples are drawn at once (an array of
    ``resamples * S * C`` indices).

    With one seed (``S == 1``) there is nothing to resample at the seed level, so only cases are
    resampled: the interval then ignores seed-to-seed variation.

    Args:
        diffs: paired differences, shape ``(seeds, cases)``, e.g. from :func:`paired_differences`.
        level: confidence level of the interval.
        resamples: number of bootstrap resamples ``B`` (at least 2).
        seed: seed of the ``np.random.default_rng`` that draws them.

    Returns:
        ``{"mean", "low", "high", "se", "seeds", "cases", "n"}``: ``mean`` is ``diffs.mean()``,
        ``low``/``high`` the percentile interval, ``se`` the bootstrap standard error, ``seeds = S``,
        ``cases = C`` and ``n = S * C``.

    Raises:
        ValueError: ``diffs`` is not 2D, is empty or has non-finite values, ``level`` is not in
            (0, 1), or ``resamples`` is below 2.

    Examples:
        Differences that never vary leave nothing to resample: the interval shrinks to the mean.

        >>> import numpy as np
        >>> boot = hierarchical_bootstrap(np.full((3, 20), 0.02))
        >>> [round(boot[k], 4) for k in ("mean", "low", "high", "se")], boot["n"]
        ([0.02, 0.02, 0.02, 0.0], 60)

        Noisy differences (3 seeds x 20 cases, true mean 0.01, spread 0.02) give an interval around
        their mean that excludes 0. The first seed alone (only its cases are resampled) gives a
        wider interval that includes 0:

        >>> diffs = 0.01 + 0.02 * np.random.default_rng(0).standard_normal((3, 20))
        >>> boot = hierarchical_bootstrap(diffs)
        >>> [round(boot[k], 4) for k in ("mean", "low", "high", "se")]
        [0.0115, 0.0053, 0.0182, 0.0034]
        >>> boot = hierarchical_bootstrap(diffs[:1])
        >>> [round(boot[k], 4) for k in ("mean", "low", "high", "se")], boot["n"]
        ([0.0063, -0.0015, 0.0135, 0.0038], 20)
    """
    diffs = _check_diffs(diffs)
    _check_probability("level", level)
    if not (isinstance(resamples, (int, np.integer)) and resamples >= 2):
        raise ValueError(f"resamples must be an integer >= 2, got {resamples!r}")
    n_seeds, n_cases = diffs.shape
    rng = np.random.default_rng(seed)
    if n_seeds > 1:
        seed_idx = rng.integers(0, n_seeds, size=(resamples, n_seeds))
    else:
        seed_idx = np.zeros((resamples, 1), dtype=np.int64)
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


def detectable_difference(se: float, level: float = 0.95, power: float = 0.8) -> float:
    """Smallest true difference a two-sided test detects with the given power (normal approximation).

    ``delta = (z_{1 - alpha/2} + z_{power}) * se`` with ``alpha = 1 - level`` and ``z_p`` the
    standard normal quantile; at the defaults ``delta = (1.960 + 0.842) * se = 2.80 * se``.

    Args:
        se: standard error of the estimated difference.
        level: confidence level of the test (``1 - alpha``).
        power: probability of detecting a true difference of ``delta``.

    Returns:
        The detectable difference, in the units of ``se``.

    Raises:
        ValueError: ``se`` is negative or not finite, or ``level`` or ``power`` is not in (0, 1).

    Examples:
        With a standard error of 1 Dice point, a comparison detects (with 80 % power) differences of
        about 2.8 points:

        >>> round(detectable_difference(0.01), 4)
        0.028
        >>> round(detectable_difference(0.01, power=0.9), 4)  # more power asks for a larger difference
        0.0324
    """
    _check_scale("se", se)
    _check_probability("level", level)
    _check_probability("power", power)
    alpha = 1.0 - level
    return float((stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)) * se)


def paired_t_power(effect: float, sd: float, n: int, level: float = 0.95) -> float:
    """Power of a two-sided paired t-test on ``n`` differences with true mean ``effect``.

    With ``df = n - 1``, ``t* = t_{1 - alpha/2, df}`` and noncentrality ``nc = effect * sqrt(n) / sd``:
    ``power = P(T > t*) + P(T < -t*)`` for ``T ~ nct(df, nc)``; it is the same for ``effect`` and
    ``-effect``.

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


def _check_n(n: int) -> None:
    """Raise ValueError unless ``n`` is an integer >= 2."""
    if not (isinstance(n, (int, np.integer)) and n >= 2):
        raise ValueError(f"n must be an integer >= 2 for a t-test, got {n!r}")


def _power_nc(nc: float, df: int, level: float) -> float:
    """Two-sided t-test power at noncentrality ``nc`` with ``df`` degrees of freedom.

    The lower tail ``P(T_nc < -t*)`` is computed as ``P(T_{-nc} > t*)`` (the same by symmetry):
    scipy's ``nct.cdf`` far in the tail returns NaN for moderate ``nc`` (about 8 and above), its
    ``nct.sf`` does not.
    """
    crit = stats.t.ppf(1 - (1 - level) / 2, df)
    return float(stats.nct.sf(crit, df, nc) + stats.nct.sf(crit, df, -nc))


def detectable_difference_t(sd: float, n: int, level: float = 0.95, power: float = 0.8) -> float:
    """Smallest true difference a two-sided paired t-test on ``n`` differences detects with ``power``.

    Exact, via the noncentral t distribution: with ``df = n - 1`` and ``t* = t_{1 - alpha/2, df}``,
    find the noncentrality ``nc`` with ``P(T > t*) + P(T < -t*) = power`` for ``T ~ nct(df, nc)``
    (``scipy.optimize.brentq``), then ``delta = nc * sd / sqrt(n)``. It is larger than the normal
    approximation ``(z_{1 - alpha/2} + z_{power}) * sd / sqrt(n)``, most so for small ``n``.

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
    _check_probability("level", level)
    _check_probability("power", power)
    if power <= 1 - level:
        raise ValueError(f"power must exceed 1 - level = {1 - level:g} (the power at no difference), got {power!r}")
    df = n - 1
    high = 2 * (stats.norm.ppf(1 - (1 - level) / 2) + stats.norm.ppf(power)) + 1
    while _power_nc(high, df, level) < power:
        high *= 2
    nc = optimize.brentq(lambda x: _power_nc(x, df, level) - power, 0.0, high, xtol=1e-12)
    return float(nc * sd / np.sqrt(n))


def _verdict(low: float, high: float, metric: str) -> str:
    """``"better"``/``"worse"`` when the interval excludes 0, else ``"no difference detected"``."""
    if low <= 0 <= high:
        return "no difference detected"
    higher = low > 0
    return "better" if higher != (metric in LOWER_IS_BETTER) else "worse"


def compare(
    records: Sequence[dict],
    reference: str = "baseline",
    metric: str = "dice",
    level: float = 0.95,
    power: float = 0.8,
    resamples: int = 4000,
    seed: int = 0,
) -> list[dict]:
    """Compare every method with ``reference``, region by region.

    For each method other than ``reference`` (in record order) and each of its regions (in order of
    first appearance): ``D = paired_differences(...)``, a hierarchical bootstrap of ``D`` and
    ``detectable = (z_{1 - alpha/2} + z_{power}) * se``. The verdict is ``"better"`` or ``"worse"``
    when the interval excludes 0 (for metrics in :data:`LOWER_IS_BETTER`, such as ``"hd95"``, a
    negative difference is better), else ``"no difference detected"``.

    Args:
        records: metrics records, one per (method, seed).
        reference: the method every other method is compared with.
        metric: ``"dice"`` or ``"hd95"``.
        level: confidence level of the intervals.
        power: power at which the detectable difference is given.
        resamples: bootstrap resamples per comparison.
        seed: seed of every bootstrap (each comparison draws the same resampling indices).

    Returns:
        Rows ``{"method", "region", "diff", "low", "high", "se", "detectable", "seeds", "cases",
        "n", "verdict"}``; ``diff`` is the mean paired difference ``method - reference``.

    Raises:
        ValueError: ``reference`` is absent, or as :func:`paired_differences`,
            :func:`hierarchical_bootstrap` and :func:`detectable_difference` raise.

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
        >>> print(verdict_lines([row]))
        - pkl, WT: +3.9 Dice points [+3.4, +4.4] (2 seeds x 4 cases; detectable: 0.8): better than the baseline
    """
    table = _by_method(records)
    if reference not in table:
        raise ValueError(f"reference {reference!r} not among the methods {list(table)}")
    rows = []
    for method, seeds in table.items():
        if method == reference:
            continue
        regions = dict.fromkeys(region for cases in seeds.values() for regs in cases.values() for region in regs)
        for region in regions:
            diffs = paired_differences(records, method, reference, region, metric)
            boot = hierarchical_bootstrap(diffs, level, resamples, seed)
            rows.append(
                {
                    "method": method,
                    "region": region,
                    "diff": boot["mean"],
                    "low": boot["low"],
                    "high": boot["high"],
                    "se": boot["se"],
                    "detectable": detectable_difference(boot["se"], level, power),
                    "seeds": boot["seeds"],
                    "cases": boot["cases"],
                    "n": boot["n"],
                    "verdict": _verdict(boot["low"], boot["high"], metric),
                }
            )
    return rows


def _fmt(value: float, scale: float, digits: int, sign: bool = True) -> str:
    """``value * scale`` rounded to ``digits``, with a sign if asked, never as ``-0.0``."""
    v = round(value * scale, digits) + 0.0
    return f"{v:+.{digits}f}" if sign else f"{v:.{digits}f}"


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


def verdict_lines(
    rows: Sequence[dict], reference: str = "baseline", scale: float = 100.0, unit: str = "Dice points"
) -> str:
    """One Markdown bullet per row of :func:`compare`, worded only from its numbers.

    For example ``- pkl, WT: +0.6 Dice points [-0.1, +1.2] (3 seeds x 20 cases; detectable: 1.4):
    no difference detected (the interval includes 0; this comparison can only detect differences of
    about 1.4 points or more)``; a verdict of ``better`` or ``worse`` reads ``better than the
    baseline`` / ``worse than the baseline``. Values are ``value * scale`` with one decimal.

    Args:
        rows: rows of :func:`compare`.
        reference: name of the reference method in the wording.
        scale: factor applied to every value (100 for Dice in points, 1 for HD95 in mm).
        unit: unit after the difference; its last word is used in the detectable-difference note.

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
            f"[{_fmt(r['low'], scale, 1)}, {_fmt(r['high'], scale, 1)}] "
            f"({_plural(r['seeds'], 'seed')} x {_plural(r['cases'], 'case')}; detectable: {detectable})"
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
) -> str:
    """A Markdown table of the rows of :func:`compare`.

    Columns: method, region, ``Δ vs reference [95% CI]``, ``detectable Δ (80% power)``,
    ``seeds × cases`` and verdict. Values are ``value * scale`` (100 for Dice in points, 1 for HD95
    in mm) with ``digits`` decimals.

    Args:
        rows: rows of :func:`compare`.
        scale: factor applied to every value.
        reference: name of the reference method in the header.
        digits: decimals shown.
        level: confidence level the rows were computed at (for the header only).
        power: power the detectable difference was computed at (for the header only).

    Returns:
        The table, header and separator included.

    Raises:
        ValueError: a row's verdict is unknown or contradicts its interval.
    """
    head = [
        "method",
        "region",
        f"Δ vs {reference} [{level * 100:g}% CI]",
        f"detectable Δ ({power * 100:g}% power)",
        "seeds × cases",
        "verdict",
    ]
    table = []
    for r in rows:
        low, high = _fmt(r["low"], scale, digits), _fmt(r["high"], scale, digits)
        cells = [
            str(r["method"]),
            str(r["region"]),
            f"{_fmt(r['diff'], scale, digits)} [{low}, {high}]",
            _fmt(r["detectable"], scale, digits, sign=False),
            f"{r['seeds']} × {r['cases']}",
            _checked_verdict(r),
        ]
        table.append(cells)
    return markdown_table(head, table)
