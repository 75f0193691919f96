"""One-sided p-values of the decision core, on sufficient statistics (histograms), vectorized over rows.

Every function takes a batch: ``values`` of shape (K,) (shared by all rows) or (R, K), and ``counts`` of shape
(R, K), the number of items of each row that take each value. `evalkit.core.decision.decide` passes one row (the
histogram of one task's per-item scores); the simulation benchmark passes thousands. Nothing here knows about
models, tasks or files.

Three kinds of p-value:

- **exact binomial** (`binom_cdf`, `binom_sf`): 0/1 scores against a fixed rate (floors).
- **exact sign flip** (`signflip_sf`): H0 "each paired difference is as likely +x as -x" (parent and variant are
  exchangeable). Exact McNemar when every non-zero difference has the same size (binary scores), full enumeration
  for at most `ENUMERATE` non-zero differences, otherwise the smaller of two deterministic upper bounds of the exact
  tail (Hoeffding; Pinelis 1994: ``P(S >= x) <= 2e^3/9 * P(Z >= x/|a|)`` for Rademacher sums): valid at every alpha,
  no resampling, no seed.
- **empirical likelihood on the support** (`el_sf`): H0 "E y <= 0" for independent items with y >= lo. The null
  distribution closest (in Kullback-Leibler) to the data, with the support's lower end allowed as an unobserved
  point (what a rare large gain looks like when none was sampled), gives two statistics: the score statistic
  ``sqrt(n) * mean(y) / sd_G(y)`` with that distribution's spread, and the signed root of the likelihood ratio
  ``sqrt(2 n K)``. The test rejects only when both do: ``p = P(Z >= min(z_score, z_lr))``. For 0/1 paired scores
  these are exactly Tango's (1998) score test and the trinomial likelihood-ratio test for a difference of paired
  proportions; for a mean on [0, 1] the Wilson score test and the binomial likelihood ratio.

>>> import numpy as np
>>> f"{el_sf(np.array([0.99, -1.01, -0.01]), np.array([[30, 5, 465]]), -1.01)[0]:.3g}"  # 30 lost, 5 gained: > 1 pt?
'0.000205'
>>> f"{signflip_sf(np.array([1.0, -1.0, 0.0]), np.array([[5, 0, 95]]))[0]:.4g}"  # exact McNemar: 2**-5
'0.03125'
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

__all__ = ["ENUMERATE", "PINELIS", "binom_cdf", "binom_sf", "el_sf", "el_stats", "half_sf", "norm_sf",
           "paired_binary_z", "signflip_sf"]

ENUMERATE = 24
"""Sign flips are enumerated exactly (2**m sign vectors, counted by meeting in the middle) up to this many non-zero
paired differences."""

PINELIS = 2 * math.e ** 3 / 9
"""Pinelis' (1994) constant: P(sum a_i e_i >= x) <= PINELIS * P(Z >= x / |a|_2) for independent fair signs e_i."""

_ITERATIONS = 64  # bisection steps for the empirical-likelihood multiplier (precision lmax * 2**-64)
_erfc = np.frompyfunc(math.erfc, 1, 1)


def norm_sf(z: np.ndarray | float) -> np.ndarray:
    """P(Z >= z) for a standard normal Z, accurate in the far tail (erfc, not 1 - cdf).

    >>> [float(f"{p:.3g}") for p in norm_sf(np.array([0.0, 3.0, 10.0]))]
    [0.5, 0.00135, 7.62e-24]
    """
    z = np.asarray(z, dtype=np.float64)
    p: np.ndarray = np.asarray(0.5 * _erfc(z / math.sqrt(2.0)), dtype=np.float64)
    return p


# ------------------------------------------------------------------------------------------------ exact binomial


@lru_cache(maxsize=4096)
def _binom_tables(n: int, p: float) -> tuple[np.ndarray, np.ndarray]:
    """(cdf, sf) of Binomial(n, p) over k = 0..n: cdf[k] = P(X <= k), sf[k] = P(X >= k), each summed from its own
    tail so that tiny tails keep their relative precision."""
    k = np.arange(n + 1)
    if p <= 0.0:
        pmf = (k == 0).astype(np.float64)
    elif p >= 1.0:
        pmf = (k == n).astype(np.float64)
    else:
        lf = np.concatenate(([0.0], np.cumsum(np.log(np.arange(1, n + 1, dtype=np.float64)))))
        pmf = np.exp(lf[n] - lf - lf[::-1] + k * math.log(p) + (n - k) * math.log1p(-p))
    cdf = np.minimum(np.cumsum(pmf), 1.0)
    sf = np.minimum(np.cumsum(pmf[::-1])[::-1], 1.0)
    for a in (cdf, sf):
        a.flags.writeable = False
    return cdf, sf


