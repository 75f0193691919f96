"""scripts/bad_inputs.py: the harness that runs every bad input through the command line and classifies the outcome
from the outside (exit status, stderr lines, tracebacks, the user's files before and after). Its classification is
tested on hand-made results; a few of its cases run for real; docs/bad-inputs.md is its generated table."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import bad_input_cases as catalogue
import bad_inputs

REPO = Path(__file__).resolve().parents[2]


def _case(**kw) -> catalogue.Case:
    return catalogue.Case("x", "g", "what", **{"name_list": ["thing"], **kw})


def _ctx(tmp_path: Path) -> catalogue.Ctx:
    return catalogue.Ctx(tmp_path, tmp_path, REPO)


@pytest.mark.parametrize(("rc", "stderr", "expected"), [
    (2, "evalkit eval: error: thing is bad; fix it\n", "clear"),
    (2, "usage: evalkit eval [-h]\n       [--x]\nevalkit eval: error: argument thing: bad\n", "clear"),
    (1, "evalkit eval: error: thing is bad\n", "late"),
    (2, "evalkit eval: error: other is bad\n", "late"),
    (2, "a table\n| key | MISMATCH |\nevalkit eval: error: thing\n", "dump"),
    (1, "Traceback (most recent call last):\n  File x\nValueError: thing\n", "traceback"),
    (0, "", "silent"),
    (1, "Traceback (most recent call last):\nRuntimeError: DefaultCPUAllocator: can't allocate memory\n", "hang"),
])
def test_a_refusal_is_classified_from_the_outside(rc, stderr, expected, tmp_path):
    outcome = bad_inputs.classify(_case(), _ctx(tmp_path), catalogue.Result(rc, "", stderr, 1.0), {})
    assert outcome.outcome == expected, outcome


def test_changed_user_files_are_data_loss_whatever_the_exit_status(tmp_path):
    mine = tmp_path / "mine.txt"
    mine.write_text("years of work")
    digests = {mine: bad_inputs.tree_digest(mine)}
    mine.unlink()
    outcome = bad_inputs.classify(_case(), _ctx(tmp_path), catalogue.Result(2, "", "evalkit x: error: thing\n", 1),
                                  digests)
    assert outcome.outcome == "data loss"


def test_a_refusal_after_models_ran_is_late(tmp_path):
    ctx = _ctx(tmp_path)
    (ctx.cache / "generations" / "ab").mkdir(parents=True)
    (ctx.cache / "generations" / "ab" / "k.json").write_text("{}")
    outcome = bad_inputs.classify(_case(), ctx, catalogue.Result(2, "", "evalkit x: error: thing\n", 1), {})
    assert outcome.outcome == "late"


def test_a_handled_case_needs_its_check_to_hold(tmp_path):
    ok = _case(want="ok", check=lambda ctx, proc: None)
    wrong = _case(want="ok", check=lambda ctx, proc: "numbers of another model")
    result = catalogue.Result(0, "", "", 1.0)
    ctx = _ctx(tmp_path)
    assert bad_inputs.classify(ok, ctx, result, {}).outcome == "handled"
    assert bad_inputs.classify(wrong, ctx, result, {}).outcome == "silent"


def test_the_catalogue_has_over_a_hundred_distinct_bad_inputs():
    ids = [c.id for c in catalogue.CASES]
    assert len(ids) == len(set(ids)) >= 100
    assert {c.group for c in catalogue.CASES} >= {"command line", "manifest", "model folder", "data file", "cache",
                                                   "run folder", "report input", "quantize output"}


@pytest.mark.parametrize("case_id", ["cli-device-gpu", "m-threshold-nan", "d-binary", "d-utf16", "q-dot",
                                     "o-foreign-runjson"])
def test_fast_cases_are_clear_through_the_real_command_line(case_id, tmp_path):
    case = next(c for c in catalogue.CASES if c.id == case_id)
    if case_id == "d-utf16" and not catalogue.BOOLQ.exists():  # its rows are real BoolQ rows, re-encoded
        pytest.skip(f"needs the shared data samples ({catalogue.BOOLQ}; EVALKIT_DATA_DIR)")
    (tmp_path / "base").mkdir()  # a stand-in for the shared zoo model: every one of these is refused before loading
    (tmp_path / "base" / "config.json").write_text("{}")
    outcome = bad_inputs.run_case(case, tmp_path, REPO)
    assert outcome.outcome == "clear", outcome


def test_the_docs_table_is_generated_and_every_input_is_clear_or_handled():
    text = (REPO / "docs" / "bad-inputs.md").read_text()
    assert "<!-- generated -->" in text
    now = re.search(r"\| \*\*all \(now\)\*\* \| (\d+) \| (.*) \|", text)
    assert now, "run scripts/bad_inputs.py --table docs/bad-inputs.md ..."
    counts = [int(c.strip("* ")) for c in now.group(2).split("|")]
    total = int(now.group(1))
    assert sum(counts[:2]) == total  # clear + handled: everything
    ids = {c.id for c in catalogue.CASES}
    assert len(ids) <= total <= len(ids) + sum(i not in ids for i in catalogue.OPTIONAL)  # the table is of these


@pytest.mark.parametrize("with_before", [True, False])
def test_the_table_counts_each_class_per_group(with_before, tmp_path):
    def outcome(i: str, group: str, kind: str) -> dict:
        return {"id": i, "group": group, "what": f"input {i}", "outcome": kind, "line": "evalkit x: error: y",
                "problem": ""}

    after = {o["id"]: o for o in (outcome("a", "g1", "clear"), outcome("b", "g1", "handled"), outcome("c", "g2", "clear"))}
    before = {"a": outcome("a", "g1", "traceback"), "b": outcome("b", "g1", "data loss")}
    doc = tmp_path / "bad-inputs.md"
    doc.write_text("# Bad inputs\n\nprose\n\n<!-- generated -->\nold table\n")
    bad_inputs.write_table(doc, before if with_before else None, after)
    text = doc.read_text()
    assert text.startswith("# Bad inputs\n\nprose\n") and "old table" not in text
    assert "| **all (now)** | 3 | **2** | **1** | **0** |" in text
    assert ("| g1 (before) | 2 |  |  |  |  | 1 |  |  | 1 |" in text) == with_before
    assert bad_inputs.ISSUE_BEFORE in text and ("the same cases against evalkit" in text) == with_before
