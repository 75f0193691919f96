"""Exact power of the decision core's tests, and the items a task needs before the gate can settle it.

Binary (0/1) scores are computed exactly: the paired tests by summing the trinomial distribution of (lost, gained,
tied) items over the cells where the test rejects, the floors by the binomial distribution. A continuous score
(token F1) is planned as a binary task with the same second moment of the paired differences (the disagreement
share of 0/1 scores), and a continuous mean as a 0/1 rate with the same mean (the largest variance a score in
[0, 1] with that mean can have); both are approximations, checked by the simulation benchmark.

The scenarios: a variant that disagrees with its parent on a share ``psi`` of the items and is ``drop`` worse on
average loses ``(psi + drop) / 2`` and gains ``(psi - drop) / 2`` of them (a drop larger than psi is carried by
losses only: psi is raised to the drop).

>>> round(recovery_power(500, 0.05, 0.05, tolerated_drop=0.01, alpha=0.001), 3)
0.989
>>> n = items_needed_recovery(0.10, detect_drop=0.05, tolerated_drop=0.01, alpha_fail=0.0009, alpha_pass=0.0042)
>>> n.n, n.catch, n.clear, round(n.power, 3) >= 0.9
(1141, 1141, 665, True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from statistics import NormalDist
from typing import Callable

import numpy as np

from evalkit.core.decision.pvalues import binom_cdf, binom_sf, half_sf, paired_binary_z

__all__ = ["MAX_ITEMS", "Needed", "floor_decisive_probability", "floor_fail_probability", "floor_pass_probability",
           "items_needed_floor", "items_needed_recovery", "items_to_settle_floor", "items_to_settle_recovery",
           "recovery_decisive_probability", "recovery_pass_probability", "recovery_power"]

MAX_ITEMS = 1_000_000
"""Largest item count the searches consider; beyond it a task is reported as needing more."""

_z = NormalDist().inv_cdf
_WINDOW = 7.5  # standard deviations of the trinomial cells summed over (the mass outside is < 1e-13)


@dataclass(frozen=True, slots=True)
class Needed:
    """Items a check needs: `catch` to fail a real problem with `power`, `clear` to pass a sound model with the
    stated probability, `n` the larger; `power` and `clear_probability` are exact at n (0/1 scores)."""

    n: int
    catch: int
    clear: int
    power: float
    clear_probability: float
    reached: bool = True  # False: even MAX_ITEMS do not (n is then MAX_ITEMS)

    def describe(self) -> str:
        if not self.reached:
            return f"more than {MAX_ITEMS:,} items"
        return f"~{self.n:,} items"


def _cells(psi: float, drop: float) -> tuple[float, float]:
    psi = min(max(psi, abs(drop)), 1.0)
    return (psi + drop) / 2, (psi - drop) / 2


def _trinomial(n: int, lose: float, gain: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(worse, better, probability) over the cells of Trinomial(n; lose, gain) that hold its mass."""

    def span(p: float) -> np.ndarray:
        if p <= 0:
            return np.zeros(1, dtype=np.int64)
        mu, sd = n * p, math.sqrt(n * p * (1 - p))
        return np.arange(max(0, math.floor(mu - _WINDOW * sd - 3)), min(n, math.ceil(mu + _WINDOW * sd + 3)) + 1)

    grid: tuple[np.ndarray, ...] = tuple(np.meshgrid(span(lose), span(gain), indexing="ij"))
    w, b = grid[0].ravel(), grid[1].ravel()
    keep = w + b <= n
    w, b = w[keep], b[keep]
    lf = np.concatenate(([0.0], np.cumsum(np.log(np.arange(1, n + 1, dtype=np.float64)))))
    r = n - w - b
    rest = 1.0 - lose - gain
    with np.errstate(divide="ignore", invalid="ignore"):
        logp = (lf[n] - lf[w] - lf[b] - lf[r] + np.where(w > 0, w * math.log(lose) if lose > 0 else -np.inf, 0.0)
                + np.where(b > 0, b * math.log(gain) if gain > 0 else -np.inf, 0.0)
                + np.where(r > 0, r * math.log(rest) if rest > 0 else -np.inf, 0.0))
    return w, b, np.exp(logp)


def recovery_power(n: int, disagreement: float, drop: float, *, tolerated_drop: float, alpha: float) -> float:
    """Exact probability that the recovery test of 0/1 scores rejects "drop <= tolerated_drop" at `alpha`, for a
    variant `drop` worse than its parent that disagrees with it on a share `disagreement` of n items."""
    if n <= 0:
        return 0.0
    w, b, prob = _trinomial(n, *_cells(disagreement, drop))
    return float(min(1.0, prob[_fails(w, b, n, tolerated_drop, alpha)].sum()))


def _fails(w: np.ndarray, b: np.ndarray, n: int, tol: float, alpha: float) -> np.ndarray:
    """Where the recovery fail test (score and likelihood ratio, and the exact McNemar guard) rejects at alpha."""
    zs, zl = paired_binary_z(w, b, n, tol)
    out: np.ndarray = np.minimum(zs, zl) >= _z(1 - alpha)  # p <= alpha, with p = P(Z >= min(zs, zl))
    if out.any():
        out[out] = half_sf(w[out], w[out] + b[out]) <= alpha
    return out


