"""The gate manifest (`pytest --zoo PATH`, `evalkit gate --zoo PATH`): models, parents, tasks, thresholds, in TOML.

One file says what to gate: which checkpoints (and which unquantized parent each is compared with), on which tasks
with how many items, and how strict each check is. Thresholds resolve in layers, each overriding the one before:
``[thresholds]`` (run-wide) -> ``[tasks.<task>.thresholds]`` -> ``[models.<model>.thresholds]``. Every value is
validated on load, and a wrong key or value is one error naming the file, the table and the fix.

>>> m = loads('''
... [tasks.zoo_yes_no]
... limit = 16
... [models.parent]
... path = "p"
... [models.variant]
... path = "v"
... parent = "parent"
... ''', root="/models")
>>> [(c.model, c.task) for c in m.cases()]
[('parent', 'zoo_yes_no'), ('variant', 'zoo_yes_no')]
>>> m.models["variant"].path.as_posix(), m.thresholds("variant", "zoo_yes_no").min_compliance
('/models/v', 0.9)

The format is documented in docs/gate.md (installed: `evalkit.core.paths.doc`).
"""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Mapping, Sequence
from typing import Any, Literal, TypeVar

from evalkit.core import paths
from evalkit.core.decision import Criteria, Weights
from evalkit.core.lineage import lineage, with_ancestors
from evalkit.errors import CycleError, ManifestError
from evalkit.gate import serving
from evalkit.models.description import ZOO_SCHEME, ModelSpec

__all__ = ["Case", "DEFAULT_MANIFEST", "GateSettings", "Manifest", "ManifestError", "ModelSpec", "TaskEntry",
           "Thresholds", "load", "loads", "ZOO_SCHEME"]

DEFAULT_MANIFEST = paths.data_dir() / "zoo.toml"
"""The fixture zoo's gate manifest, from a checkout or from the installed package: the default of `evalkit gate`."""


