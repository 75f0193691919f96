"""evalkit in a team's own repository, for real: build the wheel, install it into a fresh venv, and use it from a
temporary folder outside this checkout (marker ``wheel``: minutes, run by .ci/run as its own step, not by a plain
``pytest``; ``pytest -m wheel tests/plugin/test_wheel.py`` runs it).

The venv gets what the README tells a team to install: the CPU torch wheel (``$TORCH_INDEX``, default PyTorch's CPU
index; empty where pip already finds the CPU wheel, as on this project's CI machines), then the wheel with
``[quant]`` and pytest-xdist under ``constraints.txt``. Then, in the team's folder:

- an unrelated project (its own ``gpu`` marker) runs identically before and after evalkit is installed;
- ``evalkit gate`` with no manifest runs the fixture zoo's gate from the installed package, on a terminal, and prints
  the verdict table with no third-party progress bar in it;
- a three-model manifest of the team's own folders: ``pytest --zoo my.toml`` collects the gate, ``--snapshot-update``
  writes ``__snapshots__/my.ambr`` beside it, the next run passes, and so does ``-n 2``;
- nothing is written into site-packages, and the zoo's builds default to the user's cache folder;
- lm-evaluation-harness, installed beside evalkit's pins, reads the run's export with its own code.

The zoo's variants come from ``$EVALKIT_ZOO_CACHE`` or this checkout's ``.evalkit/zoo`` when built there (the same
build keys, so nothing is rebuilt); the generation cache is the team folder's own, so every model really runs.
"""

from __future__ import annotations

import json
import os
import pty
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from unrelated_project import CONFTEST, FAKE_SMI, TESTS, differences

pytestmark = [pytest.mark.wheel, pytest.mark.slow]  # slow too: `-m "not slow"` replaces the ini's "not wheel"

REPO = Path(__file__).resolve().parents[2]
TORCH = "torch==2.13.0"
LM_EVAL = "lm-eval==0.4.13"
TIMINGS: dict[str, float] = {}

TEAM_MANIFEST = """
# The team's gate: its own checkpoints (a parent and two quantized variants), two tasks, eight items each.
[gate]
device = "cpu"
max_new_tokens = 64
drift_limit = 8
[tasks.zoo_math]
limit = 8
[tasks.zoo_yes_no]
limit = 8
[models.base]
path = "models/base"
[models.base_gptq]
path = "models/base_gptq"
parent = "base"
[models.base_awq]
path = "models/base_awq"
parent = "base"
"""


def _run(cmd: list[str], *, cwd: Path, env: dict[str, str], what: str, timeout: int = 900
         ) -> subprocess.CompletedProcess[str]:
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    TIMINGS[what] = TIMINGS.get(what, 0.0) + time.perf_counter() - started
    return proc


def _ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, f"{proc.args}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc.stdout