def _binom_tail(k: np.ndarray, n: np.ndarray, p: float, lower: bool) -> np.ndarray:
    k, n = np.broadcast_arrays(np.asarray(k, dtype=np.int64), np.asarray(n, dtype=np.int64))
    out: np.ndarray = np.empty(k.shape, dtype=np.float64)
    for m in np.unique(n):
        sel = n == m
        cdf, sf = _binom_tables(int(m), float(p))
        kk = k[sel]
        if lower:
            out[sel] = np.where(kk < 0, 0.0, cdf[np.clip(kk, 0, m)])
        else:
            out[sel] = np.where(kk <= 0, 1.0, np.where(kk > m, 0.0, sf[np.clip(kk, 0, m)]))
    return out


def half_sf(k: np.ndarray, m: np.ndarray) -> np.ndarray:
    """P(X >= k) for X ~ Binomial(m, 1/2), elementwise (the exact McNemar tail), from one table over the window of
    (m, k) the arrays span: fast for the many m of a batch.

    >>> half_sf(np.array([3, 0, 5]), np.array([3, 4, 9])).round(4).tolist()
    [0.125, 1.0, 0.5]
    """
    k, m = np.broadcast_arrays(np.asarray(k, dtype=np.int64), np.asarray(m, dtype=np.int64))
    out: np.ndarray = np.where(k <= 0, 1.0, 0.0)
    live = (k > 0) & (k <= m)
    if not live.any():
        return out
    kk, mm = k[live], m[live]
    m0, m1, k0 = int(mm.min()), int(mm.max()), int(kk.min())
    if (m1 - m0 + 1) * (m1 - k0 + 1) > 4_000_000:  # a window too wide for one table: per m
        out[live] = _binom_tail(kk, mm, 0.5, lower=False)
        return out
    lf = np.concatenate(([0.0], np.cumsum(np.log(np.arange(1, m1 + 1, dtype=np.float64)))))
    rows = np.arange(m0, m1 + 1)[:, None]
    cols = np.arange(k0, m1 + 1)[None, :]
    ok = cols <= rows
    logp = lf[rows] - lf[np.where(ok, cols, 0)] - lf[np.where(ok, rows - cols, 0)] - rows * math.log(2.0)
    pmf = np.where(ok, np.exp(np.where(ok, logp, 0.0)), 0.0)
    table = np.minimum(np.cumsum(pmf[:, ::-1], axis=1)[:, ::-1], 1.0)
    out[live] = table[mm - m0, kk - k0]
    return out


def binom_cdf(k: np.ndarray | int, n: np.ndarray | int, p: float) -> np.ndarray:
    """P(X <= k) for X ~ Binomial(n, p), exact, elementwise over k and n.

    >>> f"{binom_cdf(0, 48, 0.9):.3g}"
    '1e-48'
    """
    return _binom_tail(np.asarray(k), np.asarray(n), p, lower=True)


def binom_sf(k: np.ndarray | int, n: np.ndarray | int, p: float) -> np.ndarray:
    """P(X >= k) for X ~ Binomial(n, p), exact, elementwise over k and n.

    >>> f"{binom_sf(3, 3, 0.5):.3g}"
    '0.125'
    """
    return _binom_tail(np.asarray(k), np.asarray(n), p, lower=False)


# --------------------------------------------------------------------------------------------- exact sign flips


def _enumerated_sf(a: np.ndarray, s: float) -> float:
    """P(sum e_i a_i >= s) over all 2**len(a) sign vectors, counted by meeting in the middle."""
    h = a.size // 2

    def sums(part: np.ndarray) -> np.ndarray:
        signs = 1 - 2 * ((np.arange(2 ** part.size)[:, None] >> np.arange(part.size)) & 1)
        totals: np.ndarray = signs @ part
        return totals

    left, right = sums(a[:h]), np.sort(sums(a[h:]))
    hits = right.size - np.searchsorted(right, s - left - 1e-9, side="left")
    return float(hits.sum()) / 2.0 ** a.size


