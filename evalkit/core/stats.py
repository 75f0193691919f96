"""A paired, one-sided, sample-size-aware test of "the variant is worse than its parent", for reports.

The gate itself no longer decides with this module: its statistical checks are one family per model in
`evalkit.core.decision` (docs/gate.md). What remains here is the descriptive paired comparison the reports print
beside the gate's verdicts (`evalkit.report.tables.compare_entries`), and the exact binomial tails.

Why paired: parent and variant answer the *same* items, and a quantized variant agrees with its parent on most of
them, so the noise that matters is the disagreement, not the spread of either score. A fixed "recovery >= 0.95x" or
"within 8%" rule on a few hundred items ignores that and fails on noise; a paired test uses it.

The statistic (one, for every per-item score in [0, 1]):

  d_i = variant_i - parent_i,  T = sum(d_i).  H0: parent/variant labels are exchangeable within each pair
  (the sign of each d_i is a fair coin); H1: the variant is worse.  One-sided p = P(T* <= T) under sign flips.

  - binary scores (accuracy, compliance): d_i is -1, 0 or +1, so the sign-flip distribution is exactly
    Binomial(worse + better, 1/2) on the discordant pairs: the exact one-sided McNemar test, in closed form.
  - continuous scores (SQuAD F1): the same sign-flip test by Monte Carlo, B fixed sign vectors from a fixed seed,
    p = (1 + #{T* <= T}) / (B + 1), which is a valid p-value for any B (and the same every run).

The comparison flags a variant when p < alpha AND the observed drop exceeds a practical margin (so a real but negligible
drop on thousands of items does not block a merge). alpha bounds the false-fail rate whatever n is: small n cannot
make the gate flaky. It can make the gate blind, so every result carries the minimum detectable drop (MDD) at its n:

  MDD = max(k * sqrt(m2 / n), k**2 / n),  k = z(1 - alpha) + z(power),  m2 = mean(d_i ** 2)

(normal approximation of the same sign-flip test; the k**2/n floor is the drop carried by few items that each
lose a whole point), and `items_needed(drop)` says how many items would detect a given drop.

>>> r = paired_drop([1, 1, 1, 0] * 50, [1, 1, 0, 0] * 50)
>>> r.worse, r.better, r.failed
(50, 0, True)
>>> paired_drop([1, 0] * 10, [1, 0] * 10).failed
False
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from statistics import NormalDist
from typing import Literal, Sequence

import numpy as np

__all__ = ["StatOptions", "PairedDrop", "RateTest", "paired_drop", "rate_test", "binom_sf", "binom_cdf",
           "minimum_detectable_drop", "items_needed"]

_EPS = 1e-12  # float slack when comparing sums of per-item scores


@dataclass(frozen=True, slots=True)
class StatOptions:
    """How strict the gate's tests are; one object so every check states the same numbers."""

    alpha: float = 0.01  # one-sided false-fail rate the gate tolerates when nothing changed
    power: float = 0.90  # power the minimum detectable drop is quoted at
    resamples: int = 4000  # sign-flip vectors for continuous scores (binary scores are exact)
    seed: int = 0  # fixes the sign-flip vectors: the same data gives the same p-value every run

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 0.5:
            raise ValueError(f"StatOptions.alpha must be in (0, 0.5), got {self.alpha}")
        if not 0.5 <= self.power < 1.0:
            raise ValueError(f"StatOptions.power must be in [0.5, 1), got {self.power}")
        if self.resamples < 99:
            raise ValueError(f"StatOptions.resamples must be >= 99 for a usable p-value, got {self.resamples}")

    @property
    def k(self) -> float:
        """z(1 - alpha) + z(power): the number of standard errors a drop must span to be detected."""
        z = NormalDist().inv_cdf
        return z(1.0 - self.alpha) + z(self.power)


