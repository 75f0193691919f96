"""evalkit.gate: each check over real extraction and scoring of hand-written responses (no model needed).

The responses are what the seed's models produced (empty replies, no box, a constant answer) and what healthy and
degraded variants produce; `score_generations` is the engine's own pure core, so the gate sees exactly what it
would see after generation.
"""

from __future__ import annotations

import dataclasses
import doctest
import textwrap
from collections.abc import Callable

import pytest

import evalkit.gate as gate_module
from evalkit.run.drift import DriftResult
from evalkit.run.engine import TaskResult, score_generations
from evalkit.gate import CHECKS, Evidence, Failure, Gate, check, verdict
from evalkit.gate.decisions import decide_alone
from evalkit.pytest.assertions import GateInconclusive, require
from evalkit.run.generation import Generation, GenerationConfig, GenerationRun, Phases
from evalkit.gate.manifest import Thresholds, loads
from evalkit.data.tasks import Task, load_task
from evalkit.core.types import Item

EOS = "<|im_end|>"


def _yes_no(n: int) -> Task:
    return load_task("zoo_yes_no", limit=n)


def _right(item: Item) -> str:
    return f"\\boxed{{{item.answers[0]}}}{EOS}"


def _wrong(item: Item) -> str:
    return f"\\boxed{{{'no' if item.answers[0] == 'yes' else 'yes'}}}{EOS}"


def _result(task: Task, respond: Callable[[int, Item], str], *, seconds: float = 2.0, tokens: int = 6,
            finish: str = "eos", phases: Phases | None = None) -> TaskResult:
    gens = [Generation(it.id, "<prompt>", respond(i, it), respond(i, it).replace(EOS, ""), 40, tokens, finish)
            for i, it in enumerate(task.items)]  # type: ignore[arg-type]
    run = GenerationRun(tuple(gens), seconds, {"backend": "transformers", "device": "cpu", "dtype": "float32"},
                        phases)
    records = score_generations(task, gens, [EOS])
    return TaskResult({"path": "m", "fingerprint": "f"}, task, GenerationConfig(), "chat_template", records, run,
                      False, None, seconds)


def _drift(**overrides: object) -> DriftResult:
    base = dict(n_sequences=64, n_tokens=400, kl_mean=0.01, kl_median=0.005, kl_p90=0.02, kl_p99=0.08, kl_max=0.3,
                top1_agreement=0.98, ppl_parent=1.5, ppl_variant=1.52, ppl_ratio=1.013, embedding_cosine=1.0,
                layer_cosine=(0.999, 0.998, 0.997, 0.996), first_divergent_layer=None, largest_drop_layer=1,
                threshold=0.95)
    return DriftResult(**{**base, **overrides})  # type: ignore[arg-type]


def _evidence(task: Task, variant: Callable[[int, Item], str] | None, parent: Callable[[int, Item], str] | None = None,
              **kw: object) -> Evidence:
    mine = _result(task, variant, **{k: kw.pop(k) for k in ("seconds", "tokens", "finish", "phases") if k in kw}) \
        if variant else None
    theirs = _result(task, parent, seconds=kw.pop("parent_seconds", 2.0),  # type: ignore[arg-type]
                     phases=kw.pop("parent_phases", None)) if parent else None  # type: ignore[arg-type]
    return Evidence("variant", task.name, mine, "accuracy", parent_name="parent" if parent else None, parent=theirs,
                    drift=kw.pop("drift", _drift() if parent else None),
                    artifacts=kw.pop("artifacts", () if parent else None), **kw)  # type: ignore[arg-type]


def _statuses(ev: Evidence, th: Thresholds = Thresholds()) -> dict[str, str]:
    return {name: check(name, ev, th).status for name in CHECKS}


# --- the seed's failures, each caught with its name --------------------------------------------------------------


def test_a_healthy_variant_passes_every_check() -> None:
    task = _yes_no(160)  # enough items to rule out a 5-point drop when the variant answers as its parent does
    mostly_right = lambda i, it: _right(it) if i % 8 else _wrong(it)  # noqa: E731
    ev = _evidence(task, mostly_right, mostly_right)
    assert _statuses(ev, Thresholds(min_metric=0.5)) == dict.fromkeys(CHECKS, "pass")
    assert verdict(ev, Thresholds(min_metric=0.5)).outcome == "PASS"


