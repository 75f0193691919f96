"""The gate: checks over the engine's results -> verdicts with a named diagnosis, and the run that produces them.

Per (model, task) eight checks, each a pure function of the evidence (the model's `TaskResult`, its parent's, the
drift between them) and its frozen `Thresholds`:

  prompt        the model is prompted as its parent is (its chat template, not the plain-text fallback)
  compliance    share of responses with a valid \\boxed{} answer is not confidently below its floor
  stopping      no significantly more replies run to max_new_tokens than the parent's (a lost eos)
  metric_floor  the primary metric is not confidently below an absolute floor (when one is configured)
  recovery      no significant paired drop against the parent on the same items (`evalkit.stats.paired_drop`)
  drift         teacher-forced logit drift against the parent within bounds (`evalkit.drift`)
  baseline      the primary metric clearly beats the trivial baseline (`evalkit.baselines`)
  speed         the slow-kernel alarm: generation throughput not far below the parent's

Every failure names a diagnosis (an `evalkit.extract.Diagnosis` value such as ``empty`` or ``truncated``, or one of
`LABELS`) and its message carries the counts per failure class, two example responses and the numbers compared.
`require` is the one assertion core the tests use; `Gate` runs the checks over a manifest for the pytest plugin and
``evalkit gate`` alike, and `run_gate` is its one-call form.

>>> CHECKS
('prompt', 'compliance', 'stopping', 'metric_floor', 'recovery', 'drift', 'baseline', 'speed')
"""

from __future__ import annotations

import collections
import dataclasses
import time
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from evalkit.manifest import Case, Manifest, ManifestError, Thresholds

if TYPE_CHECKING:  # evalkit.stats (numpy) loads with the first check: the pytest plugin imports this module
    from evalkit.drift import DriftResult
    from evalkit.engine import SampleRecord, TaskResult
    from evalkit.stats import PairedDrop, RateTest

__all__ = ["CHECKS", "LABELS", "CheckResult", "Evidence", "Gate", "GateCase", "GateReport", "Verdict", "case_id",
           "check", "render_summary", "require", "run_gate", "select_cases", "verdict", "worker_device",
           "xdist_groups"]

CHECKS = ("prompt", "compliance", "stopping", "metric_floor", "recovery", "drift", "baseline", "speed")
"""Every check, in the order a verdict looks for its primary diagnosis (root causes first)."""

PARENT_CHECKS = frozenset({"prompt", "stopping", "recovery", "drift", "speed"})
"""Checks that compare with a parent; a model without one skips them."""

LABELS = {
    "no_chat_template": "the model has no chat template, so its prompts fell back to plain text while its parent's "
                        "used the template: it is asked in a format it was not trained on",
    "prompt_mismatch": "the model is prompted differently from its parent",
    "runaway": "replies run to max_new_tokens where the parent's stop: the end-of-turn token no longer ends "
               "generation (eos lost from the generation config or tokenizer)",
    "wrong_answer": "answers are well-formed (a valid \\boxed{}) but wrong",
    "trivial_baseline": "the score is no better than answering a constant (the trivial baseline)",
    "logit_drift": "the next-token distributions moved far from the parent's on the parent's own responses",
    "slow_kernel": "generation is far slower than the parent's: a slow kernel (e.g. dequantizing on the fly)",
    "underpowered": "too few items to see the drop the gate must see; the verdict says how many are needed",
    "load_error": "the model folder could not be loaded",
    "evaluation_error": "the evaluation raised an error",
    "drift_error": "drift against the parent could not be computed",
    "parent_error": "the parent could not be evaluated, so nothing can be compared with it",
}
"""Diagnoses a check can name besides `evalkit.extract.Diagnosis` values, with their one-line explanations."""

METRIC_SCORES: dict[str, Callable[[Any], float]] = {
    "accuracy": lambda s: s.score,
    "f1": lambda s: s.score,
    "exact": lambda s: s.exact,
}
"""Primary metrics the paired test supports, and each one's per-item score."""

UNSTABLE_CHECKS = frozenset({"speed"})
"""Checks whose outcome depends on wall-clock timings: kept out of the summaries that snapshots compare."""

MIN_TIMED_SECONDS = 1.0  # a parent run shorter than this is too short to time against
EXAMPLES = 2  # example responses per failure message
Status = Literal["pass", "fail", "skip"]


# ------------------------------------------------------------------------------------------------------ records


