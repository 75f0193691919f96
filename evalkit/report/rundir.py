"""A run directory: what `evalkit eval` / `evalkit gate` write and `evalkit report` reads.

Layout (one folder per run, e.g. ``runs/<name>/``)::

    run.json                              the run manifest (schema "evalkit.run"): command, models, tasks, entries
    results/<model>/<task>.json           the engine's results document (docs/results-schema.md)
    results/<model>/<task>.samples.jsonl  one line per sample (prompt, raw text, extraction, diagnosis, score)
    drift/<model>/<task>.json             drift of <model> against its parent on <task> (evalkit.run.drift.DriftResult)
    verdicts.json                         gate verdicts, when the run was gated
    metrics_summary.csv, report.md, report.html   written by `evalkit report`

The manifest names every file relative to the run folder, and is rewritten after each (model, task), so an
interrupted run is still a readable run. `load_run` also reads a folder that has engine results but no manifest
(every ``*.json`` whose schema is "evalkit.results"), so results written by other tools can be reported too.

Each model is kept as the report-facing part of its description (`evalkit.models.description.ModelSpec.run_record`:
method, bit widths, format, recipe, note), which `evalkit.models.description.describe` reads from the folder's small
files without loading any weights.

>>> RUN_SCHEMA, RUN_SCHEMA_VERSION
('evalkit.run', 1)
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from evalkit.errors import RunError
from evalkit.models.description import ModelSpec, describe_model
from evalkit.models.files import try_read_json
from evalkit.run.engine import RESULTS_SCHEMA

__all__ = ["Entry", "Run", "RunError", "RunWriter", "load_run", "RUN_SCHEMA", "RUN_SCHEMA_VERSION"]

RUN_SCHEMA = "evalkit.run"
RUN_SCHEMA_VERSION = 1

# --------------------------------------------------------------------------------------------------- writing

_SAFE = re.compile(r"[^A-Za-z0-9._+-]+")


def safe_name(name: str) -> str:
    """A model or task name as a file name.

    >>> safe_name("zoo:base/x y")
    'zoo_base_x_y'
    """
    return _SAFE.sub("_", name).strip("._") or "_"


class RunWriter:
    """Writes a run folder: call `add_model`, then `add_result` / `add_drift` per (model, task) as they finish."""

    def __init__(self, root: str | os.PathLike[str], *, name: str | None = None,
                 settings: Mapping[str, Any] | None = None, command: Sequence[str] | None = None) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.manifest: dict[str, Any] = {
            "schema": RUN_SCHEMA,
            "schema_version": RUN_SCHEMA_VERSION,
            "name": name or self.root.name,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "command": list(command if command is not None else sys.argv),
            "settings": dict(settings or {}),
            "models": {},
            "tasks": {},
            "entries": [],
        }
        self._index: dict[tuple[str, str], dict[str, Any]] = {}
        self.write_manifest()

    def add_model(self, spec: ModelSpec) -> None:
        self.manifest["models"][spec.name] = spec.run_record()
        self.write_manifest()

    def add_result(self, model: str, result: Any) -> tuple[Path, Path]:
        """Write one `evalkit.run.engine.TaskResult` and record it."""
        task = result.task.name
        folder = self.root / "results" / safe_name(model)
        results, samples = result.write(folder, stem=safe_name(task))
        self.manifest["tasks"].setdefault(task, {"family": result.task.family, "source": result.task.source,
                                                 "n": len(result.records)})
        entry = self._entry(model, task)
        entry["results"] = results.relative_to(self.root).as_posix()
        entry["samples"] = samples.relative_to(self.root).as_posix()
        self.write_manifest()
        return results, samples

    def add_drift(self, model: str, task: str, parent: str, drift: Any) -> Path:
        """Write one `evalkit.run.drift.DriftResult` (or a dict with "error") of `model` against `parent` on `task`."""
        data = drift.to_dict() if hasattr(drift, "to_dict") else dict(drift)
        doc = {"schema": "evalkit.drift", "schema_version": 1, "model": model, "parent": parent, "task": task, **data}
        file = self.root / "drift" / safe_name(model) / f"{safe_name(task)}.json"
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        self._entry(model, task)["drift"] = file.relative_to(self.root).as_posix()
        self.write_manifest()
        return file

    def add_verdicts(self, verdicts: Sequence[Mapping[str, Any]]) -> Path:
        """Write verdicts.json: one `evalkit.gate.Verdict.to_dict()` per (model, task) (model, task, status, outcome,
        diagnoses, checks with their messages, summary)."""
        file = self.root / "verdicts.json"
        doc = {"schema": "evalkit.verdicts", "schema_version": 1, "verdicts": [dict(v) for v in verdicts]}
        file.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        self.manifest["verdicts"] = file.name
        self.write_manifest()
        return file

    def _entry(self, model: str, task: str) -> dict[str, Any]:
        key = (model, task)
        if key not in self._index:
            entry = {"model": model, "task": task, "results": None, "samples": None, "drift": None}
            self.manifest["entries"].append(entry)
            self._index[key] = entry
        return self._index[key]

    def write_manifest(self) -> Path:
        file = self.root / "run.json"
        tmp = file.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(tmp, file)
        return file


# --------------------------------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class Entry:
    """One (model, task) of a run: the results document, and drift against the parent when there is one."""

    model: str
    task: str
    result: Mapping[str, Any]
    samples_path: Path | None = None
    drift: Mapping[str, Any] | None = None

    def samples(self) -> list[dict[str, Any]]:
        """The per-sample records (empty when the run kept none)."""
        if self.samples_path is None or not self.samples_path.exists():
            return []
        with self.samples_path.open(encoding="utf-8") as fh:
            return [json.loads(line) for line in fh if line.strip()]


@dataclass(frozen=True)
class Run:
    """A run folder, read."""

    root: Path
    manifest: Mapping[str, Any]
    models: Mapping[str, ModelSpec]  # each as `ModelSpec.run_record` kept it
    entries: tuple[Entry, ...]
    verdicts: Mapping[tuple[str, str], Mapping[str, Any]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.manifest.get("name") or self.root.name)

    @property
    def tasks(self) -> list[str]:
        return list(dict.fromkeys(e.task for e in self.entries))

    def entry(self, model: str, task: str) -> Entry | None:
        return next((e for e in self.entries if e.model == model and e.task == task), None)


def load_run(root: str | os.PathLike[str]) -> Run:
    """Read a run folder written by `RunWriter` (or any folder of engine results).

    >>> load_run("/nonexistent")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    evalkit.errors.RunError: /nonexistent: run folder does not exist; ...
    """
    folder = Path(root)
    if not folder.is_dir():
        raise RunError(f"{folder}: run folder does not exist; pass the --out folder of `evalkit eval` or "
                       "`evalkit gate` (e.g. runs/zoo)")
    manifest_file = folder / "run.json"
    if manifest_file.exists():
        manifest = _read_doc(manifest_file, RUN_SCHEMA)
        entries = []
        for raw in manifest.get("entries", []):
            if not raw.get("results"):
                continue
            result = _read_doc(folder / raw["results"], RESULTS_SCHEMA)
            drift = _read_doc(folder / raw["drift"], "evalkit.drift") if raw.get("drift") else None
            samples = folder / raw["samples"] if raw.get("samples") else None
            entries.append(Entry(raw["model"], raw["task"], result, samples, drift))
        models = {name: ModelSpec.from_run_record({"name": name, **data})
                  for name, data in manifest.get("models", {}).items()}
    else:
        manifest, entries, models = {"name": folder.name}, _scan(folder), {}
    if not entries:
        raise RunError(f"{folder}: no results in this run folder (no run.json entries, no *.json with schema "
                       f"{RESULTS_SCHEMA!r}); run `evalkit eval ... --out {folder}` first")
    for e in entries:  # models known only from their results (a scanned folder): describe them from their path
        if e.model not in models:
            path = str(e.result.get("model", {}).get("path", ""))
            models[e.model] = describe_model(path, name=e.model) if path else ModelSpec(e.model, "", format="unknown")
    verdicts = _read_verdicts(folder / str(manifest.get("verdicts", "verdicts.json")))
    return Run(folder, manifest, models, tuple(entries), verdicts)


def _scan(folder: Path) -> list[Entry]:
    entries = []
    for file in sorted(folder.rglob("*.json")):
        doc = try_read_json(file)
        if not doc or doc.get("schema") != RESULTS_SCHEMA:
            continue
        model_path = str(doc.get("model", {}).get("path", "")) or file.parent.name
        model = Path(model_path).name if file.parent == folder else file.parent.name
        samples = file.with_name(file.stem + ".samples.jsonl")
        entries.append(Entry(model, str(doc.get("task", {}).get("name", file.stem)), doc,
                             samples if samples.exists() else None, None))
    return entries


def _read_doc(file: Path, schema: str) -> dict[str, Any]:
    try:
        doc = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunError(f"{file}: missing; the run folder is incomplete (re-run `evalkit eval` into it)") from None
    except (OSError, ValueError) as err:
        raise RunError(f"{file}: not readable JSON ({err}); re-run `evalkit eval` into a fresh folder") from None
    if not isinstance(doc, dict) or doc.get("schema") != schema:
        found = doc.get("schema") if isinstance(doc, dict) else type(doc).__name__
        raise RunError(f"{file}: expected a {schema!r} document, found schema {found!r}")
    return doc


def _read_verdicts(file: Path) -> dict[tuple[str, str], dict[str, Any]]:
    if not file.exists():
        return {}
    doc = _read_doc(file, "evalkit.verdicts")
    return {(str(v["model"]), str(v["task"])): v for v in doc.get("verdicts", []) if "model" in v and "task" in v}
