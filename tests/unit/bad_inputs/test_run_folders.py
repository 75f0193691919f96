"""Run folders: every model has its own results folder, a rerun never mixes with an earlier run, an interrupted
run is readable and says so, and a bad ``--out`` is refused before any model runs, never overwritten.

Before issue 13: ``x/y`` and ``x_y`` (any two all-non-ASCII names, ``.`` and ``..``) shared one results folder and
the report showed one model's numbers under the other's name; a 300-byte name crashed with ENAMETOOLONG after the
whole evaluation; a rerun replaced run.json at once but verdicts.json only at the end and kept stale results; two
runs into one --out both exited 0; an unrelated run.json was overwritten; an interrupted run wrote nothing; an
unwritable --out was found only after every model ran, as a traceback.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from evalkit.errors import RunError
from evalkit.report.rundir import RunWriter, load_run
from evalkit.report.writer import write_reports
from bad_input_helpers import run_cli, tiny_models, zoo_base, zoo_pair  # noqa: F401 (fixtures)

REPO = Path(__file__).resolve().parents[3]
FAST = ["--limit", "3", "--max-new-tokens", "4", "--device", "cpu", "-q"]


@pytest.mark.parametrize(("a", "b"), [("x/y", "x_y"), ("模型", "量化"), (".", ".."), ("m" * 300, "m" * 299 + "n")])
def test_model_names_that_sanitize_alike_get_their_own_folders(a, b):
    from evalkit.report.runfolder import MAX_NAME_BYTES, folder_name

    assert folder_name(a) != folder_name(b)
    for name in (a, b):
        assert len(folder_name(name).encode()) <= MAX_NAME_BYTES and folder_name(name) not in (".", "..", "")
        assert "/" not in folder_name(name)


@pytest.mark.parametrize(("a", "b"), [("x/y", "x_y"), ("模型", "量化"), (".", ".."), ("m" * 300, "n" * 300)])
def test_each_model_shows_its_own_numbers(a, b, zoo_pair, tmp_path, run_cli):
    """The zoo's base and a broken copy under colliding names: the report keeps each one's own results."""
    out = tmp_path / "run"
    ran = run_cli("eval", f"{a}={zoo_pair['base']}", f"{b}={zoo_pair['broken']}", "--task", "zoo_yes_no", "--limit",
                  "3", "--max-new-tokens", "48", "--device", "cpu", "-q", "--cache", tmp_path / "cache", "--out", out)
    assert ran.rc == 0, ran.err
    run = load_run(out)
    paths = {e.model: str(e.result["model"]["path"]) for e in run.entries}
    assert paths == {a: str(zoo_pair["base"]), b: str(zoo_pair["broken"])}
    exported = write_reports(out).lm_eval
    with (out / "metrics_summary.csv").open(encoding="utf-8") as fh:
        rows = {r["model"]: r for r in csv.DictReader(fh)}
    assert (rows[a]["diag_special_tokens_only"], rows[b]["diag_special_tokens_only"]) == ("0", "3")
    assert float(rows[a]["compliance"]) > 0 == float(rows[b]["compliance"])
    # the lm-eval export too: one file per model, each inside lm_eval/ (`..` once wrote into the run folder itself)
    files = {f.resolve() for f in exported}
    assert len(files) == 2 and all(f.parent.parent == (out / "lm_eval").resolve() for f in files), exported
    assert {json.loads(f.read_text())["model_name"] for f in files} == {a, b}


def _old_run(folder: Path) -> str:
    """A complete earlier run: one hand-written result through the real engine, a failed verdict."""
    import report_runs

    with RunWriter(folder, name="old") as writer:
        writer.add_result("m", report_runs.task_result("parent", "zoo_yes_no"))
        writer.add_verdicts([{"model": "m", "task": "zoo_yes_no", "status": "fail",
                              "diagnosis": "special_tokens_only"}])
    (folder / "results" / "stale").mkdir(parents=True)
    (folder / "results" / "stale" / "zoo_math.json").write_text("{}")
    return writer.run_id


def test_a_rerun_replaces_the_earlier_run_whole(tiny_models, tmp_path, run_cli):
    out = tmp_path / "run"
    old = _old_run(out)
    ran = run_cli("eval", f"m={tiny_models['parent']}", "--task", "zoo_yes_no", *FAST, "--cache", tmp_path / "cache",
                  "--out", out)
    assert ran.rc == 0, ran.err
    run = load_run(out)
    assert run.manifest["run_id"] != old and run.status == "complete"
    assert not (out / "results" / "stale").exists()  # nothing of the earlier run survives beside the new verdicts
    assert run.verdicts[("m", "zoo_yes_no")]["summary"]["n"] == 3  # the new verdict (the old one had no summary)
    assert json.loads((out / "verdicts.json").read_text())["run_id"] == run.manifest["run_id"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "run"]  # no staging or trash left behind


def test_a_rerun_into_a_reported_run_replaces_it(tiny_models, tmp_path, run_cli):
    """What evalkit itself adds to a run folder (run.log, the reports, the lm-eval export) never makes a rerun
    refuse the folder as someone else's."""
    out = tmp_path / "run"
    argv = ("eval", f"m={tiny_models['parent']}", "--task", "zoo_yes_no", *FAST, "--cache", tmp_path / "cache",
            "--out", out)
    assert run_cli(*argv).rc == 0
    write_reports(out)
    assert (out / "run.log").is_file() and list(out.glob("lm_eval/*/results_*.json"))
    ran = run_cli(*argv)
    assert ran.rc == 0, ran.err
    assert load_run(out).status == "complete" and not (out / "lm_eval").exists()  # replaced whole, reports too


