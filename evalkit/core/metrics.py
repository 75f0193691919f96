"""Metrics: the one registry (`METRICS`) of what is measured on an item set, and aggregation; never NaN.

Each metric is one `MetricSpec`: the families it applies to, its per-item score, whether the trivial baseline reports
it and whether the gate's paired test can compare it item by item. Aggregation, the results document, the reports'
CSV columns, the trivial baselines and the gate all read the registry, so adding a metric is one registration here
(docs/ARCHITECTURE.md). Per-item scores (`ItemScore`, SQuAD, Math-Verify) are `evalkit.core.scoring`.

Scale: every `Metric` value is on the 0-1 scale (accuracy, and span exact/F1 alike), so one threshold language fits
all families. `squad_v2` alone returns 0-100, because it reproduces the official SQuAD v2.0 script.

Counting: ``n`` is the number of items; ``n_scored`` the number whose score came from an actual answer (a response
with diagnosis ``ok``); ``extraction_rate = n_scored / n``. Accuracy, exact and F1 are means over all ``n`` items with
unanswered items counted as wrong (a missing box is never an "empty answer" that SQuAD v2 would reward), and they are
*undefined* (``value=None``) when ``n_scored == 0``: a 0 computed from no answers at all says nothing about the model.
``avg_abs_diff`` is a mean over the items where answer and gold are both numbers; there ``n_scored`` is that count.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from evalkit.core.extract import Diagnosis
from evalkit.core.registry import Registry
from evalkit.core.scoring import ItemScore, answer_subsets
from evalkit.core.types import FAMILIES, Family, check_family

__all__ = ["METRICS", "Metric", "MetricSpec", "PRIMARY_METRIC", "PerItem", "aggregate", "diagnosis_counts",
           "mean_stderr", "paired_metrics"]


class PerItem(Protocol):
    """What a per-item score reads: an `ItemScore`, or a sample record of a run folder read back."""

    @property
    def score(self) -> float: ...

    @property
    def correct(self) -> bool: ...


Aggregator = Callable[[Sequence[ItemScore], "MetricSpec"], "Metric"]


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One metric: where it applies, its per-item score, and who can use it."""

    name: str
    families: tuple[Family, ...]  # the answer families whose results carry it
    item: Callable[[PerItem], float]  # per-item score in [0, 1] (what a mean averages, what the paired test pairs)
    aggregate: Aggregator | None = None  # item set -> Metric; None: the mean of `item` (see `mean`)
    baseline: bool = True  # the trivial baseline reports it (`evalkit.core.baselines.trivial_baseline`)
    paired: bool = True  # the gate's paired test can compare it item by item against the parent
    primary_for: tuple[Family, ...] = ()  # the families whose gate compares it first


@dataclass(frozen=True, slots=True)
class Metric:
    """One aggregate number with what it rests on; ``value`` None means undefined (never NaN), and a gate fails it."""

    name: str
    value: float | None  # 0-1 for accuracy/exact/f1; None = undefined, see `reason`
    n: int  # items in the set
    n_scored: int  # items whose score came from an answer (avg_abs_diff: items with numbers on both sides)
    extraction_rate: float | None  # share of items with an extracted answer; None when n == 0
    reason: str = ""  # why the value is undefined
    stderr: float | None = None  # standard error of the mean (`mean_stderr`); None when undefined or n < 2

    def __post_init__(self) -> None:
        if self.value is not None and not math.isfinite(self.value):
            raise ValueError(f"Metric {self.name}: value must be finite or None (undefined), got {self.value!r}")
        if not 0 <= self.n_scored <= self.n:
            raise ValueError(f"Metric {self.name}: need 0 <= n_scored <= n, got n_scored={self.n_scored}, n={self.n}")

    @property
    def defined(self) -> bool:
        return self.value is not None


def diagnosis_counts(item_scores: Iterable[ItemScore]) -> dict[str, int]:
    """How many responses got each diagnosis, most frequent first.

    >>> diagnosis_counts([ItemScore("math", 0.0, False, False, Diagnosis.NO_BOX)] * 2)
    {'no_box': 2}
    """
    return dict(Counter(s.diagnosis.value for s in item_scores).most_common())