def _on_a_terminal(cmd: list[str], *, cwd: Path, env: dict[str, str]) -> tuple[int, str]:
    """`cmd` in a pseudo-terminal of 120x40, as a user runs it: (exit status, everything it printed)."""
    import fcntl
    import struct
    import termios

    pid, fd = pty.fork()
    if pid == 0:  # the child: the command, in the team folder
        os.chdir(cwd)
        os.execve(cmd[0], cmd, env)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    out = bytearray()
    while True:
        try:
            data = os.read(fd, 65536)
        except OSError:
            break
        if not data:
            break
        out.extend(data)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), out.decode("utf-8", "replace")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The team's environment: no PYTHONPATH into this checkout, a home and cache of its own, a fake nvidia-smi."""
    home = tmp_path_factory.mktemp("home")
    bin_dir = home / "bin"
    bin_dir.mkdir()
    (bin_dir / "nvidia-smi").write_text(FAKE_SMI)
    (bin_dir / "nvidia-smi").chmod(0o755)
    pip_cache = os.environ.get("PIP_CACHE_DIR") or str(Path(os.environ.get("XDG_CACHE_HOME") or
                                                            Path.home() / ".cache") / "pip")
    out = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "EVALKIT", "PYTHON", "COV_"))}
    out.update(HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"), PATH=f"{bin_dir}{os.pathsep}{out['PATH']}",
               SMI_LOG=str(home / "smi.log"), OMP_NUM_THREADS="1", TERM="xterm",
               PIP_CACHE_DIR=pip_cache)  # pip's own cache stays the machine's: reruns download nothing again
    return out


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory, env: dict[str, str]) -> Path:
    """A fresh venv with CPU torch and pytest(-xdist), but no evalkit yet."""
    root = tmp_path_factory.mktemp("venv") / "venv"
    _ok(_run([sys.executable, "-m", "venv", str(root)], cwd=root.parent, env=env, what="venv"))
    torch_index = os.environ.get("TORCH_INDEX", "https://download.pytorch.org/whl/cpu")
    extra = ["--extra-index-url", torch_index] if torch_index else []
    _ok(_run([str(root / "bin" / "python"), "-m", "pip", "install", "-q", "-c", str(REPO / "constraints.txt"), *extra,
              TORCH], cwd=root.parent, env=env, what="install torch"))
    _ok(_run([str(root / "bin" / "python"), "-m", "pip", "install", "-q", "-c", str(REPO / "constraints.txt"),
              "pytest", "pytest-xdist"], cwd=root.parent, env=env, what="install pytest"))
    return root


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory, env: dict[str, str]) -> Path:
    """The wheel, built from a copy of the working tree's files that git does not ignore (so the build leaves
    nothing in the checkout, and new files count before they are committed)."""
    src = tmp_path_factory.mktemp("src") / "evalkit"
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           capture_output=True, check=True).stdout.split(b"\0")
    for name in filter(None, (f.decode() for f in files)):
        if (REPO / name).exists():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, src / name, follow_symlinks=False)
    dist = src.parent / "dist"
    _ok(_run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), "."],  # pyproject's backend
             cwd=src, env=env, what="build wheel"))
    (built,) = dist.glob("evalkit-*.whl")
    return built


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("team-repo")
    (folder / "tests").mkdir()
    (folder / "tests" / "conftest.py").write_text(CONFTEST)
    (folder / "tests" / "test_project.py").write_text(TESTS)
    (folder / "my.toml").write_text(TEAM_MANIFEST)
    return folder


def _unrelated(venv: Path, team: Path, env: dict[str, str], name: str) -> dict:
    records = team / f"records-{name}"
    records.mkdir()
    run_env = {**env, "RECORDS": str(records), "CUDA_VISIBLE_DEVICES": "7"}
    proc = _run([str(venv / "bin" / "python"), "-m", "pytest", "tests", "-n", "2", "-rA", "-p", "no:cacheprovider"],
                cwd=team, env=run_env, what="unrelated project")
    outcomes = sorted(re.sub(r"^\[gw\d\] ", "", line) for line in proc.stdout.splitlines()
                      if re.match(r"(PASSED|FAILED|SKIPPED|ERROR) ", line))
    procs = {}
    for file in sorted(records.glob("*.json")):
        record = json.loads(file.read_text())
        record["env"] = {k: v for k, v in record["env"].items() if k not in ("PYTEST_XDIST_TESTRUNUID", "RECORDS")}
        procs[file.stem] = record
    return {"ret": proc.returncode, "outcomes": outcomes, "processes": procs}


@pytest.fixture(scope="module")
def installed(venv: Path, wheel: Path, team: Path, env: dict[str, str]) -> dict:
    """The unrelated project before and after installing the wheel (with [quant]); then evalkit is installed."""
    before = _unrelated(venv, team, env, "before")
    files_before = sorted(str(p) for p in (venv / "lib").rglob("*") if "evalkit" in p.parts)
    _ok(_run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "-c", str(REPO / "constraints.txt"),
              f"{wheel}[quant]"], cwd=team, env=env, what="install evalkit wheel [quant]"))
    after = _unrelated(venv, team, env, "after")
    site = next((venv / "lib").glob("python3*/site-packages"))
    return {"before": before, "after": after, "files_before": files_before, "site": site,
            "package": sorted(str(p) for p in (site / "evalkit").rglob("*") if "__pycache__" not in p.parts)}


def _zoo_cache() -> str:
    """Where this checkout's zoo variants are built (the same build keys as the installed evalkit's)."""
    return os.environ.get("EVALKIT_ZOO_CACHE") or str(REPO / ".evalkit" / "zoo")


