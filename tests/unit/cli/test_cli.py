"""evalkit.cli through its real entry points: `main([...])` in-process, and the installed ``evalkit`` console script.

Models are real checkpoints on disk: tiny random Qwen3 folders (tests/unit/tiny_models.py), a copy with one layer
perturbed (a "variant"), one with zeroed embeddings (a known-broken model: every reply is [UNK] tokens), and one
without a chat template. The fixture zoo's own end-to-end run is in the slow tests at the bottom (skipped until
fixtures/zoo/ holds the trained parents).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import tiny_models as et
from evalkit import cli

REPO = Path(__file__).resolve().parents[3]
CONSOLE_SCRIPT = Path(sys.executable).parent / "evalkit"
ZOO_PARENT = Path(os.environ.get("EVALKIT_ZOO_DIR") or REPO / "fixtures" / "zoo") / "base"  # as evalkit.zoo finds it
COMMANDS = ("eval", "report", "debug", "compare", "gate", "quantize", "zoo")
FAST = ["--limit", "6", "--max-new-tokens", "8", "--device", "cpu"]


def console(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run the installed console script (what a user types)."""
    if not CONSOLE_SCRIPT.exists():
        pytest.skip(f"{CONSOLE_SCRIPT} is not installed; run `pip install -e .` (make setup does)")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([str(CONSOLE_SCRIPT), *args], capture_output=True, text=True, timeout=300, cwd=cwd, env=env)


def _edit_weights(folder: Path, name: str, factor: float) -> None:
    from safetensors.torch import load_file, save_file

    tensors = load_file(folder / "model.safetensors")
    tensors[name] = tensors[name] * factor
    save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cli-models")
    parent = et.save_tiny(root / "parent", seed=1)
    variant, broken = root / "variant", root / "broken"
    shutil.copytree(parent, variant)
    _edit_weights(variant, "model.layers.1.mlp.down_proj.weight", 1.05)
    shutil.copytree(parent, broken)
    _edit_weights(broken, "model.embed_tokens.weight", 0.0)
    no_template = et.save_tiny(root / "no_template", seed=1, chat_template=None)
    return {"parent": parent, "variant": variant, "broken": broken, "no_template": no_template}