def test_too_few_items_make_a_healthy_variant_inconclusive_not_failed() -> None:
    task = _yes_no(64)
    mostly_right = lambda i, it: _right(it) if i % 8 else _wrong(it)  # noqa: E731
    v = verdict(_evidence(task, mostly_right, mostly_right), Thresholds(min_metric=0.5))
    assert [c.check for c in v.inconclusive] == ["recovery"] and not v.failed
    assert (v.status, v.outcome, v.as_expected) == ("inconclusive", "INCONCLUSIVE", True)
    rec = v.get("recovery")
    assert "cannot tell a 5.0-pt drop from none at n=64" in rec.note and "items would tell them apart" in rec.note
    assert rec.values["needed"] > 64 and 0 < rec.values["power"] < 0.9  # exact power at n=64, and the items needed
    assert "recovery INCONCLUSIVE" in rec.message and "note: drop 0.0 pts" in rec.message


def test_all_empty_replies_fail_as_empty_never_as_a_silent_zero() -> None:
    task = _yes_no(64)
    ev = _evidence(task, lambda i, it: "", lambda i, it: _right(it))
    v = verdict(ev, Thresholds(min_metric=0.5), expect="fail", expected=("empty",))
    assert v.get("compliance").status == "fail" and v.diagnosis == "empty"
    assert {c.check for c in v.failed} >= {"compliance", "metric_floor", "recovery", "baseline"}
    assert v.outcome == "CAUGHT"
    msg = v.get("compliance").message
    assert "compliance FAIL - empty: the response is empty" in msg
    assert "compliance 0.000 (0/64) vs floor 0.90" in msg
    assert "responses: 64 (empty 64)" in msg
    assert msg.count("[zoo_yes_no/") == 2  # two example responses
    floor = v.get("metric_floor").message
    assert "accuracy undefined (no answer extracted from any of the 64 responses (empty: 64))" in floor
    assert "accuracy is undefined, so it cannot beat the trivial baseline" in v.get("baseline").message


def test_missing_boxes_fail_as_no_box() -> None:
    task = _yes_no(40)
    ev = _evidence(task, lambda i, it: f"{it.answers[0]}{EOS}", lambda i, it: _right(it))
    c = check("compliance", ev, Thresholds())
    assert (c.status, c.diagnosis) == ("fail", "no_box")
    assert "ignored the answer format" in c.message


def test_a_constant_answer_of_a_reference_model_fails_the_baseline_floor_once_items_can_tell() -> None:
    constant = lambda i, it: f"\\boxed{{no}}{EOS}"  # noqa: E731  (the majority class: exactly the baseline)
    v = verdict(_evidence(_yes_no(1000), constant, None), Thresholds())  # a reference: no paired checks
    assert v.get("compliance").status == "pass"
    assert (v.get("baseline").status, v.diagnosis) == ("fail", "trivial_baseline")
    assert "vs the trivial baseline" in v.get("baseline").message and "zone" in v.get("baseline").message
    assert [v.get(n).status for n in ("recovery", "drift", "speed")] == ["skip"] * 3
    small = verdict(_evidence(_yes_no(64), constant, None), Thresholds()).get("baseline")
    assert small.status == "inconclusive" and "would settle" in small.note  # 64 items cannot tell b from b + 5 pts


def test_runaway_replies_are_named_truncated() -> None:
    task = _yes_no(32)
    ev = _evidence(task, lambda i, it: "Let me think " * 3, lambda i, it: _right(it), finish="length", tokens=256)
    assert check("compliance", ev, Thresholds()).diagnosis == "truncated"


def test_a_real_drop_fails_recovery_with_wrong_answers_and_the_parents_answer() -> None:
    task = _yes_no(200)
    ev = _evidence(task, lambda i, it: _wrong(it) if i % 5 == 0 else _right(it), lambda i, it: _right(it))
    c = check("recovery", ev, Thresholds())
    assert (c.status, c.diagnosis) == ("fail", "wrong_answer")
    assert "parent 1.000 -> variant 0.800 (drop 20.0 pts, recovery 0.80) on 200 paired items; worse on 40" in c.message
    assert "the parent answered" in c.message
    assert c.values["worse"] == 40 and c.values["better"] == 0