@dataclass(frozen=True, slots=True)
class Evidence:
    """Everything the checks of one (model, task) read. `error` set: the model could not be evaluated."""

    model: str
    task: str
    result: TaskResult | None
    metric: str  # the primary metric's name
    parent_name: str | None = None
    parent: TaskResult | None = None
    drift: DriftResult | None = None
    error: str | None = None  # "load_error: ..." or "evaluation_error: ..."
    parent_error: str | None = None
    drift_error: str | None = None


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check's outcome; `message` is what a failed test prints."""

    check: str
    model: str
    task: str
    status: Status
    numbers: str  # the numbers compared, one line
    diagnosis: str = ""  # the named cause of a failure
    classes: str = ""  # counts per failure class of the model's responses
    examples: tuple[str, ...] = ()  # example responses behind the diagnosis
    note: str = ""  # e.g. "underpowered: ..."
    values: Mapping[str, Any] = field(default_factory=dict)  # machine-readable numbers

    @property
    def message(self) -> str:
        head = f"{self.model} on {self.task}: {self.check} {self.status.upper()}"
        if self.status == "skip":
            return f"{head}: {self.numbers}"
        lines = [head + (f" - {self.diagnosis}: {_explain(self.diagnosis)}" if self.diagnosis else "")]
        lines.append(f"  {'error' if self.diagnosis.endswith('_error') else 'compared'}: {self.numbers}")
        if self.classes:
            lines.append(f"  responses: {self.classes}")
        lines += [f"  {'e.g.' if i == 0 else '    '} {e}" for i, e in enumerate(self.examples)]
        if self.note:
            lines.append(f"  note: {self.note}")
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class Verdict:
    """All checks of one (model, task), and what the manifest expected of it."""

    model: str
    task: str
    checks: tuple[CheckResult, ...]
    expect: Literal["pass", "fail"] = "pass"
    expected: tuple[str, ...] = ()  # diagnoses that count as caught, for expect="fail"
    summary: Mapping[str, Any] = field(default_factory=dict)  # the metric summary (see `summarize`)

    @property
    def failed(self) -> tuple[CheckResult, ...]:
        return tuple(c for c in self.checks if c.status == "fail")

    @property
    def status(self) -> Literal["pass", "fail"]:
        return "fail" if self.failed else "pass"

    @property
    def diagnosis(self) -> str:
        """The primary diagnosis: the first failed check's, in `CHECKS` order ("" when it passed)."""
        return self.failed[0].diagnosis if self.failed else ""

    @property
    def diagnoses(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(c.diagnosis for c in self.failed))

    @property
    def caught(self) -> bool:
        """A known-broken model failed for one of the expected reasons."""
        return self.status == "fail" and any(d in self.expected for d in self.diagnoses)

    @property
    def outcome(self) -> str:
        """PASS, FAIL, CAUGHT (expected failure, right diagnosis), MISDIAGNOSED or ESCAPED."""
        if self.expect == "pass":
            return "PASS" if self.status == "pass" else "FAIL"
        if self.caught:
            return "CAUGHT"
        return "MISDIAGNOSED" if self.status == "fail" else "ESCAPED"

    @property
    def as_expected(self) -> bool:
        return self.outcome in ("PASS", "CAUGHT")

    def get(self, check_name: str) -> CheckResult:
        return next(c for c in self.checks if c.check == check_name)

    def to_dict(self) -> dict[str, Any]:
        """The verdict as JSON-ready data (a run folder's verdicts.json, read back by `evalkit.reports`).

        >>> v = verdict(Evidence("m", "t", None, "accuracy", error="load_error: gone"), Thresholds())
        >>> d = v.to_dict(); d["outcome"], d["diagnosis"], d["checks"][0]["numbers"]
        ('FAIL', 'load_error', 'gone')
        """
        import json

        checks = [{"check": c.check, "status": c.status, "diagnosis": c.diagnosis, "numbers": c.numbers,
                   "note": c.note, "message": c.message, "values": dict(c.values)} for c in self.checks]
        data = {"model": self.model, "task": self.task, "status": self.status, "outcome": self.outcome,
                "expect": self.expect, "expected": list(self.expected), "diagnosis": self.diagnosis,
                "diagnoses": list(self.diagnoses), "checks": checks, "summary": dict(self.summary)}
        return json.loads(json.dumps(data, default=str))  # what JSON cannot hold, as its string


# --------------------------------------------------------------------------------------------------- the checks


def check(name: str, ev: Evidence, th: Thresholds) -> CheckResult:
    """Run one check (pure: evidence and thresholds in, result out).

    >>> check("speed", Evidence("m", "t", None, "accuracy", error="load_error: gone"), Thresholds()).status
    'fail'
    """
    if name not in _CHECK_FUNCTIONS:
        raise ValueError(f"unknown check {name!r}; known: {', '.join(CHECKS)}")
    if ev.error is not None:
        return _error(name, ev)
    if name in PARENT_CHECKS and ev.parent_name is None:
        return _skip(name, ev, "a reference model (no parent): nothing to compare with")
    if name in PARENT_CHECKS and ev.parent_error is not None:
        return CheckResult(name, ev.model, ev.task, "fail", f"parent {ev.parent_name}: {ev.parent_error}",
                           diagnosis="parent_error")
    return _CHECK_FUNCTIONS[name](ev, th)


def verdict(ev: Evidence, th: Thresholds, *, expect: Literal["pass", "fail"] = "pass",
            expected: Sequence[str] = ()) -> Verdict:
    """Every check of one (model, task), with its summary."""
    checks = tuple(check(name, ev, th) for name in CHECKS)
    v = Verdict(ev.model, ev.task, checks, expect, tuple(expected))
    return dataclasses.replace(v, summary=summarize(ev, v))


