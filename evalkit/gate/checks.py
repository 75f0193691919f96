"""The gate's checks: pure functions of the evidence of one (model, task) and its thresholds -> `CheckResult`s.

Per (model, task) ten checks, each a pure function of the evidence (the model's `TaskResult`, its parent's, the
drift between them) and its frozen `Thresholds`:

  artifacts     tokenizer, chat template, generation config, architecture and rendered prompts as the parent's
  finite        no NaN or Inf in hidden states, logits, drift, metrics or timings (it names where it first appears)
  prompt        the model is prompted as its parent is (its chat template, not the plain-text fallback)
  compliance    share of responses with a valid \\boxed{} answer against its floor, with an indifference zone
  stopping      no more replies run to max_new_tokens than the parent's, beyond the tolerated share (a lost eos)
  metric_floor  the primary metric against an absolute floor (when one is configured), with an indifference zone
  recovery      the paired drop against the parent on the same items: above tolerated_drop fails, below detect_drop
                passes, in between (or too few items to tell) is inconclusive
  drift         teacher-forced logit drift against the parent within bounds (`evalkit.run.drift`)
  baseline      the primary metric clears the trivial baseline (`evalkit.core.baselines`) by floor_margin, and a
                variant that scores exactly the baseline where its parent clearly beats it has collapsed
  speed         the slow-kernel alarm: steady-state prefill and decode speed not far below the parent's

The five statistical checks read one decision per model (`evalkit.gate.decisions`, `evalkit.core.decision`): every
statistical check of every task of a model is one hypothesis of one weighted-Holm family at the model's alpha, with
three outcomes (pass, inconclusive, fail) and a reason each. `check` without a decision decides the (model, task)
on its own (a one-task family at the thresholds' alpha). prompt, drift and speed compare a measured quantity with a
bound: they cannot fail by sampling chance and stay outside the family.

Every failure names a diagnosis (an `evalkit.core.extract.Diagnosis` value such as ``empty`` or ``truncated``, or one of
`evalkit.gate.records.LABELS`) and its message carries the counts per failure class, two example responses and
the numbers compared. Each check is one registration in `CHECKS` (docs/ARCHITECTURE.md); `evalkit.gate.runner.Gate`
gathers the evidence and runs every check over a manifest for the pytest plugin and ``evalkit gate`` alike.

>>> CHECKS.names()
('artifacts', 'finite', 'prompt', 'compliance', 'stopping', 'metric_floor', 'recovery', 'drift', 'baseline', 'speed')
"""
from __future__ import annotations

import collections
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from evalkit.core.baselines import BaselineComparison, compare_with_baseline
from evalkit.core.decision import CHECKS as STATISTICAL
from evalkit.core.registry import Registry
from evalkit.errors import GateError
from evalkit.gate.decisions import COMPLIANT, decide_alone, item_score as _score, reply_class as _cls, same_items
from evalkit.gate.manifest import Thresholds
from evalkit.gate.records import CheckResult, Evaluated, Evidence, Failure
from evalkit.gate.speed import speed as _speed

if TYPE_CHECKING:  # the decision core (numpy) loads with the first check: the pytest plugin imports this module
    from evalkit.core.decision import CheckDecision, ModelDecision
    from evalkit.run.drift import DriftResult
    from evalkit.run.engine import SampleRecord, TaskResult

__all__ = ["CHECKS", "CheckSpec", "Evaluated", "PARENT_CHECKS", "STATISTICAL", "UNSTABLE_CHECKS", "check",
           "error_result"]

EXAMPLES = 2  # example responses per failure message


@dataclass(frozen=True, slots=True)
class CheckSpec:
    """One check: its function, and how the gate treats it."""

    name: str
    run: Callable[[Evaluated, Thresholds], CheckResult]
    needs_parent: bool = False  # compares with a parent: a model without one skips it, a failed parent fails it
    stable: bool = True  # False: the outcome depends on wall-clock timings (kept out of the snapshotted summaries)


