"""The tables of a run's reports: one `Row` per (model, task), ``metrics_summary.csv``, and the method comparison.

Everything here reads a run folder (`evalkit.report.rundir`) and computes nothing that the engine or the gate did not
measure: metrics, compliance, diagnoses and throughput come from the engine's results documents, drift from the drift
documents, statuses from the gate's verdicts, and the paired comparison of a variant with its parent is recomputed
from the per-sample records with a paired one-sided test (`evalkit.core.stats.paired_drop`, default thresholds;
descriptive: the verdict is the gate's).

The Markdown leads with the seed report's "Quantization Method Comparison" table (Method | Weight bits | Status |
Answer format | Speed), rebuilt from measurements: one row per method, models grouped by how they were quantized.

The Markdown page is `evalkit.report.markdown`, the HTML page `evalkit.report.html`; `evalkit.report.writer` writes
all three.

>>> from evalkit.report.tables import answer_format
>>> answer_format(0.25, {"ok": 1, "empty": 3})
'❌ Empty responses (25% boxed)'
"""
from __future__ import annotations

import csv
import io
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from evalkit.core.extract import DIAGNOSIS_ORDER
from evalkit.core.metrics import METRICS, mean_stderr
from evalkit.gate.manifest import Thresholds
from evalkit.gate.records import OUTCOMES
from evalkit.models.description import METHOD_LABELS, ModelSpec
from evalkit.report.rundir import Entry, Run

__all__ = ["COMPLIANT", "CSV_COLUMNS", "MethodRow", "Row", "answer_format", "compare_entries", "csv_text",
           "method_rows", "notes_of", "outcome_tally", "rows", "unevaluated", "verdict_error"]

COMPLIANT = Thresholds().min_compliance
"""Compliance at or above this reads as "proper \\boxed{}": the gate's default floor, from its one home."""

_FORMAT_PHRASES = {
    "empty": "Empty responses",
    "whitespace_only": "Whitespace-only responses",
    "special_tokens_only": "Empty responses (special tokens only)",
    "no_box": "No `\\boxed{}`",
    "malformed_box": "Malformed `\\boxed{`",
    "unclosed_think": "Unclosed `<think>`",
    "truncated": "Truncated at max_new_tokens",
    "repetition_loop": "Repetition loops",
    "invalid_answer": "Invalid boxed answers",
}


# --------------------------------------------------------------------------------------------------- rows


@dataclass(frozen=True)
class Row:
    """One (model, task) of a run, flattened for tables and plots."""

    model: ModelSpec  # as the run folder keeps it (`ModelSpec.run_record`)
    task: str
    family: str
    n: int
    metric: str  # primary metric name
    value: float | None  # None: undefined (see reason)
    reason: str
    metrics: Mapping[str, float | None]
    compliance: float
    diagnoses: Mapping[str, int]
    baseline: float | None  # trivial baseline of the primary metric
    baseline_message: str
    baseline_matches: bool | None
    seconds_per_sample: float | None
    tokens_per_second: float | None
    device: str
    drift: Mapping[str, Any] | None = None
    comparison: Mapping[str, Any] | None = None  # paired test against the parent (see compare_entries)
    verdict: Mapping[str, Any] | None = None  # the gate's verdict, when the run was gated
    failure_examples: Mapping[str, Sequence[Mapping[str, Any]]] = field(default_factory=dict)
    stderrs: Mapping[str, float | None] = field(default_factory=dict)  # standard error of each metric's mean
    notes: tuple[str, ...] = ()  # what the engine could not do as asked (prompt overflow, plain prompts, ...)
    loader_notes: tuple[str, ...] = ()  # how the checkpoint was loaded (weights int4 group 64, LoRA unmerged, ...)

    @property
    def stderr(self) -> float | None:
        """Standard error of the primary metric."""
        return self.stderrs.get(self.metric)

    @property
    def status(self) -> str:
        """"pass" / "inconclusive" / "fail" from the gate's verdict, or "not gated"."""
        return str(self.verdict.get("status")) if self.verdict else "not gated"

    @property
    def inconclusive(self) -> list[tuple[str, str]]:
        """(check, reason) of each inconclusive check: what the data could not tell, and the items that would."""
        return [(str(c.get("check")), str(c.get("note", ""))) for c in (self.verdict or {}).get("checks", [])
                if c.get("status") == "inconclusive"]

    @property
    def compliance_ok(self) -> bool | None:
        """The gate's compliance check passed (None: not gated)."""
        for c in (self.verdict or {}).get("checks", []):
            if c.get("check") == "compliance":
                return c.get("status") != "fail"
        return None

    @property
    def status_diagnoses(self) -> list[str]:
        return list(self.verdict.get("diagnoses", [])) if self.verdict else []

    @property
    def failing(self) -> bool:
        """The gate failed it; without a verdict, compliance below the default floor."""
        return self.status == "fail" or (not self.verdict and self.compliance < COMPLIANT)

    @property
    def causes(self) -> str:
        """Why it fails, in a few words: the gate's diagnoses, else the most frequent failed diagnosis."""
        return ", ".join(self.status_diagnoses) or (self.dominant_failure or "fail")

    @property
    def dominant_failure(self) -> str | None:
        """The most frequent non-ok diagnosis, if any response failed."""
        bad = {k: v for k, v in self.diagnoses.items() if k != "ok" and v}
        return max(bad, key=lambda k: (bad[k], -DIAGNOSIS_ORDER.index(k) if k in DIAGNOSIS_ORDER else 0)) if bad \
            else None