def require(result: CheckResult, *, expect: Literal["pass", "fail"] = "pass") -> None:
    """The assertion core of every gate test: skip, pass, fail with the message, or xfail a known-broken model."""
    __tracebackhide__ = True
    import pytest

    if result.status == "skip":
        pytest.skip(f"{result.check}: {result.numbers}")  # model and task are in the test id; same reasons group
    if result.status == "fail":
        if expect == "fail":  # one line: the -ra summary lists every catch
            pytest.xfail(f"known-broken model caught: {result.message.splitlines()[0]}")
        pytest.fail(result.message, pytrace=False)


def _compliance(ev: Evidence, th: Thresholds) -> CheckResult:
    records = ev.result.records  # type: ignore[union-attr]
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


def _prompt(ev: Evidence, th: Thresholds) -> CheckResult:
    mine, theirs = ev.result.prompt_mode, ev.parent.prompt_mode  # type: ignore[union-attr]
    numbers = f"prompted via {mine}; the parent via {theirs}"
    if mine == theirs:
        return CheckResult("prompt", ev.model, ev.task, "pass", numbers)
    diagnosis = "no_chat_template" if (mine, theirs) == ("plain", "chat_template") else "prompt_mismatch"
    notes = [n for n in ev.result.model.get("notes", []) if "template" in n]  # type: ignore[union-attr]
    records = ev.result.records  # type: ignore[union-attr]
    return _fail("prompt", ev, numbers, diagnosis, records, {"prompt_mode": mine, "parent_prompt_mode": theirs},
                 note="; ".join(notes) or "restore the chat template (chat_template.jinja / tokenizer_config.json)")


def _stopping(ev: Evidence, th: Thresholds) -> CheckResult:
    mine, theirs = list(ev.result.records), list(ev.parent.records)  # type: ignore[union-attr]
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
    return _fail("stopping", ev, numbers, "runaway", runaway, values, parent=dict(_by_id(theirs)), any_class=True)


def _metric_floor(ev: Evidence, th: Thresholds) -> CheckResult:
    if th.min_metric is None:
        return _skip("metric_floor", ev, "no absolute floor configured (min_metric)")
    result = ev.result
    metric = result.metrics.get(ev.metric)  # type: ignore[union-attr]
    records = result.records  # type: ignore[union-attr]
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


def _recovery(ev: Evidence, th: Thresholds) -> CheckResult:
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


def _drift(ev: Evidence, th: Thresholds) -> CheckResult:
    if ev.drift_error is not None:
        return CheckResult("drift", ev.model, ev.task, "fail", ev.drift_error, diagnosis="drift_error")
    d = ev.drift
    if d is None:
        return _skip("drift", ev, "no drift computed")
    bounds = [("mean KL", d.kl_mean, th.max_mean_kl, "max"), ("p99 KL", d.kl_p99, th.max_p99_kl, "max"),
              ("top-1 agreement", d.top1_agreement, th.min_top1_agreement, "min"),
              ("ppl ratio", d.ppl_ratio, th.max_ppl_ratio, "max")]
    parts, broken = [], []
    for label, value, bound, kind in bounds:
        parts.append(f"{label} {value:.4g}" + (f" ({kind} {bound:g})" if bound is not None else ""))
        if bound is not None and (value > bound if kind == "max" else value < bound):
            broken.append(label)
    layer = ("none" if d.first_divergent_layer is None else f"model.layers.{d.first_divergent_layer}")
    numbers = (f"{', '.join(parts)} over {d.n_tokens} response tokens of {d.n_sequences} parent responses; "
               f"first diverging layer: {layer} (hidden-state cosine < {d.threshold:g}), largest drop at "
               f"{'none' if d.largest_drop_layer is None else f'model.layers.{d.largest_drop_layer}'}")
    values = {"kl_mean": d.kl_mean, "kl_p99": d.kl_p99, "top1_agreement": d.top1_agreement,
              "ppl_ratio": d.ppl_ratio, "first_divergent_layer": d.first_divergent_layer}
    if not broken:
        return CheckResult("drift", ev.model, ev.task, "pass", numbers, values=values)
    return CheckResult("drift", ev.model, ev.task, "fail", numbers, diagnosis="logit_drift",
                       note=f"out of bounds: {', '.join(broken)}", values=values)


def _baseline(ev: Evidence, th: Thresholds) -> CheckResult:
    if not th.beat_baseline:
        return _skip("baseline", ev, "switched off (beat_baseline = false)")
    comp = _baseline_comparison(ev.result, ev.metric)  # type: ignore[arg-type]
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
        if comp.value is not None and not _paired(ev, th)[0].significant:
            return CheckResult("baseline", ev.model, ev.task, "pass", comp.message, values=values,
                               note="not clearly above the baseline at this n, but not significantly below its "
                                    "parent, which is")
    records = ev.result.records  # type: ignore[union-attr]
    return _fail("baseline", ev, comp.message, "trivial_baseline", records, values)


