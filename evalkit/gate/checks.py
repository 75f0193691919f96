"""The gate's checks: pure functions of the evidence of one (model, task) and its thresholds -> `CheckResult`s.

Per (model, task) ten checks, each a pure function of the evidence (the model's `TaskResult`, its parent's, the
drift between them) and its frozen `Thresholds`:

  artifacts     tokenizer, chat template, generation config, architecture and rendered prompts as the parent's
  finite        no NaN or Inf in hidden states, logits, drift, metrics or timings (it names where it first appears)
  prompt        the model is prompted as its parent is (its chat template, not the plain-text fallback)
  compliance    share of responses with a valid \\boxed{} answer is not confidently below its floor
  stopping      no significantly more replies run to max_new_tokens than the parent's (a lost eos)
  metric_floor  the primary metric is not confidently below an absolute floor (when one is configured)
  recovery      no significant paired drop against the parent on the same items (`evalkit.core.stats.paired_drop`)
  drift         teacher-forced logit drift against the parent within bounds (`evalkit.run.drift`)
  baseline      the primary metric clearly beats the trivial baseline (`evalkit.core.baselines`)
  speed         the slow-kernel alarm: steady-state prefill and decode speed not far below the parent's

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
from evalkit.core.metrics import METRICS, paired_metrics
from evalkit.core.registry import Registry
from evalkit.errors import GateError
from evalkit.gate.manifest import Thresholds
from evalkit.gate.records import CheckResult, Evidence, Failure
from evalkit.gate.serving import engine_note

if TYPE_CHECKING:  # evalkit.core.stats (numpy) loads with the first check: the pytest plugin imports this module
    from evalkit.core.stats import PairedDrop, RateTest
    from evalkit.models.artifacts import Difference
    from evalkit.run.drift import DriftResult
    from evalkit.run.engine import SampleRecord, TaskResult
    from evalkit.run.generation import Phases

__all__ = ["CHECKS", "CheckSpec", "Evaluated", "PARENT_CHECKS", "UNSTABLE_CHECKS", "check", "error_result"]

MIN_TIMED_SECONDS = 1.0  # a parent run shorter than this is too short to time against (runs without phase timings)
MIN_TIMED_TOKENS = 4  # fewer output tokens per reply than this (an eos flood) time the prompts, not decoding
EXAMPLES = 2  # example responses per failure message


@dataclass(frozen=True, slots=True)
class Evaluated:
    """The evidence of a (model, task) whose model was evaluated: what a check function reads (`check` builds it)."""

    model: str
    task: str
    metric: str  # the primary metric's name
    result: TaskResult
    parent_name: str | None = None
    parent: TaskResult | None = None
    drift: DriftResult | None = None
    drift_error: Failure | None = None
    artifacts: tuple[Difference, ...] | None = None  # differences from the parent's artifacts (None: not compared)
    speed: tuple[Phases, Phases] | None = None  # (model, parent) fastest phases over their tasks (Evidence.speed)

    @property
    def theirs(self) -> TaskResult:
        """The parent's result: `check` runs a check that needs a parent only when the parent was evaluated."""
        if self.parent is None:
            raise GateError(f"{self.model} on {self.task}: the parent's result is missing")
        return self.parent


@dataclass(frozen=True, slots=True)
class CheckSpec:
    """One check: its function, and how the gate treats it."""

    name: str
    run: Callable[[Evaluated, Thresholds], CheckResult]
    needs_parent: bool = False  # compares with a parent: a model without one skips it, a failed parent fails it
    stable: bool = True  # False: the outcome depends on wall-clock timings (kept out of the snapshotted summaries)