def check(name: str, ev: Evidence, th: Thresholds, decision: ModelDecision | None = None) -> CheckResult:
    """Run one check (pure: evidence, thresholds and the model's decision in, result out).

    decision: the model's statistical checks decided as one family (`evalkit.gate.runner.Gate.decision`); None
    decides this (model, task) on its own, at the thresholds' alpha.

    >>> check("speed", Evidence("m", "t", None, "accuracy", error=Failure("load_error", "gone")), Thresholds()).status
    'fail'
    """
    spec = CHECKS.get(name)
    if ev.error is not None:
        return error_result(name, ev)
    if spec.needs_parent and ev.parent_name is None:
        return _skip(name, ev, "a reference model (no parent): nothing to compare with")
    if spec.needs_parent and ev.parent_error is not None:
        return CheckResult(name, ev.model, ev.task, "fail", f"parent {ev.parent_name}: {ev.parent_error}",
                           diagnosis="parent_error")
    if ev.result is None:
        raise GateError(f"{ev.model} on {ev.task}: evidence without a result must carry its error")
    if decision is None and name in STATISTICAL:
        decision = decide_alone(ev, th)
    evaluated = Evaluated(ev.model, ev.task, ev.metric, ev.result, ev.parent_name, ev.parent, ev.drift, ev.drift_error,
                          artifacts=ev.artifacts, speed=ev.speed, decision=decision)
    return spec.run(evaluated, th)


def error_result(name: str, ev: Evidence) -> CheckResult:
    """The failure of a model that could not be evaluated: its `Failure` -> diagnosis and numbers."""
    failure = ev.error or Failure("evaluation_error", f"{ev.model} was not evaluated on {ev.task}")
    return CheckResult(name, ev.model, ev.task, "fail", failure.text or str(failure), diagnosis=failure.diagnosis)


def _compliance(ev: Evaluated, th: Thresholds) -> CheckResult:
    c = ev.decided("compliance")
    records = ev.result.records
    k, n = sum(_cls(r) in COMPLIANT for r in records), len(records)
    rate = k / n if n else 0.0
    numbers = f"compliance {rate:.3f} ({k}/{n}) vs {_zone(th.min_compliance, th)}; {_stats(c, ev.decision)}"
    values = {"compliance": rate, "floor": th.min_compliance, **_values(c, ev.decision)}
    failing = [r for r in records if _cls(r) not in COMPLIANT]
    return _decided("compliance", ev, c, numbers, values, lambda: (_dominant(failing), failing))


def _prompt(ev: Evaluated, th: Thresholds) -> CheckResult:
    mine, theirs = ev.result.prompt_mode, ev.theirs.prompt_mode
    numbers = f"prompted via {mine}; the parent via {theirs}"
    if mine == theirs:
        return CheckResult("prompt", ev.model, ev.task, "pass", numbers)
    diagnosis = "no_chat_template" if (mine, theirs) == ("plain", "chat_template") else "prompt_mismatch"
    notes = [n for n in ev.result.model.get("notes", []) if "template" in n]
    records = ev.result.records
    return _fail("prompt", ev, numbers, diagnosis, records, {"prompt_mode": mine, "parent_prompt_mode": theirs},
                 note="; ".join(notes) or "restore the chat template (chat_template.jinja / tokenizer_config.json)")


def _stopping(ev: Evaluated, th: Thresholds) -> CheckResult:
    c = ev.decided("stopping")
    mine, theirs = list(ev.result.records), list(ev.theirs.records)
    same_items(mine, theirs, model=ev.model, parent=ev.parent_name, task=ev.task)
    cut, cut_parent = (sum(r.generation.finish_reason == "length" for r in rs) for rs in (mine, theirs))
    runaway = [m for m, t in zip(mine, theirs) if m.generation.finish_reason == "length"
               and t.generation.finish_reason != "length"]
    n = len(mine)
    numbers = (f"{cut}/{n} replies ran to max_new_tokens, the parent's {cut_parent}/{n} ({len(runaway)} only the "
               f"model's; tolerated: {100 * th.tolerated_drop:g} pts more); {_stats(c, ev.decision)}")
    values = {"runaway": cut, "parent_runaway": cut_parent, **_values(c, ev.decision)}
    # a fail-only check: no real excess of cut-offs is "pass"; "runaway" is no reply's class, so the examples are
    # the first runaway replies
    return _decided("stopping", ev, c, numbers, values, lambda: ("runaway", runaway), parent=dict(_by_id(theirs)))