def _speed(ev: Evidence, th: Thresholds) -> CheckResult:
    if th.max_slowdown is None:
        return _skip("speed", ev, "switched off (max_slowdown = none)")
    mine, theirs = ev.result.throughput(), ev.parent.throughput()  # type: ignore[union-attr]
    if theirs["seconds"] < MIN_TIMED_SECONDS or mine["tokens_per_second"] <= 0:
        return _skip("speed", ev, f"the parent's run took under {MIN_TIMED_SECONDS:g}s: too short to time against")
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


_CHECK_FUNCTIONS: dict[str, Callable[[Evidence, Thresholds], CheckResult]] = {
    "prompt": _prompt, "compliance": _compliance, "stopping": _stopping, "metric_floor": _metric_floor,
    "recovery": _recovery, "drift": _drift, "baseline": _baseline, "speed": _speed,
}


# ----------------------------------------------------------------------------------------------------- helpers


def _below(values: Sequence[float], floor: float, th: Thresholds) -> RateTest:
    """One-sided test that the rate of `values` is below `floor`, at the thresholds' alpha and power."""
    from evalkit.stats import StatOptions, rate_test

    return rate_test(values, floor, direction="below", options=StatOptions(alpha=th.alpha, power=th.power))


def _drop(theirs: Sequence[float], mine: Sequence[float], th: Thresholds) -> PairedDrop:
    """The paired one-sided test of a drop from the parent's per-item values to the model's."""
    from evalkit.stats import StatOptions, paired_drop

    return paired_drop(theirs, mine, margin=th.tolerated_drop, options=StatOptions(alpha=th.alpha, power=th.power))


def _p(p: float) -> str:
    return f"one-sided p={p:.3g}"


def _skip(name: str, ev: Evidence, why: str) -> CheckResult:
    return CheckResult(name, ev.model, ev.task, "skip", why)


def _error(name: str, ev: Evidence) -> CheckResult:
    """The failure of a model that could not be evaluated: ``"load_error: detail"`` -> diagnosis and numbers."""
    label, _, detail = ev.error.partition(": ")  # type: ignore[union-attr]
    return CheckResult(name, ev.model, ev.task, "fail", detail or ev.error, diagnosis=label)  # type: ignore[arg-type]


def _cls(r: SampleRecord) -> str:
    """A response's failure class: its diagnosis, or correct / wrong_answer when an answer was read."""
    d = r.extraction.diagnosis.value
    if d != "ok":
        return d
    return "correct" if r.score.correct else "wrong_answer"


def _score(r: SampleRecord, metric: str) -> float:
    if metric not in METRIC_SCORES:
        raise ValueError(f"the gate compares per-item {', '.join(METRIC_SCORES)}; got metric {metric!r}")
    return float(METRIC_SCORES[metric](r.score))


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


def _fail(name: str, ev: Evidence, numbers: str, diagnosis: str, pool: Sequence[SampleRecord],
          values: Mapping[str, Any], parent: Mapping[str, SampleRecord] | None = None, *, note: str = "",
          any_class: bool = False) -> CheckResult:
    """A failed check with the diagnosis's evidence: class counts and examples of that class from `pool`
    (any record of `pool` when `any_class`, for diagnoses that are not a reply's class)."""
    records = ev.result.records  # type: ignore[union-attr]
    picked = [] if any_class else [r for r in pool if _cls(r) == diagnosis][:EXAMPLES]
    picked = picked or list(pool[:EXAMPLES])
    examples = tuple(_example(r, (parent or {}).get(r.item.id)) for r in picked)
    return CheckResult(name, ev.model, ev.task, "fail", numbers, diagnosis=diagnosis, classes=_classes(records),
                       examples=examples, note=note, values=values)


def _explain(label: str) -> str:
    from evalkit.extract import Diagnosis

    if label in LABELS:
        return LABELS[label]
    try:
        return Diagnosis(label).explain
    except ValueError:
        return label


def _by_id(records: Iterable[SampleRecord]) -> Iterable[tuple[str, SampleRecord]]:
    return ((r.item.id, r) for r in records)


def _paired(ev: Evidence, th: Thresholds) -> tuple[PairedDrop, list[SampleRecord], list[SampleRecord]]:
    mine = list(ev.result.records)  # type: ignore[union-attr]
    theirs = list(ev.parent.records)  # type: ignore[union-attr]
    _same_items(ev, mine, theirs)
    test = _drop([_score(r, ev.metric) for r in theirs], [_score(r, ev.metric) for r in mine], th)
    return test, mine, theirs


def _same_items(ev: Evidence, mine: Sequence[SampleRecord], theirs: Sequence[SampleRecord]) -> None:
    if [r.item.id for r in mine] != [r.item.id for r in theirs]:
        raise ValueError(f"{ev.model} and its parent {ev.parent_name} were evaluated on different items of {ev.task}; "
                         f"the paired test needs the same items (same task source, limit and seed)")


