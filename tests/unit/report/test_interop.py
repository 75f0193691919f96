"""The ecosystem's formats and a report's honesty: standard errors and the paired comparison in metrics_summary.csv,
the lm-evaluation-harness export, the engine's notes in every report, and `evalkit report` on a folder of several
runs (refused, or combined without a duplicate row).

The run folders are tests/unit/report_runs.py's: the real writer, engine and gate over hand-written replies. That
lm-eval's own code reads the export is tests/test_wheel.py's (lm-eval installed beside evalkit in a fresh venv).
"""

from __future__ import annotations

import csv
import io
import json
import math
import shutil
from pathlib import Path

import pytest

from evalkit.core.metrics import mean_stderr
from evalkit.errors import RunError
from evalkit.report.combine import load_for_report, runs_under
from evalkit.report.lm_eval import lm_eval_results, results_file_name
from evalkit.report.rundir import load_run
from evalkit.report.tables import csv_text, rows
from evalkit.report.writer import write_reports
from report_runs import N, write_run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_run(tmp_path_factory.mktemp("run") / "fixture-run")


def _samples(run_dir: Path, model: str, task: str) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "results" / model / f"{task}.samples.jsonl").open()]


def test_csv_has_standard_errors_of_every_mean(run_dir: Path) -> None:
    data = {(r["model"], r["task"]): r for r in csv.DictReader(io.StringIO(csv_text(rows(load_run(run_dir)))))}
    gptq = data[("parent_gptq_w4g64", "zoo_yes_no")]
    scores = [float(s["score"]) for s in _samples(run_dir, "parent_gptq_w4g64", "zoo_yes_no")]
    expected = math.sqrt(sum((x - sum(scores) / N) ** 2 for x in scores) / (N - 1) / N)
    assert float(gptq["value_stderr"]) == pytest.approx(expected, rel=1e-5)
    assert gptq["accuracy_stderr"] == gptq["value_stderr"]
    flood = data[("parent_eos_flood", "zoo_span")]
    assert flood["value"] == "" and flood["value_stderr"] == "" and flood["f1_stderr"] == ""  # undefined: no stderr


def test_csv_has_the_paired_comparison_with_the_parent(run_dir: Path) -> None:
    data = {(r["model"], r["task"]): r for r in csv.DictReader(io.StringIO(csv_text(rows(load_run(run_dir)))))}
    gptq = data[("parent_gptq_w4g64", "zoo_yes_no")]
    parent = {s["id"]: float(s["score"]) for s in _samples(run_dir, "parent", "zoo_yes_no")}
    mine = {s["id"]: float(s["score"]) for s in _samples(run_dir, "parent_gptq_w4g64", "zoo_yes_no")}
    diffs = [parent[i] - mine[i] for i in parent]
    assert int(gptq["paired_n"]) == N
    assert float(gptq["parent_value"]) == pytest.approx(sum(parent.values()) / N, rel=1e-5)
    assert float(gptq["drop"]) == pytest.approx(sum(diffs) / N, rel=1e-5)
    assert float(gptq["drop_stderr"]) == pytest.approx(mean_stderr(diffs), rel=1e-5)
    assert int(gptq["worse"]) == sum(d > 0 for d in diffs) and int(gptq["better"]) == sum(d < 0 for d in diffs)
    assert gptq["significant"] in ("true", "false") and float(gptq["mdd"]) > 0
    assert data[("parent", "zoo_yes_no")]["paired_n"] == ""  # a parent is compared with nothing