def _metric_floor(ev: Evaluated, th: Thresholds) -> CheckResult:
    if th.min_metric is None:
        return _skip("metric_floor", ev, "no absolute floor configured (min_metric)")
    result = ev.result
    metric = result.metrics.get(ev.metric)
    records = result.records
    if metric is None or metric.value is None:  # no answer at all: nothing to test, nothing above any floor
        numbers = f"{ev.metric} undefined ({metric.reason if metric else 'not computed'}) vs floor {th.min_metric:.2f}"
        return _fail("metric_floor", ev, numbers, _dominant(records), records, {"floor": th.min_metric})
    c = ev.decided("metric_floor")
    numbers = (f"{ev.metric} {metric.value:.3f} on {len(records)} items vs {_zone(th.min_metric, th)}; "
               f"{_stats(c, ev.decision)}")
    values = {ev.metric: metric.value, "floor": th.min_metric, **_values(c, ev.decision)}
    failing = [r for r in records if _score(r, ev.metric) < 1.0]
    return _decided("metric_floor", ev, c, numbers, values, lambda: (_dominant(failing), failing))


def _recovery(ev: Evaluated, th: Thresholds) -> CheckResult:
    c = ev.decided("recovery")
    mine, theirs = list(ev.result.records), list(ev.theirs.records)
    same_items(mine, theirs, model=ev.model, parent=ev.parent_name, task=ev.task)
    p, v = [_score(r, ev.metric) for r in theirs], [_score(r, ev.metric) for r in mine]
    n = len(p)
    pm, vm = (math.fsum(p) / n, math.fsum(v) / n) if n else (0.0, 0.0)
    worse = [m for m, t, a, b in zip(mine, theirs, p, v) if b < a]
    better = sum(b > a for a, b in zip(p, v))
    recovery = vm / pm if pm > 0 else None
    shown = f"recovery {recovery:.2f}" if recovery is not None else "recovery undefined: the parent scores 0"
    numbers = (f"parent {pm:.3f} -> variant {vm:.3f} (drop {100 * (pm - vm):.1f} pts, {shown}) on {n} paired items; "
               f"worse on {len(worse)}, better on {better}; drop bounds {_pts(c.lower)} to {_pts(c.upper)} pts vs "
               f"tolerated {100 * th.tolerated_drop:g} / detect {100 * th.detect_drop:g}; {_stats(c, ev.decision)}")
    values = {"recovery": recovery, "drop": pm - vm, "worse": len(worse), "better": better, "n": n,
              **_values(c, ev.decision)}
    return _decided("recovery", ev, c, numbers, values, lambda: (_dominant(worse), worse), parent=dict(_by_id(theirs)))


def _drift(ev: Evaluated, th: Thresholds) -> CheckResult:
    if ev.drift_error is not None:
        if ev.drift_error.diagnosis != "drift_error":  # not computable by construction: the artifacts check says why
            return _skip("drift", ev, f"not computed: {ev.drift_error}")
        return CheckResult("drift", ev.model, ev.task, "fail", ev.drift_error.text, diagnosis="drift_error")
    d = ev.drift
    if d is None:
        return _skip("drift", ev, "no drift computed")
    bounds = [("mean KL", d.kl_mean, th.max_mean_kl, "max"), ("p99 KL", d.kl_p99, th.max_p99_kl, "max"),
              ("top-1 agreement", d.top1_agreement, th.min_top1_agreement, "min"),
              ("ppl ratio", d.ppl_ratio, th.max_ppl_ratio, "max")]
    parts, broken = [], []
    for label, value, bound, kind in bounds:
        parts.append(f"{label} {value:.4g}" + (f" ({kind} {bound:g})" if bound is not None else ""))
        if bound is not None and not (value <= bound if kind == "max" else value >= bound):  # NaN breaks a bound
            broken.append(label)
    layer = ("none" if d.first_divergent_layer is None else f"model.layers.{d.first_divergent_layer}")
    numbers = (f"{', '.join(parts)} over {d.n_tokens} response tokens of {d.n_sequences} parent responses; "
               + (getattr(d, "note", "") or  # issue 16: drift through a server (TopKDrift) sees no hidden states
                  f"first diverging layer: {layer} (hidden-state cosine < {d.threshold:g}), largest drop at "
                  f"{'none' if d.largest_drop_layer is None else f'model.layers.{d.largest_drop_layer}'}"))
    if d.missing_layers:
        numbers += f"; {d.missing_layers}"
    values = {"kl_mean": d.kl_mean, "kl_p99": d.kl_p99, "top1_agreement": d.top1_agreement,
              "ppl_ratio": d.ppl_ratio, "first_divergent_layer": d.first_divergent_layer}
    if not broken:
        return CheckResult("drift", ev.model, ev.task, "pass", numbers, values=values)
    if d.nonfinite or not all(math.isfinite(v) for v in (d.kl_mean, d.kl_p99, d.top1_agreement, d.ppl_ratio)):
        return CheckResult("drift", ev.model, ev.task, "fail", numbers, diagnosis="non_finite",
                           note=_nonfinite_note(d), values=values)
    return CheckResult("drift", ev.model, ev.task, "fail", numbers, diagnosis="logit_drift",
                       note=f"out of bounds: {', '.join(broken)}", values=values)