def test_a_crash_during_a_rerun_never_mixes_two_runs(tmp_path):
    out = tmp_path / "run"
    old = _old_run(out)
    with pytest.raises(RuntimeError):
        with RunWriter(out, name="new") as writer:
            writer.add_verdicts([{"model": "m", "task": "t", "status": "pass"}])
            raise RuntimeError("disk on fire")
    run = load_run(out)  # the new run, marked failed: none of the old run's results or verdicts beside it
    assert run.manifest["run_id"] == writer.run_id != old and run.status == "failed"
    assert "RuntimeError: disk on fire" in run.incomplete
    assert list(run.verdicts) == [("m", "t")] and not run.entries and not (out / "results").exists()


def test_files_of_another_run_are_refused_on_read(tmp_path):
    out = tmp_path / "run"
    _old_run(out)
    doc = json.loads((out / "verdicts.json").read_text())
    (out / "verdicts.json").write_text(json.dumps({**doc, "run_id": "20200101T000000Z-00000000"}))
    with pytest.raises(RunError, match="belongs to run '20200101T000000Z-00000000', not to this folder's run"):
        load_run(out)


def test_a_second_run_into_a_folder_being_written_is_refused(tmp_path):
    with RunWriter(tmp_path / "run") as first:
        with pytest.raises(RunError, match=f"another evalkit run \\(pid {os.getpid()}, run {first.run_id}\\) is"):
            RunWriter(tmp_path / "run")
    RunWriter(tmp_path / "run").close()  # once the first has ended, a rerun replaces it


@pytest.mark.parametrize(("what", "make", "words"), [
    ("a file", lambda p: p.write_text("mine"), ["is a file"]),
    ("a run.json evalkit did not write", lambda p: (p.mkdir(), (p / "run.json").write_text('{"mine": 1}')),
     ["run.json was not written by evalkit", "never overwritten"]),
    ("the user's files", lambda p: (p.mkdir(), (p / "thesis.tex").write_text("x")), ["not an evalkit run"]),
    ("an earlier run plus the user's notes", lambda p: (_old_run(p), (p / "notes.md").write_text("x")),
     ["notes.md, which evalkit did not write"]),
])
def test_an_out_folder_that_is_not_evalkits_is_refused_before_any_model_runs(what, make, words, tiny_models,
                                                                             tmp_path, run_cli):
    out = tmp_path / "out"
    make(out)
    before = sorted((p.relative_to(tmp_path), p.read_bytes() if p.is_file() else b"") for p in tmp_path.rglob("*"))
    ran = run_cli("eval", tiny_models["parent"], "--task", "zoo_yes_no", *FAST, "--cache", tmp_path / "cache",
                  "--out", out)
    assert ran.rc == 2 and all(w in ran.line for w in words), (what, ran.line)
    after = sorted((p.relative_to(tmp_path), p.read_bytes() if p.is_file() else b"") for p in tmp_path.rglob("*"))
    assert after == before  # nothing written, nothing lost, no model evaluated (no cache)


def test_an_unwritable_out_is_found_before_any_model_runs(tiny_models, tmp_path, run_cli):
    ran = run_cli("eval", tiny_models["parent"], "--task", "zoo_yes_no", *FAST, "--cache", tmp_path / "cache",
                  "--out", "/proc/evalkit-run")
    assert ran.rc == 2 and "/proc/evalkit-run" in ran.line and not (tmp_path / "cache").exists()


def test_a_long_model_name_is_written_and_read(tiny_models, tmp_path, run_cli):
    name = "q" * 300
    ran = run_cli("eval", f"{name}={tiny_models['parent']}", "--task", "zoo_yes_no", *FAST, "--cache",
                  tmp_path / "cache", "--out", tmp_path / "run")
    assert ran.rc == 0, ran.err
    assert [e.model for e in load_run(tmp_path / "run").entries] == [name]


def test_an_interrupted_run_is_readable_and_says_so(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with RunWriter(tmp_path / "run", planned=[("m", "t"), ("m", "u")]):
            raise KeyboardInterrupt
    run = load_run(tmp_path / "run")
    assert run.status == "interrupted" and run.incomplete.startswith("incomplete run: it was interrupted")
    assert "0 of 2 (model, task) results" in run.incomplete


def _default_sigint() -> None:
    """In the child: SIGINT as a terminal gives it (a process that ignores SIGINT passes that on to its children,
    and Python then never raises KeyboardInterrupt; under the full suite the run went on to the end)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.slow
def test_ctrl_c_in_the_middle_of_an_eval_leaves_a_readable_incomplete_run(tiny_models, tmp_path):
    """A real SIGINT to a real `evalkit eval`: the results finished so far are kept, and `evalkit report` says
    the run is incomplete (docs/cli.md promises it)."""
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    models = [f"{n}={tiny_models[n]}" for n in ("parent", "variant", "broken")]
    proc = subprocess.Popen([sys.executable, "-m", "evalkit.cli", "eval", *models, "--parent", "variant=parent",
                             "--task", "zoo_yes_no,zoo_math,zoo_span", "--limit", "32", "--max-new-tokens", "64",
                             "--device", "cpu", "-q", "--cache", str(tmp_path / "cache"), "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path,
                            preexec_fn=_default_sigint)
    deadline = time.time() + 240
    while not list(out.glob("results/*/*.json")):  # the first model done (enough work left for the signal to land
        assert proc.poll() is None and time.time() < deadline, proc.communicate()  # in, with the gate's helper too)
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err, (proc.returncode, err)
    run = load_run(out)
    assert run.status == "interrupted" and run.entries
    write_reports(out)
    assert "incomplete run: it was interrupted" in (out / "report.md").read_text()
