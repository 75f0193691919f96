"""The multiplicity layer: a weighted Holm procedure over one model's statistical checks, and the three outcomes.

Weighted Holm (Holm 1979, weighted form): hypotheses H_j with weights w_j > 0 summing to 1 and p-values p_j; sort
by p_j / w_j; at step i, with R_i the hypotheses not yet rejected, reject H_(i) when p_(i) <= alpha w_(i) / sum_{R_i}
w, else stop. It is the shortcut of the closed procedure whose local test of an intersection I rejects when some
p_j <= alpha w_j / sum_I w (weighted Bonferroni), so it controls the family-wise error rate at alpha under any
dependence between the p-values. The adjusted p-value ``max_{k<=i} min(1, p_(k) sum_{R_k} w / w_(k))`` is <= alpha
exactly when H_(i) is rejected.

>>> import numpy as np
>>> reject, adjusted, level = weighted_holm(np.array([[0.001, 0.04, 0.5]]), np.array([0.5, 0.25, 0.25]), 0.05)
>>> reject.tolist(), adjusted.round(4).tolist(), level.round(4).tolist()
([[True, False, False]], [[0.002, 0.08, 0.5]], [[0.025, 0.025, 0.05]])
"""

from __future__ import annotations

import numpy as np

__all__ = ["FAIL", "INCONCLUSIVE", "PASS", "STATUS", "resolve", "weighted_holm"]

PASS, INCONCLUSIVE, FAIL = 0, 1, 2
STATUS = ("pass", "inconclusive", "fail")
"""Status codes, ordered so that the status of a group of checks is the maximum of theirs."""


def weighted_holm(p: np.ndarray, weights: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(reject, adjusted p, level) for each row of p-values (R, K) with weights (K,) at family-wise level alpha.

    level: the threshold each hypothesis is (or, past the first non-rejection, would next be) compared with:
    ``alpha w_j / sum of the weights not rejected before it``; at least alpha w_j (its Bonferroni share).
    """
    p = np.atleast_2d(np.asarray(p, dtype=np.float64))
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1 or w.size != p.shape[1] or np.any(w <= 0):
        raise ValueError(f"weights must be positive, one per column of p; got {w!r} for p of shape {p.shape}")
    w = w / w.sum()
    if p.shape[1] == 0:
        empty = np.zeros(p.shape)
        return empty.astype(bool), empty, empty
    order = np.argsort(p / w, axis=1, kind="stable")
    ps = np.take_along_axis(p, order, axis=1)
    ws = w[order]
    remaining = np.cumsum(ws[:, ::-1], axis=1)[:, ::-1]  # sum of the weights from step i on
    adjusted_sorted = np.maximum.accumulate(np.minimum(1.0, ps * remaining / ws), axis=1)
    level_sorted = alpha * ws / remaining
    inverse = np.argsort(order, axis=1)
    adjusted = np.take_along_axis(adjusted_sorted, inverse, axis=1)
    level = np.take_along_axis(level_sorted, inverse, axis=1)
    return adjusted <= alpha, adjusted, level


def resolve(p_fail: np.ndarray, p_pass: np.ndarray, weights: np.ndarray, alpha: float, *, can_pass: np.ndarray,
            require_power: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The three outcomes of each check of a family, row by row: (status, underpowered, adjusted p, level).

    fail: the check's null ("no real problem") is rejected by `weighted_holm` at `alpha`;
    pass: else, when the check can pass confidently (`can_pass`) and its pass test ("there is a problem as large
      as the check must see") is rejected at `alpha` itself, or when it cannot (a fail-only check);
    inconclusive: otherwise, and turned into fail (`underpowered`) where `require_power` is set.

    >>> import numpy as np
    >>> st, up, _, _ = resolve(np.array([[1e-6, 0.3, 0.3]]), np.array([[0.9, 0.001, 0.2]]), np.ones(3), 0.01,
    ...                        can_pass=np.array([True, True, True]), require_power=np.array([False, False, True]))
    >>> [STATUS[s] for s in st[0]], up[0].tolist()
    (['fail', 'pass', 'fail'], [False, False, True])
    """
    reject, adjusted, level = weighted_holm(p_fail, weights, alpha)
    confident = np.asarray(p_pass, dtype=np.float64) <= alpha
    can_pass = np.asarray(can_pass, dtype=bool)
    status = np.where(reject, FAIL, np.where(~can_pass | confident, PASS, INCONCLUSIVE))
    underpowered = (status == INCONCLUSIVE) & np.asarray(require_power, dtype=bool)
    status = np.where(underpowered, FAIL, status).astype(np.int8)
    return status, underpowered, adjusted, level