def _nonfinite_note(d: DriftResult) -> str:
    where = f"NaN/Inf first appears at {d.nonfinite}" if d.nonfinite else "NaN/Inf in the drift statistics"
    return where + (f" (weights with NaN/Inf: {', '.join(d.nonfinite_weights)})" if d.nonfinite_weights else "")


def _artifacts(ev: Evaluated, th: Thresholds) -> CheckResult:
    if ev.artifacts is None:
        return _skip("artifacts", ev, "the parent's artifacts were not compared (the parent could not be loaded)")
    if not ev.artifacts:
        return CheckResult("artifacts", ev.model, ev.task, "pass", "tokenizer, chat template, generation config, "
                           "architecture and every rendered prompt as the parent's")
    numbers = "; ".join(str(d) for d in ev.artifacts)
    return CheckResult("artifacts", ev.model, ev.task, "fail", numbers, diagnosis=ev.artifacts[0].diagnosis,
                       values={"differences": [d.diagnosis for d in ev.artifacts]},
                       note="restore the parent's files (tokenizer, chat template, generation_config.json, config.json)")


def _finite(ev: Evaluated, th: Thresholds) -> CheckResult:
    """NaN or Inf anywhere in the numbers: the drift forward's hidden states, logits and statistics (which say
    where it first appears), the metrics and the timings."""
    found = []
    if ev.drift is not None and (ev.drift.nonfinite or not _all_finite(ev.drift.to_dict())):
        found.append(_nonfinite_note(ev.drift))
    metrics = {name: m.value for name, m in ev.result.metrics.items() if m.value is not None}
    if not _all_finite(metrics):
        found.append(f"metrics {metrics}")
    timings = ev.result.throughput()
    if not _all_finite({k: v for k, v in timings.items() if isinstance(v, float)}):
        found.append(f"timings {timings}")
    if not found:
        seen = ("server logprobs, metrics and timings" if getattr(ev.drift, "note", "") else  # issue 16: served
                "weights, logits, hidden states, metrics and timings" if ev.drift is not None else
                "metrics and timings")
        return CheckResult("finite", ev.model, ev.task, "pass", f"{seen} are finite")
    values = {"nonfinite": ev.drift.nonfinite if ev.drift is not None else "",
              "nonfinite_weights": list(ev.drift.nonfinite_weights) if ev.drift is not None else []}
    return CheckResult("finite", ev.model, ev.task, "fail", "; ".join(found), diagnosis="non_finite", values=values)


def _all_finite(values: Mapping[str, Any]) -> bool:
    numbers = [v for v in values.values() if isinstance(v, float)]
    numbers += [x for v in values.values() if isinstance(v, (tuple, list)) for x in v if isinstance(x, float)]
    return all(math.isfinite(x) for x in numbers)


def _baseline(ev: Evaluated, th: Thresholds) -> CheckResult:
    if not th.beat_baseline:
        return _skip("baseline", ev, "switched off (beat_baseline = false)")
    b = _trivial(ev.result, ev.metric)
    if b is None:
        return _skip("baseline", ev, f"no trivial baseline for {ev.metric}")
    m = ev.result.metrics.get(ev.metric)
    value = m.value if m else None
    records = ev.result.records
    if value is None:  # no answer at all: deterministic, whatever n
        numbers = f"{ev.metric} is undefined, so it cannot beat the trivial baseline {b:.4g}"
        return _fail("baseline", ev, numbers, "trivial_baseline", records, {"baseline": b})
    collapsed = _collapsed(ev, value, b, th)
    if collapsed:
        return _fail("baseline", ev, collapsed, "trivial_baseline", records,
                     {ev.metric: value, "baseline": b, "rule": "collapse"})
    return _baseline_floor(ev, th, value, b)


