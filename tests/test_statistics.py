"""Paired differences, hierarchical bootstrap, detectable differences and the wording of verdicts."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from pkd_lessons.evaluation.statistics import (
    compare,
    comparison_table,
    detectable_difference,
    detectable_difference_t,
    hierarchical_bootstrap,
    paired_differences,
    paired_t_power,
    verdict_lines,
)

CASES = ["c0", "c1", "c2", "c3"]


def _record(
    method: str, seed: int, dice: dict[str, float], hd95: dict[str, float] | None = None, region: str = "WT"
) -> dict:
    hd95 = hd95 or {c: 5.0 for c in dice}
    return {
        "run": f"{method}-s{seed}",
        "method": method,
        "seed": seed,
        "modality": "t1ce",
        "cases": {c: {region: {"dice": dice[c], "hd95": hd95[c]}} for c in dice},
    }


def _base_value(seed: int, j: int) -> float:
    return 0.70 + 0.01 * seed + 0.02 * j


def _pkl_value(seed: int, j: int) -> float:
    return _base_value(seed, j) + 0.001 * (10 * seed + j)


@pytest.fixture
def small_records() -> list[dict]:
    """Two methods, three seeds, four cases; pkl - baseline = 0.001 * (10 * seed + case index)."""
    recs = []
    for method, value in (("baseline", _base_value), ("pkl", _pkl_value)):
        for seed in (2, 0, 1):  # out of order on purpose: the rows must come out sorted by seed
            # cases inserted in reverse order: the columns must come out sorted by case id
            recs.append(_record(method, seed, {c: value(seed, j) for j, c in reversed(list(enumerate(CASES)))}))
    return recs


def _records_from_diffs(diffs: np.ndarray, metric: str = "dice") -> list[dict]:
    """Records for a baseline at 0.5 everywhere and a method ``pkl`` at 0.5 + diffs[seed, case]."""
    recs = []
    for seed in range(diffs.shape[0]):
        cases = [f"case{j:02d}" for j in range(diffs.shape[1])]
        base = {c: 0.5 for c in cases}
        pkl = {c: 0.5 + diffs[seed, j] for j, c in enumerate(cases)}
        if metric == "dice":
            recs += [_record("baseline", seed, base), _record("pkl", seed, pkl)]
        else:
            recs += [_record("baseline", seed, base, hd95=base), _record("pkl", seed, base, hd95=pkl)]
    return recs


# --- paired_differences -------------------------------------------------------------------------


def test_paired_differences_known_matrix(small_records):
    d = paired_differences(small_records, "pkl", "baseline", region="WT", metric="dice")
    expected = np.array([[0.001 * (10 * s + j) for j in range(4)] for s in range(3)])
    assert d.shape == (3, 4)
    np.testing.assert_allclose(d, expected, atol=1e-12)


def test_paired_differences_only_common_seeds(small_records):
    recs = small_records + [_record("pkl", 7, {c: 0.9 for c in CASES})]
    assert paired_differences(recs, "pkl").shape == (3, 4)


def test_paired_differences_mismatched_cases_names_both_methods(small_records):
    recs = [r for r in small_records if not (r["method"] == "pkl" and r["seed"] == 1)]
    recs.append(_record("pkl", 1, {c: 0.8 for c in ["c0", "c1", "c2", "c9"]}))
    with pytest.raises(ValueError, match="different cases") as err:
        paired_differences(recs, "pkl", "baseline")
    assert "pkl" in str(err.value) and "baseline" in str(err.value)


def test_paired_differences_missing_method_names_known_methods(small_records):
    with pytest.raises(ValueError, match="kd") as err:
        paired_differences(small_records, "kd", "baseline")
    assert "pkl" in str(err.value) and "baseline" in str(err.value)
    with pytest.raises(ValueError, match="teacher"):
        paired_differences(small_records, "pkl", "teacher")


def test_paired_differences_no_common_seed():
    recs = [_record("baseline", 0, {"c0": 0.5}), _record("pkl", 1, {"c0": 0.6})]
    with pytest.raises(ValueError, match="no seed in common") as err:
        paired_differences(recs, "pkl")
    assert "pkl" in str(err.value) and "baseline" in str(err.value)


def test_paired_differences_missing_region(small_records):
    with pytest.raises(ValueError, match="'TC'"):
        paired_differences(small_records, "pkl", region="TC")


# --- hierarchical_bootstrap ---------------------------------------------------------------------


def test_constant_differences_give_zero_width_interval():
    out = hierarchical_bootstrap(np.full((3, 20), 0.03), resamples=500)
    assert out["mean"] == pytest.approx(0.03)
    assert out["low"] == pytest.approx(0.03) and out["high"] == pytest.approx(0.03)
    assert out["se"] == pytest.approx(0.0, abs=1e-12)
    assert (out["seeds"], out["cases"], out["n"]) == (3, 20, 60)


def test_clear_positive_effect_excludes_zero():
    diffs = np.random.default_rng(1).normal(0.05, 0.01, size=(3, 20))
    out = hierarchical_bootstrap(diffs)
    assert out["low"] > 0
    assert out["low"] < diffs.mean() < out["high"]
    [row] = compare(_records_from_diffs(diffs))
    assert row["verdict"] == "better"
    assert row["diff"] == pytest.approx(diffs.mean())


def test_pure_noise_gives_no_difference_detected():
    diffs = np.random.default_rng(3).normal(0.0, 0.05, size=(3, 20))
    [row] = compare(_records_from_diffs(diffs))
    assert row["low"] < 0 < row["high"]
    assert row["verdict"] == "no difference detected"
    assert row["detectable"] == pytest.approx(detectable_difference(row["se"]))


def test_hd95_flips_direction():
    diffs = np.random.default_rng(1).normal(0.05, 0.01, size=(3, 20))
    [up] = compare(_records_from_diffs(diffs, "hd95"), metric="hd95")
    [down] = compare(_records_from_diffs(-diffs, "hd95"), metric="hd95")
    assert up["low"] > 0 and up["verdict"] == "worse"  # larger distance: worse
    assert down["high"] < 0 and down["verdict"] == "better"
    [dice_down] = compare(_records_from_diffs(-diffs))
    assert dice_down["verdict"] == "worse"


def test_bootstrap_reproducible_for_same_seed():
    diffs = np.random.default_rng(0).normal(0.01, 0.05, size=(4, 15))
    a = hierarchical_bootstrap(diffs, seed=5)
    b = hierarchical_bootstrap(diffs, seed=5)
    c = hierarchical_bootstrap(diffs, seed=6)
    assert a == b
    assert (a["low"], a["high"]) != (c["low"], c["high"])


def test_one_seed_resamples_only_cases():
    diffs = np.random.default_rng(0).normal(0.01, 0.05, size=(1, 25))
    out = hierarchical_bootstrap(diffs, resamples=1000, seed=9)
    # the same draws as a plain case bootstrap with the same generator
    idx = np.random.default_rng(9).integers(0, 25, size=(1000, 1, 25))
    means = diffs[0][idx].mean(axis=(1, 2))
    assert out["low"] == pytest.approx(np.percentile(means, 2.5))
    assert out["high"] == pytest.approx(np.percentile(means, 97.5))
    assert out["se"] == pytest.approx(means.std(ddof=1))
    assert (out["seeds"], out["cases"], out["n"]) == (1, 25, 25)
    # and close to the textbook standard error of a mean
    assert out["se"] == pytest.approx(diffs.std(ddof=0) / np.sqrt(25), rel=0.15)


def test_seed_variation_widens_the_interval():
    """A seed-level offset the case-only view cannot see must widen the hierarchical interval."""
    rng = np.random.default_rng(2)
    cases = rng.normal(0.0, 0.01, size=20)
    diffs = cases[None, :] + np.array([-0.05, 0.0, 0.05])[:, None]
    wide = hierarchical_bootstrap(diffs)
    narrow = hierarchical_bootstrap(diffs - diffs.mean(axis=1, keepdims=True) + diffs.mean())
    assert wide["high"] - wide["low"] > 3 * (narrow["high"] - narrow["low"])


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.zeros(5), "2D"),
        (np.zeros((0, 3)), "empty"),
        (np.array([[0.1, np.nan]]), "non-finite"),
        (np.array([[0.1, np.inf]]), "non-finite"),
    ],
)
def test_bootstrap_rejects_bad_matrix(bad, match):
    with pytest.raises(ValueError, match=match):
        hierarchical_bootstrap(bad)


@pytest.mark.parametrize("level", [0.0, 1.0, 1.5, -0.1])
def test_bootstrap_rejects_bad_level(level):
    with pytest.raises(ValueError, match="level"):
        hierarchical_bootstrap(np.zeros((2, 2)), level=level)


# --- detectable differences ---------------------------------------------------------------------


def test_detectable_difference_normal():
    assert detectable_difference(1.0) == pytest.approx(2.8016, abs=1e-4)
    assert detectable_difference(0.5) == pytest.approx(0.5 * 2.8016, abs=1e-4)
    assert detectable_difference(1.0, level=0.99, power=0.9) == pytest.approx(2.5758 + 1.2816, abs=1e-3)
    with pytest.raises(ValueError, match="se"):
        detectable_difference(-1.0)
    with pytest.raises(ValueError, match="power"):
        detectable_difference(1.0, power=1.0)


def test_detectable_difference_t_exact():
    delta = detectable_difference_t(sd=1.0, n=20)
    assert delta > 2.8016 / np.sqrt(20)
    assert delta == pytest.approx(0.6604, abs=2e-3)  # the textbook d_z for n = 20, alpha 0.05, power 0.8
    # the power at the returned effect, computed here from scipy's noncentral t, is the one asked for
    crit = stats.t.ppf(0.975, 19)
    nc = delta * np.sqrt(20)
    assert stats.nct.sf(crit, 19, nc) + stats.nct.cdf(-crit, 19, nc) == pytest.approx(0.8, abs=1e-6)
    assert paired_t_power(delta, 1.0, 20) == pytest.approx(0.8, abs=1e-6)
    # it scales with sd and approaches the normal approximation for large n
    assert detectable_difference_t(sd=2.0, n=20) == pytest.approx(2 * delta)
    assert detectable_difference_t(1.0, 2000) == pytest.approx(2.8016 / np.sqrt(2000), rel=2e-3)


def test_detectable_difference_t_by_simulation():
    rng = np.random.default_rng(0)
    n, trials = 20, 20000
    delta = detectable_difference_t(sd=1.0, n=n)
    x = rng.normal(delta, 1.0, size=(trials, n))
    t = x.mean(axis=1) / (x.std(axis=1, ddof=1) / np.sqrt(n))
    rejected = np.mean(np.abs(t) > stats.t.ppf(0.975, n - 1))
    assert rejected == pytest.approx(0.8, abs=0.015)  # binomial sd ~ 0.003


def test_detectable_difference_t_small_n_and_errors():
    # n = 2 needs a noncentrality near 22, where scipy's nct.cdf in the far tail would give NaN
    d2 = detectable_difference_t(1.0, 2)
    assert paired_t_power(d2, 1.0, 2) == pytest.approx(0.8, abs=1e-6)
    assert d2 > detectable_difference_t(1.0, 3) > detectable_difference_t(1.0, 20)
    assert detectable_difference_t(0.0, 10) == 0.0
    for n in (1, 0):
        with pytest.raises(ValueError, match="n must be"):
            detectable_difference_t(1.0, n)
    with pytest.raises(ValueError, match="power"):
        detectable_difference_t(1.0, 10, power=0.01)


# --- compare, wording and table -----------------------------------------------------------------


def test_compare_rows_in_record_order():
    recs = _records_from_diffs(np.full((2, 3), 0.01))
    for r in recs:  # two regions for everyone, in the order WT, TC
        r["cases"] = {c: {"WT": v["WT"], "TC": v["WT"]} for c, v in r["cases"].items()}
    kd = [{**r, "method": "kd", "run": r["run"].replace("pkl", "kd")} for r in recs if r["method"] == "pkl"]
    pkl = [r for r in recs if r["method"] == "pkl"]
    for r in pkl:  # pkl scored on WT only
        r["cases"] = {c: {"WT": v["WT"]} for c, v in r["cases"].items()}
    base = [r for r in recs if r["method"] == "baseline"]
    rows = compare(kd + base + pkl)
    assert [(r["method"], r["region"]) for r in rows] == [("kd", "WT"), ("kd", "TC"), ("pkl", "WT")]
    assert set(rows[0]) == {
        "method",
        "region",
        "diff",
        "low",
        "high",
        "se",
        "detectable",
        "seeds",
        "cases",
        "n",
        "verdict",
    }
    assert all(r["verdict"] == "better" and r["n"] == 6 for r in rows)
    with pytest.raises(ValueError, match="teacher"):
        compare(kd + base + pkl, reference="teacher")


def _row(diff, low, high, detectable, verdict, seeds=3, cases=20):
    return {
        "method": "pkl",
        "region": "WT",
        "diff": diff,
        "low": low,
        "high": high,
        "se": detectable / 2.8,
        "detectable": detectable,
        "seeds": seeds,
        "cases": cases,
        "n": seeds * cases,
        "verdict": verdict,
    }


def test_verdict_lines_wording():
    rows = [
        _row(0.006, -0.001, 0.012, 0.014, "no difference detected"),
        _row(0.02, 0.01, 0.03, 0.014, "better"),
        _row(-0.02, -0.03, -0.01, 0.014, "worse", seeds=1, cases=1),
    ]
    lines = verdict_lines(rows).splitlines()
    assert lines[0] == (
        "- pkl, WT: +0.6 Dice points [-0.1, +1.2] (3 seeds x 20 cases; detectable: 1.4): "
        "no difference detected (the interval includes 0; this comparison can only detect "
        "differences of about 1.4 points or more)"
    )
    assert lines[1] == (
        "- pkl, WT: +2.0 Dice points [+1.0, +3.0] (3 seeds x 20 cases; detectable: 1.4): better than the baseline"
    )
    assert lines[2].endswith("(1 seed x 1 case; detectable: 1.4): worse than the baseline")
    mm = verdict_lines([_row(0.3, -0.2, 0.8, 1.1, "no difference detected")], reference="teacher", scale=1.0, unit="mm")
    assert "+0.3 mm [-0.2, +0.8]" in mm and "about 1.1 mm or more" in mm


def test_verdict_must_agree_with_interval():
    with pytest.raises(ValueError, match="contradicts"):
        verdict_lines([_row(0.02, 0.01, 0.03, 0.014, "no difference detected")])
    with pytest.raises(ValueError, match="contradicts"):
        comparison_table([_row(0.0, -0.01, 0.01, 0.014, "better")])


def test_comparison_table():
    table = comparison_table([_row(0.006, -0.001, 0.012, 0.014, "no difference detected")]).splitlines()
    assert table[0] == (
        "| method | region | Δ vs baseline [95% CI] | detectable Δ (80% power) | seeds × cases | verdict |"
    )
    assert table[1] == "|---|---|---|---|---|---|"
    assert table[2] == "| pkl | WT | +0.6 [-0.1, +1.2] | 1.4 | 3 × 20 | no difference detected |"
    assert len(table) == 3


def test_end_to_end_small_records(small_records):
    rows = compare(small_records, resamples=1000)
    assert len(rows) == 1 and rows[0]["verdict"] == "better"
    assert rows[0]["diff"] == pytest.approx(0.001 * np.mean([10 * s + j for s in range(3) for j in range(4)]))
    text = verdict_lines(rows)
    assert text.startswith("- pkl, WT: +1.2 Dice points") and text.endswith("better than the baseline")
