"""evalkit.report (tables, rundir, markdown, html, svg) and model descriptions: the run folder, CSV, Markdown and HTML
reports.

The run folder comes from `report_runs.write_run`: hand-written responses through the real engine, gate and writer
(no model needed, so these tests take well under a second). The end-to-end path through real models is in test_cli.
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
from pathlib import Path

import pytest

import report_runs
from evalkit.report.markdown import markdown
from evalkit.report.tables import answer_format, compare_entries, csv_text, method_rows, rows
from evalkit.report.writer import write_reports
from evalkit.models.description import ModelSpec
from evalkit.report.rundir import RunError, describe_model, load_run
from evalkit.core.stats import paired_drop


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return report_runs.write_run(tmp_path_factory.mktemp("reports") / "run")


@pytest.fixture(scope="module")
def table(run_dir):
    return rows(load_run(run_dir))


# --- the run folder -------------------------------------------------------------------------------------------------


def test_run_folder_layout_and_manifest(run_dir):
    manifest = json.loads((run_dir / "run.json").read_text())
    assert manifest["schema"] == "evalkit.run" and manifest["schema_version"] == 1
    assert [(e["model"], e["task"]) for e in manifest["entries"]][:3] == [
        ("parent", "zoo_yes_no"), ("parent_gptq_w4g64", "zoo_yes_no"), ("parent_eos_flood", "zoo_yes_no")]
    for e in manifest["entries"]:
        assert (run_dir / e["results"]).is_file() and (run_dir / e["samples"]).is_file()
        assert (e["drift"] is None) == (e["model"] == "parent")
    assert (run_dir / "results" / "parent_gptq_w4g64" / "zoo_span.samples.jsonl").is_file()
    assert (run_dir / "drift" / "parent_eos_flood" / "zoo_yes_no.json").is_file()
    assert json.loads((run_dir / "verdicts.json").read_text())["schema"] == "evalkit.verdicts"


def test_load_run_reads_models_entries_and_verdicts(run_dir):
    run = load_run(run_dir)
    assert run.name == "fixture-run" and run.tasks == ["zoo_yes_no", "zoo_span"]
    assert run.models["parent_gptq_w4g64"].parent == "parent" and run.models["parent_gptq_w4g64"].bits_label == "4"
    assert run.verdicts[("parent_eos_flood", "zoo_span")]["status"] == "fail"
    assert len(run.entry("parent", "zoo_span").samples()) == report_runs.N


def test_folder_without_manifest_is_scanned_for_results(run_dir, tmp_path):
    shutil.copytree(run_dir / "results", tmp_path / "results")
    run = load_run(tmp_path)
    assert sorted({e.model for e in run.entries}) == ["parent", "parent_eos_flood", "parent_gptq_w4g64"]
    assert all(e.samples() for e in run.entries)


@pytest.mark.parametrize("damage, message", [
    (lambda d: shutil.rmtree(d), "run folder does not exist"),
    (lambda d: [p.unlink() for p in d.rglob("*") if p.is_file()], "no results in this run folder"),
    (lambda d: (d / "results" / "parent" / "zoo_span.json").write_text("{not json"), "not readable JSON"),
    (lambda d: (d / "results" / "parent" / "zoo_span.json").unlink(), "missing; the run folder is incomplete"),
    (lambda d: (d / "verdicts.json").write_text('{"schema": "other"}'), "expected a 'evalkit.verdicts' document"),
])
def test_broken_run_folders_fail_with_one_clear_error(run_dir, tmp_path, damage, message):
    folder = tmp_path / "run"
    shutil.copytree(run_dir, folder)
    damage(folder)
    with pytest.raises(RunError, match=re.escape(message)):
        load_run(folder)


# --- describing a model from its small files ------------------------------------------------------------------------


def _folder(tmp_path: Path, name: str, files: dict) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    for file, data in files.items():
        (folder / file).write_text(json.dumps(data))
    return folder


@pytest.mark.parametrize("name, files, expected", [
    ("plain", {"config.json": {"dtype": "bfloat16"}}, ("none", "16", None)),
    ("fp32", {"config.json": {"torch_dtype": "float32"}}, ("none", "32", None)),
    ("gptq", {"config.json": {}, "provenance.json": {"evalkit_recipe": "gptq-w4g64"}}, ("gptq", "4", "gptq-w4g64")),
    ("sq", {"config.json": {}, "provenance.json": {"evalkit_recipe": "smoothquant-w8a8"}},
     ("smoothquant", "8/8", "smoothquant-w8a8")),
    ("awq", {"config.json": {}, "provenance.json": {"evalkit_recipe": "awq-w4g128"}}, ("awq", "4", "awq-w4g128")),
    ("broken", {"config.json": {}, "provenance.json": {"evalkit_recipe": "gptq-w4g64", "zoo": {
        "kind": "broken", "breakage_detail": "lm_head row x", "expected_failure": "every reply is empty"}}},
     ("broken", "4", "gptq-w4g64")),
    ("ct", {"config.json": {"quantization_config": {"quant_method": "compressed-tensors", "config_groups": {
        "group_0": {"weights": {"num_bits": 8}, "input_activations": {"num_bits": 8}}}}}}, ("other", "8/8", None)),
])
def test_describe_model_method_and_bits(tmp_path, name, files, expected):
    info = describe_model(_folder(tmp_path, name, files), parent="p")
    assert (info.method, info.bits_label, info.recipe) == expected
    assert info.name == name and info.parent == "p"
    if name == "broken":
        assert "every reply is empty" in info.note


def test_describe_model_of_a_real_folder(tmp_path):
    from tiny_models import make_tiny_qwen3

    info = describe_model(make_tiny_qwen3(tmp_path / "tiny"))
    assert (info.format, info.method, info.bits_label) == ("plain", "none", "16")


# --- rows and the CSV -----------------------------------------------------------------------------------------------


def test_csv_has_one_row_per_model_and_task(table):
    data = list(csv.DictReader(io.StringIO(csv_text(table))))
    assert len(data) == 6
    flood = next(r for r in data if r["model"] == "parent_eos_flood" and r["task"] == "zoo_span")
    assert flood["value"] == "" and flood["value_reason"].startswith("no answer extracted from any of the 24")
    assert flood["diag_special_tokens_only"] == "24" and flood["compliance"] == "0"
    assert flood["trivial_baseline"] == "0.458333" and flood["status"] == "fail"  # 11 of 24 span items unanswerable
    assert flood["inconclusive"] == ""
    parent = next(r for r in data if r["model"] == "parent" and r["task"] == "zoo_yes_no")
    assert parent["status"] == "inconclusive" and parent["inconclusive"].startswith("compliance: compliance 0.875")
    assert float(flood["kl_mean"]) == 18.5
    gptq = next(r for r in data if r["model"] == "parent_gptq_w4g64" and r["task"] == "zoo_yes_no")
    assert gptq["method"] == "gptq" and gptq["weight_bits"] == "4" and gptq["parent"] == "parent"
    assert int(gptq["diag_ok"]) + int(gptq["diag_no_box"]) + int(gptq["diag_repetition_loop"]) == 24
    assert "nan" not in csv_text(table).lower()


def test_paired_comparison_is_the_gates_test_on_the_samples(run_dir):
    run = load_run(run_dir)
    variant, parent = run.entry("parent_gptq_w4g64", "zoo_yes_no"), run.entry("parent", "zoo_yes_no")
    comp = compare_entries(variant, parent)
    direct = paired_drop([s["score"] for s in parent.samples()], [s["score"] for s in variant.samples()],
                         margin=0.01)
    assert comp["n"] == 24 and comp["metric_test"]["p_value"] == direct.p_value
    assert comp["metric_test"]["worse"] == direct.worse == 3
    flood = compare_entries(run.entry("parent_eos_flood", "zoo_yes_no"), parent)
    assert flood["compliance_test"]["failed"] and flood["compliance_test"]["variant"] == 0.0


# --- the method comparison table ------------------------------------------------------------------------------------


def test_method_rows_group_models_and_read_status_format_and_speed(table):
    methods = {m.method: m for m in method_rows(table)}
    assert list(methods) == ["none", "gptq", "broken"]
    # 24 items: the parent's 21/24 compliance sits in the floor's zone, the variant's 3 lost items cannot tell a
    # 5-point drop from none: inconclusive, and not "broken"
    assert methods["none"].status == "✅ Working (0/2 pass, 2 inconclusive: compliance, baseline)"
    assert methods["gptq"].status == "✅ Working (0/2 pass, 2 inconclusive: compliance, recovery, baseline)"
    assert methods["broken"].status.startswith("❌ Broken (2/2 fail: special_tokens_only")
    assert methods["broken"].answer_format == "❌ Empty responses (special tokens only) (0% boxed)"
    assert methods["gptq"].answer_format.startswith("✅ Proper")  # the gate's compliance check passed at n=24
    assert methods["gptq"].speed == "0.1 (1.2x parent)" and methods["broken"].bits == "4"


@pytest.mark.parametrize("compliance, diagnoses, passed, expected", [
    (1.0, {"ok": 10}, None, "✅ Proper `\\boxed{}` (100%)"),
    (0.5, {"ok": 5, "no_box": 4, "empty": 1}, None, "❌ No `\\boxed{}` (50% boxed)"),
    (0.0, {"empty": 20}, False, "❌ Empty responses (0% boxed)"),
    (0.95, {"ok": 19, "truncated": 1}, False, "❌ Truncated at max_new_tokens (95% boxed)"),
])
def test_answer_format(compliance, diagnoses, passed, expected):
    assert answer_format(compliance, diagnoses, passed) == expected


# --- Markdown -------------------------------------------------------------------------------------------------------


def test_markdown_reproduces_the_seed_method_table_and_explains_failures(run_dir):
    text = markdown(load_run(run_dir))
    assert "| Method | Weight bits | Status | Answer format | Speed (s/sample) | Models |" in text
    assert re.search(r"\| GPTQ \(post-training\) \| 4 \| ✅ Working \(0/2 pass, 2 inconclusive: ", text)
    assert "❔ inconclusive: compliance, recovery, baseline" in text  # the per-row status names the checks
    assert "## Inconclusive" in text  # and each one's reason, with the items that would settle it
    assert re.search(r"- `parent_gptq_w4g64` on zoo_yes_no: recovery: drop 12.5 pts .*~[\d,]+ items would", text)
    assert ("<details><summary><code>parent_eos_flood</code> on zoo_yes_no: special_tokens_only, trivial_baseline "
            "(eos logit flooded)</summary>") in text
    assert "compliance FAIL - special_tokens_only" in text
    assert "| `parent_eos_flood` | `parent` | zoo_span | 18.5 | 25 | 5.0% | 6 | — |" in text
    assert "accuracy undefined" in text and "NaN" not in text


# --- HTML and SVG ---------------------------------------------------------------------------------------------------


def test_html_is_self_contained_with_every_chart(run_dir, tmp_path):
    paths = write_reports(run_dir, tmp_path / "out")
    page = paths.html.read_text()
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "<script" not in page and "<link" not in page and "@import" not in page
    assert "<h2>Inconclusive</h2>" in page and "class='warn'><span title='compliance: compliance 0.875" in page
    assert not re.findall(r"(?:src|href)\s*=", page)  # nothing to fetch
    assert set(re.findall(r"https?://[^'\"\s]+", page)) == {"http://www.w3.org/2000/svg"}  # the SVG namespace
    for title in ("zoo_yes_no: accuracy", "zoo_span: f1", "zoo_span: diagnoses", "top-1 agreement with the parent",
                  "mean KL(parent ‖ variant), log scale", "zoo_yes_no: seconds per sample",
                  "Quantization method comparison", "Why they fail"):
        assert title in page, title
    assert page.count("<svg") == 2 * 6  # per task: metric, compliance, diagnoses, speed, and 2 drift charts
    assert "undefined: no answer extracted" in page
    assert paths.csv.is_file() and paths.markdown.is_file()


def test_svg_bars_scale_and_mark_undefined_values():
    from evalkit.report.svg import Bar, hbar_chart

    svg = hbar_chart("t", [Bar("a", 0.5), Bar("b", 1.0), Bar("c", None)], vmax=1.0)
    widths = [float(w) for w in re.findall(r"<rect x='\d+' y='[\d.]+' width='([\d.]+)'", svg)]
    assert len(widths) == 2 and widths[1] == pytest.approx(2 * widths[0])
    assert "undefined" in svg
    log = hbar_chart("t", [Bar("a", 1e-3), Bar("b", 1.0)], vmax=10.0, log=True, vmin=1e-4)
    w = [float(x) for x in re.findall(r"<rect x='\d+' y='[\d.]+' width='([\d.]+)'", log)]
    assert w[1] == pytest.approx(4 * w[0])  # five decades 1e-4..10: 1e-3 sits at 1/5 of the axis, 1 at 4/5


def test_model_info_round_trips():
    info = ModelSpec("m", "/x", "p", method="awq", weight_bits=4, activation_bits=None, format="compressed-tensors",
                     recipe="awq-w4g128", note="n")
    assert ModelSpec.from_run_record({**info.run_record(), "unknown_future_field": 1}) == info


@pytest.mark.parametrize("module", ["evalkit.report.tables", "evalkit.report.rundir", "evalkit.report.svg",
                                    "evalkit.report.html", "evalkit.report.text", "evalkit.report.markdown",
                                    "evalkit.models.description"])
def test_doctests(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module))
    assert result.failed == 0
