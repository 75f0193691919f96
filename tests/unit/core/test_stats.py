"""evalkit.core.stats: the reports' paired comparison (the gate decides with evalkit.core.decision), validated by
simulation (fixed seeds, vectorized, a few seconds).

The two promises of the issue, checked here:
  - false-fail rate <= 1% when the variant equals its parent, at any n and any amount of disagreement;
  - a 5-point accuracy drop is caught >= 90% of the time at 500 paired items (when the variant disagrees with its
    parent on <= 8% of items; with more disagreement the verdict's minimum detectable drop says it cannot).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import pytest

import evalkit.core.stats as stats
from evalkit.core.stats import (StatOptions, binom_cdf, binom_sf, items_needed, minimum_detectable_drop, paired_drop,
                           rate_test)

ACC = 0.6  # parent accuracy in the simulations


def _flip_rates(psi: float, drop: float, acc: float = ACC) -> tuple[float, float, float]:
    """Cell probabilities (parent right & variant wrong, parent wrong & variant right, concordant) for a
    variant that disagrees with its parent on a share `psi` of items and is `drop` worse on average."""
    worse, better = (psi + drop) / 2, (psi - drop) / 2
    assert worse <= acc and better <= 1 - acc and better >= 0, "scenario out of range"
    return worse, better, 1 - worse - better


@lru_cache(maxsize=None)
def _fails(worse: int, better: int, n: int, margin: float) -> bool:
    """The real `paired_drop` on a pair with these discordant counts (binary scores depend on nothing else)."""
    parent = [1.0] * worse + [0.0] * better + [1.0, 0.0] * ((n - worse - better) // 2)
    parent += [1.0] * (n - len(parent))
    variant = [0.0] * worse + [1.0] * better + parent[worse + better:]
    return paired_drop(parent, variant, margin=margin).failed


def _fail_rate(n: int, psi: float, drop: float, reps: int, seed: int, margin: float = 0.0) -> float:
    """Share of `reps` simulated (parent, variant) runs of n paired binary items that the gate fails."""
    rng = np.random.default_rng(seed)
    cells = rng.multinomial(n, _flip_rates(psi, drop), size=reps)  # (reps, 3): worse, better, concordant
    pairs, counts = np.unique(cells[:, :2], axis=0, return_counts=True)
    failed = sum(int(c) for (w, b), c in zip(pairs, counts) if _fails(int(w), int(b), n, margin))
    return failed / reps


# --- the promises -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [20, 50, 200, 500, 1000])
@pytest.mark.parametrize("psi", [0.02, 0.10, 0.30, 2 * ACC * (1 - ACC)])  # last: independent errors, same accuracy
def test_false_fail_rate_at_most_one_percent_when_variant_equals_parent(n: int, psi: float) -> None:
    rate = _fail_rate(n, psi, drop=0.0, reps=100_000, seed=n)
    assert rate <= 0.01, f"n={n}, disagreement {psi:.2f}: false-fail rate {rate:.4f} > 1%"


@pytest.mark.parametrize("psi", [0.05, 0.06, 0.07, 0.08])
def test_five_point_drop_caught_90_percent_at_500_items(psi: float) -> None:
    rate = _fail_rate(500, psi, drop=0.05, reps=20_000, seed=7)
    assert rate >= 0.90, f"disagreement {psi:.2f}: 5-point drop caught only {rate:.3f} of the time"


def test_practical_margin_costs_little_power_at_500_items() -> None:
    assert _fail_rate(500, 0.08, drop=0.05, reps=20_000, seed=7, margin=0.01) >= 0.90


@pytest.mark.parametrize("psi", [0.15, 0.30])
def test_when_the_drop_is_hard_to_see_the_verdict_says_so(psi: float) -> None:
    """Not a silent pass: where 500 items cannot catch 5 points 90% of the time, the reported MDD exceeds 5."""
    power = _fail_rate(500, psi, drop=0.05, reps=20_000, seed=3)
    assert power < 0.90
    assert minimum_detectable_drop(500, psi) > 0.05
    assert items_needed(0.05, psi) > 500


@pytest.mark.parametrize("n", [50, 200, 1000])
@pytest.mark.parametrize("psi", [0.05, 0.20])
def test_reported_mdd_is_detected_at_least_at_the_quoted_power(n: int, psi: float) -> None:
    mdd = minimum_detectable_drop(n, psi)
    psi_alt = max(psi, mdd)  # a drop needs at least that many discordant items
    if mdd > ACC or (psi_alt - mdd) / 2 > 1 - ACC:
        pytest.skip("detectable drop larger than the simulated parent can lose")
    power = _fail_rate(n, psi_alt, drop=mdd, reps=20_000, seed=11)
    assert power >= 0.88, f"n={n}: quoted MDD {mdd:.3f} detected only {power:.3f} of the time"


def test_small_samples_never_fail_on_noise_and_report_they_are_blind() -> None:
    r = paired_drop([1, 1, 1, 1, 0] * 4, [1, 1, 1, 0, 0] * 4)  # 20 items, 4 lost, 0 gained
    assert not r.failed  # p = 1/16: not enough evidence at alpha = 1%
    assert r.p_value == pytest.approx(1 / 16)
    assert r.underpowered(0.05) and r.mdd > 0.5
    assert r.items_needed(0.05) > 20


# --- continuous scores: the sign-flip test --------------------------------------------------------------------------


def _f1_like(rng: np.random.Generator, reps: int, n: int, drop: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-item F1-like scores: mostly 0/1 with partial overlaps; the variant loses `drop` on average."""
    parent = np.clip(rng.choice([0.0, 1.0, 0.5, 0.8], size=(reps, n), p=[0.3, 0.5, 0.1, 0.1]), 0, 1)
    noise = rng.normal(0.0, 0.15, size=(reps, n)) * (rng.random((reps, n)) < 0.3)  # 30% of items move a little
    variant = np.clip(parent + noise, 0.0, 1.0)
    variant -= (variant.mean(axis=1, keepdims=True) - parent.mean(axis=1, keepdims=True))  # same mean...
    variant = np.clip(variant, 0.0, 1.0)
    loss = np.minimum(variant, 0.8)  # ...then some items lose up to 0.8 each, `drop` on average
    lost = rng.random((reps, n)) < drop / loss.mean(axis=1, keepdims=True)
    return parent, variant - loss * lost