def _collapsed(ev: Evaluated, value: float, b: float, th: Thresholds) -> str:
    """The collapse rule, deterministic at any n: a variant scoring at the trivial baseline (within one item of it:
    what a constant answerer scores on these items, the seed's F1 of 50.0) while its parent clearly beats the
    baseline (beyond `evalkit.core.baselines`' noise band and by at least floor_margin) has collapsed to doing
    nothing, even where too few items leave the statistical floor inconclusive. "" when the rule does not apply."""
    n = len(ev.result.records)
    if ev.parent is None or abs(value - b) > 1 / max(n, 1) + 1e-9:
        return ""
    theirs = _baseline_comparison(ev.parent, ev.metric)
    if theirs is None or theirs.value is None or not theirs.beats or theirs.value < b + th.floor_margin:
        return ""
    return (f"{ev.metric} {value:.4g} is at the trivial baseline {b:.4g} (what doing nothing scores; within one item) "
            f"on {n} items, where the parent {ev.parent_name} scores {theirs.value:.4g}: collapsed to a constant "
            f"answer (deterministic, at any n)")


def _baseline_floor(ev: Evaluated, th: Thresholds, value: float, b: float) -> CheckResult:
    """The statistical floor at the trivial baseline b: fails when the score is confidently below b + floor_margin,
    passes when it is confidently above b, inconclusive in between (one check of the model's family)."""
    c = ev.decided("baseline")
    top = min(1.0, b + th.floor_margin)
    numbers = (f"{ev.metric} {value:.3f} on {len(ev.result.records)} items vs the trivial baseline {b:.3f} (what "
               f"doing nothing scores; zone {b:.3f}-{top:.3f}); {_stats(c, ev.decision)}")
    values = {ev.metric: value, "baseline": b, "floor": top, **_values(c, ev.decision)}
    records = ev.result.records
    return _decided("baseline", ev, c, numbers, values, lambda: ("trivial_baseline", records))


def _zone(floor: float, th: Thresholds) -> str:
    return f"floor {floor:.2f} (zone {max(floor - th.floor_margin, 0.0):.2f}-{floor:.2f})"


def _pts(x: float | None) -> str:
    return "?" if x is None else f"{100 * x:.1f}"


def _stats(c: CheckDecision, decision: ModelDecision | None) -> str:
    """The numbers behind a statistical check's outcome: its confidence bounds, and the adjusted p-value against
    the model's alpha (the check fails exactly when it is at or below it)."""
    alpha = decision.alpha if decision is not None else float("nan")
    bounds = ""
    if c.lower is not None and c.upper is not None and c.check != "recovery":
        bounds = f"bounds {c.lower:.3f}-{c.upper:.3f}; "
    return f"{bounds}one-sided p={c.p_value:.2g}, Holm-adjusted {c.adjusted_p:.2g} vs alpha {alpha:.2g}"


def _values(c: CheckDecision, decision: ModelDecision | None) -> dict[str, Any]:
    """The decision's numbers, machine-readable (the run folder's verdicts.json, the reports)."""
    out: dict[str, Any] = {"p_value": c.p_value, "adjusted_p": c.adjusted_p, "level": c.level,
                           "alpha": decision.alpha if decision is not None else None, "lower": c.lower,
                           "upper": c.upper}
    if c.power is not None:
        out["power"] = c.power
    if c.needed is not None:
        out["needed"] = c.needed.n
    return out


def _decided(name: str, ev: Evaluated, c: CheckDecision, numbers: str, values: Mapping[str, Any],
             failing: Callable[[], tuple[str, Sequence[SampleRecord]]], *,
             parent: Mapping[str, SampleRecord] | None = None) -> CheckResult:
    """A statistical check's result from its decision: a failure keeps its diagnosis (`failing` gives it and the
    replies its examples come from); require_power's failure of an inconclusive recovery is ``underpowered``; an
    inconclusive check carries the reason (bounds, exact power, the items that would settle it) as its note."""
    if c.underpowered:
        return CheckResult(name, ev.model, ev.task, "fail", numbers, diagnosis="underpowered", note=c.reason,
                           values=values)
    if c.status == "fail":
        diagnosis, pool = failing()
        return _fail(name, ev, numbers, diagnosis, pool, values, parent)
    if c.status == "inconclusive":
        return CheckResult(name, ev.model, ev.task, "inconclusive", numbers, note=c.reason, values=values)
    return CheckResult(name, ev.model, ev.task, "pass", numbers, values=values)