def _passes(w: np.ndarray, b: np.ndarray, n: int, detect: float, alpha: float) -> np.ndarray:
    zs, zl = paired_binary_z(w, b, n, detect)
    out: np.ndarray = np.minimum(-zs, -zl) >= _z(1 - alpha)
    return out


def recovery_pass_probability(n: int, disagreement: float, drop: float, *, detect_drop: float, alpha: float
                              ) -> float:
    """Exact probability that the recovery check of 0/1 scores passes confidently (rejects "drop >= detect_drop" at
    `alpha`) for a variant `drop` worse than its parent that disagrees with it on a share `disagreement`."""
    if n <= 0:
        return 0.0
    w, b, prob = _trinomial(n, *_cells(disagreement, drop))
    return float(min(1.0, prob[_passes(w, b, n, detect_drop, alpha)].sum()))


def floor_fail_probability(n: int, rate: float, *, floor: float, alpha: float) -> float:
    """Exact probability that a floor on a 0/1 rate fails (P(Bin(n, floor) <= k) <= alpha) at a true `rate`."""
    return _rate_test_probability(n, rate, floor, alpha, lower=True)


def floor_pass_probability(n: int, rate: float, *, low: float, alpha: float) -> float:
    """Exact probability that a floor on a 0/1 rate passes (P(Bin(n, low) >= k) <= alpha) at a true `rate`."""
    return _rate_test_probability(n, rate, max(low, 0.0), alpha, lower=False)


def _rate_test_probability(n: int, rate: float, null: float, alpha: float, *, lower: bool) -> float:
    """P(the exact one-sided binomial test of `null` rejects) when the true rate is `rate` (lower: k small)."""
    if n <= 0:
        return 0.0
    k = np.arange(n + 1)
    tail = binom_cdf if lower else binom_sf
    reject = k[tail(k, n, null) <= alpha]
    if not reject.size:
        return 0.0
    return float(tail(reject.max() if lower else reject.min(), n, rate))


