"""Equivalence, not just no difference: TOST on synthetic seeds with a known answer (equal, shifted beyond the
margin, too few seeds), checked against statsmodels' own ttost_ind; the speed ratio's bootstrap interval; and the
margins themselves: two sets of real data must come out equivalent."""
import numpy as np
import pytest
from statsmodels.stats.weightstats import ttost_ind

from common import metrics, tasks


def normal(mean, n, seed, sd=1.0):
    return np.random.default_rng(seed).normal(mean, sd, n)


def test_equal_samples_are_equivalent_within_the_margin():
    result = metrics.equivalence(normal(0.0, 12, 1), normal(0.0, 12, 2), margin=1.5)
    assert result["verdict"] == "equivalent within ±1.5" and result["p_tost"] < metrics.ALPHA
    assert result["p"] > metrics.ALPHA  # and the difference test sees nothing either


def test_a_shift_beyond_the_margin_is_different_not_equivalent():
    result = metrics.equivalence(normal(0.0, 12, 1), normal(3.0, 12, 2), margin=1.0)
    assert result["verdict"] == f"different (p = {result['p']:.2g})" and result["p"] < metrics.ALPHA
    assert result["p_tost"] > 0.5


def test_too_few_seeds_are_inconclusive_and_say_how_many_would_decide():
    a, b = normal(0.0, 3, 1), normal(0.2, 3, 2)
    result = metrics.equivalence(a, b, margin=1.0)
    assert result["p_tost"] >= metrics.ALPHA and result["p"] >= metrics.ALPHA
    n = result["seeds_needed"]
    assert result["verdict"] == f"inconclusive: run more seeds (about {n} would decide)" and n > 3
    # n seeds a side with the same gap and spread would decide it: TOST passes there, and not with n - 1
    gap, sd = abs(a.mean() - b.mean()), np.sqrt((a.var(ddof=1) + b.var(ddof=1)) / 2)
    assert metrics.seeds_to_decide(gap, sd, 1.0) == n
    assert metrics.seeds_to_decide(gap, sd / 10, 1.0) < n  # less spread: fewer seeds
    one = metrics.equivalence([0.1], [0.2], margin=1.0)
    assert one["verdict"].startswith("inconclusive: one seed a side") and one["p_tost"] is None


def test_tost_p_is_statsmodels_ttost_ind_with_unequal_variances():
    for seed in range(5):
        a, b = normal(0.0, 7, seed), normal(0.3, 5, seed + 10, sd=2.0)
        ours = metrics.equivalence(a, b, margin=1.2)["p_tost"]
        theirs = ttost_ind(a, b, -1.2, 1.2, usevar="unequal")[0]
        assert ours == pytest.approx(theirs, rel=1e-12)


def test_identical_values_decide_without_a_test():
    assert metrics.equivalence([2.0, 2.0], [2.0, 2.0], margin=0.1)["verdict"] == "equivalent within ±0.1"
    assert metrics.equivalence([2.0, 2.0], [3.0, 3.0], margin=0.1)["verdict"].startswith("different")


def test_speed_ratio_interval_and_tie():
    rng = np.random.default_rng(0)
    fast = [rng.normal(1.0, 0.05, 400), rng.normal(1.0, 0.05, 400)]
    slow = [rng.normal(1.5, 0.05, 400)]
    result = metrics.speed_ratio(fast, slow)
    assert result["verdict"] == "a faster" and result["low"] < 1.5 < result["high"] and result["low"] > 1.4
    assert result["ratio"] == pytest.approx(np.median(slow[0]) / np.median(np.concatenate(fast)))
    tie = metrics.speed_ratio([rng.normal(1.0, 0.2, 50)], [rng.normal(1.0, 0.2, 50)])
    assert tie["verdict"] == "tie" and tie["low"] <= 1.0 <= tie["high"]
    assert metrics.speed_ratio([np.array([1.0])], [np.array([2.0])])["verdict"] == "not enough timed steps"


def test_two_sets_of_real_data_are_equivalent_within_the_margins():
    """The margins' own claim: real data scored against the reference, five draws a side, come out equivalent."""
    task = tasks.TASKS["ring8"]
    task_data = task.load()
    rng = np.random.default_rng(7)
    scores = [task.score(task_data.source.next_batch(rng, task.eval_samples), task_data, {}) for _ in range(10)]
    for name in ("high_quality_pct", "mode_kl", "mmd_rbf", "energy_distance", "modes_covered"):
        a, b = [s[name] for s in scores[:5]], [s[name] for s in scores[5:]]
        verdict = metrics.equivalence(a, b, metrics.EQUIVALENCE_MARGINS[name])["verdict"]
        assert verdict.startswith("equivalent"), (name, verdict, a, b)