def rows(run: Run) -> list[Row]:
    """One `Row` per (model, task) of the run, in run order, with the paired comparison to each parent."""
    out = []
    for e in run.entries:
        info = run.models[e.model]
        r = e.result
        metric = str(r.get("primary_metric", "accuracy"))
        m = (r.get("metrics") or {}).get(metric) or {}
        baseline = (r.get("baseline_comparison") or {}).get(metric) or {}
        throughput = r.get("throughput") or {}
        parent = run.entry(info.parent, e.task) if info.parent else None
        out.append(Row(
            model=info,
            task=e.task,
            family=str((r.get("task") or {}).get("family", "")),
            n=int((r.get("task") or {}).get("n", 0)),
            metric=metric,
            value=m.get("value"),
            reason=str(m.get("reason", "")),
            metrics={k: v.get("value") for k, v in (r.get("metrics") or {}).items()},
            compliance=float(r.get("compliance", 0.0)),
            diagnoses={k: int(v) for k, v in (r.get("diagnoses") or {}).items()},
            baseline=(r.get("trivial_baseline") or {}).get(metric),
            baseline_message=str(baseline.get("message", "")),
            baseline_matches=baseline.get("matches"),
            seconds_per_sample=throughput.get("seconds_per_sample"),
            tokens_per_second=throughput.get("tokens_per_second"),
            device=str(throughput.get("device", "")),
            drift=e.drift,
            comparison=compare_entries(e, parent) if parent is not None else None,
            verdict=run.verdicts.get((e.model, e.task)),
            failure_examples=r.get("failure_examples") or {},
            stderrs={k: v.get("stderr") for k, v in (r.get("metrics") or {}).items()},
            notes=notes_of(r),
            loader_notes=tuple(str(n) for n in (r.get("model") or {}).get("notes") or ()),
        ))
    return out


def notes_of(result: Mapping[str, Any]) -> tuple[str, ...]:
    """A results document's notes: what the engine could not do as asked (prompts longer than the model's context,
    plain prompts for a model without a chat template, ...). The loader's notes describe the checkpoint (weights
    int4 group 64, LoRA unmerged, ...) and stay in ``model.notes`` (the CSV's loader_notes).

    >>> notes_of({"model": {"notes": ["weights bfloat16"]}, "notes": ["3 of 8 prompts ... exceed ..."]})
    ('3 of 8 prompts ... exceed ...',)
    """
    return tuple(dict.fromkeys(str(n) for n in result.get("notes") or ()))


def compare_entries(variant: Entry, parent: Entry) -> dict[str, Any]:
    """A paired one-sided test of "variant is worse than parent" (descriptive, beside the gate's verdict), on the
    primary metric and on compliance.

    Per-item scores come from the samples JSONL, paired by item id; margin, alpha and power are the defaults of
    `evalkit.gate.manifest.Thresholds` (the gate's own verdict, when present, used the manifest's).
    """
    from evalkit.core.stats import StatOptions, paired_drop

    th = Thresholds()
    options = StatOptions(alpha=th.alpha, power=th.power)
    mine = {s["id"]: s for s in variant.samples()}
    theirs = {s["id"]: s for s in parent.samples()}
    ids = [i for i in theirs if i in mine]
    out: dict[str, Any] = {"parent": parent.model, "n": len(ids), "metric": variant.result.get("primary_metric")}
    if not ids:
        out["error"] = "no common items (the per-sample records are missing or the items differ)"
        return out
    score = _item_score(str(out["metric"]))
    for key, get in (("metric_test", score), ("compliance_test", lambda s: float(s["diagnosis"] == "ok"))):
        before, after = [get(theirs[i]) for i in ids], [get(mine[i]) for i in ids]
        test = paired_drop(before, after, margin=th.tolerated_drop, options=options)
        out[key] = {"parent": test.parent_mean, "variant": test.variant_mean, "drop": test.drop,
                    "drop_stderr": mean_stderr([b - a for b, a in zip(before, after, strict=True)]),
                    "recovery": test.recovery, "p_value": test.p_value, "worse": test.worse, "better": test.better,
                    "significant": test.significant, "failed": test.failed, "mdd": test.mdd,
                    "method": test.method, "describe": test.describe()}
    return out


