"""The gate's side of the decision core: a model's evidence -> one family of statistical checks, decided once.

The gate's statistical checks (compliance, stopping, metric_floor, recovery, baseline) are not decided one by one:
every check of every task of a model is one hypothesis of one weighted-Holm family (`evalkit.core.decision`), at the
model's alpha, which is the run's alpha over the number of models in the manifest. So a run of sound models is red
with probability at most ``[gate] run_alpha``, whatever the number of models, tasks and checks (docs/gate.md).

This module turns the engine's per-item records into what the decision core reads (`paired_task`), decides a model
(`decide_model`; `evalkit.gate.runner.Gate.decision` calls it once per model), and plans the items each task needs
before any model runs (`plan_lines`). The per-item data are read here once, and the checks read the decision, so
the simulation benchmark (scripts/simulate_gate.py) and the gate make the same decisions on the same data.

Per item: the score is the primary metric's per-item score from the metric registry; compliant: the reply's class
is ``correct`` or ``wrong_answer`` (an answer was read); cut: the reply ran to max_new_tokens (finish reason
``length``), for the model and its parent. A task the model could not be evaluated on stays out of the family (its
checks fail with its error); a task whose parent could not be evaluated keeps its floors in the family, and its
paired checks fail with ``parent_error``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from evalkit.core.decision import Criteria, TaskShape, Weights
from evalkit.core.metrics import METRICS, PRIMARY_METRIC, paired_metrics
from evalkit.data.tasks import TASKS
from evalkit.errors import GateError
from evalkit.gate.manifest import Manifest, Thresholds
from evalkit.gate.records import Evidence

if TYPE_CHECKING:  # numpy loads with the first decision: the pytest plugin imports the gate
    from evalkit.core.decision import ModelDecision, PairedTask, Plan
    from evalkit.run.engine import SampleRecord

__all__ = ["COMPLIANT", "alpha_note", "decide_alone", "decide_model", "item_score", "paired_task", "plan_lines",
           "reply_class", "same_items"]

COMPLIANT = ("correct", "wrong_answer")
"""Reply classes that count as compliant: an answer was read from a valid \\boxed{} (right or wrong)."""


def reply_class(r: SampleRecord) -> str:
    """A response's failure class: its diagnosis, or correct / wrong_answer when an answer was read."""
    d = r.extraction.diagnosis.value
    if d != "ok":
        return d
    return "correct" if r.score.correct else "wrong_answer"


def item_score(r: SampleRecord, metric: str) -> float:
    """The per-item score of `metric` (the registry's), in [0, 1]: what the paired checks compare."""
    if metric not in METRICS or not METRICS.get(metric).paired:
        raise GateError(f"the gate compares per-item {', '.join(paired_metrics())}; got metric {metric!r}")
    return float(METRICS.get(metric).item(r.score))


def same_items(mine: Sequence[SampleRecord], theirs: Sequence[SampleRecord], *, model: str, parent: str | None,
               task: str) -> None:
    """Refuse to pair a model with its parent on different items (the paired tests would mean nothing)."""
    if [r.item.id for r in mine] != [r.item.id for r in theirs]:
        raise GateError(f"{model} and its parent {parent} were evaluated on different items of {task}; the paired "
                        f"test needs the same items (same task source, limit and seed)")


def paired_task(ev: Evidence, th: Thresholds) -> PairedTask | None:
    """What the decision core reads of one (model, task): per-item scores, compliance and cut-off flags, the
    parent's (when it was evaluated) and the trivial baseline's score (when the check is on). None: the model
    could not be evaluated on it (its checks fail with the error, outside the family)."""
    from evalkit.core.decision import PairedTask

    if ev.error is not None or ev.result is None:
        return None
    mine = list(ev.result.records)
    parent = parent_cut = None
    if ev.parent is not None and ev.parent_error is None:
        theirs = list(ev.parent.records)
        same_items(mine, theirs, model=ev.model, parent=ev.parent_name, task=ev.task)
        parent = [item_score(r, ev.metric) for r in theirs]
        parent_cut = [r.generation.finish_reason == "length" for r in theirs]
    baseline = ev.result.task.trivial_baseline().get(ev.metric) if th.beat_baseline else None
    return PairedTask([item_score(r, ev.metric) for r in mine], parent,
                      compliant=[reply_class(r) in COMPLIANT for r in mine],
                      cut=[r.generation.finish_reason == "length" for r in mine], parent_cut=parent_cut,
                      baseline=baseline)