def test_noise_at_small_n_is_inconclusive_and_says_how_many_items_would_settle_it() -> None:
    task = _yes_no(20)
    ev = _evidence(task, lambda i, it: _wrong(it) if i < 2 else _right(it), lambda i, it: _right(it))
    c = check("recovery", ev, Thresholds())
    assert c.status == "inconclusive" and "cannot tell a 5.0-pt drop from none at n=20" in c.note
    strict = check("recovery", ev, Thresholds(require_power=True))
    assert (strict.status, strict.diagnosis) == ("fail", "underpowered")
    assert "items would" in strict.message and strict.note.startswith("underpowered: ")


def test_a_lost_chat_template_is_named_before_its_symptoms() -> None:
    task = _yes_no(32)
    ev = _evidence(task, lambda i, it: _wrong(it) if i % 3 else _right(it), lambda i, it: _right(it))
    ev = dataclasses.replace(ev, result=dataclasses.replace(ev.result, prompt_mode="plain"))
    v = verdict(ev, Thresholds())
    assert (v.get("prompt").status, v.diagnosis) == ("fail", "no_chat_template")
    assert "prompted via plain; the parent via chat_template" in v.get("prompt").message
    assert "recovery" in {c.check for c in v.failed}  # the symptom is reported too


def test_replies_that_no_longer_stop_are_runaway() -> None:
    task = _yes_no(32)
    long = _result(task, lambda i, it: _right(it).replace(EOS, "") + " and so on" * 9, finish="length", tokens=96)
    ev = dataclasses.replace(_evidence(task, lambda i, it: _right(it), lambda i, it: _right(it)), result=long)
    c = check("stopping", ev, Thresholds())
    assert (c.status, c.diagnosis) == ("fail", "runaway")
    assert "32/32 replies ran to max_new_tokens, the parent's 0/32" in c.message
    assert check("compliance", ev, Thresholds()).status == "pass"  # every reply still holds its box
    healthy = _evidence(task, lambda i, it: _right(it), lambda i, it: _right(it))
    assert check("stopping", healthy, Thresholds()).status == "pass"


def test_a_score_near_the_baseline_is_inconclusive_at_small_n_but_a_collapse_fails_at_any_n() -> None:
    task = _yes_no(12)  # too few items to tell 0.75 from the 0.58 majority baseline
    weak = lambda i, it: _right(it) if i % 4 else _wrong(it)  # noqa: E731
    assert verdict(_evidence(task, weak, None), Thresholds()).get("baseline").status == "inconclusive"
    strong_parent = verdict(_evidence(task, weak, lambda i, it: _right(it)), Thresholds()).get("baseline")
    assert strong_parent.status == "inconclusive"  # the floor is the model's own score, whoever its parent is
    majority = "yes" if sum(it.answers[0] == "yes" for it in task.items) * 2 >= len(task.items) else "no"
    constant = lambda i, it: f"\\boxed{{{majority}}}{EOS}"  # noqa: E731
    collapsed = verdict(_evidence(task, constant, lambda i, it: _right(it)), Thresholds()).get("baseline")
    assert (collapsed.status, collapsed.diagnosis) == ("fail", "trivial_baseline")  # the seed's symptom, at n=12
    assert "is at the trivial baseline" in collapsed.message and "collapsed" in collapsed.message
    assert collapsed.values["rule"] == "collapse"
    parent_at_baseline = verdict(_evidence(task, constant, constant), Thresholds()).get("baseline")
    assert parent_at_baseline.status == "inconclusive"  # the parent does not beat the baseline: no collapse


