"""The one validation pass before anything is evaluated: every value a run will use, checked against the real
registries and the real files, so a bad input fails in seconds with one line naming the thing and the fix.

Why a pass of its own: parsing a manifest (`evalkit.gate.manifest.loads`) checks its syntax, types and ranges, but
the names in it only meet their registries deep inside a run. A misspelt task failed every model on it; a bad
``metric`` crashed the whole run with a traceback; a misspelt diagnosis made a known-broken model MISDIAGNOSED
forever; ``--device cuda`` on a machine without a GPU failed each model with torch's message. Here each of them is
one error before the first model loads. ``evalkit gate``, ``eval``, ``compare``, ``debug`` and ``quantize`` call it,
and the pytest plugin at configure time (a bad manifest is a usage error there).

Model folders are not checked here: in a gate one missing or broken model fails alone (``load_error``) and never
takes the others down; the command line checks the folders it was given itself (`evalkit.models.loading.detect_format`).

>>> from evalkit.gate.manifest import loads
>>> check_manifest(loads('[tasks.zoo_math]\\nmetric = "f1"\\n[models.a]\\npath = "a"\\n'))
Traceback (most recent call last):
evalkit.errors.ManifestError: <manifest>: [tasks.zoo_math]: metric 'f1' does not apply to zoo_math (a math task); use accuracy
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from evalkit import zoo
from evalkit.core.extract import Diagnosis
from evalkit.core.metrics import METRICS, paired_metrics
from evalkit.data.tasks import TASKS, Task, load_task
from evalkit.errors import EvalkitError, ManifestError, TaskError
from evalkit.gate.manifest import Manifest, _Where
from evalkit.gate.records import LABELS
from evalkit.models.loading import check_dtype
from evalkit.run.device import check_device

__all__ = ["DIAGNOSES", "check_manifest", "check_model_name", "check_run", "check_tasks"]

_T = TypeVar("_T")

DIAGNOSES: tuple[str, ...] = tuple(d.value for d in Diagnosis) + tuple(LABELS)
"""Every diagnosis a verdict can name: what ``diagnosis = ...`` of a known-broken model may list."""


def check_model_name(name: str, where: str) -> None:
    """A model name is printed in tables and kept in run folders: it must be one line of visible text.

    >>> check_model_name("a\\nb", "model")
    Traceback (most recent call last):
    evalkit.errors.ManifestError: model 'a\\nb': a model name must be one line of printable text (no control characters)
    """
    if not name.strip() or any(not ch.isprintable() for ch in name):
        raise ManifestError(f"{where} {name!r}: a model name must be one line of printable text (no control "
                            "characters)")


def check_manifest(m: Manifest) -> None:
    """Every value of the manifest against its registry: task names, metrics, diagnosis names, ``zoo:`` names,
    model names, dtypes and the device's spelling (whether the device exists is `check_run`'s). `ManifestError`."""
    where = _Where(m.source)
    fail = where.fail
    for name, entry in m.tasks.items():
        table = f"[tasks.{name}]"
        spec = _named(where, table, lambda: TASKS.get(name))
        if entry.metric is not None:
            known = METRICS.names()
            if entry.metric not in known:
                raise fail(table, f"unknown metric {entry.metric!r}; known metrics: {', '.join(known)}")
            fits = [n for n in paired_metrics() if spec.family in METRICS.get(n).families]
            if entry.metric not in fits:
                raise fail(table, f"metric {entry.metric!r} does not apply to {name} (a {spec.family} task); use "
                                  f"{' or '.join(fits)}")
        if spec.parse is not None and entry.source is not None and not entry.source.startswith("hf"):
            if not Path(entry.source).exists():
                raise fail(table, f"source {entry.source} does not exist; pass the dataset file (.jsonl, .json, "
                                  ".parquet), its data folder, or \"hf\"")
    for name, model in m.models.items():
        table = f"[models.{name}]"
        _named(where, table, lambda: check_model_name(name, "model"))
        if model.zoo_name is not None:
            _named(where, table, lambda: zoo.variant(str(model.zoo_name)))
        unknown = [d for d in model.diagnosis if d not in DIAGNOSES]
        if unknown:
            raise fail(table, f"unknown diagnosis {unknown[0]!r}; a verdict names one of: {', '.join(DIAGNOSES)}")
        _named(where, table, lambda: check_dtype(model.dtype))
    _named(where, "[gate]", lambda: check_dtype(m.gate.dtype))
    if m.gate.device not in ("auto", "cpu") and not m.gate.device.startswith("cuda"):
        _named(where, "[gate]", lambda: check_device(m.gate.device, what="device"))


def check_run(m: Manifest, device: str | None = None) -> str:
    """`check_manifest`, then the device this run will use (`device`, else the manifest's) on this machine;
    returns it resolved ("auto" stays "auto")."""
    check_manifest(m)
    return check_device(device or m.gate.device, what="--device" if device else f"{m.source}: [gate]: device")


def check_tasks(m: Manifest, *, limit: int | None = None, device: str = "cpu") -> dict[str, Task]:
    """Load every task of the manifest once (its data file read and parsed), before any model: a missing,
    binary, UTF-16, empty or corrupt file is one `TaskError` naming the file, here and not once per model."""
    out = {}
    for name, entry in m.tasks.items():
        n = limit if limit is not None else entry.limit_for(device)
        try:
            out[name] = load_task(name, entry.source, limit=n, seed=m.gate.seed)
        except TaskError as err:
            raise TaskError(f"{m.source}: [tasks.{name}]: {err}") from None
    return out


def _named(where: _Where, table: str, lookup: Callable[[], _T]) -> _T:
    """Run `lookup` (a registry look-up or a check); its one-line error, prefixed with the manifest and table."""
    try:
        return lookup()
    except EvalkitError as err:
        raise where.fail(table, str(err)) from None
