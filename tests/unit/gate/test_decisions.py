"""evalkit.gate.decisions: the gate decides each model's statistical checks as one family, at the run's alpha over
every model of the manifest, from the same statistics the decision core and the simulation benchmark use.

Evidence is built from real extraction and scoring of hand-written replies (`score_generations`, the engine's pure
core); no model is loaded.
"""

from __future__ import annotations

import dataclasses
import textwrap

import numpy as np
import pytest

from evalkit.core.decision import STATUS, Criteria, TaskSummary, decide_batch
from evalkit.data.tasks import Task, load_task
from evalkit.errors import ManifestError
from evalkit.gate import Evidence, Gate, Thresholds, loads, select_cases, verdict
from evalkit.gate.decisions import alpha_note, decide_alone, decide_model, paired_task, plan_lines
from evalkit.run.engine import TaskResult, score_generations
from evalkit.run.generation import Generation, GenerationConfig, GenerationRun

EOS = "<|im_end|>"
KINDS = ("right", "wrong", "empty", "runaway")  # a runaway reply still holds the right box, cut at the token limit


def _reply(kind: str, gold: str) -> tuple[str, str]:
    other = "no" if gold == "yes" else "yes"
    return {"right": (f"\\boxed{{{gold}}}{EOS}", "eos"), "wrong": (f"\\boxed{{{other}}}{EOS}", "eos"),
            "empty": ("", "eos"), "runaway": (f"\\boxed{{{gold}}} and so on and so on", "length")}[kind]


def _result(task: Task, kinds: list[str]) -> TaskResult:
    gens = []
    for item, kind in zip(task.items, kinds):
        raw, finish = _reply(kind, item.answers[0])
        gens.append(Generation(item.id, "<prompt>", raw, raw.replace(EOS, ""), 40, 96 if finish == "length" else 6,
                               finish))  # type: ignore[arg-type]
    run = GenerationRun(tuple(gens), 2.0, {"backend": "transformers", "device": "cpu", "dtype": "float32"})
    return TaskResult({"path": "m", "fingerprint": "f"}, task, GenerationConfig(), "chat_template",
                      score_generations(task, gens, [EOS]), run, False, None, 2.0)


def _evidence(task: Task, mine: list[str], theirs: list[str] | None, model: str = "v") -> Evidence:
    return Evidence(model, task.name, _result(task, mine), "accuracy", parent_name="p" if theirs else None,
                    parent=_result(task, theirs) if theirs else None)