@dataclass(frozen=True, slots=True)
class Thresholds:
    """How strict each check is for one (model, task). Fractions are on the 0-1 scale of `evalkit.core.metrics`.

    The statistical keys are the decision core's `evalkit.core.decision.Criteria` (`criteria`); docs/gate.md says
    what each means for the three outcomes (pass, inconclusive, fail).
    """

    min_compliance: float = 0.90  # floor on the share of responses with a valid \boxed{} answer
    min_metric: float | None = None  # absolute floor on the primary metric (None: no floor)
    floor_margin: float = 0.05  # width of every floor's indifference zone (and the baseline's): a rate confidently
    # above floor - floor_margin passes, one confidently below the floor fails, in between is inconclusive
    tolerated_drop: float = 0.01  # a true drop vs the parent up to this is no failure (the null of recovery, stopping)
    detect_drop: float = 0.05  # the drop the gate must see: recovery passes only when a drop this large is ruled out
    require_power: bool = False  # True: an inconclusive recovery fails ("underpowered")
    alpha: float = 0.01  # a model's family-wise false-fail rate when [gate] run_alpha is "none" (equal across tasks)
    power: float = 0.90  # probability at which the planned item counts catch a drop (and clear a sound model)
    plan_disagreement: float = 0.10  # share of items a variant is assumed to disagree with its parent on, before
    # the run (the item counts the gate recommends); the verdicts use the observed share
    beat_baseline: bool = True  # require the primary metric to clear the trivial baseline by floor_margin
    max_mean_kl: float | None = 0.5  # drift vs parent: mean per-token KL(parent || variant), nats
    max_p99_kl: float | None = None  # drift vs parent: 99th percentile per-token KL, nats
    min_top1_agreement: float | None = 0.80  # drift vs parent: share of tokens with the same argmax
    max_ppl_ratio: float | None = 1.5  # drift vs parent: variant perplexity / parent perplexity
    max_slowdown: float | None = 10.0  # slow-kernel alarm: variant seconds/sample over the parent's

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # every field, so a key added later is covered too
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"{f.name} must be a finite number, got {value!r} (a NaN or infinite threshold "
                                 f"would switch its check off silently; use \"none\" to switch a check off)")
        for name in ("min_compliance", "min_metric", "tolerated_drop", "min_top1_agreement", "plan_disagreement"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value!r}")
        if not 0.0 < self.detect_drop <= 1.0:
            raise ValueError(f"detect_drop must be in (0, 1], got {self.detect_drop!r}")
        if not self.tolerated_drop < self.detect_drop:
            raise ValueError(f"tolerated_drop must be below detect_drop (the gate cannot tell a drop it tolerates "
                             f"from one it must see), got {self.tolerated_drop!r} >= {self.detect_drop!r}")
        if not 0.0 <= self.floor_margin < 1.0:
            raise ValueError(f"floor_margin must be in [0, 1), got {self.floor_margin!r}")
        if not 0.0 < self.alpha < 0.5:
            raise ValueError(f"alpha must be in (0, 0.5), got {self.alpha!r}")
        if not 0.5 <= self.power < 1.0:
            raise ValueError(f"power must be in [0.5, 1), got {self.power!r}")
        for name in ("max_mean_kl", "max_p99_kl"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must be >= 0, got {value!r}")
        for name in ("max_ppl_ratio", "max_slowdown"):
            value = getattr(self, name)
            if value is not None and value < 1.0:
                raise ValueError(f"{name} must be >= 1, got {value!r}")

    def criteria(self) -> Criteria:
        """The statistical part, as the decision core reads it."""
        return Criteria(min_compliance=self.min_compliance, min_metric=self.min_metric, floor_margin=self.floor_margin,
                        tolerated_drop=self.tolerated_drop, detect_drop=self.detect_drop,
                        require_power=self.require_power, power=self.power, beat_baseline=self.beat_baseline,
                        plan_disagreement=self.plan_disagreement)


_T = TypeVar("_T")


def _per_device(device: str, value: _T, gpu_value: _T | None) -> _T:
    """`gpu_value` on a CUDA device when it is set, else `value`: the one rule for every ``gpu_*`` setting."""
    return gpu_value if device.startswith("cuda") and gpu_value is not None else value


@dataclass(frozen=True, slots=True)
class GateSettings:
    """Run-wide settings from ``[gate]``; the command line (--gate-device, --gate-limit) overrides some."""

    device: str = "auto"  # "cpu", "cuda", "cuda:1" or "auto" (cuda when available)
    dtype: str | None = None  # load dtype, e.g. "float32"; None keeps each checkpoint's own
    max_new_tokens: int = 256
    batch_size: int = 32
    gpu_batch_size: int | None = None  # batch size on CUDA (None: batch_size); a GPU wants far larger batches
    enable_thinking: bool = False
    decoder: Literal["eager", "static", "compiled"] = "eager"  # evalkit.run.generation decoder (compiled: fast on CUDA)
    cache: Path = Path(".evalkit/cache")  # generation cache folder (relative paths: to the working directory)
    golden: int = 2  # golden greedy responses per (model, task) kept in snapshots
    drift_limit: int | None = None  # parent responses per task that drift is computed on (None: all)
    seed: int = 0  # item sampling seed for limits
    backend: str = "transformers"  # issue 16: the engine of every model without its own (evalkit.gate.serving)
    drift_k: int = 20  # issue 16: top-k prompt logprobs of drift through a server (-1: the whole vocabulary)
    run_alpha: float | None = 0.05  # probability that a run of sound models is red: each of the manifest's M models
    # is decided at run_alpha / M (None, "none" in TOML: each model at its thresholds' alpha)
    weights: Weights = Weights()  # [gate.weights]: each check's share of a model's alpha

    def model_alpha(self, models: int, alpha: float) -> tuple[float, int]:
        """(run alpha, run size) to decide a model at: run_alpha over the manifest's `models`, or, with run_alpha
        off, the model's own `alpha` (the thresholds' key) as a run of one."""
        return (alpha, 1) if self.run_alpha is None else (self.run_alpha, max(1, models))

    def batch_size_for(self, device: str) -> int:
        """Generation batch size on `device` ("cpu" or a CUDA device)."""
        return _per_device(device, self.batch_size, self.gpu_batch_size)

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1 or self.batch_size < 1 or (self.gpu_batch_size is not None and self.gpu_batch_size < 1):
            raise ValueError("max_new_tokens, batch_size and gpu_batch_size must be >= 1")
        if self.decoder not in ("eager", "static", "compiled"):
            raise ValueError(f"decoder must be eager, static or compiled, got {self.decoder!r}")
        if self.drift_limit is not None and self.drift_limit < 1:
            raise ValueError(f"drift_limit must be >= 1, got {self.drift_limit}")
        if self.golden < 0:
            raise ValueError(f"golden must be >= 0, got {self.golden}")
        if self.backend not in serving.BACKEND_NAMES:
            raise ValueError(f"backend must be one of {', '.join(serving.BACKEND_NAMES)}, got {self.backend!r}")
        if self.drift_k < 1 and self.drift_k != -1:
            raise ValueError(f"drift_k must be >= 1 (or -1: the whole vocabulary), got {self.drift_k}")
        if self.run_alpha is not None and not 0.0 < self.run_alpha < 1.0:
            raise ValueError(f"run_alpha must be in (0, 1) or \"none\", got {self.run_alpha!r}")


@dataclass(frozen=True, slots=True)
class TaskEntry:
    """One task of the gate: an `evalkit.data.tasks` name, where its rows come from and how many to use."""

    name: str
    source: str | None = None  # file or data folder (relative: to the manifest), "hf" or "hf:<name>"; None: the
    # task's default ($EVALKIT_DATA_DIR, else Hugging Face); zoo tasks are generated and ignore it
    limit: int | None = None  # items on CPU (None: all)
    gpu_limit: int | None = None  # items on CUDA (None: same as limit)
    metric: str | None = None  # primary metric override (default: evalkit.core.metrics.PRIMARY_METRIC of the family)
    thresholds: Mapping[str, Any] = field(default_factory=dict)

    def limit_for(self, device: str) -> int | None:
        """Items to use on `device` ("cpu" or a CUDA device)."""
        return _per_device(device, self.limit, self.gpu_limit)


@dataclass(frozen=True, slots=True)
class Case:
    """One (model, task) pair the gate checks."""

    model: str
    task: str
    parent: str | None
    group: str  # the root of the model's parent chain: its family, for reports
    expect: Literal["pass", "fail"]

    @property
    def id(self) -> str:
        """Test id: ``model-task``."""
        return f"{self.model}-{self.task}"


@dataclass(frozen=True, slots=True)
class Manifest:
    """A parsed, validated gate manifest."""

    source: str  # file it was read from (for messages)
    gate: GateSettings
    tasks: Mapping[str, TaskEntry]
    models: Mapping[str, ModelSpec]
    defaults: Mapping[str, Any] = field(default_factory=dict)
    backends: serving.Backends = field(default_factory=serving.Backends)  # issue 16: [backends.vllm], [backends.openai]

    def cases(self) -> list[Case]:
        """Every (model, task) to check, parents first, in manifest order within each generation."""
        out: list[Case] = []
        for name in sorted(self.models, key=lambda name: len(self._lineage(name))):  # stable: manifest order kept
            spec, group = self.models[name], self.root_of(name)
            out.extend(Case(name, task, spec.parent, group, spec.expect) for task in spec.tasks or tuple(self.tasks))
        return out

    def root_of(self, model: str) -> str:
        """The first ancestor without a parent (the model itself when it has none)."""
        return self._lineage(model)[-1]

    def thresholds(self, model: str, task: str) -> Thresholds:
        """Thresholds for one (model, task): defaults, then the task's, then the model's."""
        layers = {**self.defaults, **self.tasks[task].thresholds, **self.models[model].thresholds}
        return Thresholds(**layers)

    def with_ancestors(self, models: Sequence[str]) -> list[str]:
        """`models` and their parent chains, parents first."""
        return with_ancestors(models, self._parent_of)

    def _lineage(self, model: str) -> list[str]:
        """`model`, its parent, its parent's parent, ... (loads refuses parent cycles, so this ends)."""
        return lineage(model, self._parent_of)

    def _parent_of(self, model: str) -> str | None:
        return self.models[model].parent


# ------------------------------------------------------------------------------------------------------ parsing

_THRESHOLD_KEYS = {f.name: f.type for f in dataclasses.fields(Thresholds)}
_GATE_KEYS = {f.name for f in dataclasses.fields(GateSettings)}
_TASK_KEYS = {"source", "limit", "gpu_limit", "metric", "thresholds"}
_MODEL_KEYS = {"path", "parent", "base", "dtype", "tasks", "expect", "diagnosis", "symptoms", "note", "thresholds",
               *serving.MODEL_KEYS}
_TOP_KEYS = {"gate", "thresholds", "tasks", "models", "backends"}


def load(path: str | os.PathLike[str]) -> Manifest:
    """Read a manifest file; relative model paths are relative to the file's folder."""
    file = Path(path)
    if not file.is_file():
        raise ManifestError(f"{file}: manifest file not found; pass --zoo with the path of a TOML manifest "
                            f"(format: {paths.doc('gate.md')})")
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ManifestError(f"{file}: not UTF-8 text (byte {err.object[err.start]:#04x} at offset {err.start}); a "
                            f"TOML manifest is UTF-8: re-save it as such (format: {paths.doc('gate.md')})") from None
    except OSError as err:
        raise ManifestError(f"{file}: cannot be read ({err.strerror or err})") from None
    return loads(text, root=file.parent, source=str(file))


def loads(text: str, *, root: str | os.PathLike[str] = ".", source: str = "<manifest>") -> Manifest:
    """Parse manifest text; `root` anchors relative model paths."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ManifestError(f"{source}: not valid TOML ({err})") from None
    where = _Where(source)
    where.keys(data, _TOP_KEYS, "the top level")
    root = Path(root)
    gate = _gate(data.get("gate", {}), where)
    defaults = _thresholds(data.get("thresholds", {}), where, "[thresholds]")
    tasks_table = where.table(data.get("tasks", {}), "[tasks]")
    if not tasks_table:
        raise ManifestError(f"{source}: no [tasks.<name>] table; a manifest needs at least one task")
    tasks = {name: _task(name, body, root, where) for name, body in tasks_table.items()}
    models_table = where.table(data.get("models", {}), "[models]")
    if not models_table:
        raise ManifestError(f"{source}: no [models.<name>] table; a manifest needs at least one model")
    models = {name: _model(name, body, root, tasks, where) for name, body in models_table.items()}
    _check_parents(models, tuple(tasks), where)
    backends = serving.parse_backends(data.get("backends", {}), source, root)  # issue 16
    serving.check(gate.backend, gate.drift_k, models, backends, source)
    manifest = Manifest(source=source, gate=gate, tasks=tasks, models=models, defaults=defaults, backends=backends)
    alphas: dict[str, set[float]] = {}
    for case in manifest.cases():  # every combination must build valid thresholds
        try:
            alphas.setdefault(case.model, set()).add(manifest.thresholds(case.model, case.task).alpha)
        except (TypeError, ValueError) as err:
            raise ManifestError(f"{source}: thresholds of model {case.model!r} on task {case.task!r}: {err}") from None
    for model, found in alphas.items():  # one family per model: one alpha
        if len(found) > 1:
            raise ManifestError(f"{source}: model {model!r}: alpha differs between its tasks ({sorted(found)}); a "
                                f"model's checks on all its tasks form one family with one alpha: set alpha in "
                                f"[thresholds] or [models.{model}.thresholds], not per task")
    return manifest


class _Where:
    """Error helpers that name the manifest and the table."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, table: str, problem: str) -> ManifestError:
        return ManifestError(f"{self.source}: {table}: {problem}")

    def table(self, value: Any, table: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(table, f"expected a table, got {type(value).__name__}")
        return value

    def keys(self, body: Mapping[str, Any], allowed: set[str], table: str) -> None:
        unknown = sorted(set(body) - allowed)
        if unknown:
            names = ", ".join(map(repr, unknown))
            raise self.fail(table, f"unknown key(s) {names}; allowed: {', '.join(sorted(allowed))}")

    def typed(self, value: Any, kinds: type | tuple[type, ...], table: str, key: str) -> Any:
        if isinstance(value, bool) and kinds in (int, float, (int, float)):
            raise self.fail(table, f"{key} must be a number, got {value!r}")
        if not isinstance(value, kinds):
            names = kinds.__name__ if isinstance(kinds, type) else " or ".join(k.__name__ for k in kinds)
            raise self.fail(table, f"{key} must be a {names}, got {value!r}")
        return value


def _thresholds(body: Any, where: _Where, table: str) -> dict[str, Any]:
    body = where.table(body, table)
    where.keys(body, set(_THRESHOLD_KEYS), table)
    out: dict[str, Any] = {}
    for key, value in body.items():
        if _THRESHOLD_KEYS[key] == "bool":  # require_power, beat_baseline
            out[key] = where.typed(value, bool, table, key)
        elif value == "none":  # TOML has no null: "none" switches a check off
            if "None" not in str(_THRESHOLD_KEYS[key]):
                raise where.fail(table, f"{key} cannot be switched off")
            out[key] = None
        else:
            out[key] = float(where.typed(value, (int, float), table, key))
    try:
        Thresholds(**out)
    except ValueError as err:
        raise where.fail(table, str(err)) from None
    return out


def _gate(body: Any, where: _Where) -> GateSettings:
    body = where.table(body, "[gate]")
    where.keys(body, _GATE_KEYS, "[gate]")
    kw: dict[str, Any] = {}
    for key, value in body.items():
        if key in ("device", "dtype", "decoder", "backend"):
            kw[key] = where.typed(value, str, "[gate]", key)
        elif key == "cache":
            kw[key] = Path(where.typed(value, str, "[gate]", key))
        elif key == "enable_thinking":
            kw[key] = where.typed(value, bool, "[gate]", key)
        elif key == "run_alpha":
            kw[key] = None if value == "none" else float(where.typed(value, (int, float), "[gate]", key))
        elif key == "weights":
            kw[key] = _weights(value, where)
        else:
            kw[key] = where.typed(value, int, "[gate]", key)
    try:
        return GateSettings(**kw)
    except ValueError as err:
        raise where.fail("[gate]", str(err)) from None


def _weights(body: Any, where: _Where) -> Weights:
    table = "[gate.weights]"
    body = where.table(body, table)
    where.keys(body, {f.name for f in dataclasses.fields(Weights)}, table)
    try:
        return Weights(**{k: float(where.typed(v, (int, float), table, k)) for k, v in body.items()})
    except ValueError as err:
        raise where.fail(table, str(err)) from None


def _task(name: str, body: Any, root: Path, where: _Where) -> TaskEntry:
    table = f"[tasks.{name}]"
    body = where.table(body, table)
    where.keys(body, _TASK_KEYS, table)
    kw: dict[str, Any] = {}
    for key in ("limit", "gpu_limit"):
        if key in body:
            value = where.typed(body[key], int, table, key)
            if value < 1:
                raise where.fail(table, f"{key} must be >= 1, got {value}")
            kw[key] = value
    if "metric" in body:
        kw["metric"] = where.typed(body["metric"], str, table, "metric")
    if "source" in body:
        source = where.typed(body["source"], str, table, "source")
        kw["source"] = source if source == "hf" or source.startswith("hf:") else str(_resolve(source, root))
    kw["thresholds"] = _thresholds(body.get("thresholds", {}), where, f"[tasks.{name}.thresholds]")
    return TaskEntry(name=name, **kw)


def _model(name: str, body: Any, root: Path, tasks: Mapping[str, TaskEntry], where: _Where) -> ModelSpec:
    table = f"[models.{name}]"
    body = where.table(body, table)
    where.keys(body, _MODEL_KEYS, table)
    if "path" not in body:
        raise where.fail(table, "needs a path: a model folder (relative to the manifest) or zoo:<name>")
    raw_path = where.typed(body["path"], str, table, "path")
    path: Path | str = raw_path if raw_path.startswith(ZOO_SCHEME) else _resolve(raw_path, root)
    kw: dict[str, Any] = {"name": name, "path": path}
    for key in ("parent", "dtype", "note"):
        if key in body:
            kw[key] = where.typed(body[key], str, table, key)
    if "base" in body:
        kw["base"] = _resolve(where.typed(body["base"], str, table, "base"), root)
    if "tasks" in body:
        listed = where.typed(body["tasks"], list, table, "tasks")
        unknown = [t for t in listed if t not in tasks]
        if unknown:
            raise where.fail(table, f"tasks {unknown} are not in [tasks]; known: {', '.join(tasks)}")
        kw["tasks"] = tuple(listed)
    expect = body.get("expect", "pass")
    if expect not in ("pass", "fail"):
        raise where.fail(table, f"expect must be \"pass\" or \"fail\", got {expect!r}")
    kw["expect"] = expect
    diagnosis, symptoms = (_names(body, key, table, where) for key in ("diagnosis", "symptoms"))
    if (diagnosis or symptoms) and expect != "fail":
        raise where.fail(table, "diagnosis and symptoms name why a known-broken model fails; each needs "
                                "expect = \"fail\"")
    if expect == "fail" and not diagnosis:
        raise where.fail(table, "expect = \"fail\" needs the expected diagnosis, e.g. diagnosis = \"empty\" "
                                f"(the names: {paths.doc('gate.md')})")
    kw["diagnosis"], kw["symptoms"] = diagnosis, symptoms
    kw["thresholds"] = _thresholds(body.get("thresholds", {}), where, f"[models.{name}.thresholds]")
    kw |= serving.model_fields(body, where.source, table)  # issue 16: backend, base_urls, served_name
    return ModelSpec(**kw)


def _names(body: Mapping[str, Any], key: str, table: str, where: _Where) -> tuple[str, ...]:
    """A diagnosis list of a model table: one name or a list of names."""
    value = body.get(key, ())
    return tuple(where.typed((value,) if isinstance(value, str) else value, (list, tuple), table, key))


def _resolve(path: str, root: Path) -> Path:
    p = Path(os.path.expanduser(path))
    return p if p.is_absolute() else (root / p)


def _check_parents(models: Mapping[str, ModelSpec], all_tasks: tuple[str, ...], where: _Where) -> None:
    for name, spec in models.items():
        if spec.parent is None:
            continue
        if spec.parent not in models:
            raise where.fail(f"[models.{name}]", f"parent {spec.parent!r} is not a model of this manifest; "
                                                 f"known: {', '.join(models)}")
        try:
            lineage(name, lambda model: models[model].parent)
        except CycleError as err:
            raise where.fail(f"[models.{name}]", f"parent chain loops back to {err.name!r}") from None
        # a model without its own task list runs every task, so compare the lists it will actually run
        parent_tasks = models[spec.parent].tasks or all_tasks
        missing = [t for t in spec.tasks or all_tasks if t not in parent_tasks]
        if missing:
            raise where.fail(f"[models.{name}]", f"tasks {missing} are not evaluated for its parent {spec.parent!r}; "
                                                 f"a variant is compared with its parent on the same task")
