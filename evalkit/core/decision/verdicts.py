"""`decide` and `run_decision`: the decision core on per-item data, with a reason for every outcome; `plan`: the
items each task needs, before any model runs."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from evalkit.core.decision.core import (Batch, Criteria, PairedTask, TaskShape, TaskSummary, Weights, _criteria_map,
                                        _model_alpha, decide_batch, family, need)
from evalkit.core.decision.holm import STATUS
from evalkit.core.decision.planning import (MAX_ITEMS, Needed, floor_fail_probability, floor_pass_probability,
                                       items_needed_floor, items_needed_recovery, items_to_settle_floor,
                                       items_to_settle_recovery, recovery_power)
from evalkit.core.decision.pvalues import el_sf

__all__ = ["CheckDecision", "ModelDecision", "Plan", "PlanEntry", "RunDecision", "decide", "plan", "run_decision"]


@dataclass(frozen=True, slots=True)
class CheckDecision:
    """One statistical check of one task: its outcome, the reason in one line, and the numbers behind it."""

    task: str
    check: str
    status: str  # "pass", "inconclusive" or "fail"
    reason: str
    n: int
    estimate: float  # the mean score / compliance rate, or the drop (parent - model) for recovery and stopping
    p_value: float  # of the fail test ("no real problem"), before the multiplicity adjustment
    adjusted_p: float  # Holm-adjusted: the check fails when it is <= the model's alpha
    level: float  # the Holm threshold p_value was compared with
    share: float  # the check's share of the model's alpha (its Bonferroni level is share * alpha)
    p_pass: float | None  # of the pass test ("a problem as large as the check must see"); None: fail-only check
    lower: float | None = None  # confidence bounds: for floors of the mean score (lower at the model's alpha,
    upper: float | None = None  # upper at `level`); for recovery of the drop (lower at `level`, upper at alpha)
    power: float | None = None  # inconclusive: probability to fail a real problem at this n (exact for 0/1 scores)
    needed: Needed | None = None  # inconclusive: items at which the check tells a real problem from none
    settle: int | None = None  # inconclusive with n >= needed.n: items that would settle it at the estimate
    underpowered: bool = False  # an inconclusive recovery that require_power turned into a failure
    method: str = ""

    @property
    def message(self) -> str:
        return f"{self.task}: {self.check} {self.status.upper()}: {self.reason}"


@dataclass(frozen=True, slots=True)
class ModelDecision:
    """Every statistical check of one model, decided as one family at the model's alpha.

    status: fail if any check fails, else inconclusive if any is, else pass. Per task the same rule
    (`task_status`), which is what a gate's (model, task) row shows.
    """

    checks: tuple[CheckDecision, ...]
    alpha: float  # the model's family-wise alpha
    run_alpha: float
    run_size: int

    @property
    def status(self) -> str:
        return _worst(c.status for c in self.checks)

    @property
    def tasks(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(c.task for c in self.checks))

    def task_status(self, task: str) -> str:
        return _worst(c.status for c in self.checks if c.task == task)

    def check(self, task: str, name: str) -> CheckDecision:
        for c in self.checks:
            if (c.task, c.check) == (task, name):
                return c
        raise KeyError(f"no {name} check on task {task!r}; this model has "
                       f"{', '.join(f'{c.task}/{c.check}' for c in self.checks)}")

    @property
    def failed(self) -> tuple[CheckDecision, ...]:
        return tuple(c for c in self.checks if c.status == "fail")

    @property
    def inconclusive(self) -> tuple[CheckDecision, ...]:
        return tuple(c for c in self.checks if c.status == "inconclusive")

    def describe(self) -> str:
        head = (f"{self.status.upper()}: {len(self.checks)} checks as one family at alpha {self.alpha:.3g} "
                f"(run alpha {self.run_alpha:g} over {self.run_size} model{'s' * (self.run_size != 1)})")
        return "\n".join([head, *(f"  {c.message}" for c in self.checks)])


@dataclass(frozen=True, slots=True)
class RunDecision:
    """Every model of a run; the run is red when any model fails, with probability <= alpha when all are sound."""

    models: Mapping[str, ModelDecision]
    alpha: float

    @property
    def status(self) -> str:
        return _worst(m.status for m in self.models.values())

    @property
    def red(self) -> bool:
        return self.status == "fail"

    def counts(self) -> dict[str, int]:
        out = {s: 0 for s in STATUS}
        for m in self.models.values():
            out[m.status] += 1
        return out


def _worst(statuses: Iterable[str]) -> str:
    codes = [STATUS.index(s) for s in statuses]
    return STATUS[max(codes)] if codes else "pass"


# ------------------------------------------------------------------------------------------------- bounds and text


def _bisect(f: Callable[[float], float], lo: float, hi: float, target: float, *, increasing: bool) -> float:
    """The x in [lo, hi] where the monotone f crosses target (to 1e-6)."""
    if increasing:
        if f(lo) >= target:
            return lo
        if f(hi) <= target:
            return hi
    else:
        if f(lo) <= target:
            return lo
        if f(hi) >= target:
            return hi
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        above = f(mid) > target
        if above == increasing:
            hi = mid
        else:
            lo = mid
        if hi - lo < 1e-6:
            break
    return 0.5 * (lo + hi)


def _mean_bounds(t: TaskSummary, low_alpha: float, high_alpha: float, k: int | None = None
                 ) -> tuple[float, float]:
    """(lower bound at low_alpha, upper bound at high_alpha) of the mean: Clopper-Pearson for 0/1 data (k of n),
    otherwise the inversion of the same empirical-likelihood tests the checks use."""
    from evalkit.core.stats import binom_cdf as cdf, binom_sf as sf

    n = t.n
    if n == 0:
        return 0.0, 1.0
    if k is not None or t.binary:
        if k is None:
            k = int(t.score_counts[0, list(t.score_values).index(1.0)]) if 1.0 in t.score_values else 0
        lower = 0.0 if k == 0 else _bisect(lambda p: sf(k, n, p), 0.0, k / n, low_alpha, increasing=True)
        upper = 1.0 if k == n else _bisect(lambda p: cdf(k, n, p), k / n, 1.0, high_alpha, increasing=False)
        return lower, upper
    v, c = t.score_values, t.score_counts[:1]
    mean = float((v * c[0]).sum() / n)
    lower = _bisect(lambda th: float(el_sf(v - th, c, -th)[0]) if th > 0 else 0.0, 0.0, mean, low_alpha,
                    increasing=True)
    upper = _bisect(lambda th: float(el_sf(th - v, c, th - 1.0)[0]) if th < 1 else 0.0, mean, 1.0, high_alpha,
                    increasing=False)
    return lower, upper


def _drop_bounds(t: TaskSummary, low_alpha: float, high_alpha: float) -> tuple[float, float]:
    """(lower bound at low_alpha, upper bound at high_alpha) of the paired drop, by inverting the asymptotic part
    of the recovery tests (the exact sign-flip guard only concerns a drop of 0)."""
    x, c = need(t.drop_values, "paired differences"), need(t.drop_counts, "paired differences")[:1]
    mean = float((x * c[0]).sum() / max(t.n, 1))
    lower = _bisect(lambda d: float(el_sf(x - d, c, -1.0 - d)[0]), -0.999999, mean, low_alpha, increasing=True)
    upper = _bisect(lambda d: float(el_sf(d - x, c, d - 1.0)[0]), mean, 0.999999, high_alpha, increasing=False)
    return lower, upper


def _pts(x: float) -> str:
    return f"{100 * x:.1f}"


def _pct(x: float) -> str:
    if 0 < x < 1e-4:
        return "<0.01%"
    if 1 - 1e-4 < x < 1:
        return ">99.99%"
    return f"{100 * x:.3g}%"


def _items(n: int, reached: bool) -> str:
    return f"~{n:,} items" if reached else f"more than {MAX_ITEMS:,} items"


def _p(p: float) -> str:
    return f"{p:.2g}"


# ---------------------------------------------------------------------------------------------------- decide


def _check_decision(task: str, name: str, j: int, s: TaskSummary, c: Criteria, batch: Batch) -> CheckDecision:
    a = batch.alpha
    status = STATUS[int(batch.status[0, j])]
    p, adj, level, share = (float(batch.p_fail[0, j]), float(batch.adjusted[0, j]), float(batch.level[0, j]),
                            float(batch.share[j]))
    a_share = share * a
    p_pass = None if name == "stopping" else float(batch.p_pass[0, j])
    up = bool(batch.underpowered[0, j])
    n = s.n
    test = f"adjusted p={_p(adj)} vs alpha {a:.3g}"
    kw: dict[str, object] = {}
    if name == "stopping":
        w, b = int(need(s.cut_worse, "cut-offs")[0]), int(need(s.cut_better, "cut-offs")[0])
        est = (w - b) / n if n else 0.0
        verdict = "more" if status == "fail" else "no evidence of more"
        reason = (f"{w} replies ran to the token limit where the parent's stopped, {b} the other way, of {n}: "
                  f"{verdict} cut-offs than the parent's beyond the tolerated {_pts(c.tolerated_drop)} pts ({test})")
        return CheckDecision(task, name, status, reason, n, est, p, adj, level, share, None,
                             method="exact McNemar and score/likelihood-ratio (paired 0/1)")
    if name == "recovery":
        x, cnt = need(s.drop_values, "paired differences"), need(s.drop_counts, "paired differences")[0]
        est = float((x * cnt).sum() / n) if n else 0.0
        lost = int(cnt[x > 1e-12].sum())
        gained = int(cnt[x < -1e-12].sum())
        psi = float((x * x * cnt).sum() / n) if n else 0.0
        lower, upper = _drop_bounds(s, level, a) if n else (-1.0, 1.0)
        kw |= {"lower": lower, "upper": upper}
        head = f"drop {_pts(est)} pts ({lost} worse, {gained} better of {n} items; disagreement {_pct(psi)})"
        method = ("exact McNemar and Tango score / likelihood ratio (paired 0/1)" if s.binary else
                  "exact sign-flip bound and empirical-likelihood score / likelihood ratio (paired, continuous)")
        if status == "fail" and not up:
            reason = (f"{head}: more than the tolerated {_pts(c.tolerated_drop)} pts (lower bound {_pts(lower)} pts); "
                      f"{test}")
        elif status == "pass":
            reason = (f"{head}: at most {_pts(upper)} pts (upper {100 * (1 - a):.3g}% bound), below the "
                      f"{_pts(c.detect_drop)} pts the gate must see")
        else:
            clear = 1 - a_share if c.require_power else c.power
            needed = items_needed_recovery(psi, detect_drop=c.detect_drop, tolerated_drop=c.tolerated_drop,
                                         alpha_fail=a_share, alpha_pass=a, power=c.power, clear=clear)
            power = recovery_power(n, psi, c.detect_drop, tolerated_drop=c.tolerated_drop, alpha=a_share)
            kw |= {"power": power, "needed": needed}
            if n < needed.n:
                tail = (f"cannot tell a {_pts(c.detect_drop)}-pt drop from none at n={n} (upper bound {_pts(upper)} "
                        f"pts; power to fail a {_pts(c.detect_drop)}-pt drop {_pct(power)}); {needed.describe()} would "
                        f"tell them apart at this disagreement")
            else:
                settle, reached = items_to_settle_recovery(psi, est, tolerated_drop=c.tolerated_drop,
                                                           detect_drop=c.detect_drop, alpha_fail=a_share, alpha_pass=a,
                                                           power=c.power)
                kw["settle"] = settle if reached else None
                tail = (f"between the tolerated {_pts(c.tolerated_drop)} and {_pts(c.detect_drop)} pts (bounds "
                        f"{_pts(lower)} to {_pts(upper)} pts); {_items(settle, reached)} would settle a drop of about "
                        f"{_pts(est)} pts")
            reason = f"{'underpowered: ' if up else ''}{head}: {tail}"
        return CheckDecision(task, name, status, reason, n, est, p, adj, level, share, p_pass, underpowered=up,
                             method=method, **kw)  # type: ignore[arg-type]
    # floors: compliance, metric_floor, baseline
    if name == "compliance":
        k = int(need(s.compliant, "compliant counts")[0])
        floor, what = need(c.min_compliance, "min_compliance"), "compliance"
        est = k / n if n else 0.0
        lower, upper = _mean_bounds(s, a, level, k=k)
        binary, shown = True, f"{est:.3f} ({k}/{n})"
    else:
        k = None
        floor = (need(c.min_metric, "min_metric") if name == "metric_floor"
                 else min(1.0, need(s.baseline, "the trivial baseline") + c.floor_margin))
        what = "score"
        est = float((s.score_values * s.score_counts[0]).sum() / n) if n else 0.0
        lower, upper = _mean_bounds(s, a, level)
        binary, shown = s.binary, f"{est:.3f} on {n} items"
    # the pass hypothesis: a rate of floor - margin, or for the baseline the baseline itself (decide_batch's)
    low = need(s.baseline, "the trivial baseline") if name == "baseline" else max(floor - c.floor_margin, 0.0)
    zone = (f"the trivial baseline {low:.3f} (zone {low:.3f}-{floor:.3f})" if name == "baseline"
            else f"floor {floor:.2f} (zone {low:.2f}-{floor:.2f})")
    kw |= {"lower": lower, "upper": upper}
    method = "exact binomial" if binary else "empirical-likelihood score / likelihood ratio on [0, 1]"
    if status == "fail":
        reason = f"{what} {shown} vs {zone}: confidently below {floor:.3f} (upper bound {upper:.3f}; {test})"
    elif status == "pass":
        reason = f"{what} {shown} vs {zone}: confidently above {low:.3f} (lower {100 * (1 - a):.3g}% bound {lower:.3f})"
    else:
        needed = items_needed_floor(floor, c.floor_margin, alpha_fail=a_share, alpha_pass=a, power=c.power)
        power = floor_fail_probability(n, low, floor=floor, alpha=a_share)
        clears = floor_pass_probability(n, floor, low=low, alpha=a)
        kw |= {"power": power, "needed": needed}
        reason = (f"{what} {shown} vs {zone}: bounds {lower:.3f}-{upper:.3f} at n={n} settle neither (a rate of "
                  f"{low:.2f} would fail with {_pct(power)}, one of {floor:.2f} pass with {_pct(clears)}); ")
        if n < needed.n:
            reason += f"{needed.describe()} would settle it"
        else:
            settle, reached = items_to_settle_floor(min(max(est, 1e-6), 1 - 1e-6), floor=floor,
                                                    margin=c.floor_margin, alpha_fail=a_share, alpha_pass=a,
                                                    power=c.power)
            kw["settle"] = settle if reached else None
            reason += f"{_items(settle, reached)} would settle a rate of about {est:.3f}"
    return CheckDecision(task, name, status, reason, n, est, p, adj, level, share, p_pass, method=method,
                         **kw)  # type: ignore[arg-type]


def decide(tasks: Mapping[str, PairedTask], criteria: Criteria | Mapping[str, Criteria] = Criteria(), *,
           alpha: float = 0.05, run_size: int = 1, weights: Weights = Weights()) -> ModelDecision:
    """Decide one model: every statistical check on every task as one family, three outcomes, each with a reason.

    tasks: per task the model's per-item data (and its parent's, for a variant); criteria: one for all tasks, or
    one per task; alpha: the run's family-wise alpha (probability that any sound model of the run fails);
    run_size: the models gated in the run (this model's alpha is alpha / run_size).

    >>> parent = [1] * 300 + [0] * 200
    >>> variant = [1] * 290 + [0] * 10 + [1] * 9 + [0] * 191          # 10 items lost, 9 gained
    >>> d = decide({"arc": PairedTask(variant, parent, compliant=[True] * 500, baseline=0.25)}, run_size=12)
    >>> d.status, [(c.check, c.status) for c in d.checks]
    ('pass', [('compliance', 'pass'), ('recovery', 'pass'), ('baseline', 'pass')])
    >>> print(d.check("arc", "recovery").reason)  # doctest: +NORMALIZE_WHITESPACE
    drop 0.2 pts (10 worse, 9 better of 500 items; disagreement 3.8%): at most 2.9 pts (upper 99.6% bound),
    below the 5.0 pts the gate must see
    """
    crit = _criteria_map(tasks, criteria)
    summaries = {t: TaskSummary.of(task) for t, task in tasks.items()}
    batch = decide_batch(summaries, crit, alpha=alpha, run_size=run_size, weights=weights)
    checks = tuple(_check_decision(t, name, j, summaries[t], crit[t], batch)
                   for j, (t, name) in enumerate(batch.checks))
    return ModelDecision(checks, batch.alpha, alpha, run_size)


def run_decision(models: Mapping[str, Mapping[str, PairedTask]],
                 criteria: Criteria | Mapping[str, Criteria] | Callable[[str, str], Criteria] = Criteria(), *,
                 alpha: float = 0.05, weights: Weights = Weights()) -> RunDecision:
    """Decide every model of a run, each at alpha / (number of models): the run is red when any model fails, and
    when every model is sound that happens with probability at most alpha (Bonferroni across models)."""
    out = {}
    for name, tasks in models.items():
        crit = {t: criteria(name, t) for t in tasks} if callable(criteria) else criteria
        out[name] = decide(tasks, crit, alpha=alpha, run_size=len(models), weights=weights)
    return RunDecision(out, alpha)


# ------------------------------------------------------------------------------------------------------ planning


@dataclass(frozen=True, slots=True)
class PlanEntry:
    task: str
    check: str
    needed: Needed
    binding: bool  # counts towards the task's item count (recovery and floors); the baseline's is informational
    assumption: str  # what the count assumes


@dataclass(frozen=True, slots=True)
class Plan:
    """Items per task that let every check reach its power, computed before any model runs."""

    entries: tuple[PlanEntry, ...]
    alpha: float  # the model's alpha the plan is computed at
    asked: Mapping[str, int] = field(default_factory=dict)

    def needed(self, task: str) -> int:
        return max((e.needed.n for e in self.entries if e.task == task and e.binding), default=0)

    def short(self) -> list[str]:
        """One line per task that asks for fewer items than its checks need: recovery's count for the drop it must
        see, then each floor's (the largest need per check when the plan holds several models' entries).

        >>> p = plan({"arc": TaskShape()}, Criteria(), alpha=0.05, run_size=12, asked={"arc": 500})
        >>> print(p.short()[0])  # doctest: +NORMALIZE_WHITESPACE
        arc: 500 items asked, ~926 needed for a 5-point drop at 90% power (disagreement 10%); the compliance floor
        ~1,026 (a rate of 0.85 fails, one of 0.90 passes)
        """
        lines = []
        for task, n in self.asked.items():
            if self.needed(task) <= n:
                continue
            worst: dict[str, PlanEntry] = {}
            for e in self.entries:
                if e.task == task and e.binding and (e.check not in worst or e.needed.n > worst[e.check].needed.n):
                    worst[e.check] = e
            rec = worst.pop("recovery", None)
            parts = [f"{task}: {n:,} items asked"]
            if rec is not None and rec.needed.n > n:
                parts[0] += f", {rec.needed.describe().removesuffix(' items')} needed for {rec.assumption}"
            parts += [f"the {e.check.removesuffix('_floor')} floor {e.needed.describe().removesuffix(' items')} "
                      f"({e.assumption})" for e in worst.values() if e.needed.n > n]
            lines.append("; ".join(parts))
        return lines


def plan(shapes: Mapping[str, TaskShape], criteria: Criteria | Mapping[str, Criteria] = Criteria(), *,
         alpha: float = 0.05, run_size: int = 1, weights: Weights = Weights(),
         asked: Mapping[str, int] | None = None) -> Plan:
    """The items each task of one model needs, at the shares of alpha its family would give each check.

    Recovery: a drop of detect_drop fails with probability `power`, and a variant exchangeable with its parent
    passes with probability `power` (with require_power: 1 - its share of alpha, so that the failures require_power
    adds stay within the alpha budget), at the disagreement ``plan_disagreement``. Floors: a rate at the floor
    passes and one at the floor minus floor_margin fails, each with probability `power`.

    >>> p = plan({"arc": TaskShape()}, Criteria(), alpha=0.05, run_size=12, asked={"arc": 500})
    >>> p.needed("arc"), [(e.check, e.needed.n) for e in p.entries]
    (1026, [('compliance', 1026), ('recovery', 926)])
    """
    crit = _criteria_map(shapes, criteria)
    a = _model_alpha(alpha, run_size)
    checks, share = family(shapes, crit, weights)
    entries = []
    for (task, name), w in zip(checks, share):
        c = crit[task]
        a_share = float(w) * a
        if name == "recovery":
            clear = 1 - a_share if c.require_power else c.power
            needed = items_needed_recovery(c.plan_disagreement, detect_drop=c.detect_drop,
                                           tolerated_drop=c.tolerated_drop, alpha_fail=a_share, alpha_pass=a,
                                           power=c.power, clear=clear)
            entries.append(PlanEntry(task, name, needed, True, f"a {100 * c.detect_drop:g}-point drop at "
                                                               f"{100 * c.power:g}% power (disagreement "
                                                               f"{_pct(c.plan_disagreement)})"))
        elif name in ("compliance", "metric_floor"):
            floor = c.min_compliance if name == "compliance" else c.min_metric
            needed = items_needed_floor(need(floor, name), c.floor_margin, alpha_fail=a_share, alpha_pass=a,
                                        power=c.power)
            low = need(floor, name) - c.floor_margin
            entries.append(PlanEntry(task, name, needed, True, f"a rate of {low:.2f} fails, one of {floor:.2f} passes"))
    return Plan(tuple(entries), a, dict(asked or {}))