def test_an_unrelated_project_is_unchanged_by_installing_evalkit(installed: dict, env: dict[str, str]) -> None:
    before, after = installed["before"], installed["after"]
    assert before["ret"] == 0 and len(before["outcomes"]) == 6, before
    assert "PASSED tests/test_project.py::test_own_gpu_marker_runs_as_the_project_says" in before["outcomes"]
    assert differences(after, before) == []  # outcomes, environment (CUDA_VISIBLE_DEVICES=7 kept), torch, dist, gpu
    assert not Path(env["SMI_LOG"]).exists()  # nobody asked nvidia-smi
    assert installed["files_before"] == []


def test_evalkit_gate_runs_the_zoo_gate_from_the_install(installed: dict, venv: Path, team: Path,
                                                         env: dict[str, str]) -> None:
    """On a terminal: one evalkit bar, the verdict table, no third-party bar; the zoo comes from the package."""
    run_env = {**env, "EVALKIT_ZOO_CACHE": _zoo_cache()}
    started = time.perf_counter()
    code, out = _on_a_terminal([str(venv / "bin" / "evalkit"), "gate", "--limit", "6", "--model", "base_gptq_w4g64",
                                "--model", "base_gptq_w4g64_eos_flood"], cwd=team, env=run_env)
    TIMINGS["evalkit gate (terminal)"] = time.perf_counter() - started
    assert code == 0, out[-3000:]
    text = out.replace("\r", "\n")
    assert re.search(r"^model +task +compliance +metric +recovery +verdict +diagnosis", text, re.M), text[-3000:]
    assert re.search(r"^base_gptq_w4g64_eos_flood +zoo_math .* CAUGHT", text, re.M)
    assert "INCONCLUSIVE 4, CAUGHT 4 of 8 (model, task) on cpu; OK" in text  # 6 items cannot clear a variant
    assert "evaluating:" in text  # evalkit's own bar, on a terminal
    for noise in ("Applying quantization config", "Dispatching model", "Loading weights", "it/s]", "WARNING"):
        assert noise not in text, noise
    assert "Applying quantization config" in (team / "runs" / "gate" / "run.log").read_text()  # kept, not lost
    assert str(installed["site"] / "evalkit" / "_fixtures" / "zoo.toml") in \
        json.loads((team / "runs" / "gate" / "run.json").read_text())["settings"]["manifest"]


def test_a_team_manifest_gates_with_snapshots_beside_it(installed: dict, venv: Path, team: Path,
                                                        env: dict[str, str]) -> None:
    run_env = {**env, "EVALKIT_ZOO_CACHE": _zoo_cache()}
    evalkit = str(venv / "bin" / "evalkit")
    built = _ok(_run([evalkit, "zoo", "build", "--only", "base", "base_gptq_w4g64", "base_awq_w4g128"], cwd=team,
                     env=run_env, what="zoo build (up to date)"))
    paths = dict(line.split()[:2] for line in built.splitlines() if line.startswith("base"))
    assert paths["base"] == str(installed["site"] / "evalkit" / "_fixtures" / "zoo" / "base")  # shipped parent
    (team / "models").mkdir(exist_ok=True)
    for name, source in (("base", paths["base"]), ("base_gptq", paths["base_gptq_w4g64"]),
                         ("base_awq", paths["base_awq_w4g128"])):
        shutil.copytree(source, team / "models" / name)  # the team's own checkpoint folders
    pytest_ = [str(venv / "bin" / "python"), "-m", "pytest", "-p", "no:cacheprovider", "--zoo", "my.toml"]

    collected = _ok(_run([*pytest_, "--collect-only", "-q"], cwd=team, env=run_env, what="pytest --collect-only"))
    ids = [line for line in collected.splitlines() if line.startswith("my.toml::")]
    # 6 tests per (model, task) (finite, compliance, metric floor, baseline, two snapshots), 6 more per variant
    # (artifacts, prompt, stopping, recovery, drift, speed): 3 models and 2 variants on 2 tasks
    assert len(ids) == 3 * 2 * 6 + 2 * 2 * 6 and "my.toml::test_recovery[cpu-base_gptq-zoo_math]" in ids
    assert "tests/test_project.py::test_plain" in collected  # the project's own tests beside the gate

    first = _run([*pytest_, "--snapshot-update"], cwd=team, env=run_env, what="pytest --snapshot-update")
    assert first.returncode == 0, first.stdout[-4000:]
    snapshot = team / "__snapshots__" / "my.ambr"
    stored = snapshot.read_text()
    assert "test_metric_summary[base_gptq-zoo_math]" in stored and "test_golden_responses[base-zoo_yes_no]" in stored

    junit = team / "junit.xml"
    again = _ok(_run([*pytest_, f"--junitxml={junit}"], cwd=team, env=run_env, what="pytest (snapshots match)"))
    assert re.search(r"\b(\d+) passed", again) and " failed" not in again, again[-3000:]
    assert "12 snapshots passed." in again
    assert '<property name="model" value="base_awq"' in junit.read_text().replace("'", '"')  # JUnit properties
    parallel = _ok(_run([*pytest_, "-n", "2"], cwd=team, env=run_env, what="pytest -n 2"))
    assert " failed" not in parallel and "evalkit gate (cpu)" in parallel, parallel[-3000:]
    assert snapshot.read_text() == stored


