"""evalkit's pytest plugin (entry point ``pytest11: evalkit = "evalkit.pytest.plugin"``; the installed name
``evalkit.plugin`` is a re-export of this module): options, fixtures and hooks only, inert unless a gate is asked for.

**Asked for** means one of: ``--zoo PATH`` (a gate manifest), a manifest given as a path argument (``pytest my.toml``),
or the ini key ``gate = PATH`` (pytest.ini, tox.ini, setup.cfg or ``[tool.pytest.ini_options]``; relative to the ini
file). Then the plugin collects the gate's tests (`evalkit.pytest.gate_tests`) at the manifest, node ids
``my.toml::test_compliance[cpu-base-zoo_math]``, with syrupy's snapshots beside it (``__snapshots__/my.ambr``). An ini
``gate`` is collected by a plain ``pytest`` and by any run whose path arguments contain the manifest; ``--zoo`` and a
manifest argument always collect it. Only such a *gate run* changes how xdist distributes (``--dist loadgroup``
unless asked otherwise: one model's tests on one worker), pins one GPU per xdist worker (``CUDA_VISIBLE_DEVICES``),
registers the ``gpu`` marker of the gate's CUDA flavour and prints the gate's table.

**Otherwise** nothing: this module imports only pytest and the standard library (the library loads with the first
gate), every hook returns at once, no marker is registered, no test is skipped, no environment variable is set, no
torch is imported, no nvidia-smi is run. Fixtures (``gate_case``, ...) exist but run only where a test asks for one.
The same holds for a project's own tests *beside* a gate: only the gate's own CUDA items skip without CUDA, never a
test of the project's that happens to carry a marker called ``gpu``.

Options: ``--zoo PATH``, ``--gate-limit N`` (items per task, overriding the manifest), ``--gate-device
cpu|cuda|both`` (which flavours to collect; default: the manifest's ``device``, both for ``auto``),
``--gate-backend transformers|vllm|openai`` (every model's engine, overriding the manifest's). Ini keys: ``gate``
(above) and ``gate_snapshots = FOLDER`` (the gate's snapshot file goes there instead of beside the manifest).

Fixtures: ``gate_case`` (every (model, task) of the manifest), ``variant_case`` (those with a parent), ``broken_case``
(known-broken models, ``expect = "fail"``), ``gate_manifest``, ``gate_runs`` (one `evalkit.gate.runner.Gate` per
device per worker), ``metric_snapshot`` and ``golden_snapshot`` (syrupy with evalkit's extensions).

Each gate test's JUnit XML ``<properties>`` carry model, task, device, check, status, diagnosis, metric and value
(`evalkit.pytest.session.properties`), so a CI dashboard can group failures.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from evalkit.gate.manifest import Manifest
    from evalkit.gate.runner import Gate
    from evalkit.pytest.assertions import GateCase
    from evalkit.pytest.session import GateSession

__all__ = ["Request", "broken_case", "gate_case", "gate_manifest", "gate_runs", "golden_snapshot", "metric_snapshot",
           "pytest_addoption", "pytest_cmdline_main", "pytest_collect_file", "pytest_collection_modifyitems",
           "pytest_configure", "pytest_configure_node", "pytest_generate_tests", "pytest_report_header",
           "pytest_runtest_makereport",
           "pytest_sessionfinish", "pytest_terminal_summary", "pytest_testnodedown", "pytest_xdist_make_scheduler",
           "request_of", "variant_case"]

# The gate's tests compare snapshots with `assert`: rewritten like a test file's, so syrupy explains a mismatch.
# (Registering a name imports nothing; it takes effect when a gate first imports the module.)
pytest.register_assert_rewrite("evalkit.pytest.gate_tests")

CASE_FIXTURES = ("gate_case", "variant_case", "broken_case")
_REQUEST = pytest.StashKey["Request | None"]()
_SESSION = pytest.StashKey["GateSession"]()


@dataclass(frozen=True, slots=True)
class Request:
    """The gate a pytest run asks for: its manifest, and whether this run collects the gate's tests."""

    manifest: Path  # absolute, symlinks kept (as pytest keeps them in node paths)
    collect: bool  # a gate run: the tests are collected, xdist is grouped, GPUs pinned, the table printed
    how: str  # "--zoo", "argument" or "ini gate", for messages