@dataclass(frozen=True, slots=True)
class PairedDrop:
    """Outcome of the paired one-sided test on the same items; `describe()` is the line a reviewer reads."""

    n: int  # paired items
    parent_mean: float
    variant_mean: float
    worse: int  # items where the variant scored lower than the parent
    better: int  # items where it scored higher
    p_value: float  # one-sided, H0: no drop
    method: str  # "exact McNemar (binomial on discordant pairs)" or "sign-flip Monte Carlo (B=..., seed=...)"
    margin: float  # practical margin: an observed drop at or below it never fails
    second_moment: float  # mean(d_i ** 2), the null variance per item
    options: StatOptions

    @property
    def drop(self) -> float:
        """parent_mean - variant_mean: positive when the variant is worse."""
        return self.parent_mean - self.variant_mean

    @property
    def recovery(self) -> float | None:
        """variant_mean / parent_mean, the ratio teams quote; None when the parent scores 0."""
        return self.variant_mean / self.parent_mean if self.parent_mean > 0 else None

    @property
    def significant(self) -> bool:
        return self.p_value < self.options.alpha

    @property
    def failed(self) -> bool:
        """A significant drop larger than the practical margin."""
        return self.significant and self.drop > self.margin + _EPS

    @property
    def mdd(self) -> float:
        """Minimum detectable drop at this n (see module docstring)."""
        return minimum_detectable_drop(self.n, self.second_moment, self.options)

    def power_at(self, drop: float) -> float:
        """Approximate probability that a true drop of `drop` fails this gate at this n."""
        if self.n == 0 or drop <= 0:
            return 0.0
        spread = math.sqrt(max(self.second_moment, drop) / self.n)
        return NormalDist().cdf(drop / spread - NormalDist().inv_cdf(1.0 - self.options.alpha))

    def underpowered(self, target_drop: float) -> bool:
        """True when this n could not reliably (at `options.power`) detect a drop of `target_drop`."""
        return self.mdd > target_drop + _EPS

    def items_needed(self, target_drop: float) -> int:
        """Paired items needed to detect `target_drop` with `options.power`, at this run's disagreement."""
        return items_needed(target_drop, self.second_moment, self.options)

    def describe(self) -> str:
        """The numbers compared, in one line.

        >>> print(paired_drop([1, 1, 0, 0] * 25, [1, 0, 0, 0] * 25).describe())  # doctest: +NORMALIZE_WHITESPACE
        parent 0.500 -> variant 0.250 (drop 25.0 pts, recovery 0.50) on 100 paired items; worse on 25, better on 0;
        one-sided p=2.98e-08 (exact McNemar (binomial on discordant pairs)), alpha=0.01; detectable drop at this n:
        18.0 pts (90% power)
        """
        rec = f", recovery {self.recovery:.2f}" if self.recovery is not None else ""
        return (
            f"parent {self.parent_mean:.3f} -> variant {self.variant_mean:.3f} (drop {100 * self.drop:.1f} pts{rec}) "
            f"on {self.n} paired items; worse on {self.worse}, better on {self.better}; "
            f"one-sided p={self.p_value:.3g} ({self.method}), alpha={self.options.alpha:g}; "
            f"detectable drop at this n: {100 * self.mdd:.1f} pts ({100 * self.options.power:.0f}% power)"
        )


@dataclass(frozen=True, slots=True)
class RateTest:
    """One-sample test of a mean score against a floor: H0 mean >= threshold; a small p says the score is
    confidently below the floor."""

    n: int
    mean: float
    threshold: float
    direction: Literal["below"]
    p_value: float
    method: str
    options: StatOptions

    @property
    def significant(self) -> bool:
        return self.p_value < self.options.alpha

    def describe(self) -> str:
        """The numbers compared, in one line.

        >>> print(rate_test([1] * 3 + [0] * 7, 0.9, direction="below").describe())
        0.300 on 10 items vs 0.900: one-sided p=9.12e-06 that it is below (exact binomial)
        """
        return (
            f"{self.mean:.3f} on {self.n} items vs {self.threshold:.3f}: "
            f"one-sided p={self.p_value:.3g} that it is {self.direction} ({self.method})"
        )


def _binom_mass(js: np.ndarray, n: int, p: float) -> float:
    """P(X in js) for X ~ Binomial(n, p), 0 < p < 1: summed in log space so that large n stays finite."""
    lf = np.concatenate(([0.0], np.cumsum(np.log(np.arange(1, n + 1, dtype=np.float64)))))  # log k!, k = 0..n
    logs = lf[n] - lf[js] - lf[n - js] + js * math.log(p) + (n - js) * math.log1p(-p)
    top = logs.max()
    return float(min(1.0, math.exp(top) * np.exp(logs - top).sum()))


def binom_sf(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p), exact (log-space sum).

    >>> round(binom_sf(3, 3, 0.5), 12)
    0.125
    """
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    if p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    return _binom_mass(np.arange(k, n + 1), n, p)


def binom_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p).

    >>> binom_cdf(0, 2, 0.5)
    0.25
    """
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    if p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 0.0
    return _binom_mass(np.arange(0, k + 1), n, p)


def minimum_detectable_drop(n: int, second_moment: float, options: StatOptions = StatOptions()) -> float:
    """Smallest true drop the paired test detects with `options.power` at n items (capped at 1).

    >>> round(minimum_detectable_drop(500, 0.10), 3)
    0.051
    """
    if n <= 0:
        return 1.0
    k = options.k
    return min(1.0, max(k * math.sqrt(second_moment / n), k * k / n))


def items_needed(target_drop: float, second_moment: float, options: StatOptions = StatOptions()) -> int:
    """Paired items needed so that `minimum_detectable_drop` reaches `target_drop`.

    >>> items_needed(0.05, 0.10)
    521
    """
    if not 0.0 < target_drop <= 1.0:
        raise ValueError(f"target_drop must be in (0, 1], got {target_drop}")
    return math.ceil(options.k ** 2 * max(second_moment, target_drop) / target_drop ** 2)