def check(name: str, ev: Evidence, th: Thresholds) -> CheckResult:
    """Run one check (pure: evidence and thresholds in, result out).

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
    evaluated = Evaluated(ev.model, ev.task, ev.metric, ev.result, ev.parent_name, ev.parent, ev.drift, ev.drift_error,
                          ev.artifacts, ev.speed)
    return spec.run(evaluated, th)


def error_result(name: str, ev: Evidence) -> CheckResult:
    """The failure of a model that could not be evaluated: its `Failure` -> diagnosis and numbers."""
    failure = ev.error or Failure("evaluation_error", f"{ev.model} was not evaluated on {ev.task}")
    return CheckResult(name, ev.model, ev.task, "fail", failure.text or str(failure), diagnosis=failure.diagnosis)


def _compliance(ev: Evaluated, th: Thresholds) -> CheckResult:
    records = ev.result.records
    flags = [1.0 if _cls(r) in ("correct", "wrong_answer") else 0.0 for r in records]
    k, n = int(sum(flags)), len(flags)
    test = _below(flags, th.min_compliance, th)
    numbers = f"compliance {k / n:.3f} ({k}/{n}) vs floor {th.min_compliance:.2f}; {_p(test.p_value)} that it is below"
    values = {"compliance": k / n, "floor": th.min_compliance, "p_value": test.p_value}
    if not test.significant:
        note = f"below the floor, but within noise at n={n}" if k / n < th.min_compliance else ""
        return CheckResult("compliance", ev.model, ev.task, "pass", numbers, note=note, values=values)
    failing = [r for r in records if _cls(r) not in ("correct", "wrong_answer")]
    return _fail("compliance", ev, numbers, _dominant(failing), failing, values)


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
    mine, theirs = list(ev.result.records), list(ev.theirs.records)
    _same_items(ev, mine, theirs)
    stopped = [[0.0 if r.generation.finish_reason == "length" else 1.0 for r in rs] for rs in (theirs, mine)]
    test = _drop(stopped[0], stopped[1], th)
    cut, cut_parent = test.n - round(test.variant_mean * test.n), test.n - round(test.parent_mean * test.n)
    numbers = (f"{cut}/{test.n} replies ran to max_new_tokens, the parent's {cut_parent}/{test.n}; "
               f"{_p(test.p_value)} ({test.method})")
    values = {"runaway": cut, "parent_runaway": cut_parent, "p_value": test.p_value}
    if not test.failed:
        return CheckResult("stopping", ev.model, ev.task, "pass", numbers, values=values)
    runaway = [m for m, t in zip(mine, theirs) if m.generation.finish_reason == "length"
               and t.generation.finish_reason != "length"]
    # "runaway" is no reply's class, so the examples are the first runaway replies
    return _fail("stopping", ev, numbers, "runaway", runaway, values, parent=dict(_by_id(theirs)))


def _metric_floor(ev: Evaluated, th: Thresholds) -> CheckResult:
    if th.min_metric is None:
        return _skip("metric_floor", ev, "no absolute floor configured (min_metric)")
    result = ev.result
    metric = result.metrics.get(ev.metric)
    records = result.records
    if metric is None or metric.value is None:
        numbers = f"{ev.metric} undefined ({metric.reason if metric else 'not computed'}) vs floor {th.min_metric:.2f}"
        return _fail("metric_floor", ev, numbers, _dominant(records), records, {"floor": th.min_metric})
    scores = [_score(r, ev.metric) for r in records]
    test = _below(scores, th.min_metric, th)
    numbers = (f"{ev.metric} {metric.value:.3f} on {len(scores)} items vs floor {th.min_metric:.2f}; "
               f"{_p(test.p_value)} that it is below")
    values = {ev.metric: metric.value, "floor": th.min_metric, "p_value": test.p_value}
    if not test.significant:
        return CheckResult("metric_floor", ev.model, ev.task, "pass", numbers, values=values)
    failing = [r for r in records if _score(r, ev.metric) < 1.0]
    return _fail("metric_floor", ev, numbers, _dominant(failing), failing, values)


def _recovery(ev: Evaluated, th: Thresholds) -> CheckResult:
    test, mine, theirs = _paired(ev, th)
    values = {"recovery": test.recovery, "drop": test.drop, "p_value": test.p_value, "mdd": test.mdd,
              "worse": test.worse, "better": test.better, "n": test.n}
    numbers = test.describe()
    underpowered = test.underpowered(th.detect_drop)
    need = (f"cannot see a {100 * th.detect_drop:.0f}-point drop at n={test.n} "
            f"(power {100 * test.power_at(th.detect_drop):.0f}%); ~{test.items_needed(th.detect_drop)} items would")
    if test.failed:
        worse = [m for m, t in zip(mine, theirs) if _score(m, ev.metric) < _score(t, ev.metric)]
        return _fail("recovery", ev, numbers, _dominant(worse), worse, values, parent=dict(_by_id(theirs)))
    if underpowered and th.require_power:
        return CheckResult("recovery", ev.model, ev.task, "fail", numbers, diagnosis="underpowered", note=need,
                           values=values)
    return CheckResult("recovery", ev.model, ev.task, "pass", numbers, note=f"underpowered: {need}" if underpowered
                       else "", values=values)


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
    comp = _baseline_comparison(ev.result, ev.metric)
    if comp is None:
        return _skip("baseline", ev, f"no trivial baseline for {ev.metric}")
    values = {ev.metric: comp.value, "baseline": comp.baseline, "tolerance": comp.tolerance}
    if comp.beats:
        return CheckResult("baseline", ev.model, ev.task, "pass", comp.message, values=values)
    if ev.parent is not None:
        # A variant has collapsed to the baseline only if its parent beats it and it is significantly worse than
        # the parent; otherwise "not clearly above the baseline" is the task's sample size speaking, not the model.
        theirs = _baseline_comparison(ev.parent, ev.metric)
        if theirs is not None and not theirs.beats:
            return _skip("baseline", ev, "the parent does not beat the trivial baseline either: nothing to lose")
        # At the baseline itself (within one item of it: the seed's 50.0) it fails whatever n, since the parent
        # clearly beats it (checked above); only a score between the two is judged by the paired test.
        at_baseline = comp.value is not None and abs(comp.value - comp.baseline) <= 1 / max(comp.n, 1) + 1e-9
        if comp.value is not None and not at_baseline and not _paired(ev, th)[0].significant:
            return CheckResult("baseline", ev.model, ev.task, "pass", comp.message, values=values,
                               note="not clearly above the baseline at this n, but not significantly below its "
                                    "parent, which is")
    records = ev.result.records
    return _fail("baseline", ev, comp.message, "trivial_baseline", records, values)


# --- speed (issue 18): per-phase steady-state timings, so that every variant is timed, however short its run ------


def _speed(ev: Evaluated, th: Thresholds) -> CheckResult:
    """The slow-kernel alarm. Each phase of the variant against the same phase of the parent, from the timings the
    runs themselves recorded (`evalkit.run.timing`; a cached run keeps those of the run that produced it): prefill
    seconds per prompt token (fastest batch) and decode seconds per row and step (median step, warm-up steps
    excluded), per model over all its tasks when the gate gathered them (`Evidence.speed`: each phase's fastest
    task), else this task's run. Robust on shared cores, defined however short a run is; the alarm names the slower
    phase."""
    if th.max_slowdown is None:
        return _skip("speed", ev, "switched off (max_slowdown = none)")
    mine, theirs = ev.speed if ev.speed is not None else (ev.result.run.phases, ev.theirs.run.phases)
    if mine is None or theirs is None:
        return _whole_run_speed(ev, th)
    where = ev.result.throughput().get("device", "?")
    ratios = {"prefill": mine.prefill_s_per_token / theirs.prefill_s_per_token}
    parts = [f"prefill {mine.prefill_s_per_token * 1e6:.3g} vs the parent's {theirs.prefill_s_per_token * 1e6:.3g} "
             f"us/token ({ratios['prefill']:.1f}x)"]
    note = ""
    if mine.decode_s_per_row is not None and theirs.decode_s_per_row is not None:
        ratios["decode"] = mine.decode_s_per_row / theirs.decode_s_per_row
        parts.insert(0, f"decode {mine.decode_s_per_row * 1e3:.3g} vs the parent's {theirs.decode_s_per_row * 1e3:.3g} "
                        f"ms/row-step ({ratios['decode']:.1f}x; {mine.decode_steps} and {theirs.decode_steps} steps "
                        f"timed)")
    else:
        note = "no decode step timed (the replies ended at their first token): prefill compared alone"
    phase = max(ratios, key=lambda k: ratios[k])
    slowdown = ratios[phase]
    scope = " (each model's fastest task)" if ev.speed is not None else ""
    numbers = f"{'; '.join(parts)}{scope}; alarm at {th.max_slowdown:g}x on {where}"
    numbers += engine_note(ev.result.throughput())  # issue 16: a served model's figures are the engine's
    values = {"slowdown": slowdown, "phase": phase, **{f"{k}_slowdown": v for k, v in ratios.items()},
              "prefill_s_per_token": mine.prefill_s_per_token, "decode_s_per_row": mine.decode_s_per_row,
              "parent_prefill_s_per_token": theirs.prefill_s_per_token,
              "parent_decode_s_per_row": theirs.decode_s_per_row}
    if slowdown <= th.max_slowdown:
        return CheckResult("speed", ev.model, ev.task, "pass", numbers, note=note, values=values)
    return CheckResult("speed", ev.model, ev.task, "fail", f"{phase} {slowdown:.1f}x slower than the parent's: {numbers}",
                       diagnosis="slow_kernel", values=values,
                       note=note or "timings come from each model's own run (the cache keeps them)")


def _whole_run_speed(ev: Evaluated, th: Thresholds) -> CheckResult:
    """Runs without phase timings (a backend that does not measure them): whole-run throughput, when long enough."""
    mine, theirs = ev.result.throughput(), ev.theirs.throughput()
    if theirs["seconds"] < MIN_TIMED_SECONDS or mine["tokens_per_second"] <= 0:
        return _skip("speed", ev, f"the parent's run took under {MIN_TIMED_SECONDS:g}s and has no phase timings: "
                                  "too short to time against")
    if mine["output_tokens"] < MIN_TIMED_TOKENS * max(1, mine["samples"]):  # the prompts' prefill is all it timed
        return _skip("speed", ev, f"under {MIN_TIMED_TOKENS} output tokens per reply: too few to time decoding")
    slowdown = theirs["tokens_per_second"] / mine["tokens_per_second"]
    numbers = (f"{mine['tokens_per_second']:.1f} tokens/s vs the parent's {theirs['tokens_per_second']:.1f} "
               f"({slowdown:.1f}x slower; alarm at {th.max_slowdown:g}x); {mine['seconds_per_sample']:.3f} vs "
               f"{theirs['seconds_per_sample']:.3f} s/sample on {mine.get('device', '?')}")
    values = {"slowdown": slowdown, "tokens_per_second": mine["tokens_per_second"],
              "parent_tokens_per_second": theirs["tokens_per_second"]}
    if slowdown <= th.max_slowdown:
        return CheckResult("speed", ev.model, ev.task, "pass", numbers, values=values)
    return CheckResult("speed", ev.model, ev.task, "fail", numbers, diagnosis="slow_kernel",
                       note="timings come from each model's own run (the cache keeps them)", values=values)

# --- end of speed ---------------------------------------------------------------------------------------------------


def _below(values: Sequence[float], floor: float, th: Thresholds) -> RateTest:
    """One-sided test that the rate of `values` is below `floor`, at the thresholds' alpha and power."""
    from evalkit.core.stats import StatOptions, rate_test

    return rate_test(values, floor, options=StatOptions(alpha=th.alpha, power=th.power))