def test_nothing_is_written_into_site_packages(installed: dict, venv: Path, team: Path, env: dict[str, str]) -> None:
    """After every run above: the package's files are the wheel's; the zoo's default cache is the user's."""
    now = sorted(str(p) for p in (installed["site"] / "evalkit").rglob("*") if "__pycache__" not in p.parts)
    assert now == installed["package"] and not (installed["site"] / ".evalkit").exists()
    listed = _ok(_run([str(venv / "bin" / "evalkit"), "zoo", "build", "--help"], cwd=team,
                      env={**env, "COLUMNS": "400"}, what="zoo help"))  # (argparse would wrap the paths)
    assert f"else {Path(env['XDG_CACHE_HOME']) / 'evalkit' / 'zoo'})" in listed
    assert f"else {installed['site'] / 'evalkit' / '_fixtures' / 'zoo'})" in listed


def test_lm_eval_reads_the_export(installed: dict, venv: Path, team: Path, env: dict[str, str]) -> None:
    """lm-evaluation-harness installed beside evalkit's pins (constraints.txt), then its own code on the export of
    the gate run above: results-file discovery, the results table, and its result schema's keys."""
    python = str(venv / "bin" / "python")
    _ok(_run([python, "-m", "pip", "install", "-q", "-c", str(REPO / "constraints.txt"), LM_EVAL], cwd=team, env=env,
             what="install lm-eval"))
    _ok(_run([str(venv / "bin" / "pip"), "check"], cwd=team, env=env, what="pip check"))
    _ok(_run([str(venv / "bin" / "evalkit"), "report", "runs/gate"], cwd=team, env=env, what="evalkit report"))
    script = team / "read_with_lm_eval.py"
    script.write_text(LM_EVAL_READER)
    out = _ok(_run([python, str(script), "runs/gate/lm_eval"], cwd=team, env=env, what="lm-eval reads"))
    assert "OK 3 models" in out, out
    assert re.search(r"\|zoo_math +\|rows:\w+ *\|none *\| *0\|accuracy", out), out


LM_EVAL_READER = '''
"""Read evalkit's export with lm-evaluation-harness's own code only."""
import glob, json, sys, typing
from lm_eval import utils
from lm_eval.result_schema import EvalResults, _SampleCount

folder = sys.argv[1]
files = utils.get_results_filenames(sorted(glob.glob(f"{folder}/*/*.json")))
models = sorted({f.split("/")[-2] for f in files})
allowed = set(typing.get_type_hints(EvalResults, include_extras=False)) | {"evalkit_version"}
for model in models:
    latest = utils.get_latest_filename([f for f in files if f.split("/")[-2] == model])
    doc = json.load(open(latest))
    unknown = set(doc) - allowed
    assert not unknown, unknown
    for task, metrics in doc["results"].items():
        assert set(metrics) >= {"alias", "name", "sample_len"}, metrics
        assert set(doc["n-samples"][task]) == set(_SampleCount.__annotations__), doc["n-samples"][task]
        assert doc["configs"][task]["task"] == task and task in doc["versions"] and task in doc["higher_is_better"]
    print(utils.make_table(doc))
print("OK", len(models), "models")
'''


@pytest.fixture(scope="module", autouse=True)
def _timings(request: pytest.FixtureRequest):
    """The measured time of each step, printed after the module (the CI log keeps it)."""
    yield
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line("evalkit wheel test, seconds per step: " + json.dumps({k: round(v, 1)
                                                                                    for k, v in TIMINGS.items()}))