def test_the_collapse_rule_catches_the_seeds_symptom_where_the_floor_alone_cannot() -> None:
    """48 items, a variant answering a constant (its score is the trivial baseline's) under a parent that answers
    every item: the statistical floor cannot tell b from b + 5 pts at this n, the collapse rule fails it."""
    task = _yes_no(48)
    majority = "yes" if sum(it.answers[0] == "yes" for it in task.items) * 2 >= len(task.items) else "no"
    constant = lambda i, it: f"\\boxed{{{majority}}}{EOS}"  # noqa: E731
    alone = verdict(_evidence(task, constant, None), Thresholds()).get("baseline")
    assert alone.status == "inconclusive"
    v = verdict(_evidence(task, constant, lambda i, it: _right(it)), Thresholds())
    assert v.get("baseline").status == "fail" and "trivial_baseline" in v.diagnoses


def test_drift_out_of_bounds_names_the_layer() -> None:
    task = _yes_no(16)
    ev = _evidence(task, lambda i, it: _right(it), lambda i, it: _right(it),
                   drift=_drift(kl_mean=2.5, top1_agreement=0.41, first_divergent_layer=2, largest_drop_layer=2))
    c = check("drift", ev, Thresholds())
    assert (c.status, c.diagnosis) == ("fail", "logit_drift")
    assert "first diverging layer: model.layers.2" in c.message
    assert "out of bounds: mean KL, top-1 agreement" in c.message
    assert check("drift", ev, Thresholds(max_mean_kl=None, min_top1_agreement=None)).status == "pass"


def test_slow_kernel_alarm_compares_each_phase_and_names_the_slower() -> None:
    """The seed's symptom (28-30 s/sample quantized vs 2-3 s base) in a run of a fraction of a second: the phases
    each run timed are compared, so a short run is judged too."""
    task = _yes_no(16)
    parent = Phases(prefill_s_per_token=2e-5, decode_s_per_row=1e-3, decode_steps=60, batches=2)
    right = lambda i, it: _right(it)  # noqa: E731
    slow = _evidence(task, right, right, seconds=0.3, parent_seconds=0.2, parent_phases=parent,
                     phases=Phases(2.4e-5, 1.2e-2, 60, 2))
    c = check("speed", slow, Thresholds())
    assert (c.status, c.diagnosis) == ("fail", "slow_kernel")
    assert c.numbers.startswith("decode 12.0x slower than the parent's: decode 12 vs the parent's 1 ms/row-step")
    assert "prefill 24 vs the parent's 20 us/token (1.2x)" in c.message and c.values["phase"] == "decode"
    assert check("speed", slow, Thresholds(max_slowdown=40)).status == "pass"
    slow_prefill = _evidence(task, right, right, parent_phases=parent, phases=Phases(4e-4, 1.1e-3, 60, 2))
    assert check("speed", slow_prefill, Thresholds()).numbers.startswith("prefill 20.0x slower")
    healthy = _evidence(task, right, right, seconds=0.3, parent_seconds=0.2, parent_phases=parent,
                        phases=Phases(2.2e-5, 1.5e-3, 60, 2))
    assert check("speed", healthy, Thresholds()).status == "pass"


def test_speed_without_decode_steps_compares_the_prefill() -> None:
    task = _yes_no(16)
    right = lambda i, it: _right(it)  # noqa: E731
    ev = _evidence(task, right, right, parent_phases=Phases(2e-5, 1e-3, 60, 2), phases=Phases(2.1e-5, None, 0, 2))
    c = check("speed", ev, Thresholds())
    assert c.status == "pass" and "prefill compared alone" in c.note


def test_runs_without_phase_timings_fall_back_to_the_whole_run() -> None:
    task = _yes_no(16)
    slow = _evidence(task, lambda i, it: _right(it), lambda i, it: _right(it), seconds=60.0, parent_seconds=2.0)
    c = check("speed", slow, Thresholds())
    assert (c.status, c.diagnosis) == ("fail", "slow_kernel") and "30.0x slower; alarm at 10x" in c.message
    assert check("speed", slow, Thresholds(max_slowdown=40)).status == "pass"
    short = _evidence(task, lambda i, it: _right(it), lambda i, it: _right(it), seconds=60.0, parent_seconds=0.2)
    assert check("speed", short, Thresholds()).status == "skip"