@pytest.fixture(scope="module")
def eval_run(models, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli-run") / "run"
    cache = out.parent / "cache"
    rc = cli.main(["eval", f"parent={models['parent']}", f"variant={models['variant']}", f"broken={models['broken']}",
                   "--parent", "variant=parent", "--parent", "broken=parent", "--task", "zoo_yes_no",
                   "--task", "zoo_math", *FAST, "--cache", str(cache), "--out", str(out), "-q"])
    assert rc == 0
    return out


# --- help and argument errors ---------------------------------------------------------------------------------------


def test_console_script_help_lists_every_command():
    proc = console("--help")
    assert proc.returncode == 0, proc.stderr
    for command in COMMANDS:
        assert f"    {command}" in proc.stdout
    assert "Start here: evalkit eval" in proc.stdout


@pytest.mark.parametrize("command", [*COMMANDS, "zoo build"])
def test_every_command_has_help_with_an_example_or_description(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*command.split(), "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert f"usage: evalkit {command}" in text
    assert "example" in text or command.startswith("zoo")


def test_no_command_prints_help_and_exits_2(capsys):
    assert cli.main([]) == 2
    assert "usage: evalkit" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["eval", "m"], "the following arguments are required: --task"),
    (["eval", "m", "--task", "zoo_math", "--limit", "0"], "must be >= 1, got 0"),
    (["eval", "m", "--task", "zoo_math", "--batch-size", "x"], "expected a whole number, got 'x'"),
    (["eval", "m", "--task", "zoo_math", "--decoder", "warp"], "invalid choice: 'warp'"),
    (["zoo"], "the following arguments are required: ZOO_COMMAND"),
])
def test_argparse_errors_exit_2_with_usage(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_console_script_bad_model_folder_is_one_line_exit_2(tmp_path):
    proc = console("eval", str(tmp_path / "missing"), "--task", "zoo_math")
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith(f"evalkit eval: error: {tmp_path / 'missing'}: model folder does not exist")


def _library_error_cases(models: dict[str, Path], tmp: Path) -> list[tuple[list[str], str]]:
    malformed = tmp / "malformed"
    malformed.mkdir()
    (malformed / "config.json").write_text("{}")
    empty_zoo = tmp / "empty-zoo"
    empty_zoo.mkdir()
    p = str(models["parent"])
    return [
        (["eval", p, "--task", "nope"], "unknown task 'nope'; known tasks: arc_challenge"),
        (["eval", str(malformed), "--task", "zoo_math"], f"{malformed}: no weights"),
        (["eval", f"a={p}", f"a={models['variant']}", "--task", "zoo_math"], "model name 'a' is used twice"),
        (["eval", p, "--parent", "x=y", "--task", "zoo_math"], "--parent 'x=y': expected VARIANT=PARENT"),
        (["eval", "zoo:nope", "--task", "zoo_math"], "unknown zoo model 'nope'"),
        (["eval", p, "--task", "boolq", "--data", str(tmp / "none.jsonl")], "none.jsonl"),
        (["report", str(tmp / "no-run")], "run folder does not exist"),
        (["gate", "--zoo", str(tmp / "none.toml")], "manifest file not found"),
        (["quantize", p, "--recipe", "gptq-w3", "--out", str(tmp / "q")], "unknown recipe 'gptq-w3'"),
        (["quantize"], "quantize needs MODEL, --recipe and --out"),
        (["debug", p, "--task", "zoo_math", "-n", "0"], "-n must be >= 1, got 0"),
        (["debug", p, "--task", "zoo_math,zoo_span"], "debug shows one task at a time"),
        (["compare", p, p], "compare needs --task"),
        (["zoo", "build", "--zoo-dir", str(empty_zoo), "--cache-dir", str(tmp / "c"), "--only", "base_gptq_w4g64"],
         "zoo parents missing"),
    ]


def test_library_errors_are_one_line_on_stderr_and_exit_2(models, tmp_path, capsys):
    for argv, message in _library_error_cases(models, tmp_path):
        rc = cli.main(argv)
        out, err = capsys.readouterr()
        assert rc == 2, (argv, out, err)
        assert err.startswith(f"evalkit {argv[0]}: error: ") and err.endswith("\n"), (argv, err)
        assert err.count("\n") == 1 and "Traceback" not in err, (argv, err)
        assert message in err, (argv, err)


def test_environment_is_set_before_torch(monkeypatch):
    for var in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "HF_HUB_OFFLINE", "TQDM_DISABLE"):
        monkeypatch.delenv(var, raising=False)
    assert cli.prepare_environment(None) == (os.cpu_count() or 1)
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE" and os.environ["HF_HUB_OFFLINE"] == "1"
    assert os.environ["OMP_NUM_THREADS"] == str(os.cpu_count() or 1) and os.environ["TQDM_DISABLE"] == "1"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")  # a caller's choice is kept
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    try:
        assert cli.prepare_environment(1) == 1 and torch.get_num_threads() == 1
        assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE" and os.environ["OMP_NUM_THREADS"] == "1"
    finally:
        torch.set_num_threads(before)


# --- eval -> report -------------------------------------------------------------------------------------------------