def aggregate(item_scores: Iterable[ItemScore], family: Family) -> dict[str, Metric]:
    """Metrics of one item set: ``accuracy`` (math, multiple choice, yes/no), ``avg_abs_diff`` (math), ``exact`` and
    ``f1`` (span, plus ``HasAns_*``/``NoAns_*`` for the subsets that have items). Never NaN.

    >>> no_box = ItemScore("math", 0.0, False, False, Diagnosis.NO_BOX)
    >>> m = aggregate([no_box] * 20, "math")
    >>> m["accuracy"].value, m["accuracy"].n, m["accuracy"].extraction_rate, m["accuracy"].reason
    (None, 20, 0.0, 'no answer extracted from any of the 20 responses (no_box: 20)')
    >>> m["avg_abs_diff"].value, m["avg_abs_diff"].n_scored
    (None, 0)
    """
    check_family(family)
    scores = list(item_scores)
    for s in scores:
        if s.family != family:
            raise ValueError(
                f"aggregate({family!r}) got an ItemScore of family {s.family!r}; aggregate one task at a time"
            )
    out = {spec.name: (spec.aggregate or mean)(scores, spec) for spec in METRICS.values() if family in spec.families}
    if family == "span":  # SQuAD v2's HasAns_/NoAns_ subsets of every mean
        for prefix, subset in answer_subsets(scores, lambda s: not s.unanswerable):
            out |= {prefix + spec.name: mean(subset, spec, prefix) for spec in METRICS.values()
                    if family in spec.families and spec.aggregate is None}
    return out


def mean(scores: Sequence[ItemScore], spec: MetricSpec, prefix: str = "") -> Metric:
    """The mean of `spec`'s per-item score over `scores`, named with `prefix`; undefined when no answer was
    extracted (unanswered items count as 0)."""
    n = len(scores)
    answered = sum(s.scored for s in scores)
    rate = answered / n if n else None
    reason = ""
    if n == 0:
        reason = "no items"
    elif answered == 0:
        counts = ", ".join(f"{d}: {c}" for d, c in diagnosis_counts(scores).items())
        reason = f"no answer extracted from any of the {n} responses ({counts})"
    items = [spec.item(s) for s in scores]
    value = None if reason else min(1.0, math.fsum(items) / n)
    return Metric(prefix + spec.name, value, n, answered, rate, reason, None if reason else mean_stderr(items))


def mean_stderr(values: Sequence[float]) -> float | None:
    """The standard error of a mean: the sample standard deviation (n - 1) over sqrt(n), as lm-evaluation-harness
    reports ``<metric>_stderr`` for a mean; None below two values.

    >>> mean_stderr([1.0, 0.0, 1.0, 1.0]), mean_stderr([1.0]), mean_stderr([0.5, 0.5])
    (0.25, None, 0.0)
    """
    n = len(values)
    if n < 2:
        return None
    mu = math.fsum(values) / n
    return math.sqrt(math.fsum((v - mu) ** 2 for v in values) / (n - 1) / n)


def avg_abs_diff(scores: Sequence[ItemScore], spec: MetricSpec) -> Metric:
    """Mean |answer - gold| over the items where both are numbers; ``n_scored`` is that count."""
    n = len(scores)
    diffs = [s.abs_diff for s in scores if s.abs_diff is not None]
    rate = sum(s.scored for s in scores) / n if n else None
    if not diffs:
        why = "no items" if n == 0 else f"no item has a numeric answer and a numeric gold (0 of {n})"
        return Metric("avg_abs_diff", None, n, 0, rate, why)
    k = len(diffs)
    # Dividing first: the mean of finite values stays finite, where their sum could overflow to inf.
    spread = mean_stderr(diffs) if all(abs(d) < 1e150 for d in diffs) else None  # squares past 1e300 overflow
    return Metric("avg_abs_diff", math.fsum(d / k for d in diffs), n, k, rate, stderr=spread)


METRICS: Registry[MetricSpec] = Registry("metric")
"""Every metric, in the order results, reports and CSV columns list them."""

METRICS.register("accuracy", MetricSpec("accuracy", ("math", "multiple_choice", "yes_no"), lambda s: s.score,
                                        primary_for=("math", "multiple_choice", "yes_no")))
METRICS.register("exact", MetricSpec("exact", ("span",), lambda s: 1.0 if s.correct else 0.0))
METRICS.register("f1", MetricSpec("f1", ("span",), lambda s: s.score, primary_for=("span",)))
METRICS.register("avg_abs_diff", MetricSpec("avg_abs_diff", ("math",), lambda s: s.score,  # item unused: own aggregate
                                            aggregate=avg_abs_diff, baseline=False, paired=False))

PRIMARY_METRIC: dict[Family, str] = {
    family: next(spec.name for spec in METRICS.values() if family in spec.primary_for) for family in FAMILIES}
"""The metric a gate compares first, per family (from the registry's ``primary_for``)."""


def paired_metrics() -> tuple[str, ...]:
    """The metrics the gate's paired test supports."""
    return tuple(spec.name for spec in METRICS.values() if spec.paired)