# --- the gate's statistics are the decision core's ---------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_the_gates_verdicts_equal_the_decision_core_on_the_counts_of_the_replies(seed: int) -> None:
    """What scripts/simulate_gate.py decides from counts (`decide_batch` on `TaskSummary.binary_counts`) is what
    the gate decides from replies: random replies, counts tallied from the reply kinds alone (never from the gate's
    reading of them), every check's status compared."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(30, 160))
    task = load_task("zoo_yes_no", limit=n, seed=seed)
    theirs = list(rng.choice(KINDS, size=n, p=[0.80, 0.12, 0.03, 0.05]))
    swap = ([0.4, 0.3, 0.15, 0.15], [0.1, 0.1, 0.1, 0.7], [0.1, 0.1, 0.7, 0.1])[seed % 3]  # drops, runaways, empties
    mine = [k if rng.random() > 0.25 else str(rng.choice(KINDS, p=swap)) for k in theirs]
    th = Thresholds(min_metric=float(rng.choice([0.5, 0.7])))
    ev = _evidence(task, mine, theirs)
    decision = decide_model({task.name: ev}, {task.name: th}, alpha=0.05, run_size=int(rng.integers(1, 20)))
    v = verdict(ev, th, decision=decision)

    scores = lambda kinds: np.array([k in ("right", "runaway") for k in kinds], dtype=int)  # noqa: E731
    cuts = lambda kinds: np.array([k == "runaway" for k in kinds])  # noqa: E731
    s, p, c, pc = scores(mine), scores(theirs), cuts(mine), cuts(theirs)
    summary = TaskSummary.binary_counts(
        n, np.array([s.sum()]), worse=np.array([(p > s).sum()]), better=np.array([(s > p).sum()]),
        compliant=np.array([sum(k != "empty" for k in mine)]), cut_worse=np.array([(c & ~pc).sum()]),
        cut_better=np.array([(~c & pc).sum()]), baseline=task.trivial_baseline()["accuracy"])
    batch = decide_batch({task.name: summary}, th.criteria(), alpha=0.05, run_size=decision.run_size)
    expected = {name: STATUS[int(code)] for (_, name), code in zip(batch.checks, batch.status[0])}
    assert {name: v.get(name).status for name in expected} == expected
    assert [c.check for c in decision.checks] == [name for _, name in batch.checks]


def test_a_reply_is_compliant_when_an_answer_was_read_and_cut_when_it_ran_to_the_limit() -> None:
    task = load_task("zoo_yes_no", limit=4)
    data = paired_task(_evidence(task, ["right", "wrong", "empty", "runaway"], ["right"] * 4), Thresholds())
    assert data is not None
    assert list(data.values) == [1.0, 0.0, 0.0, 1.0]
    assert list(data.flags("compliant")) == [True, True, False, True]  # type: ignore[arg-type]
    assert list(data.flags("cut")) == [False, False, False, True]  # type: ignore[arg-type]
    assert data.baseline == task.trivial_baseline()["accuracy"]
    off = paired_task(_evidence(task, ["right"] * 4, None), Thresholds(beat_baseline=False))
    assert off is not None and off.baseline is None and off.parent is None


def test_one_family_spans_every_task_of_a_model() -> None:
    yes_no, other = load_task("zoo_yes_no", limit=64), load_task("zoo_yes_no", limit=64, seed=3)
    other = dataclasses.replace(other, name="zoo_yes_no_b")
    evidence = {t.name: _evidence(t, ["right"] * 64, ["right"] * 64) for t in (yes_no, other)}
    th = {t: Thresholds() for t in evidence}
    d = decide_model(evidence, th, alpha=0.05, run_size=18)
    assert d.alpha == pytest.approx(0.05 / 18) and d.tasks == ("zoo_yes_no", "zoo_yes_no_b")
    assert sum(c.share for c in d.checks) == pytest.approx(1.0)  # one budget for all tasks
    alone = decide_alone(evidence["zoo_yes_no"], Thresholds())
    assert alone.alpha == Thresholds().alpha and alone.run_size == 1
    assert d.check("zoo_yes_no", "recovery").share < alone.check("zoo_yes_no", "recovery").share


# --- the run: alpha over every model of the manifest -------------------------------------------------------------

RUN = """
[tasks.zoo_yes_no]
limit = 48
[tasks.zoo_math]
limit = 48
[models.p]
path = "p"
[models.v]
path = "v"
parent = "p"
[models.w]
path = "w"
parent = "p"
[models.broken]
path = "b"
parent = "p"
expect = "fail"
diagnosis = "empty"
"""


def _gate(text: str, monkeypatch: pytest.MonkeyPatch) -> Gate:
    """A Gate whose evidence is hand-made replies (no model loads): every model answers every item right."""
    g = Gate(loads(text), device="cpu")
    tasks = {name: load_task(name, limit=48) for name in ("zoo_yes_no", "zoo_math")}
    math_kinds = ["right"] * 48

    def evidence(model: str, task: str) -> Evidence:
        t = tasks[task]
        kinds = math_kinds if task == "zoo_math" else ["right"] * 48
        spec = g.manifest.models[model]
        return _evidence(t, kinds, kinds if spec.parent else None, model=model)

    monkeypatch.setattr(g, "evidence", evidence)
    return g


def test_a_models_alpha_is_the_run_alpha_over_every_model_whatever_is_selected(monkeypatch: pytest.MonkeyPatch
                                                                                ) -> None:
    g = _gate(RUN, monkeypatch)
    d = g.decision("v")
    assert (d.run_alpha, d.run_size, d.alpha) == (0.05, 4, pytest.approx(0.0125))  # parents and broken included
    assert set(d.tasks) == {"zoo_yes_no", "zoo_math"}
    report = g.report(select_cases(g.manifest, ["v"]))  # --model v: the same decision
    assert {v.model for v in report.verdicts} == {"v"} and g.decision("v") is d
    assert "vs alpha 0.013" in report.verdicts[0].get("recovery").numbers
    assert report.alpha == "run alpha 0.05 over 4 models (0.013 each)"
    assert "models: INCONCLUSIVE 1; run alpha 0.05 over 4 models (0.013 each)" in report.summary()


def test_run_alpha_none_decides_each_model_at_its_own_alpha(monkeypatch: pytest.MonkeyPatch) -> None:
    g = _gate(RUN.replace("[tasks.zoo_yes_no]", "[gate]\nrun_alpha = \"none\"\n[thresholds]\nalpha = 0.02\n"
                                                "[tasks.zoo_yes_no]"), monkeypatch)
    d = g.decision("w")
    assert (d.alpha, d.run_size) == (0.02, 1)
    assert alpha_note(g.manifest) == "run alpha off: each model at its own alpha (0.02)"


def test_the_plan_says_which_tasks_ask_for_too_few_items() -> None:
    m = loads(RUN)
    lines = plan_lines(m, "cpu")
    assert [line.split(":")[0] for line in lines] == ["zoo_yes_no", "zoo_math"]
    assert lines[0].startswith("zoo_yes_no: 48 items asked, ~") and "needed for a 5-point drop at 90% power" in lines[0]
    assert "the compliance floor ~" in lines[0]
    assert plan_lines(m, "cpu", limit=100_000) == []  # enough items: nothing to say
    assert plan_lines(loads(RUN.replace("limit = 48\n", "")), "cpu") == []  # all items: a count unknown up front


# --- the manifest's keys ---------------------------------------------------------------------------------------


def test_decision_keys_of_the_manifest_and_their_validation() -> None:
    m = loads(textwrap.dedent("""
        [gate]
        run_alpha = 0.1
        [gate.weights]
        recovery = 2
        baseline = 0.5
        [thresholds]
        floor_margin = 0.03
        plan_disagreement = 0.2
        [tasks.zoo_yes_no]
        [models.p]
        path = "p"
    """))
    th = m.thresholds("p", "zoo_yes_no")
    assert (m.gate.run_alpha, m.gate.weights.recovery, m.gate.weights.baseline, m.gate.weights.compliance) == \
        (0.1, 2.0, 0.5, 0.05)
    assert th.criteria() == Criteria(floor_margin=0.03, plan_disagreement=0.2)
    bad = {
        "[gate]\nrun_alpha = 1.5": "run_alpha must be in",
        "[gate.weights]\nrecovery = 0": "weight recovery must be > 0",
        "[gate.weights]\nspeed = 1": "unknown key",
        "[thresholds]\ntolerated_drop = 0.05": "tolerated_drop must be below detect_drop",
        "[thresholds]\nfloor_margin = 1.0": "floor_margin must be in",
        "[thresholds]\nplan_disagreement = 2": "plan_disagreement must be in",
    }
    for table, message in bad.items():
        with pytest.raises(ManifestError, match=message):
            loads(table + "\n[tasks.zoo_yes_no]\n[models.p]\npath = 'p'\n")
    with pytest.raises(ManifestError, match="alpha differs between its tasks"):
        loads("[tasks.a]\n[tasks.b]\n[tasks.b.thresholds]\nalpha = 0.02\n[models.p]\npath = 'p'\n")