def test_a_metric_floor_is_a_one_sided_test() -> None:
    task = _yes_no(64)
    half = _evidence(task, lambda i, it: _right(it) if i % 2 else _wrong(it), None)
    assert check("metric_floor", half, Thresholds(min_metric=0.9)).status == "fail"  # confidently below 0.9
    within = check("metric_floor", half, Thresholds(min_metric=0.55))  # 0.5 on 64: within noise of the zone
    assert within.status == "inconclusive" and "zone 0.50-0.55" in within.numbers and "would settle" in within.note
    assert check("metric_floor", half, Thresholds(min_metric=0.3)).status == "pass"  # confidently above 0.25
    assert check("metric_floor", half, Thresholds()).status == "skip"


def test_errors_fail_every_check_of_that_model_only() -> None:
    ev = Evidence("m", "zoo_yes_no", None, "accuracy", parent_name="p", error=Failure("load_error", "m: no config.json"))
    v = verdict(ev, Thresholds())
    assert {c.status for c in v.checks} == {"fail"} and v.diagnosis == "load_error"
    assert "no config.json" in v.checks[0].message
    orphan = dataclasses.replace(_evidence(_yes_no(64), lambda i, it: _right(it), None), parent_name="p",
                                 parent_error=Failure("load_error", "gone"))
    for name in ("stopping", "recovery"):
        assert check(name, orphan, Thresholds()).diagnosis == "parent_error"
    assert check("compliance", orphan, Thresholds()).status == "pass"  # the floors stay in the family
    assert [c.check for c in decide_alone(orphan, Thresholds()).checks] == ["compliance", "baseline"]


def test_outcomes_of_expected_failures() -> None:
    task = _yes_no(64)
    empty = _evidence(task, lambda i, it: "", lambda i, it: _right(it))
    assert verdict(empty, Thresholds(), expect="fail", expected=("no_box",)).outcome == "MISDIAGNOSED"
    healthy = _evidence(task, lambda i, it: _right(it), lambda i, it: _right(it))
    assert verdict(healthy, Thresholds(), expect="fail", expected=("empty",)).outcome == "ESCAPED"  # inconclusive
    assert verdict(healthy, Thresholds()).outcome == "INCONCLUSIVE"  # 64 items cannot rule out a 5-point drop
    many = _evidence(_yes_no(160), lambda i, it: _right(it), lambda i, it: _right(it))
    assert verdict(many, Thresholds()).outcome == "PASS"
    assert verdict(many, Thresholds(), expect="fail", expected=("empty",)).outcome == "ESCAPED"


def test_paired_checks_refuse_different_items() -> None:
    ev = _evidence(_yes_no(16), lambda i, it: _right(it), None)
    other = _result(load_task("zoo_yes_no", limit=16, seed=1), lambda i, it: _right(it))
    with pytest.raises(ValueError, match="different items"):
        check("recovery", Evidence("v", "zoo_yes_no", ev.result, "accuracy", parent_name="p", parent=other,
                                   drift=_drift()), Thresholds())


def test_require_maps_statuses_to_pytest_outcomes() -> None:
    ev = _evidence(_yes_no(32), lambda i, it: "", lambda i, it: _right(it))
    failed = check("compliance", ev, Thresholds())
    with pytest.raises(pytest.fail.Exception, match="compliance FAIL - empty"):
        require(failed)
    with pytest.raises(pytest.xfail.Exception, match="known-broken model caught"):
        require(failed, expect="fail", expected=("empty",))
    with pytest.raises(pytest.fail.Exception, match=r"unexpected reason \(empty; expected no_box\)"):
        require(failed, expect="fail", expected=("no_box",))  # issue 12: not among its diagnoses -> a real failure
    load_error = check("compliance", Evidence("m", "t", None, "accuracy", error=Failure("load_error", "gone")),
                       Thresholds())
    with pytest.raises(pytest.fail.Exception, match=r"unexpected reason \(load_error; expected empty\)"):
        require(load_error, expect="fail", expected=("empty",))
    with pytest.raises(pytest.skip.Exception, match="no absolute floor"):
        require(check("metric_floor", ev, Thresholds()))
    require(check("drift", ev, Thresholds()))  # a pass returns