def _as_scores(values: Sequence[float], what: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{what}: expected a flat sequence of per-item scores, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{what}: per-item scores contain NaN or inf; score unscorable items as 0, never NaN")
    if arr.size and (arr.min() < -_EPS or arr.max() > 1 + _EPS):
        raise ValueError(f"{what}: per-item scores must lie in [0, 1], got range [{arr.min()}, {arr.max()}]")
    out: np.ndarray = arr
    return out


def _is_binary(arr: np.ndarray) -> bool:
    return bool(np.all((arr == 0.0) | (arr == 1.0)))


@lru_cache(maxsize=8)
def _sign_matrix(n: int, resamples: int, seed: int) -> np.ndarray:
    """B fixed random sign vectors (B x n): fixed by the seed, independent of the data, reused across calls."""
    rng = np.random.default_rng(seed)
    signs = rng.integers(0, 2, size=(resamples, n), dtype=np.int8) * 2 - 1
    out: np.ndarray = signs.astype(np.float64)
    return out


def paired_drop(
    parent: Sequence[float],
    variant: Sequence[float],
    *,
    margin: float = 0.0,
    options: StatOptions = StatOptions(),
) -> PairedDrop:
    """One-sided paired test that `variant` scores lower than `parent` on the same items (same order).

    >>> r = paired_drop([1] * 100, [1] * 95 + [0] * 5)
    >>> (r.worse, r.better, round(r.p_value, 4), r.failed)
    (5, 0, 0.0312, False)
    """
    p = _as_scores(parent, "parent")
    v = _as_scores(variant, "variant")
    if p.shape != v.shape:
        raise ValueError(f"paired test needs the same items: parent has {p.size} scores, variant {v.size}")
    if not 0.0 <= margin < 1.0:
        raise ValueError(f"margin must be in [0, 1), got {margin}")
    n = int(p.size)
    d = v - p
    worse = int(np.sum(d < -_EPS))
    better = int(np.sum(d > _EPS))
    m2 = float(np.mean(d * d)) if n else 0.0
    if n == 0 or worse + better == 0:
        p_value, method = 1.0, "no discordant pairs"
    elif _is_binary(p) and _is_binary(v):
        # Sign flips of +-1 differences: the count of "worse" among the discordant pairs is Binomial(D, 1/2).
        p_value, method = binom_sf(worse, worse + better, 0.5), "exact McNemar (binomial on discordant pairs)"
    else:
        # Zero differences flip to zero, so the full-length sign matrix (cached per n) serves every call.
        flips = _sign_matrix(n, options.resamples, options.seed) @ np.abs(d)
        observed = float(d.sum())
        # A flipped sum is another labelling of the same pairs; count those at least as extreme (one-sided, low).
        extreme = int(np.sum(flips <= observed + 1e-9))
        p_value = (1 + extreme) / (options.resamples + 1)
        method = f"sign-flip Monte Carlo (B={options.resamples}, seed={options.seed})"
    return PairedDrop(
        n=n,
        parent_mean=float(p.mean()) if n else 0.0,
        variant_mean=float(v.mean()) if n else 0.0,
        worse=worse,
        better=better,
        p_value=float(p_value),
        method=method,
        margin=margin,
        second_moment=m2,
        options=options,
    )


def rate_test(
    scores: Sequence[float],
    threshold: float,
    *,
    direction: Literal["below"] = "below",
    options: StatOptions = StatOptions(),
) -> RateTest:
    """Is the mean of `scores` confidently below the floor `threshold`?

    Binary scores use the exact binomial tail; continuous ones a normal approximation with the sample spread
    (deterministic when every score is equal).

    >>> rate_test([1] * 19 + [0], 0.9).significant
    False
    """
    x = _as_scores(scores, "scores")
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    if direction != "below":
        raise ValueError(f"direction must be 'below', got {direction!r}")
    n = int(x.size)
    mean = float(x.mean()) if n else 0.0
    if n == 0:
        p_value, method = 1.0, "no items"
    elif _is_binary(x):
        k = int(x.sum())
        p_value = binom_cdf(k, n, threshold)
        method = "exact binomial"
    else:
        sd = float(x.std(ddof=1)) if n > 1 else 0.0
        gap = threshold - mean
        if sd == 0.0:
            p_value = 0.0 if gap > _EPS else 1.0
        else:
            p_value = 1.0 - NormalDist().cdf(gap / (sd / math.sqrt(n)))
        method = "normal approximation"
    return RateTest(n=n, mean=mean, threshold=threshold, direction=direction, p_value=float(p_value),
                    method=method, options=options)