def signflip_sf(x: np.ndarray, counts: np.ndarray, *, below: np.ndarray | None = None) -> np.ndarray:
    """One-sided p-value P(S* >= S) of S = sum of the paired differences under independent fair sign flips.

    x: (K,) or (R, K) difference values (positive: the variant is worse); counts: (R, K). Exact when every
    non-zero |x| is the same (the exact McNemar test) or when a row has at most `ENUMERATE` non-zero differences;
    otherwise the smaller of the Hoeffding and Pinelis upper bounds of the exact tail, which are valid p-values.
    1 where S <= 0 (the exact value is >= 1/2 there). below (R,): where the bounds are already <= below, a row
    returns the bound instead of enumerating (for ``max(guard, below)`` the result is the same, and faster).

    >>> f"{signflip_sf(np.array([0.5, -0.5, 0.0]), np.array([[3, 0, 7]]))[0]:.3g}"
    '0.125'
    """
    counts = np.asarray(counts, dtype=np.int64)
    x = np.broadcast_to(np.asarray(x, dtype=np.float64), counts.shape)
    nonzero = (np.abs(x) > 1e-12) & (counts > 0)
    s = (counts * x).sum(axis=1)
    m = np.where(nonzero, counts, 0).sum(axis=1)
    mags = np.abs(x[nonzero])
    if mags.size and np.ptp(mags) <= 1e-12:  # one magnitude: S = a (2 W - m) with W ~ Binomial(m, 1/2)
        worse = np.where(nonzero & (x > 0), counts, 0).sum(axis=1)
        exact: np.ndarray = np.where(m > 0, half_sf(worse, m), 1.0)
        return exact
    norm = np.sqrt((counts * x * x).sum(axis=1))
    live = (s > 1e-12) & (m > 0)
    z = np.where(live, s / np.where(norm > 0, norm, 1.0), 0.0)
    bound = np.minimum(1.0, np.minimum(np.exp(-z * z / 2), PINELIS * norm_sf(z)))
    out: np.ndarray = np.where(live, bound, 1.0)
    enumerate_rows = live & (m <= ENUMERATE)
    if below is not None:
        enumerate_rows &= bound > np.asarray(below, dtype=np.float64)
    for r in np.flatnonzero(enumerate_rows):
        out[r] = _enumerated_sf(np.repeat(np.abs(x[r][nonzero[r]]), counts[r][nonzero[r]]), float(s[r]))
    return out


# ---------------------------------------------------------------------------------- empirical likelihood on support


def el_stats(y: np.ndarray, counts: np.ndarray, lo: float) -> tuple[np.ndarray, np.ndarray]:
    """(z_score, z_lr) for H0: E y <= 0 against E y > 0, for independent items with y >= lo.

    The least-favourable null distribution G is the Kullback-Leibler projection of the rows' empirical
    distribution onto {E y <= 0} over distributions on [lo, inf) (Owen's empirical likelihood with the support's
    end point allowed): weights 1 / (n (1 + lam y_i)) on the observed values and the rest on `lo`, with lam the
    maximiser of mean(log(1 + lam y)) over [0, -1/lo]. z_score = sqrt(n) mean(y) / sd_G(y), z_lr = sqrt(2 n K),
    K = mean(log(1 + lam y)) (the dual of the projection's divergence). Both are <= 0 when mean(y) <= 0.
    """
    c = np.asarray(counts, dtype=np.float64)
    y = np.broadcast_to(np.asarray(y, dtype=np.float64), c.shape)
    rows = c.shape[0]
    n = c.sum(axis=1)
    if lo >= 0.0:  # the support forces y = 0: any positive value refutes H0, none leaves it standing
        hit = ((y > 1e-12) & (c > 0)).any(axis=1)
        return np.where(hit, np.inf, 0.0), np.where(hit, np.inf, 0.0)
    safe_n = np.where(n > 0, n, 1.0)
    ybar = (c * y).sum(axis=1) / safe_n
    lmax = -1.0 / lo
    present = c > 0
    at_end = (present & (y <= lo + 1e-12)).any(axis=1)  # the end point is observed: the optimum is interior

    def slope(lam: np.ndarray) -> np.ndarray:
        den = 1.0 + lam[:, None] * y
        total: np.ndarray = np.where(present, c * y / np.where(present, den, 1.0), 0.0).sum(axis=1)
        return total

    with np.errstate(divide="ignore", invalid="ignore"):
        end_slope = np.where(at_end, -np.inf, slope(np.full(rows, lmax)))
    lo_b, hi_b = np.zeros(rows), np.full(rows, lmax)
    todo = (ybar > 0) & (end_slope < 0)
    if todo.any():
        a, b = lo_b[todo], hi_b[todo]
        ct, yt = c[todo], y[todo]
        pt = ct > 0
        for _ in range(_ITERATIONS):
            mid = 0.5 * (a + b)
            den = 1.0 + mid[:, None] * yt
            g = np.where(pt, ct * yt / np.where(pt, den, 1.0), 0.0).sum(axis=1)
            up = g > 0
            a, b = np.where(up, mid, a), np.where(up, b, mid)
        lo_b[todo] = 0.5 * (a + b)
    lam = np.where(ybar > 0, np.where(end_slope >= 0, lmax, lo_b), 0.0)
    den = np.where(present, 1.0 + lam[:, None] * y, 1.0)
    K = np.where(present, c * np.log(den), 0.0).sum(axis=1) / safe_n
    w = np.where(present, c / den, 0.0) / safe_n[:, None]
    w_end = np.clip(1.0 - w.sum(axis=1), 0.0, 1.0)
    var = (w * y * y).sum(axis=1) + w_end * lo * lo
    with np.errstate(divide="ignore", invalid="ignore"):
        z_score = np.where(var > 0, np.sqrt(n) * ybar / np.sqrt(var), np.where(ybar > 0, np.inf, 0.0))
    z_lr = np.where(ybar > 0, np.sqrt(2.0 * n * np.maximum(K, 0.0)), 0.0)
    z_score = np.where(n > 0, z_score, 0.0)
    return z_score, z_lr