def test_lm_eval_export_has_lm_evals_layout(run_dir: Path) -> None:
    run = load_run(run_dir)
    doc = lm_eval_results(run, "parent_gptq_w4g64")
    assert set(doc) >= {"results", "configs", "versions", "n-shot", "higher_is_better", "n-samples", "config", "date"}
    task = doc["results"]["zoo_yes_no"]
    metrics = json.loads((run_dir / "results" / "parent_gptq_w4g64" / "zoo_yes_no.json").read_text())["metrics"]
    assert task["accuracy,none"] == metrics["accuracy"]["value"]
    assert task["accuracy_stderr,none"] == metrics["accuracy"]["stderr"] > 0
    assert task["sample_len"] == N and doc["n-samples"]["zoo_yes_no"] == {"original": N, "effective": N}
    assert doc["configs"]["zoo_yes_no"]["output_type"] == "generate_until" and doc["n-shot"]["zoo_yes_no"] == 0
    assert doc["versions"]["zoo_yes_no"].startswith("rows:")
    assert doc["config"]["parent"] == "parent" and doc["model_name_sanitized"] == "parent_gptq_w4g64"
    flood = lm_eval_results(run, "parent_eos_flood")["results"]["zoo_span"]
    assert flood["f1,none"] is None and flood["f1_stderr,none"] == "N/A"  # undefined, never a fake 0
    json.dumps(doc, allow_nan=False)  # JSON as lm-eval writes it: no NaN


def test_report_writes_one_lm_eval_file_per_model(run_dir: Path, tmp_path: Path) -> None:
    paths = write_reports(run_dir, tmp_path / "out")
    name = results_file_name(load_run(run_dir))
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in paths.lm_eval) == [
        f"lm_eval/{m}/{name}" for m in ("parent", "parent_eos_flood", "parent_gptq_w4g64")]


def test_engine_notes_reach_the_csv_markdown_and_html(tmp_path: Path) -> None:
    run = write_run(tmp_path / "noted", tasks=("zoo_yes_no",))
    doc_file = run / "results" / "parent_gptq_w4g64" / "zoo_yes_no.json"
    doc = json.loads(doc_file.read_text())
    doc["notes"] = ["3 of 24 prompts plus max_new_tokens exceed the model's max_position_embeddings (512)"]
    doc_file.write_text(json.dumps(doc))
    paths = write_reports(run)
    row = next(r for r in csv.DictReader(paths.csv.open()) if r["model"] == "parent_gptq_w4g64")
    assert row["notes"] == doc["notes"][0]
    assert f"- `parent_gptq_w4g64` on zoo_yes_no: {doc['notes'][0]}" in paths.markdown.read_text()
    assert "max_position_embeddings (512)" in paths.html.read_text()


def test_a_folder_of_several_runs_is_refused_unless_combined(run_dir: Path, tmp_path: Path) -> None:
    parent = tmp_path / "runs"
    for name in ("pr41", "pr42"):
        shutil.copytree(run_dir, parent / name)
    assert runs_under(parent) == [parent / "pr41", parent / "pr42"] and runs_under(parent / "pr41") == []
    with pytest.raises(RunError, match=r"holds 2 runs \(pr41, pr42\).*--combine"):
        write_reports(parent)
    assert not (parent / "metrics_summary.csv").exists()
    combined = load_for_report(parent, combine_runs=True)
    keys = [(e.model, e.task) for e in combined.entries]
    assert len(keys) == len(set(keys)) == 2 * 3 * 2  # two runs x 3 models x 2 tasks, each once
    assert combined.models["pr42/parent_gptq_w4g64"].parent == "pr42/parent"  # parent links follow the rename
    table = rows(combined)
    assert all(r.comparison is not None for r in table if r.model.parent)  # each variant finds its own parent
    paths = write_reports(parent, combine=True)
    assert sum(1 for _ in csv.DictReader(paths.csv.open())) == 12


def test_a_folder_with_the_same_result_twice_is_refused(run_dir: Path, tmp_path: Path) -> None:
    """Results without a run.json (scanned): two copies of one (model, task) are one row too many."""
    folder = tmp_path / "loose"
    for copy in ("a", "b"):
        target = folder / copy / "parent_gptq_w4g64"
        target.mkdir(parents=True)
        for f in (run_dir / "results" / "parent_gptq_w4g64").glob("zoo_yes_no*"):
            shutil.copy(f, target / f.name)
    with pytest.raises(RunError, match="more than one result"):
        load_for_report(folder)
