"""evalkit.core.decision: the decision core's behaviour at the corners, and a few seeded Monte Carlo checks
(seconds).

The long simulation tables live in scripts/simulate_gate.py; here every property is pinned on small inputs.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from evalkit.core import stats
from evalkit.core.decision import (FAIL, INCONCLUSIVE, PASS, Criteria, PairedTask, TaskShape, TaskSummary,
                                   Weights, decide, decide_batch, family, items_needed_floor, items_needed_recovery,
                                   plan, recovery_pass_probability, recovery_power, run_decision, weighted_holm)
from evalkit.core.decision.planning import floor_fail_probability, floor_pass_probability
from evalkit.core.decision.pvalues import (ENUMERATE, PINELIS, _enumerated_sf, binom_cdf, binom_sf, el_sf,
                                           el_stats, norm_sf, paired_binary_z, signflip_sf)

ONLY_RECOVERY = Criteria(min_compliance=None, beat_baseline=False)


def _pair(n: int, lost: int, gained: int, right: int | None = None) -> tuple[list[float], list[float]]:
    """Parent and variant 0/1 scores on n items: the variant loses `lost` of the parent's right answers and gains
    `gained` of its wrong ones."""
    right = n // 2 if right is None else right
    parent = [1.0] * right + [0.0] * (n - right)
    variant = parent.copy()
    variant[:lost] = [0.0] * lost
    variant[right:right + gained] = [1.0] * gained
    return parent, variant


def _recovery(parent, variant, *, alpha=0.05, run_size=1, criteria=ONLY_RECOVERY):
    return decide({"t": PairedTask(variant, parent)}, criteria, alpha=alpha, run_size=run_size).check("t", "recovery")


# ------------------------------------------------------------------------------------------------------ corners


def test_no_discordant_pairs_never_fails_and_passes_once_n_suffices() -> None:
    for n in (1, 10, 20):
        c = _recovery([1.0, 0.0] * (n // 2) + [1.0] * (n % 2), [1.0, 0.0] * (n // 2) + [1.0] * (n % 2))
        assert c.status == "inconclusive" and c.p_value >= 0.5
    # no discordance at all in n items: pass needs sqrt(n D / (1 - D)) >= z(1 - alpha) (Tango's score at D)
    n_min = math.ceil(1.6448536269514722 ** 2 * 0.95 / 0.05)
    assert _recovery(*_pair(n_min - 2, 0, 0)).status == "inconclusive"
    assert _recovery(*_pair(n_min + 1, 0, 0)).status == "pass"


def test_one_item_decides_nothing() -> None:
    for p, v in (([1.0], [0.0]), ([0.0], [1.0]), ([1.0], [1.0]), ([0.8], [0.1])):
        d = decide({"t": PairedTask(v, p, compliant=[True], baseline=0.5)}, Criteria(min_metric=0.5))
        assert {c.status for c in d.checks} == {"inconclusive"}, d.describe()
    # a floor it cannot meet is exact: compliance 0 of 1 against 0.9 has p = 0.1
    d = decide({"t": PairedTask([1.0], compliant=[False])}, Criteria(), alpha=0.4)
    assert d.check("t", "compliance").p_value == pytest.approx(0.1)


def test_all_equal_scores() -> None:
    half = [0.5] * 200
    c = _recovery(half, half)
    assert c.status == "pass" and c.estimate == 0.0
    d = decide({"t": PairedTask(half, baseline=0.5)}, Criteria(min_compliance=None, min_metric=0.5))
    assert d.check("t", "baseline").status == "fail"  # exactly the trivial baseline: confidently below b + margin
    assert d.check("t", "metric_floor").status == "pass"  # 200 items at 0.5: confidently above 0.5 - margin
    ones = decide({"t": PairedTask([1.0] * 200, compliant=[True] * 200)}, Criteria(min_metric=0.9))
    assert [c.status for c in ones.checks] == ["pass", "pass"]


def test_ties_and_item_order_do_not_change_anything() -> None:
    rng = np.random.default_rng(0)
    parent = rng.choice([0.0, 0.5, 1.0], 300)
    variant = np.where(rng.random(300) < 0.8, parent, rng.choice([0.0, 0.5, 1.0], 300))
    perm = rng.permutation(300)
    a = _recovery(parent, variant)
    b = _recovery(parent[perm], variant[perm])
    assert (a.p_value, a.p_pass, a.status) == (b.p_value, b.p_pass, b.status)
    # equal magnitudes: the sign-flip guard is the exact McNemar test on the non-zero differences
    x = np.array([0.5, -0.5, 0.0])
    assert signflip_sf(x, np.array([[7, 2, 91]]))[0] == pytest.approx(stats.binom_sf(7, 9, 0.5))


def test_tiny_alpha_the_continuous_test_can_still_fail() -> None:
    c = _recovery([1.0] * 64, [0.2] * 64, alpha=1e-6)
    assert c.status == "fail" and c.p_value < 1e-9
    b = _recovery(*_pair(48, 24, 0), alpha=1e-6)
    assert b.status == "fail"
    # and never from a handful of items, whatever alpha: 3 lost of 3 under exchangeability has p = 1/8
    assert _recovery([1.0] * 3, [0.0] * 3, alpha=0.1).p_value >= 0.125 - 1e-12


def test_n_zero_is_inconclusive() -> None:
    t = TaskSummary(0, True, np.array([0.0, 1.0]), np.zeros((1, 2), int), np.array([-1.0, 0.0, 1.0]),
                    np.zeros((1, 3), int), np.zeros(1, int), baseline=0.25)
    b = decide_batch({"t": t})
    assert b.status.tolist() == [[INCONCLUSIVE] * 3]


# ------------------------------------------------------------------------------------------------- the tests


def test_closed_form_equals_empirical_likelihood_for_binary_scores() -> None:
    rng = np.random.default_rng(1)
    cells = np.vstack([rng.multinomial(300, [0.07, 0.03, 0.90], size=50), [[0, 0, 300], [9, 0, 291], [300, 0, 0]]])
    for delta in (0.0, 0.01, 0.05):
        zs, zl = paired_binary_z(cells[:, 0], cells[:, 1], 300, delta)
        es, el = el_stats(np.array([1 - delta, -1 - delta, -delta]), cells, -1 - delta)
        up = cells[:, 0] - cells[:, 1] > 300 * delta
        np.testing.assert_allclose(zs[up], es[up], rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(zl[up], el[up], rtol=1e-9, atol=1e-9)
        es, el = el_stats(np.array([delta - 1, delta + 1, delta]), cells, delta - 1)
        down = ~up & (cells[:, 0] - cells[:, 1] < 300 * delta)
        np.testing.assert_allclose(-zs[down], es[down], rtol=1e-9, atol=1e-9)


def test_sign_flips_are_enumerated_exactly_and_bounded_beyond() -> None:
    rng = np.random.default_rng(2)
    for m in (12, ENUMERATE):  # exact: against the convolution of the signs' two-point laws (integer magnitudes)
        a = rng.integers(1, 10, m)
        x = a * np.where(rng.random(m) < 0.8, 1, -1)
        law = np.ones(1)  # the law of T = sum (1 + e_i) a_i = S + sum(a) on 0..2 sum(a)
        for ai in a:
            new = np.zeros(law.size + 2 * ai)
            new[: law.size] += law / 2
            new[2 * ai:] += law / 2
            law = new
        exact = law[int(x.sum() + a.sum()):].sum()
        assert signflip_sf(x.astype(float), np.ones((1, m), int))[0] == pytest.approx(exact)
    for _ in range(5):  # beyond: the Hoeffding / Pinelis bound, never below the exact tail
        a = np.round(rng.uniform(0.1, 1.0, 30), 3)
        x = a * np.where(rng.random(30) < 0.75, 1, -1)
        p = signflip_sf(x, np.ones((1, 30), int))[0]
        assert p >= _enumerated_sf(a, x.sum()) - 1e-12
        z = x.sum() / np.linalg.norm(a)
        assert p == pytest.approx(min(1.0, math.exp(-z * z / 2), PINELIS * float(norm_sf(z))))


def test_binomial_tails_match_the_log_space_sums() -> None:
    for n, p in ((48, 0.9), (500, 0.85), (1, 0.5), (1000, 0.03)):
        for k in (0, 1, n // 3, n - 1, n):
            assert float(binom_cdf(k, n, p)) == pytest.approx(stats.binom_cdf(k, n, p), rel=1e-9, abs=1e-300)
            assert float(binom_sf(k, n, p)) == pytest.approx(stats.binom_sf(k, n, p), rel=1e-9, abs=1e-300)


def test_el_sf_edges() -> None:
    assert el_sf(np.array([0.3]), np.array([[5]]), 0.0)[0] == 0.0  # support [0, ..) and H0 E y <= 0: y = 0 a.s.
    assert el_sf(np.array([0.0]), np.array([[5]]), 0.0)[0] == 0.5
    # all values equal and positive: the least-favourable null is the two-point law on {c, lo}
    zs, zl = el_stats(np.array([0.55]), np.array([[5]]), -0.45)
    assert zs[0] == pytest.approx(math.sqrt(5) * 0.55 / math.sqrt(0.55 * 0.45))
    assert zl[0] == pytest.approx(math.sqrt(2 * 5 * math.log(1 + 0.55 / 0.45)))


# ------------------------------------------------------------------------------------------------ multiplicity


def _closed_testing(p: np.ndarray, w: np.ndarray, alpha: float) -> list[bool]:
    """Closed testing with weighted Bonferroni local tests, by brute force over every intersection."""
    k = len(p)
    out = []
    for j in range(k):
        ok = True
        for r in range(1, k + 1):
            for sub in itertools.combinations(range(k), r):
                if j in sub and not any(p[i] <= alpha * w[i] / w[list(sub)].sum() for i in sub):
                    ok = False
        out.append(ok)
    return out


def test_weighted_holm_is_the_closed_procedure() -> None:
    rng = np.random.default_rng(3)
    for _ in range(300):
        k = int(rng.integers(1, 6))
        w = rng.uniform(0.05, 1.0, k)
        w /= w.sum()
        p = rng.uniform(0, 0.08, k) ** rng.uniform(0.5, 2, k)
        reject, adjusted, level = weighted_holm(p[None], w, 0.05)
        assert reject[0].tolist() == _closed_testing(p, w, 0.05)
        assert np.all(level[0] >= 0.05 * w - 1e-15)  # never below the Bonferroni share


def test_family_budget_sums_to_the_model_alpha() -> None:
    shapes = {"a": TaskShape(), "b": TaskShape(binary=False), "c": TaskShape(paired=False)}
    crit = {"a": Criteria(min_metric=0.5), "b": Criteria(beat_baseline=False), "c": Criteria(min_compliance=None)}
    checks, share = family(shapes, crit, Weights())
    assert share.sum() == pytest.approx(1.0)
    assert ("c", "recovery") not in checks and ("b", "baseline") not in checks and ("c", "compliance") not in checks
    rec = [s for (t, c), s in zip(checks, share) if c == "recovery"]
    assert rec[0] == pytest.approx(1.0 / (2 + 0.05 * 7))  # 2 recoveries at 1, 7 other checks at 0.05
    d = run_decision({f"m{i}": {"t": PairedTask(*reversed(_pair(100, 1, 1)))} for i in range(4)}, alpha=0.05)
    assert all(m.alpha == pytest.approx(0.0125) and m.run_size == 4 for m in d.models.values())


def test_decision_is_deterministic() -> None:
    rng = np.random.default_rng(4)
    parent = rng.random(400).round(2)
    variant = np.clip(parent - rng.choice([0, 0, 0, 0.3], 400), 0, 1)
    a = decide({"t": PairedTask(variant, parent, baseline=0.3)})
    b = decide({"t": PairedTask(variant, parent, baseline=0.3)})
    assert a == b


# ------------------------------------------------------------------------------------------------ three outcomes


def test_floor_three_outcomes_and_their_reasons() -> None:
    def compliance(k: int, n: int) -> object:
        flags = [True] * k + [False] * (n - k)
        return decide({"t": PairedTask([1.0] * n, compliant=flags)}, Criteria(beat_baseline=False),
                      run_size=12).check("t", "compliance")

    assert compliance(950, 1000).status == "pass"
    assert compliance(800, 1000).status == "fail"
    c = compliance(88, 100)
    assert c.status == "inconclusive" and c.needed is not None
    assert "would" in c.reason and f"{c.needed.n:,}" in c.reason
    assert c.power == pytest.approx(floor_fail_probability(100, 0.85, floor=0.9, alpha=c.share * 0.05 / 12))


def test_require_power_fails_inconclusive_recovery_on_its_bound() -> None:
    parent, variant = _pair(200, 6, 5)
    crit = Criteria(min_compliance=None, beat_baseline=False, require_power=True)
    c = _recovery(parent, variant, criteria=crit, run_size=12)
    assert c.status == "fail" and c.underpowered and c.reason.startswith("underpowered")
    assert c.upper is not None and c.upper >= 0.05  # the upper confidence bound of the drop, not the disagreement
    assert c.power == pytest.approx(recovery_power(200, 11 / 200, 0.05, tolerated_drop=0.01, alpha=c.share * 0.05 / 12))
    assert _recovery(*_pair(3000, 60, 60), criteria=crit, run_size=12).status == "pass"


def test_a_real_drop_fails_and_names_its_numbers() -> None:
    c = _recovery(*_pair(500, 40, 5), run_size=12)
    assert c.status == "fail" and c.lower is not None and c.lower > 0.01
    assert "more than the tolerated 1.0 pts" in c.reason


def test_reference_models_get_floors_and_baseline_only() -> None:
    d = decide({"t": PairedTask([1.0] * 30 + [0.0] * 70, compliant=[True] * 100, baseline=0.25)},
               Criteria(min_metric=0.5))
    assert [c.check for c in d.checks] == ["compliance", "metric_floor", "baseline"]
    assert d.check("t", "metric_floor").status == "fail"


def test_criteria_and_inputs_are_validated() -> None:
    with pytest.raises(ValueError, match="tolerated_drop"):
        Criteria(tolerated_drop=0.05, detect_drop=0.05)
    with pytest.raises(ValueError, match="same items"):
        PairedTask([1.0, 0.0], [1.0])
    with pytest.raises(ValueError, match="NaN"):
        PairedTask([float("nan")])
    with pytest.raises(ValueError, match="binary"):
        PairedTask([0.5], kind="binary")
    with pytest.raises(ValueError, match="run_size"):
        decide({"t": PairedTask([1.0])}, run_size=0)


# ------------------------------------------------------------------------------------------------------ planning


def test_items_needed_is_about_the_smallest_n_that_reaches_its_targets() -> None:
    kw = dict(detect_drop=0.05, tolerated_drop=0.01, alpha_fail=0.001, alpha_pass=0.004)
    need = items_needed_recovery(0.08, **kw)
    a, p = kw["alpha_fail"], kw["alpha_pass"]
    assert need.power >= 0.90 and need.clear_probability >= 0.90
    below = lambda n: n - 1 - n // 128  # noqa: E731  (the search stops within 1/128 of the smallest n)
    assert recovery_power(below(need.catch), 0.08, 0.05, tolerated_drop=0.01, alpha=a) < 0.90
    assert recovery_pass_probability(below(need.clear), 0.08, 0.0, detect_drop=0.05, alpha=p) < 0.90
    strict = items_needed_recovery(0.08, clear=1 - a, **kw)
    assert strict.clear_probability >= 1 - a and strict.n >= need.n
    f = items_needed_floor(0.9, 0.05, alpha_fail=1e-4, alpha_pass=0.004)
    assert floor_fail_probability(f.n, 0.85, floor=0.9, alpha=1e-4) >= 0.9
    assert floor_pass_probability(f.n, 0.9, low=0.85, alpha=0.004) >= 0.9


def test_plan_says_when_the_manifest_asks_for_too_few_items() -> None:
    p = plan({"arc": TaskShape(), "squad": TaskShape(binary=False)}, Criteria(plan_disagreement=0.02),
             run_size=12, asked={"arc": 2000, "squad": 48})
    assert p.needed("arc") <= 2000 and p.short() and p.short()[0].startswith("squad: 48 items")


# -------------------------------------------------------------------------------------------- seeded Monte Carlo


def _binary_rows(rng, n: int, reps: int, lose: float, gain: float) -> TaskSummary:
    cells = rng.multinomial(n, [lose, gain, 1 - lose - gain], size=reps)
    return TaskSummary.binary_counts(n, np.full(reps, n // 2), worse=cells[:, 0], better=cells[:, 1])


def test_mc_level_at_the_tolerated_drop_and_under_skew() -> None:
    rng = np.random.default_rng(5)
    # paired 0/1 at the composite null's boundary (drop = tolerated_drop), alpha 0.01 on a lone recovery check
    t = _binary_rows(rng, 1000, 20000, 0.03, 0.02)
    rate = np.mean(decide_batch({"t": t}, ONLY_RECOVERY, alpha=0.01).status[:, 0] == FAIL)
    assert rate <= 0.013
    # F1 differences with mean 0: many small losses, rare large gains (the skew that broke the sign-flip test)
    for n in (64, 500):
        counts = rng.multinomial(n, [0.02, 0.88, 0.10], size=4000)
        t = TaskSummary(n, False, np.array([0.0, 1.0]), np.tile([0, n], (4000, 1)), np.array([-1.0, 0.0, 0.2]),
                        counts)
        assert np.mean(decide_batch({"t": t}, ONLY_RECOVERY, alpha=0.01).status[:, 0] == FAIL) <= 0.01


def test_mc_exact_power_and_pass_probability_agree_with_simulation() -> None:
    rng = np.random.default_rng(6)
    n, psi = 400, 0.10
    t = _binary_rows(rng, n, 6000, (psi + 0.05) / 2, (psi - 0.05) / 2)
    st = decide_batch({"t": t}, ONLY_RECOVERY, alpha=0.01).status[:, 0]
    exact = recovery_power(n, psi, 0.05, tolerated_drop=0.01, alpha=0.01)
    assert abs(np.mean(st == FAIL) - exact) <= 3 * math.sqrt(exact * (1 - exact) / 6000) + 1e-3
    t = _binary_rows(rng, n, 6000, psi / 2, psi / 2)
    st = decide_batch({"t": t}, ONLY_RECOVERY, alpha=0.01).status[:, 0]
    exact = recovery_pass_probability(n, psi, 0.0, detect_drop=0.05, alpha=0.01)
    assert abs(np.mean(st == PASS) - exact) <= 3 * math.sqrt(exact * (1 - exact) / 6000) + 1e-3


def test_mc_a_healthy_run_is_green_and_a_drop_is_caught_at_the_recommended_n() -> None:
    rng = np.random.default_rng(7)
    reps, models, crit = 400, 12, Criteria()
    shapes = {t: TaskShape() for t in ("a", "b", "c", "d")}
    need = plan(shapes, Criteria(plan_disagreement=0.1), run_size=models).entries
    n = next(e.needed.n for e in need if e.check == "recovery")
    red = np.zeros(reps, bool)
    for m in range(models):
        tasks = {}
        for i, name in enumerate(shapes):
            lose, gain = (0.075, 0.025) if (m, i) == (0, 0) else (0.05, 0.05)
            cells = rng.multinomial(n, [lose, gain, 1 - lose - gain], size=reps)
            cw = rng.binomial(n, 0.005, reps)
            tasks[name] = TaskSummary.binary_counts(n, rng.binomial(n, 0.6, reps), worse=cells[:, 0],
                                                    better=cells[:, 1], compliant=rng.binomial(n, 0.97, reps),
                                                    cut_worse=cw, cut_better=rng.binomial(n, 0.005, reps),
                                                    baseline=0.25)
        status = decide_batch(tasks, crit, alpha=0.05, run_size=models).model_status
        if m == 0:
            assert np.mean(status == FAIL) >= 0.85  # exact >= 0.90; 400 replicates
        else:
            red |= status == FAIL
    assert np.mean(red) <= 0.05


@pytest.mark.parametrize("module", ["evalkit", "evalkit.core.decision", "evalkit.core.decision.core",
                                    "evalkit.core.decision.holm", "evalkit.core.decision.planning",
                                    "evalkit.core.decision.pvalues", "evalkit.core.decision.verdicts"])
def test_doctests(module: str) -> None:
    """The examples in the docstrings are the API's documentation: they must run as written."""
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted > 0 and result.failed == 0


def test_the_settings_import_without_numpy_and_the_statistics_load_on_first_use() -> None:
    """The manifest builds Criteria and Weights on load, and the pytest plugin loads the manifest in every pytest
    run of a project with evalkit installed: the settings must not pull numpy in."""
    import subprocess
    import sys

    code = ("import sys, evalkit.core.decision as d; d.Criteria(); d.Weights(); d.TaskShape(); "
            "print('numpy' in sys.modules, end=' '); d.decide; print('numpy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "True"]