def decide_model(evidence: Mapping[str, Evidence], thresholds: Mapping[str, Thresholds], *, alpha: float,
                 run_size: int, weights: Weights = Weights()) -> ModelDecision:
    """Every statistical check of one model's tasks as one family, at ``alpha / run_size`` (the run's alpha over
    the models of the run; `evalkit.gate.manifest.GateSettings.model_alpha`)."""
    from evalkit.core.decision import decide

    tasks: dict[str, PairedTask] = {}
    criteria: dict[str, Criteria] = {}
    for task, ev in evidence.items():
        data = paired_task(ev, thresholds[task])
        if data is not None:
            tasks[task], criteria[task] = data, thresholds[task].criteria()
    return decide(tasks, criteria, alpha=alpha, run_size=run_size, weights=weights)


def decide_alone(ev: Evidence, th: Thresholds) -> ModelDecision:
    """The decision of one (model, task) on its own: a family of that task's checks at the thresholds' alpha (a
    run of one model). What `evalkit.gate.checks.check` and `evalkit.gate.runner.verdict` use when no `Gate`
    decided the whole model (unit tests, one-off checks)."""
    return decide_model({ev.task: ev}, {ev.task: th}, alpha=th.alpha, run_size=1)


# --------------------------------------------------------------------------------------------------- the run


def alpha_note(manifest: Manifest) -> str:
    """How the run's alpha is spent, for the summary: ``run alpha 0.05 over 18 models (0.0028 each)``.

    >>> from evalkit.gate.manifest import loads
    >>> alpha_note(loads("[tasks.t]\\n[models.p]\\npath='p'\\n[models.v]\\npath='v'\\nparent='p'\\n"))
    'run alpha 0.05 over 2 models (0.025 each)'
    """
    run_alpha, models = manifest.gate.run_alpha, len(manifest.models)
    if run_alpha is None:
        alphas = sorted({manifest.thresholds(c.model, c.task).alpha for c in manifest.cases()})
        return f"run alpha off: each model at its own alpha ({', '.join(f'{a:g}' for a in alphas)})"
    return f"run alpha {run_alpha:g} over {models} model{'s' * (models != 1)} ({run_alpha / models:.2g} each)"


def _metric(manifest: Manifest, task: str) -> str:
    entry = manifest.tasks[task]
    if entry.metric:
        return entry.metric
    return PRIMARY_METRIC[TASKS.get(task).family] if task in TASKS else "accuracy"


def _shape(manifest: Manifest, model: str, task: str) -> TaskShape:
    """The checks a task of `model` will have, from the manifest alone (no task is loaded): binary scores unless
    the metric is F1; a baseline when the check is on and the metric has one."""
    metric = _metric(manifest, task)
    paired = manifest.models[model].parent is not None
    baseline = manifest.thresholds(model, task).beat_baseline and metric in METRICS and METRICS.get(metric).baseline
    return TaskShape(paired=paired, stopping=paired, baseline=bool(baseline), binary=metric != "f1")


def plan_lines(manifest: Manifest, device: str, limit: int | None = None) -> list[str]:
    """One line per task that asks for fewer items on `device` than its checks need for their power (`limit`:
    --gate-limit), computed before any model runs, over every model's family (the largest need wins)."""
    from evalkit.core.decision import Plan, PlanEntry, plan

    entries: list[PlanEntry] = []
    asked: dict[str, int] = {}
    alpha = 1.0
    for model, spec in manifest.models.items():
        tasks = spec.tasks or tuple(manifest.tasks)
        th = {t: manifest.thresholds(model, t) for t in tasks}
        run_alpha, size = manifest.gate.model_alpha(len(manifest.models), th[tasks[0]].alpha)
        p: Plan = plan({t: _shape(manifest, model, t) for t in tasks}, {t: th[t].criteria() for t in tasks},
                       alpha=run_alpha, run_size=size, weights=manifest.gate.weights)
        entries.extend(p.entries)
        alpha = min(alpha, p.alpha)
        for t in tasks:
            n = limit if limit is not None else manifest.tasks[t].limit_for(device)
            if n is not None:  # None: every item of the source, a count unknown before loading
                asked[t] = n
    return Plan(tuple(entries), alpha, asked).short()