def test_eval_writes_a_run_folder(eval_run):
    manifest = json.loads((eval_run / "run.json").read_text())
    assert manifest["command"][:2] == ["evalkit", "eval"] and manifest["settings"]["max_new_tokens"] == 8
    assert set(manifest["models"]) == {"parent", "variant", "broken"}
    assert manifest["models"]["variant"]["parent"] == "parent" and manifest["models"]["parent"]["method"] == "none"
    entries = {(e["model"], e["task"]): e for e in manifest["entries"]}
    assert len(entries) == 6
    for (model, task), e in entries.items():
        doc = json.loads((eval_run / e["results"]).read_text())
        assert doc["schema"] == "evalkit.results" and doc["task"]["name"] == task and doc["task"]["n"] == 6
        assert len((eval_run / e["samples"]).read_text().splitlines()) == 6
        assert (e["drift"] is not None) == (model != "parent")
    drift = json.loads((eval_run / entries[("broken", "zoo_math")]["drift"]).read_text())
    assert drift["parent"] == "parent" and drift["top1_agreement"] < 1.0
    identical = json.loads((eval_run / entries[("variant", "zoo_math")]["drift"]).read_text())
    assert identical["kl_mean"] < drift["kl_mean"]
    verdicts = json.loads((eval_run / "verdicts.json").read_text())["verdicts"]
    assert {(v["model"], v["task"]) for v in verdicts} == set(entries)
    assert all(v["status"] in ("pass", "fail") and v["checks"] for v in verdicts)


def test_console_script_report_writes_csv_markdown_and_html(eval_run):
    proc = console("report", str(eval_run), "--markdown")
    assert proc.returncode == 0, proc.stderr
    assert "| Method | Weight bits | Status | Answer format | Speed (s/sample) | Models |" in proc.stdout
    for name in ("metrics_summary.csv", "report.md", "report.html"):
        assert f"wrote {eval_run / name}" in proc.stdout
    with open(eval_run / "metrics_summary.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert sorted((r["model"], r["task"]) for r in rows) == sorted(
        (m, t) for m in ("parent", "variant", "broken") for t in ("zoo_yes_no", "zoo_math"))
    broken = next(r for r in rows if r["model"] == "broken" and r["task"] == "zoo_math")
    assert broken["diag_special_tokens_only"] == "6" and broken["value"] == "" and broken["compliance"] == "0"
    assert "<svg" in (eval_run / "report.html").read_text()