def _baseline_comparison(result: TaskResult, metric: str) -> Any:
    from evalkit.baselines import compare_with_baseline

    baseline = result.task.trivial_baseline()
    if metric not in baseline:
        return None
    m = result.metrics.get(metric)
    return compare_with_baseline(metric, m.value if m else None, baseline[metric], len(result.records))


def _sig(x: Any) -> Any:
    """Round floats to 6 significant digits for summaries (snapshot tolerance covers the rest)."""
    if isinstance(x, float):
        return float(f"{x:.6g}")
    if isinstance(x, dict):
        return {k: _sig(v) for k, v in x.items()}
    return x


def summarize(ev: Evidence, v: Verdict) -> dict[str, Any]:
    """The metric summary of one (model, task): what the snapshot keeps and the report prints."""
    # Speed is left out: its timings (and whether a run was long enough to time) change from run to run.
    out: dict[str, Any] = {"verdict": {c.check: c.status for c in v.checks if c.check not in UNSTABLE_CHECKS},
                           "diagnosis": v.diagnosis, "metric": ev.metric}
    if ev.error is not None or ev.result is None:
        out["error"] = ev.error
        return out
    r = ev.result
    out |= {
        "n": len(r.records),
        "compliance": r.compliance,
        "diagnoses": {k: c for k, c in r.diagnoses.items() if c},
        "metrics": {k: m.value for k, m in r.metrics.items()},
        "n_scored": r.metrics[ev.metric].n_scored if ev.metric in r.metrics else None,
        "trivial_baseline": r.task.trivial_baseline(),
    }
    for name in ("recovery", "drift"):
        c = v.get(name)
        if c.status != "skip" and c.values:
            out[name] = dict(c.values)
    return _sig(out)


def golden(result: TaskResult, k: int) -> dict[str, str]:
    """The first `k` greedy responses of a task, by prompt id, for the golden snapshot."""
    return {f"{r.item.task}/{r.item.id}": r.generation.raw_text for r in result.records[:k]}


# ---------------------------------------------------------------------------------------------------- the run


@dataclass(frozen=True, slots=True)
class GateReport:
    """Every verdict of a run, and where the time went."""

    verdicts: tuple[Verdict, ...]
    timings: Mapping[str, float]  # seconds: load, generate (engine, cache misses), drift, total
    device: str

    @property
    def ok(self) -> bool:
        """Healthy models pass and every known-broken one is caught for the right reason."""
        return all(v.as_expected for v in self.verdicts)

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def rows(self) -> list[tuple[str, ...]]:
        """One row of strings per verdict: model, task, compliance, metric, recovery, outcome, diagnosis."""
        return [_row(v) for v in self.verdicts]

    def summary(self) -> str:
        """The printable report: one row per (model, task), then the tally."""
        return render_summary(self.rows(), self.timings, self.device)


ROW_HEADER = ("model", "task", "compliance", "metric", "recovery", "verdict", "diagnosis")
OUTCOMES = ("PASS", "FAIL", "CAUGHT", "MISDIAGNOSED", "ESCAPED")


def _row(v: Verdict) -> tuple[str, ...]:
    s = v.summary
    comp = f"{s['compliance']:.2f}" if "compliance" in s else "-"
    name, value = s.get("metric"), s.get("metrics", {}).get(s.get("metric"))
    metric = "-" if "error" in s else f"{name} {value:.2f}" if value is not None else f"{name} undefined"
    rec = s.get("recovery")
    recovery = "-" if not rec else (f"{rec['recovery']:.2f} (p={rec['p_value']:.2g})" if rec.get("recovery") is not None
                                    else f"drop {100 * rec['drop']:.0f}pt")
    underpowered = any(c.note.startswith("underpowered") for c in v.checks)
    diagnosis = ", ".join(v.diagnoses) or ("(underpowered)" if underpowered else "")
    return (v.model, v.task, comp, metric, recovery, v.outcome, diagnosis)


