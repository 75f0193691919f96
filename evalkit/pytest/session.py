"""The gate of one pytest run, behind the plugin's hooks: its manifest, the collector that puts the gate's tests at
the manifest, their parametrization, one `evalkit.gate.runner.Gate` per device, xdist work units and GPU pinning,
the JUnit properties of each test, and the verdict table (merged from xdist workers).

The plugin (`evalkit.pytest.plugin`) creates a `GateSession` only when a gate is asked for; everything here may load
the library.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from evalkit.errors import EvalkitError
from evalkit.gate import manifest as manifest_lib
from evalkit.gate import serving
from evalkit.gate.decisions import alpha_note, plan_lines
from evalkit.gate.preflight import check_manifest
from evalkit.gate.render import render_summary
from evalkit.gate.runner import Gate
from evalkit.pytest import scheduling
from evalkit.pytest.assertions import GateCase

__all__ = ["GateModule", "GateSession", "properties"]

_WANTED = {
    "gate_case": lambda case: True,
    "variant_case": lambda case: case.parent is not None,
    "broken_case": lambda case: case.expect == "fail",
}


class GateModule(pytest.Module):
    """The gate's tests (`evalkit.pytest.gate_tests`), collected at the manifest file: the node's path is the
    manifest, so node ids, ``-k`` and syrupy's snapshot location (``__snapshots__/<manifest stem>.ambr`` beside it)
    all follow from where the manifest is."""

    gate: GateSession  # set by `at`

    @classmethod
    def at(cls, parent: pytest.Collector, path: Path, gate: GateSession) -> GateModule:
        """The gate of `gate` (its session) collected at the manifest file `path`."""
        module = cls.from_parent(parent, path=path)
        module.gate = gate
        return module

    def _getobj(self) -> Any:
        from evalkit.pytest import gate_tests

        return gate_tests

    def istestfunction(self, obj: object, name: str) -> bool:
        """The gate's tests whatever the project's ``python_functions`` say, and only those with cases in this
        manifest (a manifest without known-broken models gets no test_known_broken_is_caught, rather than an
        empty-parameter-set skip)."""
        import inspect

        from evalkit.pytest.gate_tests import CHECK_OF_TEST

        if name not in CHECK_OF_TEST or not callable(obj):
            return False
        fixtures = [f for f in inspect.signature(obj).parameters if f in _WANTED]
        return all(self.gate.params(f) for f in fixtures)

    def istestclass(self, obj: object, name: str) -> bool:
        return False


class GateSession:
    """One pytest run's gate (created by the plugin's pytest_configure when a gate is asked for)."""

    def __init__(self, config: pytest.Config, request: Any, manifest: manifest_lib.Manifest) -> None:
        self.config = config
        self.request = request  # evalkit.pytest.plugin.Request
        self.manifest = manifest
        self.gates: dict[str, Gate] = {}  # device -> Gate, created on first use
        self.shares: list[dict[str, Any]] = []  # xdist controller: each worker's verdict rows

    @classmethod
    def start(cls, config: pytest.Config, request: Any) -> GateSession:
        """Load the manifest (a bad one is a usage error before collection), pin this xdist worker's GPU, and make
        sure the manifest is collected when the run asks for the gate but its paths do not reach it."""
        try:
            m = manifest_lib.load(request.manifest)
            backend = config.getoption("gate_backend", None)
            if backend:  # issue 16: every model through this engine
                m = serving.override(m, backend=backend)
            check_manifest(m)  # task, metric, diagnosis and zoo: names against their registries, devices, dtypes
        except EvalkitError as err:
            raise pytest.UsageError(f"{err} (asked for by {request.how})") from None
        worker = getattr(config, "workerinput", None)
        if worker is not None:
            if worker.get("evalkit_loadgroup"):
                config.option.loadgroup = True  # workers re-parse the command line: tell them the controller's --dist
            pinned = scheduling.worker_device(worker.get("workerid"), worker.get("evalkit_visible"),
                                              worker.get("evalkit_gpus", 0))
            if pinned is not None:  # before anything initializes CUDA
                os.environ["CUDA_VISIBLE_DEVICES"] = pinned
        if request.collect:  # controller and workers alike: xdist workers re-parse the command line
            here = config.invocation_params.dir
            reached = [Path(os.path.abspath(here / a.split("::")[0])) for a in config.args]
            if not any(p == request.manifest or p in request.manifest.parents for p in reached):
                config.args.append(str(request.manifest))
        return cls(config, request, m)

    # -- xdist ------------------------------------------------------------------------------------------------------

    def worker_input(self) -> dict[str, Any]:
        """What a worker needs from the controller: that this is a gate run, the distribution mode, the GPUs."""
        return {"evalkit_gate": True, "evalkit_loadgroup": getattr(self.config.option, "dist", None) == "loadgroup",
                "evalkit_visible": os.environ.get("CUDA_VISIBLE_DEVICES"), "evalkit_gpus": _gpu_count()}

    def scheduler(self, log: Any) -> Any:
        """--dist loadgroup whatever the pytest version: one model's tests form one work unit.

        pytest-xdist marks a group by suffixing node ids, which pytest 9 ignores (pytest-xdist#1386): the gate's
        tests would be spread test by test, loading every model on every worker. This scheduler reads the group from
        the test id instead (`evalkit.pytest.scheduling.xdist_groups`); other tests keep xdist's behaviour."""
        from xdist.scheduler import LoadGroupScheduling

        groups = scheduling.xdist_groups(self.manifest)

        class GateGroupScheduling(LoadGroupScheduling):
            def _split_scope(self, nodeid: str) -> str:
                param = nodeid[nodeid.rfind("[") + 1 : -1] if nodeid.endswith("]") else ""
                return groups.get(param) or super()._split_scope(nodeid)

        return GateGroupScheduling(self.config, log)

    # -- collection -------------------------------------------------------------------------------------------------

    def params(self, fixture: str) -> list[Any]:
        """The parameters of a case fixture: one per (device flavour, case), with the ``gpu`` marker on CUDA and the
        xdist group of the model."""
        wanted = _WANTED[fixture]
        xdist = self.config.pluginmanager.hasplugin("xdist")  # which registers the xdist_group marker
        groups = scheduling.xdist_groups(self.manifest)
        out = []
        for device in scheduling.flavours(self.manifest.gate.device, self.config.getoption("gate_device")):
            gpu = [pytest.mark.gpu] if device == "cuda" else []
            for case in self.manifest.cases():
                if wanted(case):
                    test_id = scheduling.case_id(device, case)
                    group = [pytest.mark.xdist_group(name=groups[test_id])] if xdist else []
                    out.append(pytest.param((device, case), marks=[*gpu, *group], id=test_id))
        return out

    def skip_cuda_without_gpu(self, items: Iterable[pytest.Item]) -> None:
        """The gate's CUDA items skip cleanly where there is no CUDA (torch is imported only if there are any);
        the project's own tests are left alone, whatever markers they carry."""
        cuda = [item for item in items if (_device_case(item) or ("", None))[0] == "cuda"]
        if cuda and not _cuda_available():
            skip = pytest.mark.skip(reason="needs a CUDA GPU (the gate's cuda flavour): none is available here")
            for item in cuda:
                item.add_marker(skip)

    # -- fixtures ---------------------------------------------------------------------------------------------------

    def case(self, param: tuple[str, manifest_lib.Case]) -> GateCase:
        device, case = param
        if device == "cuda" and not _cuda_available():
            pytest.skip("needs a CUDA GPU: none is available here")
        if device not in self.gates:
            self.gates[device] = Gate(self.manifest, device=device, limit=self.config.getoption("gate_limit"))
        return GateCase(self.gates[device], case)

    # -- reporting --------------------------------------------------------------------------------------------------

    def record_properties(self, item: pytest.Item, when: str) -> None:
        """JUnit ``<properties>`` of a gate test: where it is from at setup, what the gate found after the call."""
        found = _device_case(item)
        if found is None:
            return
        device, case = found
        if when == "setup":
            check = _check_of(item)
            item.user_properties.extend([("model", case.model), ("task", case.task), ("device", device),
                                         *([("check", check)] if check else [])])
            return
        gate = self.gates.get(device)
        v = next((v for v in gate.computed().verdicts if (v.model, v.task) == (case.model, case.task)), None) \
            if gate is not None else None
        if v is not None:
            item.user_properties.extend(properties(v, _check_of(item)))

    def share(self) -> dict[str, dict[str, Any]]:
        """This process's verdict rows and timings per device: what a worker sends, and what the controller merges."""
        out = {}
        for device, gate in self.gates.items():
            report = gate.computed()
            out[device] = {"rows": report.rows(), "timings": dict(report.timings)}
        return out

    def tables(self) -> list[tuple[str, str]]:
        """(title, table) per device: this process's rows, then each xdist worker's, in manifest order."""
        tables: dict[str, tuple[list, dict]] = {}
        for share in (self.share(), *self.shares):
            for device, part in share.items():
                rows, timings = tables.setdefault(device, ([], {}))
                rows.extend(tuple(r) for r in part["rows"])
                for key, seconds in part["timings"].items():  # worker seconds add up (total: the slowest worker)
                    timings[key] = max(timings.get(key, 0.0), seconds) if key == "total" else \
                        timings.get(key, 0) + seconds
        order = {(c.model, c.task): i for i, c in enumerate(self.manifest.cases())}
        out = []
        for device, (rows, timings) in sorted(tables.items()):
            if rows:
                rows.sort(key=lambda r: order.get((r[0], r[1]), len(order)))
                out.append((f"evalkit gate ({device})",
                            render_summary(rows, timings, device, alpha_note(self.manifest))))
        return out

    def plan_header(self) -> list[str]:
        """The plan per device flavour collected: the tasks that ask for fewer items than their checks need, so an
        inconclusive verdict is expected before any model runs (pytest's report header)."""
        limit = self.config.getoption("gate_limit")
        return [f"evalkit gate plan ({device}): {line}"
                for device in scheduling.flavours(self.manifest.gate.device, self.config.getoption("gate_device"))
                for line in plan_lines(self.manifest, device, limit)]


def properties(verdict: Any, check: str | None) -> list[tuple[str, str]]:
    """What the gate found for one test, as JUnit properties: the check's status and diagnosis (or the verdict's,
    for a test that is not one check), the outcome, and the primary metric with its value.

    >>> from evalkit.gate.records import Evidence, Failure
    >>> from evalkit.gate.manifest import Thresholds
    >>> from evalkit.gate.runner import verdict
    >>> v = verdict(Evidence("m", "t", None, "accuracy", error=Failure("load_error", "gone")), Thresholds())
    >>> properties(v, "compliance")
    [('status', 'fail'), ('diagnosis', 'load_error'), ('outcome', 'FAIL'), ('metric', 'accuracy')]
    """
    one = next((c for c in verdict.checks if c.check == check), None)
    status = one.status if one is not None else verdict.status
    diagnosis = one.diagnosis if one is not None else verdict.diagnosis
    out = [("status", status), ("diagnosis", diagnosis), ("outcome", verdict.outcome)]
    summary = verdict.summary or {}
    metric = summary.get("metric")
    if metric:
        out.append(("metric", str(metric)))
        value = (summary.get("metrics") or {}).get(metric)
        if value is not None:
            out.append(("value", f"{value:.6g}"))
    return [(k, v) for k, v in out if v != ""]


def _device_case(item: pytest.Item) -> tuple[str, manifest_lib.Case] | None:
    """(device, case) of a test parametrized by one of the case fixtures, else None."""
    params = getattr(getattr(item, "callspec", None), "params", {})
    for fixture in _WANTED:
        value = params.get(fixture)
        if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], manifest_lib.Case):
            return value
    return None


def _check_of(item: pytest.Item) -> str | None:
    """The check a test of `evalkit.pytest.gate_tests` checks (None for a project's own test of a case)."""
    from evalkit.pytest import gate_tests

    if getattr(getattr(item, "obj", None), "__module__", None) != gate_tests.__name__:
        return None
    return gate_tests.CHECK_OF_TEST.get(getattr(item, "originalname", ""))


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