def _smallest(ok: Callable[[int], bool], start: int) -> tuple[int, bool]:
    """The smallest n found (bisection after a geometric bracket from `start`) with ok(n), to within 1/128 of it
    above 256 items (exact below); ok(result) is True."""
    start = int(min(max(start, 1), MAX_ITEMS))
    if ok(start):
        hi, lo = start, start
        while lo > 1:
            lo = max(1, int(lo / 1.25))
            if not ok(lo):
                break
            hi = lo
        else:
            return 1, True
    else:
        lo, hi = start, start
        while not ok(hi):
            if hi >= MAX_ITEMS:
                return MAX_ITEMS, False
            lo, hi = hi, min(MAX_ITEMS, int(hi * 1.25) + 1)
    while hi - lo > max(1, hi // 128):  # invariant: ok(hi), not ok(lo)
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if ok(mid) else (mid, hi)
    return hi, True


@lru_cache(maxsize=1024)
def items_needed_recovery(disagreement: float, *, detect_drop: float, tolerated_drop: float, alpha_fail: float,
                          alpha_pass: float, power: float = 0.90, clear: float | None = None) -> Needed:
    """Items at which the recovery check tells a drop of `detect_drop` from none, at a disagreement share.

    catch: the smallest n at which a variant `detect_drop` worse fails with probability >= `power` (at the check's
    Bonferroni share `alpha_fail` of its model's alpha: Holm only adds power). clear: the smallest n at which a
    variant exchangeable with its parent passes confidently with probability >= `clear` (default `power`; with
    ``require_power`` the gate asks 1 - alpha_fail, so that the failures it turns inconclusive verdicts into stay
    within the model's alpha). Exact for 0/1 scores, for the disagreement as given (not assuming the variant
    never gains an item).
    """
    clear = power if clear is None else clear
    psi = max(disagreement, 0.0)
    lose, gain = _cells(psi, detect_drop)
    s0 = math.sqrt(max(lose + gain - tolerated_drop ** 2, 1e-9))
    s1 = math.sqrt(max(lose + gain - detect_drop ** 2, 1e-9))
    guess = ((_z(1 - alpha_fail) * s0 + _z(power) * s1) / max(detect_drop - tolerated_drop, 1e-9)) ** 2
    catch, ok1 = _smallest(lambda n: recovery_power(n, psi, detect_drop, tolerated_drop=tolerated_drop,
                                                    alpha=alpha_fail) >= power, math.ceil(guess))
    sp = math.sqrt(max(max(psi, detect_drop) - detect_drop ** 2, 1e-9))
    guess = ((_z(1 - alpha_pass) * sp + _z(clear) * math.sqrt(max(psi, 1e-9))) / detect_drop) ** 2
    clr, ok2 = _smallest(lambda n: recovery_pass_probability(n, psi, 0.0, detect_drop=detect_drop,
                                                             alpha=alpha_pass) >= clear, math.ceil(guess))
    n = max(catch, clr)
    return Needed(n, catch, clr, recovery_power(n, psi, detect_drop, tolerated_drop=tolerated_drop, alpha=alpha_fail),
                  recovery_pass_probability(n, psi, 0.0, detect_drop=detect_drop, alpha=alpha_pass), ok1 and ok2)


@lru_cache(maxsize=1024)
def items_needed_floor(floor: float, margin: float, *, alpha_fail: float, alpha_pass: float, power: float = 0.90
                       ) -> Needed:
    """Items at which a floor with indifference zone [floor - margin, floor] fails a rate of floor - margin and
    passes a rate of floor, each with probability >= `power` (exact for 0/1 rates).

    >>> items_needed_floor(0.90, 0.05, alpha_fail=4e-5, alpha_pass=0.0042).n
    1183
    """
    low = floor - margin
    if margin <= 0 or low <= 0 or floor >= 1:
        sd = 0.5
    else:
        sd = math.sqrt(max(floor * (1 - floor), low * (1 - low)))
    gap = max(margin, 1e-6)
    guess = ((_z(1 - alpha_fail) + _z(power)) * sd / gap) ** 2
    catch, ok1 = _smallest(lambda n: floor_fail_probability(n, low, floor=floor, alpha=alpha_fail) >= power,
                           math.ceil(guess))
    guess = ((_z(1 - alpha_pass) + _z(power)) * sd / gap) ** 2
    clr, ok2 = _smallest(lambda n: floor_pass_probability(n, floor, low=low, alpha=alpha_pass) >= power,
                         math.ceil(guess))
    n = max(catch, clr)
    return Needed(n, catch, clr, floor_fail_probability(n, low, floor=floor, alpha=alpha_fail),
                  floor_pass_probability(n, floor, low=low, alpha=alpha_pass), ok1 and ok2)


def recovery_decisive_probability(n: int, disagreement: float, drop: float, *, tolerated_drop: float,
                                  detect_drop: float, alpha_fail: float, alpha_pass: float) -> float:
    """Exact probability that the recovery check of 0/1 scores is not inconclusive (it fails at `alpha_fail` or
    passes at `alpha_pass`) for a variant `drop` worse than its parent at a disagreement share."""
    if n <= 0:
        return 0.0
    w, b, prob = _trinomial(n, *_cells(disagreement, drop))
    decisive = _fails(w, b, n, tolerated_drop, alpha_fail) | _passes(w, b, n, detect_drop, alpha_pass)
    return float(min(1.0, prob[decisive].sum()))


def floor_decisive_probability(n: int, rate: float, *, floor: float, low: float, alpha_fail: float,
                               alpha_pass: float) -> float:
    """Exact probability that a floor on a 0/1 rate is not inconclusive at a true `rate`."""
    if n <= 0:
        return 0.0
    k = np.arange(n + 1)
    decisive = (binom_cdf(k, n, floor) <= alpha_fail) | (binom_sf(k, n, max(low, 0.0)) <= alpha_pass)
    pmf = binom_cdf(k, n, rate) - binom_cdf(k - 1, n, rate)
    return float(min(1.0, np.clip(pmf, 0.0, 1.0)[decisive].sum()))


@lru_cache(maxsize=1024)
def items_to_settle_recovery(disagreement: float, drop: float, *, tolerated_drop: float, detect_drop: float,
                             alpha_fail: float, alpha_pass: float, power: float = 0.90) -> tuple[int, bool]:
    """(n, reached): the smallest n found at which a variant `drop` worse gets a decisive recovery verdict with
    probability >= `power` (what an inconclusive verdict between the tolerated and the detectable drop needs)."""
    psi = max(disagreement, abs(drop), 1e-9)
    gap = max(min(abs(drop - tolerated_drop), abs(detect_drop - drop)), 1e-4)
    guess = ((_z(1 - min(alpha_fail, alpha_pass)) + _z(power)) * math.sqrt(psi) / gap) ** 2
    return _smallest(lambda n: recovery_decisive_probability(
        n, psi, drop, tolerated_drop=tolerated_drop, detect_drop=detect_drop, alpha_fail=alpha_fail,
        alpha_pass=alpha_pass) >= power, math.ceil(guess))


@lru_cache(maxsize=1024)
def items_to_settle_floor(rate: float, *, floor: float, margin: float, alpha_fail: float, alpha_pass: float,
                          power: float = 0.90) -> tuple[int, bool]:
    """(n, reached): the smallest n found at which a 0/1 rate of `rate` gets a decisive floor verdict with
    probability >= `power`."""
    low = floor - margin
    gap = max(min(abs(rate - floor), abs(rate - low)), 1e-4)
    sd = math.sqrt(max(rate * (1 - rate), 1e-4))
    guess = ((_z(1 - min(alpha_fail, alpha_pass)) + _z(power)) * sd / gap) ** 2
    return _smallest(lambda n: floor_decisive_probability(n, rate, floor=floor, low=low, alpha_fail=alpha_fail,
                                                          alpha_pass=alpha_pass) >= power, math.ceil(guess))