@dataclass(frozen=True, slots=True)
class SampleScore:
    """A sample record of a run folder, read back as what a metric's per-item score reads (`PerItem`)."""

    score: float
    correct: bool

    @classmethod
    def of(cls, sample: Mapping[str, Any]) -> SampleScore:
        return cls(float(sample.get("score") or 0.0), bool(sample.get("correct")))


def _item_score(metric: str) -> Callable[[Mapping[str, Any]], float]:
    """The registry's per-item score of `metric` (the gate's own), over sample records; ``score`` for an unknown
    metric."""
    item = METRICS.get(metric).item if metric in METRICS else METRICS.get("accuracy").item
    return lambda sample: item(SampleScore.of(sample))


# --------------------------------------------------------------------------------------------------- CSV

CSV_COLUMNS = ("model", "task", "family", "method", "weight_bits", "parent", "n", "primary_metric", "value",
               "value_stderr", "value_reason", *METRICS.names(), *(f"{m}_stderr" for m in METRICS.names()),
               "compliance", "trivial_baseline", "matches_baseline", *(f"diag_{d}" for d in DIAGNOSIS_ORDER),
               "seconds_per_sample", "tokens_per_second", "device", "paired_n", "parent_value", "recovery", "drop",
               "drop_stderr", "p_value", "worse", "better", "mdd", "significant", "kl_mean", "top1_agreement",
               "ppl_ratio", "first_divergent_layer", "status", "diagnosis", "notes", "loader_notes",
               "inconclusive")
"""metrics_summary.csv's columns. Standard errors are of the mean over the n items (sample SD / sqrt(n));
``paired_n`` .. ``significant`` are the gate's paired one-sided test of the variant against its parent on the items
both answered (``drop`` = parent - variant, its standard error over the paired differences, the items the variant
got worse and better, the minimum detectable drop at the default power)."""


def csv_text(table: Sequence[Row]) -> str:
    """metrics_summary.csv: one row per model x task; an undefined metric is an empty cell with its reason."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for r in table:
        test = (r.comparison or {}).get("metric_test") or {}
        d = r.drift or {}
        paired = test and (r.comparison or {}).get("n")
        w.writerow([
            r.model.name, r.task, r.family, r.model.method, r.model.bits_label, r.model.parent or "", r.n, r.metric,
            _num(r.value), _num(r.stderr), r.reason, *(_num(r.metrics.get(k)) for k in METRICS.names()),
            *(_num(r.stderrs.get(k)) for k in METRICS.names()),
            _num(r.compliance), _num(r.baseline), "" if r.baseline_matches is None else str(r.baseline_matches).lower(),
            *(r.diagnoses.get(k, 0) for k in DIAGNOSIS_ORDER), _num(r.seconds_per_sample), _num(r.tokens_per_second),
            r.device, paired or "", _num(test.get("parent")), _num(test.get("recovery")), _num(test.get("drop")),
            _num(test.get("drop_stderr")), _num(test.get("p_value")), _num(test.get("worse")),
            _num(test.get("better")), _num(test.get("mdd")), _bool(test.get("significant")),
            _num(d.get("kl_mean")), _num(d.get("top1_agreement")), _num(d.get("ppl_ratio")),
            "" if d.get("first_divergent_layer") is None else d["first_divergent_layer"], r.status,
            ";".join(r.status_diagnoses), " | ".join(r.notes), " | ".join(r.loader_notes),
            "; ".join(f"{check}: {why}" for check, why in r.inconclusive),
        ])
    return buf.getvalue()


def _bool(x: Any) -> str:
    return "" if x is None else str(bool(x)).lower()


def _num(x: Any) -> str:
    if x is None:
        return ""
    if isinstance(x, float):
        return f"{x:.6g}" if math.isfinite(x) else ""
    return str(x)


# ------------------------------------------------------------------------------------------ method comparison


@dataclass(frozen=True)
class MethodRow:
    """One row of the seed report's method comparison table, from measurements."""

    method: str
    label: str
    models: tuple[str, ...]
    bits: str
    status: str
    answer_format: str
    speed: str
    cases: int  # (model, task) pairs behind the row