def test_report_refuses_a_folder_of_runs_unless_combined(eval_run, tmp_path, capsys):
    """`evalkit report runs` on a parent folder: one line naming the runs and --combine, exit 2; with --combine one
    report, every (model, task) of every run once."""
    runs = tmp_path / "runs"
    for name in ("pr41", "pr42"):
        shutil.copytree(eval_run, runs / name, ignore=shutil.ignore_patterns("metrics_summary.csv", "report.*"))
    assert cli.main(["report", str(runs)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds 2 runs (pr41, pr42)" in err and f"evalkit report {runs} --combine" in err
    assert cli.main(["report", str(runs), "--combine"]) == 0
    with open(runs / "metrics_summary.csv") as fh:
        keys = [(r["model"], r["task"]) for r in csv.DictReader(fh)]
    assert len(keys) == len(set(keys)) == 2 * 6 and ("pr42/variant", "zoo_math") in keys


def test_tasks_is_an_alias_of_task(models, tmp_path, capsys):
    rc = cli.main(["eval", f"parent={models['parent']}", "--tasks", "zoo_math,zoo_yes_no", *FAST,
                   "--cache", str(tmp_path / "cache"), "--out", str(tmp_path / "run"), "-q"])
    assert rc == 0
    assert sorted(json.loads((tmp_path / "run" / "run.json").read_text())["tasks"]) == ["zoo_math", "zoo_yes_no"]


def test_eval_reuses_the_cache(models, eval_run, tmp_path, capsys):
    out = tmp_path / "again"
    rc = cli.main(["eval", f"parent={models['parent']}", "--task", "zoo_math", *FAST,
                   "--cache", str(eval_run.parent / "cache"), "--out", str(out), "-q"])
    assert rc == 0
    doc = json.loads((out / "results" / "parent" / "zoo_math.json").read_text())
    first = json.loads((eval_run / "results" / "parent" / "zoo_math.json").read_text())
    assert doc["cache"]["hit"] and doc["diagnoses"] == first["diagnoses"]
    assert f"wrote {out}/" in capsys.readouterr().out


# --- debug ----------------------------------------------------------------------------------------------------------


def test_debug_shows_each_response_with_extraction_diagnosis_and_score(models, capsys):
    assert cli.main(["debug", str(models["broken"]), "--task", "zoo_math", "-n", "3", "--max-new-tokens", "6",
                     "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert out.count("--- [") == 3 and "--- [3/3]" in out
    assert out.count("response   '[UNK] [UNK]") == 3 and out.count("stopped by length") == 3
    assert out.count("extracted  no box -> answer None") == 3
    assert out.count("diagnosis  special_tokens_only: the response is only special tokens") == 3
    assert "compliance 0/3 (0%)" in out
    assert "accuracy   undefined (n=3, scored 0): no answer extracted from any of the 3 responses" in out


def test_debug_names_a_lost_chat_template(models, capsys):
    assert cli.main(["debug", str(models["no_template"]), "--task", "zoo_yes_no", "-n", "1", "--max-new-tokens", "4",
                     "--device", "cpu", "--show-prompt"]) == 0
    out = capsys.readouterr().out
    assert "note: no chat template: prompts fall back to evalkit.prompts.plain_prompt" in out
    assert "prompts: plain" in out and "prompt     " in out and "Question: " in out


# --- compare --------------------------------------------------------------------------------------------------------


def test_compare_two_models_prints_metrics_drift_and_the_paired_test(models, tmp_path, capsys):
    rc = cli.main(["compare", str(models["broken"]), str(models["parent"]), "--task", "zoo_yes_no", *FAST,
                   "--cache", str(tmp_path / "cache"), "--out", str(tmp_path / "cmp")])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert out.startswith("broken  vs  parent parent")
    assert "== zoo_yes_no (n=6, primary metric accuracy)" in out
    assert "paired test (accuracy): parent" in out and "paired test (compliance): parent" in out
    assert "drift: mean KL" in out and "gate verdict: FAIL" in out
    assert (tmp_path / "cmp" / "run.json").exists()


def test_compare_from_a_run_folder(eval_run, capsys):
    assert cli.main(["compare", "variant", "parent", "--run", str(eval_run)]) == 0
    out = capsys.readouterr().out
    assert out.count("paired test (accuracy)") == 2 and "first diverging layer" in out
    assert cli.main(["compare", "nobody", "parent", "--run", str(eval_run)]) == 2
    assert "model 'nobody' is not in the run" in capsys.readouterr().err


# --- gate, quantize, zoo --------------------------------------------------------------------------------------------


def test_gate_over_a_manifest_prints_verdicts_and_writes_the_run(models, tmp_path, capsys):
    manifest = tmp_path / "gate.toml"
    manifest.write_text(f"""
[gate]
device = "cpu"
max_new_tokens = 8
cache = "{tmp_path / 'cache'}"
[tasks.zoo_yes_no]
limit = 6
[models.parent]
path = "{models['parent']}"
[models.broken]
path = "{models['broken']}"
parent = "parent"
expect = "fail"
diagnosis = ["special_tokens_only"]
[models.missing]
path = "{tmp_path / 'no-such-model'}"
parent = "parent"
""")
    rc = cli.main(["gate", "--zoo", str(manifest), "--out", str(tmp_path / "run"), "--report", "-q"])
    out, err = capsys.readouterr()
    assert "of 3 (model, task) on cpu" in out and rc == 1  # the missing model fails; nothing else is taken down
    broken = next(line for line in out.splitlines() if line.startswith("broken"))
    assert "CAUGHT" in broken or "MISDIAGNOSED" in broken
    assert "missing on zoo_yes_no: load_error" in err
    verdicts = json.loads((tmp_path / "run" / "verdicts.json").read_text())["verdicts"]
    assert [(v["model"], v["expect"]) for v in verdicts] == [("parent", "pass"), ("broken", "fail"),
                                                             ("missing", "pass")]
    assert (tmp_path / "run" / "report.html").exists() and (tmp_path / "run" / "metrics_summary.csv").exists()
    report = (tmp_path / "run" / "report.md").read_text()
    assert "## Not evaluated" in report and "- `missing` on zoo_yes_no: load_error: " in report


def test_gate_rejects_an_unknown_model(models, tmp_path, capsys):
    manifest = tmp_path / "gate.toml"
    manifest.write_text(f'[tasks.zoo_math]\nlimit = 2\n[models.parent]\npath = "{models["parent"]}"\n')
    assert cli.main(["gate", "--zoo", str(manifest), "--model", "other"]) == 2
    assert "unknown model(s) ['other']" in capsys.readouterr().err


def test_quantize_lists_the_recipes(capsys):
    assert cli.main(["quantize", "--list"]) == 0
    out = capsys.readouterr().out
    for recipe in ("gptq-w4g64", "awq-w4g128", "smoothquant-w8a8"):
        assert recipe in out
    assert "W8A8" in out


@pytest.mark.slow
def test_quantize_a_real_model(tmp_path, capsys, monkeypatch):
    from tiny_models import tiny_qwen3

    from evalkit.report.rundir import describe_model

    monkeypatch.chdir(tmp_path)  # llmcompressor writes a logs/ folder into the working directory

    out = tmp_path / "q"
    assert cli.main(["quantize", str(tiny_qwen3()), "--recipe", "gptq-w4g64", "--out", str(out),
                     "--n-calibration", "4", "-q"]) == 0
    assert f"wrote {out} (gptq-w4g64, calibrated on 4 zoo training items" in capsys.readouterr().out
    info = describe_model(out)
    assert (info.format, info.method, info.bits_label) == ("compressed-tensors", "gptq", "4")
    assert json.loads((out / "provenance.json").read_text())["calibration"]["kind"] == "zoo training items"
    assert "Applying quantization config" not in capsys.readouterr().err  # the libraries' bars: in quantize.log
    assert (out / "quantize.log").is_file()


@pytest.mark.parametrize("data", ["task", "chat"])
def test_quantize_calibrates_on_the_teams_data(tmp_path, capsys, monkeypatch, data):
    """--task with --data (the team's rows, rendered as evaluation renders them) or --chat (the team's conversations,
    through the model's own chat template): the calibration texts are those, and provenance.json says so."""
    from tiny_models import tiny_qwen3

    monkeypatch.chdir(tmp_path)
    if data == "task":
        source = tmp_path / "gsm8k_train.jsonl"
        source.write_text("".join(json.dumps({"question": f"Tom has {i} apples and buys 2. How many?",
                                              "answer": f"{i} + 2 = {i + 2}\n#### {i + 2}"}) + "\n" for i in range(9)))
        args = ["--task", "gsm8k", "--data", str(source)]
    else:
        source = tmp_path / "support_chats.jsonl"
        source.write_text("".join(json.dumps({"messages": [
            {"role": "user", "content": f"Reset my password, ticket {i}"},
            {"role": "assistant", "content": f"Done: ticket {i} is closed."}]}) + "\n" for i in range(9)))
        args = ["--chat", str(source)]
    out = tmp_path / "q"
    assert cli.main(["quantize", str(tiny_qwen3()), "--recipe", "gptq-w4g64", "--out", str(out),
                     "--n-calibration", "4", "-q", *args]) == 0
    calibration = json.loads((out / "provenance.json").read_text())["calibration"]
    texts = [json.loads(line)["text"] for line in (out / "calibration.jsonl").open()]
    assert calibration["n"] == len(texts) == 4 and calibration["source"] == str(source)
    if data == "task":
        assert calibration["kind"] == "task rows" and calibration["tasks"] == ["gsm8k"]
        assert all("How many?" in t and "\\boxed{" in t for t in texts)  # the question, then its boxed gold answer
    else:
        assert calibration["kind"] == "chat examples" and calibration["format"].startswith("chat template")
        assert all("Reset my password" in t and "is closed." in t for t in texts)  # both turns, templated
        assert all("<|im_start|>user" in t and "<|im_start|>assistant" in t for t in texts)
    assert "calibrated on 4 " in capsys.readouterr().out


def test_quantize_refuses_data_without_a_task(tmp_path, capsys):
    assert cli.main(["quantize", "m", "--recipe", "gptq-w4g64", "--out", str(tmp_path), "--data", "x.jsonl"]) == 2
    assert "--data says where --task's rows come from" in capsys.readouterr().err


def test_zoo_list_names_every_model(capsys, tmp_path):
    from evalkit import zoo

    assert cli.main(["zoo", "list", "--zoo-dir", str(tmp_path), "--cache-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for name in zoo.VARIANTS:
        assert name in out
    assert "expected failure: every reply is empty" in out


# --- the fixture zoo, end to end (slow; needs the committed parents) ------------------------------------------------

needs_zoo = pytest.mark.skipif(not ZOO_PARENT.is_dir(), reason=f"{ZOO_PARENT} not present (fixture zoo not trained)")


@pytest.mark.slow
@needs_zoo
def test_zoo_eval_then_report_reproduces_the_method_table(tmp_path):
    from evalkit import zoo

    out = tmp_path / "zoo"
    models = ["zoo:base_gptq_w4g64", "zoo:base_awq_w4g128", "zoo:base_smoothquant_w8a8", "zoo:base_gptq_w4g64_lost_eos"]
    qlora = (ZOO_PARENT.parent / zoo.QLORA).is_dir()
    models += [f"zoo:{zoo.QLORA}"] if qlora else []
    proc = console("eval", *models, "--task", "zoo_math,zoo_yes_no", "--limit", "16", "--max-new-tokens", "96",
                   "--device", "cpu", "--out", str(out), "--cache", str(tmp_path / "cache"), "-q", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    proc = console("report", str(out), "--markdown")
    assert proc.returncode == 0, proc.stderr
    table = proc.stdout.split("## Quantization method comparison")[1].split("\n\n")[1]
    rows = {line.split(" | ")[0].lstrip("| "): line for line in table.splitlines()[2:]}
    expected = ["No quantization", "QLoRA (training-time)", "GPTQ (post-training)", "AWQ (post-training)",
                "SmoothQuant (post-training)", "Known-broken (gate self-test)"]
    assert list(rows) == [label for label in expected if qlora or not label.startswith("QLoRA")]
    for label in ("GPTQ (post-training)", "AWQ (post-training)", "SmoothQuant (post-training)"):
        assert "✅ Proper `\\boxed{}`" in rows[label], rows[label]  # the trained zoo answers in format
    assert "| SmoothQuant (post-training) | 8/8 |" in table and "| GPTQ (post-training) | 4 |" in table
    broken = rows["Known-broken (gate self-test)"]
    # lost_eos: its root cause is named first (the eos token changed against the parent's); its replies still end
    # their turn at <|im_end|>, so what it answers within the turn is well-formed (issue 12: replies end there)
    assert "❌ Broken (2/2 fail: tokenizer_mismatch" in broken and broken.split(" | ")[3].startswith("✅")


@pytest.mark.slow
@needs_zoo
def test_zoo_debug_shows_why_a_known_broken_variant_fails(tmp_path):
    proc = console("debug", "zoo:base_gptq_w4g64_lost_eos", "--task", "zoo_yes_no", "-n", "3", "--device", "cpu",
                   "--max-new-tokens", "96", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("--- [") == 3 and "generation stops at: <|endoftext|>" in proc.stdout
    assert proc.stdout.count("stopped by length") == 3
    assert proc.stdout.count("hint       the reply holds <|im_end|>, which does not stop generation") == 3
    # Each reply boxed its answer, then ran on past its <|im_end|> into hallucinated turns ending in stray empty
    # boxes; only its own turn is read (issue 12), so the answer it gave before <|im_end|> is the one scored.
    assert "compliance 3/3 (100%)" in proc.stdout and "diagnoses  ok 3" in proc.stdout


def test_doctests():
    import doctest

    assert doctest.testmod(cli).failed == 0
