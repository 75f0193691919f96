"""The decision core's data types and its two entry points: `decide_batch` (sufficient statistics, many rows at
once: the gate and the simulation benchmark share it) and `decide` (per-item scores of one model, with reasons).

Checks of one task (each present only when its inputs are):

  compliance    the model's share of compliant replies against ``min_compliance`` (indifference zone
                [min_compliance - floor_margin, min_compliance]); exact binomial
  stopping      no more replies cut at the token limit than the parent's, beyond ``tolerated_drop`` (fail-only)
  metric_floor  the primary score against ``min_metric`` (zone [min_metric - floor_margin, min_metric])
  recovery      the paired drop against the parent: fail above ``tolerated_drop``, pass below ``detect_drop``
  baseline      the primary score against the trivial baseline b: fail when confidently below b + floor_margin
                (no better than doing nothing, to within the margin), pass when confidently above b

All of them form one family per model: weighted Holm at the model's alpha (`evalkit.core.decision.holm`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar

import numpy as np

from evalkit.core.decision.criteria import CHECKS, Criteria, Status, TaskShape, Weights
from evalkit.core.decision.holm import STATUS, resolve  # STATUS: for the doctests
from evalkit.core.decision.pvalues import binom_cdf, binom_sf, el_sf, half_sf, norm_sf, paired_binary_z, signflip_sf
from evalkit.core.stats import _as_scores

__all__ = ["CHECKS", "Batch", "Criteria", "PairedTask", "Status", "TaskShape", "TaskSummary", "Weights",
           "decide_batch", "family", "need"]


# ---------------------------------------------------------------------------------------------------- the data


def _flags(values: Sequence[bool] | None, n: int, what: str) -> np.ndarray | None:
    if values is None:
        return None
    arr = np.asarray(values)
    if arr.shape != (n,):
        raise ValueError(f"{what}: expected {n} per-item flags, got shape {arr.shape}")
    if arr.dtype != bool and not np.all((arr == 0) | (arr == 1)):
        raise ValueError(f"{what}: flags must be booleans (or 0/1)")
    typed: np.ndarray = arr.astype(bool)
    return typed


def _scores(values: Sequence[float], what: str) -> np.ndarray:
    typed: np.ndarray = np.clip(_as_scores(values, what), 0.0, 1.0)  # the same validation as evalkit.core.stats
    return typed


@dataclass(frozen=True, slots=True, eq=False)
class PairedTask:
    """One task of one model, item by item: what any evaluator can produce (e.g. lm-eval's ``--log_samples``).

    scores: the model's per-item primary score in [0, 1] (correctness, or token F1); parent: its parent's on the
    same items in the same order (None: a reference model, checked on floors and baseline only); compliant: per
    item, whether a well-formed answer was read (None: no compliance check); cut / parent_cut: per item, whether
    the reply ran to the token limit (both needed for the stopping check); baseline: the trivial baseline's score
    on these items (None: no baseline check); kind: "binary" for 0/1 scores (exact tests), "continuous"
    otherwise; "auto" decides from the scores.
    """

    scores: Sequence[float]
    parent: Sequence[float] | None = None
    compliant: Sequence[bool] | None = None
    cut: Sequence[bool] | None = None
    parent_cut: Sequence[bool] | None = None
    baseline: float | None = None
    kind: Literal["auto", "binary", "continuous"] = "auto"

    def __post_init__(self) -> None:
        s = _scores(self.scores, "scores")
        object.__setattr__(self, "scores", s)
        n = s.size
        if self.parent is not None:
            p = _scores(self.parent, "parent")
            if p.shape != s.shape:
                raise ValueError(f"paired scores need the same items: the model has {n}, the parent {p.size}")
            object.__setattr__(self, "parent", p)
        object.__setattr__(self, "compliant", _flags(self.compliant, n, "compliant"))
        object.__setattr__(self, "cut", _flags(self.cut, n, "cut"))
        object.__setattr__(self, "parent_cut", _flags(self.parent_cut, n, "parent_cut"))
        if self.baseline is not None and not 0.0 <= self.baseline <= 1.0:
            raise ValueError(f"baseline must be in [0, 1], got {self.baseline!r}")
        if self.kind not in ("auto", "binary", "continuous"):
            raise ValueError(f"kind must be auto, binary or continuous, got {self.kind!r}")
        if self.kind == "binary" and not _zero_one(self.values, self.parent_values):
            raise ValueError("kind='binary' needs 0/1 scores")

    @property
    def n(self) -> int:
        return int(self.values.size)

    @property
    def values(self) -> np.ndarray:
        """The model's scores as the array `__post_init__` validated (float64, clipped to [0, 1])."""
        arr: np.ndarray = np.asarray(self.scores, dtype=np.float64)
        return arr

    @property
    def parent_values(self) -> np.ndarray | None:
        """The parent's scores as a validated array (None: a reference model)."""
        return None if self.parent is None else np.asarray(self.parent, dtype=np.float64)

    def flags(self, name: Literal["compliant", "cut", "parent_cut"]) -> np.ndarray | None:
        """One of the per-item flag fields as a validated boolean array (None when not given)."""
        value = getattr(self, name)
        return None if value is None else np.asarray(value, dtype=bool)

    @property
    def binary(self) -> bool:
        if self.kind != "auto":
            return self.kind == "binary"
        return _zero_one(self.values, self.parent_values)


def _zero_one(*arrays: np.ndarray | None) -> bool:
    """Every given array holds 0/1 scores only (the exact tests apply)."""
    return all(bool(np.all((a == 0.0) | (a == 1.0))) for a in arrays if a is not None)


_T = TypeVar("_T")


def need(value: _T | None, what: str) -> _T:
    """`value`, which the check being computed requires (its family only holds checks whose inputs exist)."""
    if value is None:
        raise ValueError(f"{what} is missing: the family holds a check whose input was not given")
    return value


def _hist(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    v, c = np.unique(values, return_counts=True)
    return v, c[None, :]


@dataclass(frozen=True, slots=True, eq=False)
class TaskSummary:
    """Sufficient statistics of one task for R rows (R = 1 for a real run, thousands for a simulation).

    score_values (K,) with score_counts (R, K): the histogram of the model's per-item scores; drop_values /
    drop_counts: of the paired differences parent - model (None: no parent); compliant (R,): compliant items;
    cut_worse / cut_better (R,): items where only the model / only the parent ran to the token limit.
    """

    n: int
    binary: bool
    score_values: np.ndarray
    score_counts: np.ndarray
    drop_values: np.ndarray | None = None
    drop_counts: np.ndarray | None = None
    compliant: np.ndarray | None = None
    cut_worse: np.ndarray | None = None
    cut_better: np.ndarray | None = None
    baseline: float | None = None

    @property
    def rows(self) -> int:
        return int(self.score_counts.shape[0])

    @property
    def shape(self) -> TaskShape:
        return TaskShape(paired=self.drop_counts is not None, compliance=self.compliant is not None,
                         stopping=self.cut_worse is not None, baseline=self.baseline is not None, binary=self.binary)

    @classmethod
    def of(cls, task: PairedTask) -> TaskSummary:
        """The statistics of one task's per-item data (one row)."""
        s, parent = task.values, task.parent_values
        sv, sc = _hist(s)
        dv: np.ndarray | None = None
        dc: np.ndarray | None = None
        if parent is not None:
            dv, dc = _hist(np.round(parent - s, 12))
        flags, cut, parent_cut = task.flags("compliant"), task.flags("cut"), task.flags("parent_cut")
        compliant = None if flags is None else np.array([int(flags.sum())])
        worse = better = None
        if cut is not None and parent_cut is not None and parent is not None:
            worse = np.array([int(np.sum(cut & ~parent_cut))])
            better = np.array([int(np.sum(~cut & parent_cut))])
        return cls(task.n, task.binary, sv, sc, dv, dc, compliant, worse, better, task.baseline)

    @classmethod
    def binary_counts(cls, n: int, correct: np.ndarray, *, worse: np.ndarray | None = None,
                      better: np.ndarray | None = None, compliant: np.ndarray | None = None,
                      cut_worse: np.ndarray | None = None, cut_better: np.ndarray | None = None,
                      baseline: float | None = None) -> TaskSummary:
        """The statistics of a 0/1 task from counts per row: correct items, items lost / gained against the
        parent (None: a reference model), compliant items, cut-offs only the model / only the parent had."""
        correct = np.asarray(correct, dtype=np.int64)
        sc = np.stack([n - correct, correct], axis=1)
        dv = dc = None
        if worse is not None and better is not None:
            worse, better = np.asarray(worse, dtype=np.int64), np.asarray(better, dtype=np.int64)
            dv, dc = np.array([-1.0, 0.0, 1.0]), np.stack([better, n - worse - better, worse], axis=1)
        return cls(n, True, np.array([0.0, 1.0]), sc, dv, dc, compliant, cut_worse, cut_better, baseline)


def family(shapes: Mapping[str, TaskShape], criteria: Mapping[str, Criteria], weights: Weights
           ) -> tuple[tuple[tuple[str, str], ...], np.ndarray]:
    """The checks of one model's family, in order, with their normalized weights (shares of the model's alpha).

    >>> checks, share = family({"t": TaskShape()}, {"t": Criteria()}, Weights())
    >>> checks, share.round(4).tolist()
    ((('t', 'compliance'), ('t', 'stopping'), ('t', 'recovery'), ('t', 'baseline')), [0.0435, 0.0435, 0.8696, 0.0435])
    """
    checks: list[tuple[str, str]] = []
    for task, shape in shapes.items():
        c = criteria[task]
        present = {"compliance": shape.compliance and c.min_compliance is not None,
                   "stopping": shape.paired and shape.stopping,
                   "metric_floor": c.min_metric is not None,
                   "recovery": shape.paired,
                   "baseline": shape.baseline and c.beat_baseline}
        checks += [(task, name) for name in CHECKS if present[name]]
    raw = np.array([getattr(weights, name) for _, name in checks], dtype=np.float64)
    return tuple(checks), (raw / raw.sum() if raw.size else raw)


def _criteria_map(tasks: Mapping[str, object], criteria: Criteria | Mapping[str, Criteria]) -> dict[str, Criteria]:
    if isinstance(criteria, Criteria):
        return {t: criteria for t in tasks}
    missing = [t for t in tasks if t not in criteria]
    if missing:
        raise ValueError(f"no criteria for task(s) {missing}")
    return {t: criteria[t] for t in tasks}


def _model_alpha(alpha: float, run_size: int) -> float:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    if run_size < 1:
        raise ValueError(f"run_size must be >= 1, got {run_size!r}")
    return alpha / run_size


# ------------------------------------------------------------------------------------------------ p-values per check


def _floor_p(t: TaskSummary, floor: float, low: float) -> tuple[np.ndarray, np.ndarray]:
    """(p_fail, p_pass) of a floor on the model's mean score: fail H0 mean >= floor, pass H0 mean <= low."""
    if t.binary:
        k = t.score_counts[:, list(t.score_values).index(1.0)] if 1.0 in t.score_values else np.zeros(t.rows, int)
        return binom_cdf(k, t.n, floor), binom_sf(k, t.n, max(low, 0.0))
    v, c = t.score_values, t.score_counts
    return el_sf(floor - v, c, floor - 1.0), el_sf(v - low, c, -low)


def _rate_p(k: np.ndarray, n: int, floor: float, low: float) -> tuple[np.ndarray, np.ndarray]:
    return binom_cdf(k, n, floor), binom_sf(k, n, max(low, 0.0))


def _paired_binary_p(worse: np.ndarray, better: np.ndarray, n: int, tol: float, detect: float | None
                     ) -> tuple[np.ndarray, np.ndarray]:
    """(p_fail, p_pass) of a paired 0/1 comparison: fail H0 drop <= tol (exact McNemar guard and score + LR),
    pass H0 drop >= detect (score + LR); p_pass is 1 when detect is None (a fail-only check)."""
    zs, zl = paired_binary_z(worse, better, n, tol)
    guard = np.where(worse + better > 0, half_sf(worse, worse + better), 1.0)
    p_fail = np.maximum(norm_sf(np.minimum(zs, zl)), guard)
    if detect is None:
        return p_fail, np.ones_like(p_fail)
    zs, zl = paired_binary_z(worse, better, n, detect)
    return p_fail, norm_sf(np.minimum(-zs, -zl))


def _recovery_p(t: TaskSummary, c: Criteria) -> tuple[np.ndarray, np.ndarray]:
    x, cnt = need(t.drop_values, "paired differences"), need(t.drop_counts, "paired differences")
    if t.binary:
        worse = cnt[:, np.flatnonzero(x == 1.0)].sum(axis=1)
        better = cnt[:, np.flatnonzero(x == -1.0)].sum(axis=1)
        return _paired_binary_p(worse, better, t.n, c.tolerated_drop, c.detect_drop)
    tol, d = c.tolerated_drop, c.detect_drop
    p_asym = el_sf(x - tol, cnt, -1.0 - tol)
    p_fail = np.maximum(p_asym, signflip_sf(x, cnt, below=p_asym))
    p_pass = el_sf(d - x, cnt, d - 1.0)
    return p_fail, p_pass


@dataclass(frozen=True, slots=True, eq=False)
class Batch:
    """The decisions of `decide_batch` for R rows: per check (columns, `checks`) and per model (rows)."""

    checks: tuple[tuple[str, str], ...]
    share: np.ndarray  # (K,) each check's share of the model's alpha (its Bonferroni level / alpha)
    alpha: float  # the model's family-wise alpha: run alpha / run size
    p_fail: np.ndarray  # (R, K) p-value of "no real problem"
    p_pass: np.ndarray  # (R, K) p-value of "a problem as large as the check must see"
    adjusted: np.ndarray  # (R, K) Holm-adjusted p_fail
    level: np.ndarray  # (R, K) the Holm threshold of each check
    status: np.ndarray  # (R, K) PASS / INCONCLUSIVE / FAIL codes
    underpowered: np.ndarray  # (R, K) inconclusive checks failed by require_power
    can_pass: np.ndarray  # (K,) False for fail-only checks (stopping)
    require_power: np.ndarray  # (K,) where require_power applies (recovery checks that ask for it)

    def with_require_power(self, on: bool) -> Batch:
        """The same p-values resolved with require_power switched on (or off) for every recovery check."""
        require = np.array([name == "recovery" and on for _, name in self.checks], dtype=bool)
        if not self.checks:
            return self
        status, underpowered, adjusted, level = resolve(self.p_fail, self.p_pass, self.share, self.alpha,
                                                        can_pass=self.can_pass, require_power=require)
        return Batch(self.checks, self.share, self.alpha, self.p_fail, self.p_pass, adjusted, level, status,
                     underpowered, self.can_pass, require)

    @property
    def model_status(self) -> np.ndarray:
        """(R,) status code of the model: the worst of its checks'."""
        typed: np.ndarray = self.status.max(axis=1) if self.status.shape[1] else np.zeros(self.status.shape[0], np.int8)
        return typed

    def columns(self, *, task: str | None = None, check: str | None = None) -> list[int]:
        return [i for i, (t, c) in enumerate(self.checks) if task in (None, t) and check in (None, c)]

    def status_of(self, *, task: str | None = None, check: str | None = None) -> np.ndarray:
        """(R,) worst status over the selected checks (pass when none is selected)."""
        cols = self.columns(task=task, check=check)
        typed: np.ndarray = self.status[:, cols].max(axis=1) if cols else np.zeros(self.status.shape[0], np.int8)
        return typed


def decide_batch(tasks: Mapping[str, TaskSummary], criteria: Criteria | Mapping[str, Criteria] = Criteria(), *,
                 alpha: float = 0.05, run_size: int = 1, weights: Weights = Weights()) -> Batch:
    """The three-outcome decisions of one model on its tasks, for every row of the tasks' statistics at once.

    alpha: the run's family-wise alpha; the model's is alpha / run_size (Bonferroni across the run's models).

    >>> t = TaskSummary.binary_counts(500, np.array([300, 300]), worse=np.array([10, 60]), better=np.array([9, 5]),
    ...                               compliant=np.array([490, 490]), baseline=0.25)
    >>> b = decide_batch({"arc": t}, alpha=0.05, run_size=12)
    >>> [[STATUS[s] for s in row] for row in b.status], b.checks[1]
    ([['pass', 'pass', 'pass'], ['pass', 'fail', 'pass']], ('arc', 'recovery'))
    """
    crit = _criteria_map(tasks, criteria)
    a_model = _model_alpha(alpha, run_size)
    checks, share = family({t: s.shape for t, s in tasks.items()}, crit, weights)
    rows = {s.rows for s in tasks.values()}
    if len(rows) > 1:
        raise ValueError(f"every task needs the same number of rows, got {sorted(rows)}")
    r = rows.pop() if rows else 1
    p_fail = np.ones((r, len(checks)))
    p_pass = np.ones((r, len(checks)))
    can_pass: np.ndarray = np.ones(len(checks), dtype=bool)
    require: np.ndarray = np.zeros(len(checks), dtype=bool)
    for j, (task, name) in enumerate(checks):
        t, c = tasks[task], crit[task]
        if name == "stopping":
            can_pass[j] = False
        if name == "recovery":
            require[j] = c.require_power
        if t.n == 0:  # no items: nothing can fail, nothing can pass
            continue
        if name == "compliance":
            floor = need(c.min_compliance, "min_compliance")
            p_fail[:, j], p_pass[:, j] = _rate_p(need(t.compliant, "compliant counts"), t.n, floor,
                                                 floor - c.floor_margin)
        elif name == "stopping":
            p_fail[:, j], _ = _paired_binary_p(need(t.cut_worse, "cut-offs"), need(t.cut_better, "cut-offs"), t.n,
                                               c.tolerated_drop, None)
        elif name == "metric_floor":
            floor = need(c.min_metric, "min_metric")
            p_fail[:, j], p_pass[:, j] = _floor_p(t, floor, floor - c.floor_margin)
        elif name == "recovery":
            p_fail[:, j], p_pass[:, j] = _recovery_p(t, c)
        else:  # baseline
            b = need(t.baseline, "the trivial baseline")
            p_fail[:, j], p_pass[:, j] = _floor_p(t, min(1.0, b + c.floor_margin), b)
    if checks:
        status, underpowered, adjusted, level = resolve(p_fail, p_pass, share, a_model, can_pass=can_pass,
                                                        require_power=require)
    else:
        status = np.zeros((r, 0), np.int8)
        underpowered = np.zeros((r, 0), bool)
        adjusted = level = np.zeros((r, 0))
    return Batch(checks, share, a_model, p_fail, p_pass, adjusted, level, status, underpowered, can_pass, require)
