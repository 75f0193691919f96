"""The metric summary of one (model, task) and its golden responses: what reports print and snapshots keep a part of."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from evalkit.gate.checks import UNSTABLE_CHECKS
from evalkit.gate.records import Evidence, Verdict

if TYPE_CHECKING:
    from evalkit.run.engine import TaskResult

__all__ = ["golden", "summarize"]


def _sig(x: Any) -> Any:
    """Round floats to 6 significant digits for summaries (snapshot tolerance covers the rest)."""
    if isinstance(x, float):
        return float(f"{x:.6g}")
    if isinstance(x, dict):
        return {k: _sig(v) for k, v in x.items()}
    return x


def summarize(ev: Evidence, v: Verdict) -> dict[str, Any]:
    """The metric summary of one (model, task): what the report prints and the snapshot keeps a part of
    (`evalkit.gate.expectations.summary_document`)."""
    # Speed is left out: its timings (and whether a run was long enough to time) change from run to run.
    out: dict[str, Any] = {"verdict": {c.check: c.status for c in v.checks if c.check not in UNSTABLE_CHECKS},
                           "diagnosis": v.diagnosis, "metric": ev.metric, "outcome": v.outcome}
    if ev.identity:
        out["model"] = dict(ev.identity)
    if ev.error is not None or ev.result is None:
        # the diagnosis only: its detail names paths of this machine
        out["error"] = ev.error.diagnosis if ev.error is not None else "evaluation_error"
        return out
    r = ev.result
    if r.notes:  # what the engine could not do as asked, for the table; snapshots keep what `summary_document` names
        out["notes"] = list(r.notes)
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