def method_rows(table: Sequence[Row]) -> list[MethodRow]:
    """Group the run's (model, task) rows by quantization method (order of `METHOD_LABELS`)."""
    by_method: dict[str, list[Row]] = {}
    for r in table:
        by_method.setdefault(r.model.method, []).append(r)
    order = list(METHOD_LABELS) + sorted(set(by_method) - set(METHOD_LABELS))
    parents = {(r.model.name, r.task): r for r in table}
    out = []
    for method in order:
        group = by_method.get(method)
        if not group:
            continue
        models = tuple(dict.fromkeys(r.model.name for r in group))
        bits = ", ".join(dict.fromkeys(r.model.bits_label for r in group))
        diag: Counter[str] = Counter()
        for r in group:
            diag.update(r.diagnoses)
        compliance = sum(r.compliance * r.n for r in group) / max(1, sum(r.n for r in group))
        checks = [r.compliance_ok for r in group]
        passed = None if any(c is None for c in checks) else all(checks)
        out.append(MethodRow(method, METHOD_LABELS.get(method, method), models, bits, _status(group),
                             answer_format(compliance, diag, passed), _speed(group, parents), len(group)))
    return out


def _status(group: Sequence[Row]) -> str:
    gated = [r for r in group if r.verdict]
    if not gated:
        return "— not gated"
    failed = [r for r in gated if r.status == "fail"]
    causes = Counter(d for r in failed for d in r.status_diagnoses[:1])
    why = ", ".join(c for c, _ in causes.most_common(3))
    expected = [r for r in gated if (r.verdict or {}).get("expect") == "fail"]
    caught = sum((r.verdict or {}).get("outcome") == "CAUGHT" for r in expected)
    note = f"; caught as expected {caught}/{len(expected)}" if expected else ""
    unsure = [r for r in gated if r.status == "inconclusive"]
    if not failed and unsure:  # nothing failed: too few items to tell is not "broken"
        checks = Counter(c for r in unsure for c, _ in r.inconclusive)
        return (f"✅ Working ({len(gated) - len(unsure)}/{len(gated)} pass, {len(unsure)} inconclusive: "
                f"{', '.join(c for c, _ in checks.most_common(3))}{note})")
    if not failed:
        return f"✅ Working ({len(gated)}/{len(gated)} pass{note})"
    if len(failed) == len(gated):
        return f"❌ Broken ({len(failed)}/{len(gated)} fail: {why}{note})"
    return f"⚠️ Mixed ({len(failed)}/{len(gated)} fail: {why}{note})"


def answer_format(compliance: float, diagnoses: Mapping[str, int], passed: bool | None = None) -> str:
    """The seed's "Answer format" cell from measured compliance and the dominant failure diagnosis.

    passed: the gate's compliance checks (all passed, or not); None (not gated) compares with the default floor.

    >>> answer_format(0.97, {"ok": 97, "no_box": 3})
    '✅ Proper `\\\\boxed{}` (97%)'
    """
    pct = f"{100 * compliance:.0f}%"
    if passed if passed is not None else compliance >= COMPLIANT:
        return f"✅ Proper `\\boxed{{}}` ({pct})"
    bad = {k: v for k, v in diagnoses.items() if k != "ok" and v}
    if not bad:
        return f"❌ Non-compliant ({pct} boxed)"
    top = max(bad, key=lambda k: bad[k])
    return f"❌ {_FORMAT_PHRASES.get(top, top)} ({pct} boxed)"


def _speed(group: Sequence[Row], by_key: Mapping[tuple[str, str], Row]) -> str:
    speeds = [r.seconds_per_sample for r in group if r.seconds_per_sample]
    if not speeds:
        return "—"
    mean = sum(speeds) / len(speeds)
    ratios = []
    for r in group:
        p = by_key.get((r.model.parent or "", r.task))
        if p is not None and r.seconds_per_sample and p.seconds_per_sample:
            ratios.append(r.seconds_per_sample / p.seconds_per_sample)
    rel = f" ({sum(ratios) / len(ratios):.1f}x parent)" if ratios else ""
    return f"{fmt_seconds(mean)}{rel}"


def fmt_seconds(s: float) -> str:
    return f"{s:.3g}"


def outcome_tally(table: Sequence[Row]) -> dict[str, int]:
    """Count of the gate's outcomes (PASS, INCONCLUSIVE, FAIL, CAUGHT, MISDIAGNOSED, ESCAPED) over the gated rows."""
    counts = Counter(str((r.verdict or {}).get("outcome") or r.status.upper()) for r in table if r.verdict)
    return {k: counts[k] for k in (*OUTCOMES, *sorted(set(counts) - set(OUTCOMES))) if counts[k]}


def unevaluated(run: Run) -> list[Mapping[str, Any]]:
    """Verdicts of (model, task) pairs with no results: the model could not be loaded or evaluated."""
    return [v for (model, task), v in run.verdicts.items() if run.entry(model, task) is None]


def verdict_error(verdict: Mapping[str, Any]) -> str:
    failed = [c for c in verdict.get("checks", []) if c.get("status") == "fail"]
    if not failed:
        return str(verdict.get("diagnosis") or "no results")
    return f"{failed[0].get('diagnosis')}: {failed[0].get('numbers')}"