def _skip(name: str, ev: Evaluated | Evidence, why: str) -> CheckResult:
    return CheckResult(name, ev.model, ev.task, "skip", why)


def _dominant(records: Sequence[SampleRecord]) -> str:
    counts = collections.Counter(_cls(r) for r in records if _cls(r) != "correct")
    return counts.most_common(1)[0][0] if counts else "wrong_answer"


def _classes(records: Sequence[SampleRecord]) -> str:
    counts = collections.Counter(_cls(r) for r in records)
    ranked = sorted(counts.items(), key=lambda x: (-x[1], x[0]))
    return f"{len(records)} ({', '.join(f'{c} {k}' for c, k in ranked)})"


def _example(r: SampleRecord, parent: SampleRecord | None = None) -> str:
    g = r.generation
    text = g.raw_text if len(g.raw_text) <= 160 else g.raw_text[:110] + " ... " + g.raw_text[-45:]
    answer = "no answer" if r.extraction.answer is None else f"answered {r.extraction.answer!r}"
    line = (f"[{r.item.task}/{r.item.id}] gold {list(r.item.answers)!r}, {answer} ({_cls(r)}; "
            f"{g.finish_reason} after {g.output_tokens} tokens): {text!r}")
    if parent is not None:
        p = "no answer" if parent.extraction.answer is None else repr(parent.extraction.answer)
        line += f"; the parent answered {p} ({_cls(parent)})"
    return line


def _fail(name: str, ev: Evaluated, numbers: str, diagnosis: str, pool: Sequence[SampleRecord],
          values: Mapping[str, Any], parent: Mapping[str, SampleRecord] | None = None, *, note: str = "") -> CheckResult:
    """A failed check with the diagnosis's evidence: class counts and examples of that class from `pool`
    (the first records of `pool` when none has that class, e.g. for diagnoses that are not a reply's class)."""
    records = ev.result.records
    picked = [r for r in pool if _cls(r) == diagnosis][:EXAMPLES]
    picked = picked or list(pool[:EXAMPLES])
    examples = tuple(_example(r, (parent or {}).get(r.item.id)) for r in picked)
    return CheckResult(name, ev.model, ev.task, "fail", numbers, diagnosis=diagnosis, classes=_classes(records),
                       examples=examples, note=note, values=values)


def _by_id(records: Iterable[SampleRecord]) -> Iterable[tuple[str, SampleRecord]]:
    return ((r.item.id, r) for r in records)


def _trivial(result: TaskResult, metric: str) -> float | None:
    """The trivial baseline's score of `metric` on these items (None: the metric has none)."""
    return result.task.trivial_baseline().get(metric)


def _baseline_comparison(result: TaskResult, metric: str) -> BaselineComparison | None:
    baseline = _trivial(result, metric)
    if baseline is None:
        return None
    m = result.metrics.get(metric)
    return compare_with_baseline(metric, m.value if m else None, baseline, len(result.records))


CHECKS: Registry[CheckSpec] = Registry("check", error=GateError)
"""Every check, in the order a verdict looks for its primary diagnosis (root causes first)."""

for _spec in (CheckSpec("artifacts", _artifacts, needs_parent=True), CheckSpec("finite", _finite),
              CheckSpec("prompt", _prompt, needs_parent=True), CheckSpec("compliance", _compliance),
              CheckSpec("stopping", _stopping, needs_parent=True), CheckSpec("metric_floor", _metric_floor),
              CheckSpec("recovery", _recovery, needs_parent=True), CheckSpec("drift", _drift, needs_parent=True),
              CheckSpec("baseline", _baseline), CheckSpec("speed", _speed, needs_parent=True, stable=False)):
    CHECKS.register(_spec.name, _spec)

PARENT_CHECKS = frozenset(spec.name for spec in CHECKS.values() if spec.needs_parent)
"""Checks that compare with a parent; a model without one skips them."""

UNSTABLE_CHECKS = frozenset(spec.name for spec in CHECKS.values() if not spec.stable)
"""Checks whose outcome depends on wall-clock timings: kept out of the summaries that snapshots compare."""
