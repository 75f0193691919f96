"""evalkit's pytest plugin (entry point ``pytest11: evalkit = "evalkit.pytest.plugin"``; the installed name
``evalkit.plugin`` is a re-export of this module): options, fixtures and hooks only.

Everything it does is a call into the library (`evalkit.gate.manifest`, `evalkit.gate.runner`, and this package's
`assertions`, `scheduling` and `snapshots`), so ``pytest`` and ``evalkit gate`` give the same verdicts.

Options: ``--zoo PATH`` (the gate manifest; default: the fixture zoo's ``fixtures/zoo.toml``), ``--gate-limit N``
(items per task, overriding the manifest), ``--gate-device cpu|cuda|both`` (which flavours of the gate tests to
collect; cuda ones carry the ``gpu`` marker), ``--gate-backend transformers|vllm|openai`` (every model's engine,
overriding the manifest's).

Fixtures: ``gate_case`` (every (model, task) of the manifest), ``variant_case`` (those with a parent),
``broken_case`` (known-broken models, ``expect = "fail"``), ``gate_manifest``, ``gate_runs`` (one `evalkit.gate.runner.Gate`
per device per worker: each model loaded once, each (model, task) evaluated once through the engine's cache),
``metric_snapshot`` and ``golden_snapshot`` (syrupy with evalkit's extensions).

Hooks: the ``gpu`` and ``slow`` markers (gpu tests skip cleanly without CUDA); under pytest-xdist, ``--dist
loadgroup`` unless another mode was asked for, one model's tests kept on one worker (``xdist_group``), each worker
pinned to one GPU (worker gw<i> -> ``CUDA_VISIBLE_DEVICES`` = GPU i, round robin); a terminal summary of the gate.
"""

from __future__ import annotations

import functools
import os
import shlex
import shutil
import subprocess
from typing import Any

import pytest

from evalkit.gate import manifest as manifest_lib
from evalkit.gate import serving
from evalkit.gate.render import render_summary
from evalkit.gate.runner import Gate
from evalkit.pytest import scheduling
from evalkit.pytest.assertions import GateCase

__all__ = ["broken_case", "gate_case", "gate_manifest", "gate_runs", "golden_snapshot", "metric_snapshot",
           "pytest_addoption", "pytest_cmdline_main", "pytest_collection_modifyitems", "pytest_configure",
           "pytest_configure_node", "pytest_generate_tests", "pytest_sessionfinish", "pytest_terminal_summary",
           "pytest_testnodedown", "pytest_xdist_make_scheduler", "variant_case"]

DEFAULT_MANIFEST = manifest_lib.DEFAULT_MANIFEST
_MANIFEST = pytest.StashKey[Any]()
_GATES = pytest.StashKey[dict]()
_SHARES = pytest.StashKey[list]()
_CASE_FIXTURES = {
    "gate_case": lambda case: True,
    "variant_case": lambda case: case.parent is not None,
    "broken_case": lambda case: case.expect == "fail",
}