def test_require_passes_an_inconclusive_check_with_a_warning_that_says_why() -> None:
    ev = _evidence(_yes_no(20), lambda i, it: _right(it), lambda i, it: _right(it))
    inconclusive = check("recovery", ev, Thresholds())
    assert inconclusive.status == "inconclusive"
    with pytest.warns(GateInconclusive, match=r"variant on zoo_yes_no: recovery INCONCLUSIVE: .*items would"):
        require(inconclusive)
    with pytest.warns(GateInconclusive):
        require(inconclusive, expect="fail")  # a known-broken model's inconclusive check is no catch, no failure


def test_report_summary_has_one_row_per_case_and_the_tally() -> None:
    task = _yes_no(32)
    verdicts = (
        verdict(_evidence(task, lambda i, it: _right(it), None), Thresholds()),
        verdict(_evidence(task, lambda i, it: "", lambda i, it: _right(it)), Thresholds(), expect="fail",
                expected=("empty",)),
    )
    report = gate_module.GateReport(verdicts, {"total": 3.0, "load": 1.0, "generate": 1.5, "drift": 0.2}, "cpu")
    text = report.summary()
    assert report.ok and report.exit_code == 0
    lines = text.splitlines()
    assert lines[0].split() == ["model", "task", "compliance", "metric", "recovery", "verdict", "diagnosis"]
    assert "accuracy 1.00" in lines[2] and "PASS" in lines[2]
    assert "accuracy undefined" in lines[3] and "CAUGHT" in lines[3] and "empty" in lines[3]
    assert "PASS 1, CAUGHT 1 of 2 (model, task) on cpu; OK" in text


def test_an_inconclusive_row_keeps_the_run_green_and_names_its_checks() -> None:
    task = _yes_no(32)
    healthy = verdict(_evidence(task, lambda i, it: _right(it), lambda i, it: _right(it)), Thresholds())
    strict = verdict(_evidence(task, lambda i, it: _right(it), lambda i, it: _right(it)),
                     Thresholds(require_power=True))
    report = gate_module.GateReport((healthy,), {"total": 1.0}, "cpu", "run alpha 0.05 over 3 models (0.017 each)")
    text = report.summary()
    assert report.ok and report.exit_code == 0
    row = text.splitlines()[2]
    assert "INCONCLUSIVE" in row and "(inconclusive: recovery)" in row and "(drop <= " in row
    assert "INCONCLUSIVE 1 of 1 (model, task) on cpu; OK" in text
    assert "models: INCONCLUSIVE 1; run alpha 0.05 over 3 models (0.017 each)" in text
    red = gate_module.GateReport((healthy, strict), {"total": 1.0}, "cpu")
    assert not red.ok and red.exit_code == 1 and "underpowered" in red.summary().splitlines()[3]
    assert "INCONCLUSIVE 1, FAIL 1 of 2 (model, task) on cpu; NOT OK" in red.summary()


def test_summary_is_what_the_snapshot_keeps() -> None:
    task = _yes_no(32)
    v = verdict(_evidence(task, lambda i, it: _right(it) if i % 4 else "", lambda i, it: _right(it)), Thresholds())
    s = v.summary
    assert s["n"] == 32 and s["diagnoses"] == {"ok": 24, "empty": 8} and s["metric"] == "accuracy"
    assert s["verdict"]["drift"] == "pass" and s["recovery"]["worse"] == 8
    assert set(s) >= {"compliance", "metrics", "trivial_baseline", "drift", "recovery", "diagnosis"}


def test_gate_turns_a_missing_folder_into_that_models_failures(tmp_path) -> None:
    m = loads(textwrap.dedent("""
        [tasks.zoo_yes_no]
        limit = 4
        [tasks.no_such_task]
        [models.ghost]
        path = "does/not/exist"
    """), root=tmp_path)
    done: list[tuple[str, str]] = []
    g = Gate(m, device="cpu", progress=lambda model, task: done.append((model, task)))
    v = g.verdict("ghost", "zoo_yes_no")
    assert v.diagnosis == "load_error" and "does/not/exist" in v.checks[0].message
    assert done == [("ghost", "zoo_yes_no"), ("ghost", "no_such_task")]  # a failed (model, task) is done too
    assert v.to_dict()["checks"][0]["diagnosis"] == "load_error"


def test_doctests() -> None:
    assert doctest.testmod(gate_module).failed == 0
