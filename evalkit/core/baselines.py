"""Trivial baselines: what "doing nothing" scores on an item set, and whether a result beats it.

The seed report's constant SQuAD F1 = 50.0 was exactly this: a model that answered nothing, on a set that is half
unanswerable. Every result is therefore compared with the score of the trivial strategies of its family:

- span (SQuAD v2): answer ``\\boxed{}`` everywhere -> exact = F1 = the share of unanswerable items;
- yes/no: always answer the majority class;
- multiple choice: chance (mean of 1/number of options) and always answering the most frequent gold letter;
- math: 0 (no constant answer is right on a real math set).

The baseline is reported under every metric of the family that `evalkit.core.metrics.METRICS` marks with
``baseline``. All values are on the 0-1 scale of `evalkit.core.metrics.Metric` (pass ``scale=100`` for 0-100 values such as the
output of `evalkit.core.scoring.squad_v2`).

The comparison is sample-size aware: under "the model is the trivial baseline" a mean of n scores in [0, 1] with
mean b has standard error at most sqrt(b(1-b)/n) (binomial for accuracy, an upper bound for F1 by the Bhatia-Davis
inequality), so a result within z = 1.645 standard errors (one-sided 95%), and never less than one item (1/n), of
the baseline matches it; only a result above that band beats it.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from evalkit.core.metrics import METRICS, Metric
from evalkit.core.normalize import choice_label, normalize_choice, normalize_yes_no, squad_normalize
from evalkit.core.types import Family, Item

__all__ = [
    "BaselineComparison",
    "DEFAULT_Z",
    "baseline_comparisons",
    "baseline_tolerance",
    "beats_baseline",
    "compare_with_baseline",
    "matches_baseline",
    "trivial_baseline",
]

DEFAULT_Z = 1.645
"""One-sided 95% normal quantile: how many standard errors above the baseline a result must be to beat it."""


def trivial_baseline(items: Sequence[Item]) -> dict[str, float]:
    """The score of the trivial strategies on `items` (one family), keyed like `evalkit.core.metrics.aggregate`.

    ``accuracy`` (or ``exact``/``f1`` for span) is the best trivial score, the one a result must beat; multiple choice
    also reports ``accuracy_chance`` and ``accuracy_most_frequent``. An empty item set gives ``{}``.

    >>> from evalkit.core.types import Item
    >>> trivial_baseline([Item("t", str(i), "span", "q", () if i % 2 else ("Paris",)) for i in range(4)])
    {'exact': 0.5, 'f1': 0.5}
    >>> trivial_baseline([Item("t", str(i), "yes_no", "q", (a,)) for i, a in enumerate(["yes", "yes", "no"])])
    {'accuracy': 0.6666666666666666}
    """
    items = list(items)
    if not items:
        return {}
    families = sorted({item.family for item in items})
    if len(families) > 1:
        raise ValueError(f"trivial_baseline needs items of one family, got {families}; compute one per task")
    family, n = families[0], len(items)
    extra: dict[str, float] = {}
    if family == "span":
        # Exactly the official script's score of the empty answer: 1 where no gold normalizes to a non-empty string.
        best = sum(1 for item in items if not any(squad_normalize(a) for a in item.answers)) / n
    elif family == "yes_no":
        counts = Counter(normalize_yes_no(item.answers[0]) for item in items)
        best = max(counts.values()) / n
    elif family == "multiple_choice":
        chance = math.fsum(1 / len(item.choices) for item in items) / n
        letters = Counter(normalize_choice(item.answers[0]) or choice_label(item.answers[0]) for item in items)
        most_frequent = max(letters.values()) / n
        best = max(chance, most_frequent)
        extra = {"accuracy_chance": chance, "accuracy_most_frequent": most_frequent}
    else:
        best = 0.0
    return {**dict.fromkeys(_baseline_metrics(family), best), **extra}


def _baseline_metrics(family: Family) -> list[str]:
    return [spec.name for spec in METRICS.values() if family in spec.families and spec.baseline]


def baseline_tolerance(baseline: float, n: int, *, z: float = DEFAULT_Z, scale: float = 1.0) -> float:
    """Half-width of the band around `baseline` within which a mean of `n` items is no better than the baseline.

    ``max(z * sqrt(b(1-b)/n), 1/n)`` on the 0-1 scale, times `scale`; infinite for n = 0 (nothing can beat it).

    >>> round(baseline_tolerance(0.5, 300), 4), round(baseline_tolerance(0.0, 300), 4), baseline_tolerance(0.5, 0)
    (0.0475, 0.0033, inf)
    """
    if n <= 0:
        return math.inf
    b = min(max(baseline / scale, 0.0), 1.0)
    return max(z * math.sqrt(b * (1 - b) / n), 1 / n) * scale


def matches_baseline(value: float | None, baseline: float, n: int, *, z: float = DEFAULT_Z, scale: float = 1.0) -> bool:
    """Whether `value` equals the trivial baseline within `baseline_tolerance`; False when undefined or n = 0.

    >>> matches_baseline(50.0, 50.0, 300, scale=100), matches_baseline(0.52, 0.5, 300), matches_baseline(0.6, 0.5, 300)
    (True, True, False)
    """
    if value is None or not math.isfinite(value) or n <= 0:
        return False
    return abs(value - baseline) <= baseline_tolerance(baseline, n, z=z, scale=scale)


def beats_baseline(value: float | None, baseline: float, n: int, *, z: float = DEFAULT_Z, scale: float = 1.0) -> bool:
    """Whether `value` is above the trivial baseline by more than `baseline_tolerance`; False when undefined.

    >>> beats_baseline(0.6, 0.5, 300), beats_baseline(0.52, 0.5, 300), beats_baseline(None, 0.5, 300)
    (True, False, False)
    """
    if value is None or not math.isfinite(value):
        return False
    return value > baseline + baseline_tolerance(baseline, n, z=z, scale=scale)


@dataclass(frozen=True, slots=True)
class BaselineComparison:
    """A result set beside its trivial baseline, with the verdict and a sentence a failure message can quote."""

    name: str  # metric name, e.g. "f1"
    value: float | None  # None: the metric is undefined
    baseline: float
    n: int  # items behind the value
    tolerance: float
    matches: bool  # within the tolerance band: indistinguishable from doing nothing
    beats: bool  # above the band

    @property
    def message(self) -> str:
        if self.value is None:
            return f"{self.name} is undefined, so it cannot beat the trivial baseline {self.baseline:.4g}"
        where = "equals" if self.matches else "beats" if self.beats else "is below"
        return (
            f"{self.name} = {self.value:.4g} {where} the trivial baseline {self.baseline:.4g} "
            f"(what doing nothing scores), tolerance ±{self.tolerance:.2g} at n={self.n}"
        )


def compare_with_baseline(
    name: str, value: float | None, baseline: float, n: int, *, z: float = DEFAULT_Z, scale: float = 1.0
) -> BaselineComparison:
    """`matches_baseline` and `beats_baseline` in one record.

    >>> compare_with_baseline("f1", 0.5, 0.5, 300).message
    'f1 = 0.5 equals the trivial baseline 0.5 (what doing nothing scores), tolerance ±0.047 at n=300'
    """
    return BaselineComparison(
        name=name,
        value=value,
        baseline=baseline,
        n=n,
        tolerance=baseline_tolerance(baseline, n, z=z, scale=scale),
        matches=matches_baseline(value, baseline, n, z=z, scale=scale),
        beats=beats_baseline(value, baseline, n, z=z, scale=scale),
    )


def baseline_comparisons(metrics: Mapping[str, Metric], baseline: Mapping[str, float]) -> dict[str, BaselineComparison]:
    """Each metric that has a trivial baseline, compared with it.

    >>> from evalkit.core.extract import extract
    >>> from evalkit.core.metrics import aggregate
    >>> from evalkit.core.scoring import score
    >>> items = [Item("squad", str(i), "span", "q", () if i % 2 else ("Paris",)) for i in range(300)]
    >>> metrics = aggregate([score(it, extract("\\\\boxed{}", "span")) for it in items], "span")
    >>> baseline_comparisons(metrics, trivial_baseline(items))["f1"].message
    'f1 = 0.5 equals the trivial baseline 0.5 (what doing nothing scores), tolerance ±0.047 at n=300'
    """
    return {
        name: compare_with_baseline(name, metric.value, baseline[name], metric.n)
        for name, metric in metrics.items()
        if name in baseline
    }