# ------------------------------------------------------------------------------------------------------ options


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("evalkit", "evalkit gate")
    group.addoption("--zoo", metavar="PATH", default=None,
                    help="gate manifest (TOML: models, parents, tasks, thresholds): collect the gate's tests at it")
    group.addoption("--gate-limit", metavar="N", type=int, default=None,
                    help="items per task for every task, overriding the manifest's limits")
    group.addoption("--gate-device", choices=("cpu", "cuda", "both"), default=None,
                    help="collect the gate's CPU tests, its CUDA tests (marker gpu), or both (default: the "
                         "manifest's device; both for auto)")
    group.addoption("--gate-backend", choices=("transformers", "vllm", "openai"), default=None,  # issue 16
                    help="gate every model with this backend (default: the manifest's); served models run without "
                         "-n (each xdist worker would start its own servers)")
    parser.addini("gate", "evalkit gate manifest collected by a plain `pytest` (relative to the ini file)",
                  type="string", default="")
    parser.addini("gate_snapshots", "folder of the gate's snapshots (default: __snapshots__ beside the manifest; "
                                    "relative to the ini file)", type="string", default="")


def request_of(config: pytest.Config) -> Request | None:
    """The gate this run asks for (None: the plugin stays out of the way), decided once per run."""
    if _REQUEST not in config.stash:
        config.stash[_REQUEST] = _decide(config)
    return config.stash[_REQUEST]


def _decide(config: pytest.Config) -> Request | None:
    here = config.invocation_params.dir
    explicit = config.args_source == pytest.Config.ArgsSource.ARGS
    paths = [Path(os.path.abspath(here / a.split("::")[0])) for a in config.args] if explicit else []
    worker = getattr(config, "workerinput", None)
    zoo = config.getoption("zoo", None)
    if zoo:
        return Request(Path(os.path.abspath(here / zoo)), True, "--zoo")
    tomls = [p for p in paths if p.suffix == ".toml"]
    if len(tomls) > 1:
        raise pytest.UsageError(f"one gate manifest per run; got {', '.join(map(str, tomls))}")
    if tomls:
        return Request(tomls[0], True, "argument")
    ini = config.getini("gate")
    if not ini:
        return None
    base = config.inipath.parent if config.inipath else config.rootpath
    manifest = Path(os.path.abspath(base / ini))
    if worker is not None:  # a pytest-xdist worker runs what its controller decided
        return Request(manifest, bool(worker.get("evalkit_gate")), "ini gate")
    return Request(manifest, not paths or any(p == manifest or p in manifest.parents for p in paths), "ini gate")


def _session(config: pytest.Config) -> GateSession | None:
    return config.stash.get(_SESSION, None)


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> None:
    """A gate run under -n without a --dist of the user's: distribute by xdist_group, one model per worker."""
    if not getattr(config.option, "numprocesses", None) or getattr(config.option, "dist", None) not in ("no", "load"):
        return
    request = request_of(config)
    if request is None or not request.collect:
        return
    args = [*config.invocation_params.args, *shlex.split(os.environ.get("PYTEST_ADDOPTS", "")),
            *config.getini("addopts")]
    if not any(a in ("--dist", "-d") or a.startswith("--dist=") for a in args):
        config.option.dist = "loadgroup"