def test_sign_flip_false_fail_rate_is_at_alpha_for_continuous_scores() -> None:
    rng = np.random.default_rng(5)
    reps, n = 1000, 150
    parent, variant = _f1_like(rng, reps, n, drop=0.0)
    swap = rng.random((reps, n)) < 0.5  # exchangeable by construction: the null hypothesis exactly
    a, b = np.where(swap, variant, parent), np.where(swap, parent, variant)
    rate = np.mean([paired_drop(a[i], b[i]).failed for i in range(reps)])
    # A sign-flip test at alpha has size alpha on continuous data; 3 Monte Carlo standard errors above it.
    assert rate <= 0.01 + 3 * math.sqrt(0.01 * 0.99 / reps), rate


def test_sign_flip_catches_a_five_point_f1_drop_at_500_items() -> None:
    rng = np.random.default_rng(6)
    parent, variant = _f1_like(rng, 200, 500, drop=0.05)
    assert np.mean(parent - variant) == pytest.approx(0.05, abs=0.005)
    results = [paired_drop(parent[i], variant[i]) for i in range(200)]
    assert np.mean([r.failed for r in results]) >= 0.90
    assert all(r.method.startswith("sign-flip") for r in results)


def test_sign_flip_p_value_is_the_same_every_run() -> None:
    rng = np.random.default_rng(8)
    parent, variant = _f1_like(rng, 1, 120, drop=0.02)
    first = paired_drop(parent[0], variant[0]).p_value
    stats._sign_matrix.cache_clear()
    assert paired_drop(parent[0], variant[0]).p_value == first
    assert paired_drop(parent[0], variant[0], options=StatOptions(seed=1)).p_value != first


# --- building blocks ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 7, 30])
@pytest.mark.parametrize("p", [0.05, 0.5, 0.9])
def test_binomial_tails_match_direct_sums(n: int, p: float) -> None:
    pmf = [math.comb(n, j) * p**j * (1 - p) ** (n - j) for j in range(n + 1)]
    for k in range(-1, n + 2):
        assert binom_sf(k, n, p) == pytest.approx(sum(pmf[max(k, 0):]), abs=1e-12)
        assert binom_cdf(k, n, p) == pytest.approx(sum(pmf[: max(k + 1, 0)]), abs=1e-12)


def test_binomial_tail_stays_finite_for_large_n() -> None:
    assert 0.0 < binom_sf(5600, 10_000, 0.5) < 1e-30


@pytest.mark.parametrize("target", [0.01, 0.05, 0.2])
@pytest.mark.parametrize("m2", [0.0, 0.05, 0.4])
def test_items_needed_reaches_the_target(target: float, m2: float) -> None:
    n = items_needed(target, m2)
    assert minimum_detectable_drop(n, m2) <= target + 1e-12
    assert minimum_detectable_drop(n - 1, m2) > target - 1e-12


@pytest.mark.parametrize(
    ("scores", "threshold", "direction", "significant"),
    [
        ([0] * 32, 0.9, "below", True),  # the all-empty model: compliance 0 vs floor 0.9
        ([1] * 30 + [0] * 2, 0.9, "below", False),  # 94%: not below a 90% floor
        ([1] * 24 + [0] * 8, 0.9, "below", False),  # 75% on 32 items: not confidently below 90% (p=0.018)
        ([1] * 20 + [0] * 12, 0.9, "below", True),  # 62%: confidently below
        ([1.0] * 12, 1.0, "below", False),  # a floor of 1 is met by a perfect run
    ],
)
def test_rate_test_cases(scores: list[float], threshold: float, direction: str, significant: bool) -> None:
    assert rate_test(scores, threshold, direction=direction).significant is significant  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("parent", "variant", "message"),
    [
        ([1.0, float("nan")], [1.0, 1.0], "NaN"),
        ([1.0, 0.0], [1.0], "same items"),
        ([1.0, 2.0], [1.0, 1.0], r"\[0, 1\]"),
    ],
)
def test_bad_inputs_get_one_clear_error(parent: list[float], variant: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        paired_drop(parent, variant)


def test_options_are_validated() -> None:
    with pytest.raises(ValueError, match="alpha"):
        StatOptions(alpha=0.7)
    with pytest.raises(ValueError, match="resamples"):
        StatOptions(resamples=10)


def test_identical_runs_never_fail_and_report_no_disagreement() -> None:
    r = paired_drop([1, 0, 1, 1] * 50, [1, 0, 1, 1] * 50)
    assert (r.worse, r.better, r.p_value, r.failed, r.recovery) == (0, 0, 1.0, False, 1.0)
    assert "detectable drop" in r.describe()