def render_summary(rows: Sequence[Sequence[str]], timings: Mapping[str, float], device: str) -> str:
    """The verdict table and tally from `GateReport.rows()` (also rows merged from several xdist workers).

    >>> print(render_summary([("m", "t", "1.00", "accuracy 0.90", "-", "PASS", "")], {"total": 2.0}, "cpu"))
    model  task  compliance  metric         recovery  verdict  diagnosis
    -----  ----  ----------  -------------  --------  -------  ---------
    m      t     1.00        accuracy 0.90  -         PASS
    <BLANKLINE>
    PASS 1 of 1 (model, task) on cpu; OK
    time: 2.0s total = load 0.0s + generation 0.0s + drift 0.0s + other
    """
    table = [ROW_HEADER, *(tuple(r) for r in rows)]
    widths = [max(len(r[i]) for r in table) for i in range(len(ROW_HEADER))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    tally = collections.Counter(r[5] for r in rows)
    ok = all(r[5] in ("PASS", "CAUGHT") for r in rows)
    t = timings
    lines.append("")
    lines.append(", ".join(f"{k} {tally[k]}" for k in OUTCOMES if tally[k])
                 + f" of {len(rows)} (model, task) on {device}; {'OK' if ok else 'NOT OK'}")
    lines.append(f"time: {t.get('total', 0):.1f}s total = load {t.get('load', 0):.1f}s + generation "
                 f"{t.get('generate', 0):.1f}s + drift {t.get('drift', 0):.1f}s + other")
    return "\n".join(lines)


class Gate:
    """Loads each model once, evaluates each (model, task) once through the engine's cache, and keeps the evidence.

    One broken model never takes the others down: its load or evaluation error becomes its own failed checks.
    Models are evaluated on every task at first touch and kept in a small LRU (a variant and its parent together,
    for drift), so memory stays bounded on a zoo of any size.

    log: one line per step, for people. progress: called with (model, task) as each (model, task) is evaluated
    (or fails to be), for a progress bar; parents outside the reported cases count too.
    """

    def __init__(self, manifest: Manifest, *, device: str | None = None, limit: int | None = None,
                 log: Callable[[str], None] | None = None, progress: Callable[[str, str], None] | None = None,
                 max_loaded: int = 3) -> None:
        self.manifest = manifest
        self.device = resolve_device(device or manifest.gate.device)
        self.limit = limit
        self.log = log or (lambda _msg: None)
        self.progress = progress or (lambda _model, _task: None)
        self.max_loaded = max(2, max_loaded)
        self.timings: dict[str, float] = collections.defaultdict(float)
        self._loaded: collections.OrderedDict[str, Any] = collections.OrderedDict()
        self._tasks: dict[str, Any] = {}
        self._results: dict[tuple[str, str], Any] = {}  # (model, task) -> TaskResult or error string
        self._drift: dict[tuple[str, str], Any] = {}  # (model, task) -> DriftResult or error string
        self._model_errors: dict[str, str] = {}
        self._verdicts: dict[tuple[str, str], Verdict] = {}
        self._cache: Any = None
        self._started = time.perf_counter()

    # -- public ----------------------------------------------------------------------------------------------------

    def evidence(self, model: str, task: str) -> Evidence:
        """The evidence for one (model, task), evaluating what is missing."""
        spec = self.manifest.models[model]
        self._process(model)
        metric = self._metric(task)
        own = self._results.get((model, task))
        if isinstance(own, str) or own is None:
            return Evidence(model, task, None, metric, parent_name=spec.parent,
                            error=own or f"evaluation_error: {model} was not evaluated on {task}")
        if spec.parent is None:
            return Evidence(model, task, own, metric)
        theirs = self._results.get((spec.parent, task))
        if isinstance(theirs, str) or theirs is None:
            return Evidence(model, task, own, metric, parent_name=spec.parent, parent_error=theirs or "not evaluated")
        d = self._drift.get((model, task))
        return Evidence(model, task, own, metric, parent_name=spec.parent, parent=theirs,
                        drift=None if isinstance(d, str) else d, drift_error=d if isinstance(d, str) else None)

    def verdict(self, model: str, task: str) -> Verdict:
        """All checks of one (model, task), computed once."""
        if (model, task) not in self._verdicts:
            spec = self.manifest.models[model]
            self._verdicts[(model, task)] = verdict(self.evidence(model, task), self.manifest.thresholds(model, task),
                                                    expect=spec.expect, expected=spec.diagnosis)
        return self._verdicts[(model, task)]

    def golden(self, model: str, task: str) -> dict[str, str]:
        ev = self.evidence(model, task)
        if ev.result is None:
            raise AssertionError(f"{model} on {task}: no responses to snapshot ({ev.error})")
        return golden(ev.result, self.manifest.gate.golden)

    def report(self, cases: Iterable[Case] | None = None) -> GateReport:
        """Verdicts for `cases` (default: every case of the manifest), computing what is missing."""
        started = time.perf_counter()
        verdicts = tuple(self.verdict(c.model, c.task) for c in (cases or self.manifest.cases()))
        self.timings["total"] += time.perf_counter() - started
        return GateReport(verdicts, dict(self.timings), self.device)

    def computed(self) -> GateReport:
        """The verdicts computed so far (a pytest session's share), in manifest order."""
        done = [self._verdicts[(c.model, c.task)] for c in self.manifest.cases() if (c.model, c.task) in self._verdicts]
        return GateReport(tuple(done), {**self.timings, "total": time.perf_counter() - self._started}, self.device)

    # -- evaluation --------------------------------------------------------------------------------------------------

    def _metric(self, task: str) -> str:
        entry = self.manifest.tasks[task]
        if entry.metric:
            return entry.metric
        from evalkit.metrics import PRIMARY_METRIC

        t = self._task(task)
        return PRIMARY_METRIC[t.family] if not isinstance(t, str) else "accuracy"

    def _task(self, name: str) -> Any:
        if name not in self._tasks:
            from evalkit.tasks import TaskError, load_task

            entry = self.manifest.tasks[name]
            limit = self.limit if self.limit is not None else entry.limit_for(self.device)
            try:
                self._tasks[name] = load_task(name, entry.source, limit=limit, seed=self.manifest.gate.seed)
            except TaskError as err:
                self._tasks[name] = f"evaluation_error: task {name}: {err}"
        return self._tasks[name]

    def _config(self) -> Any:
        from evalkit.generation import GenerationConfig

        g = self.manifest.gate
        return GenerationConfig(max_new_tokens=g.max_new_tokens, batch_size=g.batch_size_for(self.device),
                                enable_thinking=g.enable_thinking, decoder=g.decoder)

    def _tasks_of(self, model: str) -> tuple[str, ...]:
        return self.manifest.models[model].tasks or tuple(self.manifest.tasks)

    def _process(self, model: str) -> None:
        """Evaluate `model` on all its tasks (and drift against its parent) unless done already."""
        if model in self._model_errors or all((model, t) in self._results for t in self._tasks_of(model)):
            return
        spec = self.manifest.models[model]
        if spec.parent is not None:
            self._process(spec.parent)
        loaded = self._load(model)
        for t in self._tasks_of(model):
            result = self._model_errors[model] if loaded is None else self._evaluate(model, loaded, t)
            self._results[(model, t)] = result
            self.progress(model, t)
        if loaded is not None and spec.parent is not None and spec.parent not in self._model_errors:
            parent = self._load(spec.parent)
            for t in self._tasks_of(model):
                self._drift[(model, t)] = self._compute_drift(loaded, parent, spec.parent, t)

    def _load(self, model: str) -> Any:
        if model in self._model_errors:
            return None
        if model in self._loaded:
            self._loaded.move_to_end(model)
            return self._loaded[model]
        started = time.perf_counter()
        spec = self.manifest.models[model]
        try:
            from evalkit.loading import ModelLoadError, load_model

            try:
                path = self._path(model)
                loaded = load_model(path, device=self.device, dtype=spec.dtype or self.manifest.gate.dtype,
                                    base=spec.base)
            except ModelLoadError as err:
                self._model_errors[model] = f"load_error: {err}"
                return None
        except Exception as err:  # noqa: BLE001 - one broken model must not take down the others
            self._model_errors[model] = f"load_error: {type(err).__name__}: {err}"
            return None
        finally:
            self.timings["load"] += time.perf_counter() - started
        self.log(f"loaded {model} ({loaded.format}) in {time.perf_counter() - started:.1f}s")
        self._loaded[model] = loaded
        while len(self._loaded) > self.max_loaded:
            self._loaded.popitem(last=False)
        return loaded

    def _path(self, model: str) -> Path:
        spec = self.manifest.models[model]
        if not spec.is_zoo:
            return Path(spec.path)
        from evalkit import zoo

        name = spec.zoo_name
        return zoo.build(only=[name], log=self.log)[name]

    def _evaluate(self, model: str, loaded: Any, task: str) -> Any:
        t = self._task(task)
        if isinstance(t, str):
            return t
        from evalkit.cache import Cache
        from evalkit.engine import evaluate

        if self._cache is None:
            self._cache = Cache(self.manifest.gate.cache)
        started = time.perf_counter()
        try:
            result = evaluate(loaded, t, self._config(), cache=self._cache)
        except Exception as err:  # noqa: BLE001
            return f"evaluation_error: {type(err).__name__}: {err} ({_where(err)})"
        finally:
            self.timings["generate"] += time.perf_counter() - started
        self.log(f"evaluated {model} on {task}: {len(result.records)} items "
                 f"({'cache' if result.cache_hit else f'{result.run.seconds:.1f}s'})")
        return result

    def _compute_drift(self, loaded: Any, parent: Any, parent_name: str, task: str) -> Any:
        theirs = self._results.get((parent_name, task))
        if parent is None or not hasattr(theirs, "records"):
            return None
        from evalkit.drift import DriftError, drift, teacher_from_generations

        started = time.perf_counter()
        try:
            seqs = teacher_from_generations(parent.tokenizer, theirs.run.generations[: self.manifest.gate.drift_limit],
                                            plain=theirs.prompt_mode == "plain")
            return drift(loaded, parent, seqs)
        except DriftError as err:
            return str(err)
        except Exception as err:  # noqa: BLE001
            return f"{type(err).__name__}: {err} ({_where(err)})"
        finally:
            self.timings["drift"] += time.perf_counter() - started


@dataclass(frozen=True, slots=True)
class GateCase:
    """One (model, task) of a running gate, as a test sees it: checks to require, summaries to snapshot."""

    gate: Gate
    case: Case

    def check(self, name: str) -> CheckResult:
        return self.gate.verdict(self.case.model, self.case.task).get(name)

    def require(self, name: str) -> None:
        """Assert one check (a known-broken model's failure is an xfail: the gate caught it)."""
        __tracebackhide__ = True
        require(self.check(name), expect=self.case.expect)

    def require_caught(self) -> None:
        """Assert that a known-broken model fails, and for one of its expected diagnoses."""
        __tracebackhide__ = True
        import pytest

        v = self.gate.verdict(self.case.model, self.case.task)
        if v.caught:
            return
        expected = " or ".join(v.expected)
        if v.status == "pass":
            pytest.fail(f"{v.model} on {v.task}: known-broken model ESCAPED the gate: every check passed, but it "
                        f"should fail as {expected}.\n" + "\n".join(c.message for c in v.checks), pytrace=False)
        pytest.fail(f"{v.model} on {v.task}: known-broken model caught for the wrong reason: it fails as "
                    f"{', '.join(v.diagnoses)}, expected {expected}.\n" + "\n".join(c.message for c in v.failed),
                    pytrace=False)

    def summary(self) -> dict[str, Any]:
        """The metric summary that the snapshot keeps."""
        __tracebackhide__ = True
        self._require_evaluated()
        return dict(self.gate.verdict(self.case.model, self.case.task).summary)

    def golden(self) -> dict[str, str]:
        """The golden greedy responses that the snapshot keeps."""
        __tracebackhide__ = True
        self._require_evaluated()
        return self.gate.golden(self.case.model, self.case.task)

    def _require_evaluated(self) -> None:
        __tracebackhide__ = True
        ev = self.gate.evidence(self.case.model, self.case.task)
        if ev.error is not None:
            require(_error("evaluation", ev), expect=self.case.expect)


def _where(err: BaseException) -> str:
    tb = traceback.extract_tb(err.__traceback__)
    return f"at {Path(tb[-1].filename).name}:{tb[-1].lineno}" if tb else "no traceback"


def resolve_device(device: str) -> str:
    """"auto" -> "cuda" when a CUDA device is visible, else "cpu"; anything else as given."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


DEVICES = ("cpu", "cuda")
"""The flavours of the gate's tests: the same checks on CPU, and on CUDA under the ``gpu`` marker."""


def case_id(device: str, case: Case) -> str:
    """The parametrize id of one (device, model, task): ``cpu-base-zoo_math``."""
    return f"{device}-{case.id}"


def xdist_groups(manifest: Manifest) -> dict[str, str]:
    """Test id -> the work unit it belongs to under pytest-xdist: one per device and model, so a worker loads and
    evaluates each of its models once. (A parent's generations reach the other workers through the engine's disk
    cache; grouping whole families instead would leave one worker with most of a zoo built around one parent.)

    >>> from evalkit.manifest import loads
    >>> m = loads("[tasks.t]\\n[tasks.u]\\n[models.p]\\npath='p'\\n[models.v]\\npath='v'\\nparent='p'\\n")
    >>> xdist_groups(m)["cuda-v-t"], xdist_groups(m)["cuda-v-u"]
    ('cuda-v', 'cuda-v')
    """
    return {case_id(d, c): f"{d}-{c.model}" for d in DEVICES for c in manifest.cases()}


def worker_device(worker_id: str | None, visible: str | None, count: int) -> str | None:
    """The CUDA_VISIBLE_DEVICES value for a pytest-xdist worker: worker gw<i> pins GPU i (round robin).

    visible: the CUDA_VISIBLE_DEVICES the run started with (None: all `count` GPUs). None when nothing to pin.

    >>> worker_device("gw3", None, 4), worker_device("gw5", "2,3", 0), worker_device("gw0", None, 0)
    ('3', '3', None)
    """
    if not worker_id or not worker_id.startswith("gw"):
        return None
    gpus = [g.strip() for g in visible.split(",") if g.strip()] if visible else [str(i) for i in range(count)]
    if not gpus:
        return None
    return gpus[int(worker_id[2:]) % len(gpus)]


def run_gate(manifest: Manifest | str | Path, *, device: str | None = None, limit: int | None = None,
             models: Sequence[str] | None = None, log: Callable[[str], None] | None = None) -> GateReport:
    """Run the gate over a manifest and return its report (``report.summary()`` prints it; ``report.exit_code``).

    models: only these models (their parents are evaluated as needed, but not reported).
    """
    from evalkit.manifest import load

    m = manifest if isinstance(manifest, Manifest) else load(manifest)
    return Gate(m, device=device, limit=limit, log=log).report(select_cases(m, models))


def select_cases(manifest: Manifest, models: Sequence[str] | None = None) -> list[Case]:
    """The manifest's cases, or only those of `models`; an unknown name is a `ManifestError` naming the known ones.

    >>> from evalkit.manifest import loads
    >>> m = loads("[tasks.t]\\n[models.p]\\npath='p'\\n[models.v]\\npath='v'\\nparent='p'\\n")
    >>> [c.id for c in select_cases(m, ["v"])]
    ['v-t']
    """
    unknown = sorted(set(models or ()) - set(manifest.models))
    if unknown:
        raise ManifestError(f"unknown model(s) {unknown}; the manifest {manifest.source} has "
                            f"{', '.join(manifest.models)}")
    return [c for c in manifest.cases() if not models or c.model in models]