# ------------------------------------------------------------------------------------------------------ options


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("evalkit", "evalkit gate")
    group.addoption("--zoo", metavar="PATH", default=None,
                    help=f"gate manifest (TOML: models, parents, tasks, thresholds); default {DEFAULT_MANIFEST}")
    group.addoption("--gate-limit", metavar="N", type=int, default=None,
                    help="items per task for every task, overriding the manifest's limits")
    group.addoption("--gate-device", choices=("cpu", "cuda", "both"), default="both",
                    help="collect the gate's CPU tests, its CUDA tests (marker gpu), or both (default)")
    group.addoption("--gate-backend", choices=("transformers", "vllm", "openai"), default=None,  # issue 16
                    help="gate every model with this backend (default: the manifest's); served models run without "
                         "-n (each xdist worker would start its own servers)")


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> None:
    """With -n and no --dist of the user's, distribute by xdist_group, so one model's tests stay on one worker.

    Only where a gate runs (--zoo, or evalkit's own checkout): the plugin is loaded by every pytest run of any
    project that has evalkit installed, and must not change how unrelated suites are distributed."""
    if not getattr(config.option, "numprocesses", None) or getattr(config.option, "dist", None) not in ("no", "load"):
        return
    if not config.getoption("zoo", None) and DEFAULT_MANIFEST.parent.parent != config.rootpath:
        return
    args = [*config.invocation_params.args, *shlex.split(os.environ.get("PYTEST_ADDOPTS", "")),
            *config.getini("addopts")]
    if not any(a in ("--dist", "-d") or a.startswith("--dist=") for a in args):
        config.option.dist = "loadgroup"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "gpu: needs a CUDA GPU; skipped cleanly without one (run with `pytest -m gpu`)")
    config.addinivalue_line("markers", "slow: longer than a few seconds on 2 CPU cores")
    if config.getoption("zoo", None):
        _manifest(config)  # an explicit --zoo is checked now: a bad one is a usage error, before collection
    worker = getattr(config, "workerinput", None)
    if worker is not None:  # an xdist worker
        if worker.get("evalkit_loadgroup"):
            config.option.loadgroup = True  # workers re-parse the command line: tell them the controller's --dist
        # pin one GPU before anything initializes CUDA
        pinned = scheduling.worker_device(worker.get("workerid"), worker.get("evalkit_visible"),
                                        worker.get("evalkit_gpus", 0))
        if pinned is not None:
            os.environ["CUDA_VISIBLE_DEVICES"] = pinned


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist controller: tell each worker the distribution mode and which GPUs exist, so it can pin its own."""
    node.workerinput["evalkit_loadgroup"] = getattr(node.config.option, "dist", None) == "loadgroup"
    node.workerinput["evalkit_visible"] = os.environ.get("CUDA_VISIBLE_DEVICES")
    node.workerinput["evalkit_gpus"] = _gpu_count()


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """--dist loadgroup that works whatever the pytest version: one model's tests form one work unit.

    pytest-xdist marks a group by suffixing node ids, which pytest 9 ignores (pytest-xdist#1386): the gate's tests
    would be spread test by test, loading every model on every worker. This scheduler reads the group from the
    test id instead (`evalkit.pytest.scheduling.xdist_groups`); tests that are not the gate's keep xdist's behaviour.
    """
    manifest = _manifest(config) if config.getoption("dist") == "loadgroup" else None
    if manifest is None:
        return None
    from xdist.scheduler import LoadGroupScheduling

    groups = scheduling.xdist_groups(manifest)

    class GateGroupScheduling(LoadGroupScheduling):
        def _split_scope(self, nodeid: str) -> str:
            param = nodeid[nodeid.rfind("[") + 1 : -1] if nodeid.endswith("]") else ""
            return groups.get(param) or super()._split_scope(nodeid)

    return GateGroupScheduling(config, log)


# ---------------------------------------------------------------------------------------------------- collection


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    for fixture, wanted in _CASE_FIXTURES.items():
        if fixture not in metafunc.fixturenames:
            continue
        manifest = _manifest(metafunc.config)
        option = metafunc.config.getoption("gate_device")
        groups = scheduling.xdist_groups(manifest) if manifest else {}
        params = []
        for device in scheduling.DEVICES if option == "both" else (option,):
            gpu = [pytest.mark.gpu] if device == "cuda" else []
            for case in manifest.cases() if manifest else ():
                if wanted(case):
                    test_id = scheduling.case_id(device, case)
                    group = pytest.mark.xdist_group(name=groups[test_id])
                    params.append(pytest.param((device, case), marks=[*gpu, group], id=test_id))
        metafunc.parametrize(fixture, params, indirect=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    gpu = [item for item in items if item.get_closest_marker("gpu")]
    if gpu and not _cuda_available():
        skip = pytest.mark.skip(reason="needs a CUDA GPU (marker gpu): none is available here")
        for item in gpu:
            item.add_marker(skip)


# ------------------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="session")
def gate_manifest(pytestconfig: pytest.Config) -> manifest_lib.Manifest:
    m = _manifest(pytestconfig)
    if m is None:
        pytest.skip(f"no gate manifest: {DEFAULT_MANIFEST} is absent; pass --zoo PATH")
    return m


@pytest.fixture(scope="session")
def gate_runs(pytestconfig: pytest.Config, gate_manifest: manifest_lib.Manifest) -> dict[str, Gate]:
    """One Gate per device, created on first use; each loads a model once and evaluates it once per worker."""
    return pytestconfig.stash.setdefault(_GATES, {})


def _case(request: pytest.FixtureRequest, runs: dict[str, Gate], m: manifest_lib.Manifest) -> GateCase:
    device, case = request.param
    if device == "cuda" and not _cuda_available():
        pytest.skip("needs a CUDA GPU: none is available here")
    if device not in runs:
        runs[device] = Gate(m, device=device, limit=request.config.getoption("gate_limit"))
    return GateCase(runs[device], case)


@pytest.fixture
def gate_case(request: pytest.FixtureRequest, gate_runs: dict, gate_manifest: manifest_lib.Manifest
              ) -> GateCase:
    """One (model, task) of the manifest."""
    return _case(request, gate_runs, gate_manifest)


@pytest.fixture
def variant_case(request: pytest.FixtureRequest, gate_runs: dict, gate_manifest: manifest_lib.Manifest
                 ) -> GateCase:
    """One (model, task) of a model with a parent."""
    return _case(request, gate_runs, gate_manifest)


@pytest.fixture
def broken_case(request: pytest.FixtureRequest, gate_runs: dict, gate_manifest: manifest_lib.Manifest
                ) -> GateCase:
    """One (model, task) of a known-broken model (expect = "fail")."""
    return _case(request, gate_runs, gate_manifest)


@pytest.fixture
def metric_snapshot(snapshot: Any) -> Any:
    """syrupy's snapshot, storing metric summaries with tolerances grounded in what each field means."""
    from evalkit.pytest.snapshots import MetricSummaryExtension, for_session

    return snapshot.use_extension(for_session(MetricSummaryExtension, bool(snapshot.update_snapshots)))


@pytest.fixture
def golden_snapshot(snapshot: Any) -> Any:
    """syrupy's snapshot, storing golden greedy responses byte for byte (per platform for known-broken models)."""
    from evalkit.pytest.snapshots import GoldenResponsesExtension, for_session

    return snapshot.use_extension(for_session(GoldenResponsesExtension, bool(snapshot.update_snapshots)))


# ---------------------------------------------------------------------------------------------------- reporting


def pytest_sessionfinish(session: pytest.Session) -> None:
    """xdist worker: hand this worker's verdict rows to the controller, which prints one table."""
    output = getattr(session.config, "workeroutput", None)
    if output is not None:
        output["evalkit_gate"] = _share(session.config)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """xdist controller: collect each worker's verdict rows."""
    shares = node.config.stash.setdefault(_SHARES, [])
    shares.append(getattr(node, "workeroutput", {}).get("evalkit_gate", {}))


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    tables: dict[str, tuple[list, dict]] = {}
    for share in (_share(config), *config.stash.get(_SHARES, [])):  # this process's, then each worker's
        for device, part in share.items():
            rows, timings = tables.setdefault(device, ([], {}))
            rows.extend(tuple(r) for r in part["rows"])
            for key, seconds in part["timings"].items():  # worker seconds add up (total: the slowest worker)
                timings[key] = max(timings.get(key, 0.0), seconds) if key == "total" else timings.get(key, 0) + seconds
    manifest = config.stash.get(_MANIFEST, None)
    order = {(c.model, c.task): i for i, c in enumerate(manifest.cases())} if manifest else {}
    for device, (rows, timings) in sorted(tables.items()):
        if rows:
            rows.sort(key=lambda r: order.get((r[0], r[1]), len(order)))
            terminalreporter.write_sep("=", f"evalkit gate ({device})")
            terminalreporter.write_line(render_summary(rows, timings, device))


# ------------------------------------------------------------------------------------------------------ helpers


def _share(config: pytest.Config) -> dict[str, dict[str, Any]]:
    """This process's verdict rows and timings per device: what a worker sends, and what the controller merges."""
    out = {}
    for device, gate in config.stash.get(_GATES, {}).items():
        report = gate.computed()
        out[device] = {"rows": report.rows(), "timings": dict(report.timings)}
    return out


def _manifest(config: pytest.Config) -> manifest_lib.Manifest | None:
    if _MANIFEST not in config.stash:
        path = config.getoption("zoo")
        if path is None and not DEFAULT_MANIFEST.is_file():
            config.stash[_MANIFEST] = None
        else:
            try:
                m = manifest_lib.load(path or DEFAULT_MANIFEST)
                backend = config.getoption("gate_backend", None)
                config.stash[_MANIFEST] = serving.override(m, backend=backend) if backend else m  # issue 16
            except manifest_lib.ManifestError as err:
                raise pytest.UsageError(str(err)) from None
    return config.stash[_MANIFEST]


@functools.cache
def _gpu_count() -> int:
    """GPUs on this host, without initializing CUDA in this process (nvidia-smi, once for all workers; 0 if none)."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return 0
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=30, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(line.startswith("GPU ") for line in out.splitlines())


@functools.cache
def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())