def pytest_configure(config: pytest.Config) -> None:
    request = request_of(config)
    if request is None:
        return
    from evalkit.pytest.session import GateSession

    config.addinivalue_line("markers", "gpu: the gate's CUDA flavour; skipped cleanly without a CUDA GPU")
    config.stash[_SESSION] = GateSession.start(config, request)  # a bad manifest is a usage error, now


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist controller, gate runs only: tell each worker the gate, the distribution mode and the GPUs there are."""
    session = _session(node.config)
    if session is not None and session.request.collect:
        node.workerinput.update(session.worker_input())


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """--dist loadgroup that works whatever the pytest version (`evalkit.pytest.session.GateSession.scheduler`)."""
    session = _session(config)
    if session is None or not session.request.collect or config.getoption("dist") != "loadgroup":
        return None
    return session.scheduler(log)


# ---------------------------------------------------------------------------------------------------- collection


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    session = _session(parent.config)
    if session is None or file_path != session.request.manifest:
        return None
    from evalkit.pytest.session import GateModule

    return GateModule.at(parent, file_path, session)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    for fixture in CASE_FIXTURES:
        if fixture in metafunc.fixturenames:
            session = _session(metafunc.config)
            params = session.params(fixture) if session is not None else []
            metafunc.parametrize(fixture, params, indirect=True)


@pytest.hookimpl(trylast=True)  # after -k/-m deselection: torch is imported only for CUDA items that will run
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    session = _session(config)
    if session is not None:
        session.skip_cuda_without_gpu(items)


# ------------------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="session")
def gate_manifest(pytestconfig: pytest.Config) -> Manifest:
    session = _session(pytestconfig)
    if session is None:
        pytest.skip("no gate manifest: pass --zoo PATH (or set the ini key gate = PATH)")
    return session.manifest


@pytest.fixture(scope="session")
def gate_runs(pytestconfig: pytest.Config, gate_manifest: Manifest) -> dict[str, Gate]:
    """One Gate per device, created on first use; each loads a model once and evaluates it once per worker."""
    session = _session(pytestconfig)
    assert session is not None  # gate_manifest skipped otherwise
    return session.gates


@pytest.fixture
def gate_case(request: pytest.FixtureRequest, gate_runs: dict, gate_manifest: Manifest) -> GateCase:
    """One (model, task) of the manifest."""
    return _case(request)


@pytest.fixture
def variant_case(request: pytest.FixtureRequest, gate_runs: dict, gate_manifest: Manifest) -> GateCase:
    """One (model, task) of a model with a parent."""
    return _case(request)


@pytest.fixture
def broken_case(request: pytest.FixtureRequest, gate_runs: dict, gate_manifest: Manifest) -> GateCase:
    """One (model, task) of a known-broken model (expect = "fail")."""
    return _case(request)


def _case(request: pytest.FixtureRequest) -> GateCase:
    session = _session(request.config)
    assert session is not None  # gate_manifest skipped otherwise
    return session.case(request.param)


@pytest.fixture
def metric_snapshot(snapshot: Any, pytestconfig: pytest.Config) -> Any:
    """syrupy's snapshot, storing metric summaries with tolerances grounded in what each field means."""
    from evalkit.pytest.snapshots import MetricSummaryExtension, for_session

    return snapshot.use_extension(for_session(MetricSummaryExtension, bool(snapshot.update_snapshots),
                                              *_snapshot_folder(pytestconfig)))


@pytest.fixture
def golden_snapshot(snapshot: Any, pytestconfig: pytest.Config) -> Any:
    """syrupy's snapshot, storing golden greedy responses byte for byte (per platform for known-broken models)."""
    from evalkit.pytest.snapshots import GoldenResponsesExtension, for_session

    return snapshot.use_extension(for_session(GoldenResponsesExtension, bool(snapshot.update_snapshots),
                                              *_snapshot_folder(pytestconfig)))


def _snapshot_folder(config: pytest.Config) -> tuple[str | None, str | None]:
    """(folder, manifest) from the ini key gate_snapshots, or (None, None): syrupy's own place beside the manifest."""
    session, folder = _session(config), config.getini("gate_snapshots")
    if session is None or not folder:
        return None, None
    base = config.inipath.parent if config.inipath else config.rootpath
    return os.path.abspath(base / folder), str(session.request.manifest)


# ---------------------------------------------------------------------------------------------------- reporting


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> None:
    """A gate test's JUnit properties (model, task, check, diagnosis, metric), before its report is made."""
    session = _session(item.config)
    if session is not None and call.when in ("setup", "call"):
        session.record_properties(item, call.when)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """xdist worker: hand this worker's verdict rows to the controller, which prints one table."""
    gate = _session(session.config)
    output = getattr(session.config, "workeroutput", None)
    if gate is not None and output is not None:
        output["evalkit_gate"] = gate.share()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """xdist controller: collect each worker's verdict rows."""
    session = _session(node.config)
    if session is not None:
        session.shares.append(getattr(node, "workeroutput", {}).get("evalkit_gate", {}))


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    session = _session(config)
    if session is not None:
        for title, text in session.tables():
            terminalreporter.write_sep("=", title)
            terminalreporter.write_line(text)


def pytest_report_header(config: pytest.Config) -> list[str]:
    """Where a gate runs: the tasks that ask for fewer items than their checks need (the plan, per device flavour
    collected), so an inconclusive verdict is expected before any model runs."""
    session = _session(config)
    return session.plan_header() if session is not None else []