def el_sf(y: np.ndarray, counts: np.ndarray, lo: float) -> np.ndarray:
    """P(Z >= min(z_score, z_lr)) of `el_stats`: the p-value of "E y <= 0" that both statistics must reject.

    >>> float(el_sf(np.array([0.0]), np.array([[10]]), -1.0)[0])  # nothing against H0
    0.5
    """
    z_score, z_lr = el_stats(y, counts, lo)
    return norm_sf(np.minimum(z_score, z_lr))


def paired_binary_z(worse: np.ndarray, better: np.ndarray, n: np.ndarray | int, delta: float
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Closed form of `el_stats` for paired 0/1 scores: (z_score, z_lr) of "the drop exceeds delta".

    worse/better: items the variant lost/gained against its parent, of n; the drop is (worse - better) / n and
    delta in [0, 1). Both statistics are positive when worse - better > n delta. The restricted maximum-likelihood
    cell probabilities at drop = delta are Tango's (1998): better share t solving
    2n t^2 - (w + b - delta (2n - w + b)) t - b delta (1 - delta) = 0, worse share t + delta; z_score is Tango's score
    statistic and z_lr the signed root of the trinomial likelihood ratio. For the pass test (H0: drop >= delta)
    use the negatives.

    >>> zs, zl = paired_binary_z(np.array([30]), np.array([5]), 500, 0.01)
    >>> round(float(zs[0]), 3), round(float(zl[0]), 3)
    (3.534, 3.618)
    """
    w = np.asarray(worse, dtype=np.float64)
    b = np.asarray(better, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    r = n - w - b
    big_b = w + b - delta * (2 * n - w + b)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (big_b + np.sqrt(big_b * big_b + 8 * n * b * delta * (1 - delta))) / (4 * n)
        t = np.where(n > 0, np.maximum(t, 0.0), 0.0)
        var = 2 * t + delta - delta * delta
        num = w - b - n * delta
        z_score = np.where(var > 0, num / np.sqrt(n * var), np.sign(num) * np.inf)

        def term(k: np.ndarray, prob: np.ndarray) -> np.ndarray:
            safe_k, safe_p = np.where(k > 0, k, 1.0), np.where(prob > 0, prob, 1e-300)
            value: np.ndarray = np.where(k > 0, k * np.log(safe_k / (n * safe_p)), 0.0)
            return value

        two_nk = 2 * (term(w, t + delta) + term(b, t) + term(r, 1 - 2 * t - delta))
    z_lr = np.sign(num) * np.sqrt(np.maximum(two_nk, 0.0))
    z_score = np.where(n > 0, z_score, 0.0)
    z_lr = np.where(n > 0, z_lr, 0.0)
    return z_score, z_lr
