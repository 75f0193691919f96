"""Every file evalkit writes is valid JSON (no NaN/Infinity literals: undefined values are null with a reason),
and every reader names a damaged file in one line.

Before issue 13, NaN/Inf weights produced bare ``NaN`` in drift and verdict JSON (not JSON), and ``evalkit report``
crashed in ``report.svg._decades`` reading it; a corrupted samples.jsonl, a truncated run.json's entries or a
verdicts.json of the wrong shape ended in a traceback.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from evalkit.errors import RunError
from evalkit.report.rundir import load_run
from evalkit.report.tables import rows
from evalkit.report.writer import write_reports
from bad_input_helpers import tiny_models  # noqa: F401 (fixtures)

FAST = ["--limit", "3", "--max-new-tokens", "4", "--device", "cpu", "-q"]


def _strict(text: str) -> object:
    def refuse(name: str) -> None:
        raise ValueError(f"a {name} literal")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module")
def nan_run(tiny_models, tmp_path_factory, ) -> Path:
    """A real run of a model with NaN weights against its parent: drift and verdicts are full of undefined values."""
    from evalkit import cli

    out = tmp_path_factory.mktemp("nan") / "run"
    assert cli.main(["eval", f"parent={tiny_models['parent']}", f"nan={tiny_models['nan']}", "--parent",
                     "nan=parent", "--task", "zoo_yes_no", *FAST, "--cache", str(out.parent / "cache"),
                     "--out", str(out)]) == 0
    return out


def test_nan_weights_give_valid_json_with_reasons(nan_run):
    for file in sorted(nan_run.rglob("*.json*")):
        for line in file.read_text().splitlines() if file.suffix == ".jsonl" else [file.read_text()]:
            _strict(line)  # raises on NaN / Infinity
    drift = json.loads((nan_run / "drift" / "nan" / "zoo_yes_no.json").read_text())
    assert drift["kl_mean"] is None and drift["kl_mean_reason"].startswith("not a number (NaN)")


def test_evalkit_report_reads_a_nan_run(nan_run, tmp_path):
    out = Path(shutil.copytree(nan_run, tmp_path / "run"))
    paths = write_reports(out)
    assert "undefined" in paths.markdown.read_text() and "<svg" in paths.html.read_text()


def test_a_report_reads_nan_literals_written_by_older_files(nan_run, tmp_path):
    """Files from before the fix (or another tool) with NaN/Infinity literals: read as undefined, never a crash."""
    out = Path(shutil.copytree(nan_run, tmp_path / "run"))
    drift = out / "drift" / "nan" / "zoo_yes_no.json"
    doc = json.loads(drift.read_text())
    doc.update(kl_mean=float("nan"), kl_p99=float("inf"), top1_agreement=float("nan"), ppl_ratio=float("inf"))
    drift.write_text(json.dumps(doc))  # Python's json writes the literals
    assert "NaN" in drift.read_text()
    write_reports(out)
    assert "mean KL undefined" in __import__("evalkit.report.text", fromlist=["x"]).render_compare(
        load_run(out), "nan", "parent")


@pytest.mark.parametrize(("what", "damage", "words"), [
    ("samples.jsonl with a broken line", lambda run: next(run.glob("results/nan/*.samples.jsonl")).write_text(
        "{broken\n"), ["zoo_yes_no.samples.jsonl:1", "not a JSON sample"]),
    ("run.json whose entries are numbers", lambda run: run.joinpath("run.json").write_text(json.dumps(
        {**json.loads(run.joinpath("run.json").read_text()), "entries": [1]})), ["run.json", "entries[0]"]),
    ("an entry pointing outside the run", lambda run: run.joinpath("run.json").write_text(json.dumps(
        {**(d := json.loads(run.joinpath("run.json").read_text())),
         "entries": [{**d["entries"][0], "results": "../../../../etc/passwd"}]})), ["not a path inside"]),
    ("verdicts.json of the wrong shape", lambda run: run.joinpath("verdicts.json").write_text(json.dumps(
        {**json.loads(run.joinpath("verdicts.json").read_text()), "verdicts": [1, 2]})), ["verdicts[0]"]),
    ("a truncated results file", lambda run: next(run.glob("results/parent/*.json")).write_text('{"schema": '),
     ["zoo_yes_no.json", "not readable JSON"]),
])
def test_a_damaged_run_file_is_one_run_error_naming_it(what, damage, words, nan_run, tmp_path):
    out = Path(shutil.copytree(nan_run, tmp_path / "run"))
    damage(out)
    with pytest.raises(RunError) as err:
        rows(load_run(out))
    assert "\n" not in str(err.value) and all(w in str(err.value) for w in words), str(err.value)