def _drop(theirs: Sequence[float], mine: Sequence[float], th: Thresholds) -> PairedDrop:
    """The paired one-sided test of a drop from the parent's per-item values to the model's."""
    from evalkit.core.stats import StatOptions, paired_drop

    return paired_drop(theirs, mine, margin=th.tolerated_drop, options=StatOptions(alpha=th.alpha, power=th.power))


def _p(p: float) -> str:
    return f"one-sided p={p:.3g}"


def _skip(name: str, ev: Evaluated | Evidence, why: str) -> CheckResult:
    return CheckResult(name, ev.model, ev.task, "skip", why)





def _cls(r: SampleRecord) -> str:
    """A response's failure class: its diagnosis, or correct / wrong_answer when an answer was read."""
    d = r.extraction.diagnosis.value
    if d != "ok":
        return d
    return "correct" if r.score.correct else "wrong_answer"


def _score(r: SampleRecord, metric: str) -> float:
    if metric not in METRICS or not METRICS.get(metric).paired:
        raise GateError(f"the gate compares per-item {', '.join(paired_metrics())}; got metric {metric!r}")
    return float(METRICS.get(metric).item(r.score))


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


def _paired(ev: Evaluated, th: Thresholds) -> tuple[PairedDrop, list[SampleRecord], list[SampleRecord]]:
    mine, theirs = list(ev.result.records), list(ev.theirs.records)
    _same_items(ev, mine, theirs)
    test = _drop([_score(r, ev.metric) for r in theirs], [_score(r, ev.metric) for r in mine], th)
    return test, mine, theirs


def _same_items(ev: Evaluated, mine: Sequence[SampleRecord], theirs: Sequence[SampleRecord]) -> None:
    if [r.item.id for r in mine] != [r.item.id for r in theirs]:
        raise GateError(f"{ev.model} and its parent {ev.parent_name} were evaluated on different items of {ev.task}; "
                         f"the paired test needs the same items (same task source, limit and seed)")


def _baseline_comparison(result: TaskResult, metric: str) -> BaselineComparison | None:
    baseline = result.task.trivial_baseline()
    if metric not in baseline:
        return None
    m = result.metrics.get(metric)
    return compare_with_baseline(metric, m.value if m else None, baseline[metric], len(result.records))


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
