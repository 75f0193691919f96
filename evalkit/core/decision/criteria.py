"""What a check must show, and how a model's alpha is shared: the decision core's settings, free of numpy.

`Criteria` (per task), `Weights` (per model) and `TaskShape` (which checks a task has) are plain frozen dataclasses
that validate themselves; the gate's manifest builds them from its thresholds on load, so they must cost nothing to
import (the pytest plugin loads the manifest in every pytest run of any project that has evalkit installed).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["CHECKS", "Criteria", "Status", "TaskShape", "Weights"]

CHECKS = ("compliance", "stopping", "metric_floor", "recovery", "baseline")
"""The statistical checks, in the order a task lists them. Deterministic checks (prompt format, logit drift
bounds, speed) cannot fail by chance and stay outside the family."""

Status = Literal["pass", "inconclusive", "fail"]


@dataclass(frozen=True, slots=True)
class Criteria:
    """What one task must show; the statistical keys of the gate's manifest thresholds (fractions on 0-1)."""

    min_compliance: float | None = 0.90  # floor on the share of compliant replies (None: no compliance check)
    min_metric: float | None = None  # floor on the primary score (None: no metric floor)
    floor_margin: float = 0.05  # width of every floor's indifference zone, and of the baseline's
    tolerated_drop: float = 0.01  # a true drop up to this is no failure (the recovery and stopping nulls)
    detect_drop: float = 0.05  # a true drop this large must not pass
    require_power: bool = False  # an inconclusive recovery fails ("underpowered")
    power: float = 0.90  # probability the planned item counts reach
    beat_baseline: bool = True  # check the score against the trivial baseline (when the task has one)
    plan_disagreement: float = 0.10  # share of items a variant is assumed to disagree with its parent on, before
    # the run (planning only; the verdicts use the observed share)

    def __post_init__(self) -> None:
        for name in ("min_compliance", "min_metric"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value!r}")
        if not 0.0 <= self.floor_margin < 1.0:
            raise ValueError(f"floor_margin must be in [0, 1), got {self.floor_margin!r}")
        if not 0.0 < self.detect_drop <= 1.0:
            raise ValueError(f"detect_drop must be in (0, 1], got {self.detect_drop!r}")
        if not 0.0 <= self.tolerated_drop < self.detect_drop:
            raise ValueError(f"tolerated_drop must be in [0, detect_drop), got {self.tolerated_drop!r} "
                             f"(detect_drop {self.detect_drop!r})")
        if not 0.5 <= self.power < 1.0:
            raise ValueError(f"power must be in [0.5, 1), got {self.power!r}")
        if not 0.0 <= self.plan_disagreement <= 1.0:
            raise ValueError(f"plan_disagreement must be in [0, 1], got {self.plan_disagreement!r}")


@dataclass(frozen=True, slots=True)
class Weights:
    """Relative shares of a model's alpha per check and task (normalized over the checks the family holds).

    Recovery, the check that a sound model sits close to, gets most of it; the floors, the baseline and stopping
    are nearly never near their boundary by chance, and a broken model misses them by far (compliance 0, a
    runaway on every reply), so a small share suffices.
    """

    recovery: float = 1.0
    compliance: float = 0.05
    stopping: float = 0.05
    metric_floor: float = 0.05
    baseline: float = 0.05

    def __post_init__(self) -> None:
        for name in CHECKS:
            if not getattr(self, name) > 0:
                raise ValueError(f"weight {name} must be > 0, got {getattr(self, name)!r}")


@dataclass(frozen=True, slots=True)
class TaskShape:
    """Which checks a task has (for planning before any data exist, and to build a model's family)."""

    paired: bool = True  # compared with a parent: recovery (and stopping, with `stopping`)
    compliance: bool = True
    stopping: bool = True
    baseline: bool = True
    binary: bool = True
