"""A run directory: what `evalkit eval` / `evalkit gate` write and `evalkit report` reads.

Layout (one folder per run, e.g. ``runs/<name>/``)::

    run.json                              the run manifest (schema "evalkit.run"): command, models, tasks, entries,
                                          run_id and status ("running", "complete", "interrupted", "failed")
    results/<model>/<task>.json           the engine's results document (docs/results-schema.md)
    results/<model>/<task>.samples.jsonl  one line per sample (prompt, raw text, extraction, diagnosis, score)
    drift/<model>/<task>.json             drift of <model> against its parent on <task> (evalkit.run.drift.DriftResult)
    verdicts.json                         gate verdicts, when the run was gated
    metrics_summary.csv, report.md, report.html   written by `evalkit report`

``<model>`` and ``<task>`` are `evalkit.report.runfolder.folder_name`s: unique per name, at most 64 bytes. The
manifest names every file relative to the run folder and is rewritten after each model, so an interrupted run is
still a readable run that says it is incomplete; every file carries the run's id, and reading checks it, so files of
two runs are never read as one. Where a run may be written (and how an earlier run is replaced, never mixed with)
is `evalkit.report.runfolder`. `load_run` also reads a folder that has engine results but no manifest (every
``*.json`` whose schema is "evalkit.results"), so results written by other tools can be reported too; a damaged
file is one `RunError` naming it.

Each model is kept as the report-facing part of its description (`evalkit.models.description.ModelSpec.run_record`:
method, bit widths, format, recipe, note), which `evalkit.models.description.describe` reads from the folder's small
files without loading any weights.

>>> RUN_SCHEMA, RUN_SCHEMA_VERSION
('evalkit.run', 1)
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from evalkit.core import jsonsafe
from evalkit.errors import RunError
from evalkit.models.description import ModelSpec, describe_model
from evalkit.models.files import try_read_json
from evalkit.report.runfolder import Claim, check_target, folder_name, new_run_id
from evalkit.run.engine import RESULTS_SCHEMA

__all__ = ["Entry", "Run", "RunError", "RunWriter", "load_run", "RUN_SCHEMA", "RUN_SCHEMA_VERSION", "STATUSES"]

RUN_SCHEMA = "evalkit.run"
RUN_SCHEMA_VERSION = 1
STATUSES = ("running", "complete", "interrupted", "failed")
"""A run's status in run.json: written "running" first, then how it ended (a killed run stays "running")."""

# --------------------------------------------------------------------------------------------------- writing


def _write(file: Path, text: str) -> None:
    """Write atomically (temp file, then rename): a reader never sees half a file, even after a crash."""
    file.parent.mkdir(parents=True, exist_ok=True)
    tmp = file.with_name(f".tmp-{file.name}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, file)


class RunWriter:
    """Writes a run folder: `add_model`, then `add_result` / `add_drift` per (model, task) as they finish,
    `add_verdicts`, and `close` (or use it as a context manager: an exception or Ctrl-C closes it "interrupted").

    The folder is checked and claimed at once (`evalkit.report.runfolder`): a bad ``--out`` fails here, before any
    model runs. Paths given to `add_*` land in `folder` (a staging sibling while an earlier run is being replaced).
    """

    def __init__(self, root: str | os.PathLike[str], *, name: str | None = None,
                 settings: Mapping[str, Any] | None = None, command: Sequence[str] | None = None,
                 planned: Sequence[tuple[str, str]] = ()) -> None:
        self.target = Path(root)
        self.run_id = new_run_id()
        self._claim = Claim(check_target(self.target), self.run_id)
        self.root = self._claim.folder
        self.manifest: dict[str, Any] = {
            "schema": RUN_SCHEMA,
            "schema_version": RUN_SCHEMA_VERSION,
            "run_id": self.run_id,
            "status": "running",
            "status_reason": f"written by pid {os.getpid()} on {socket.gethostname()}",
            "name": name or self.target.name,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "command": list(command if command is not None else sys.argv),
            "settings": dict(settings or {}),
            "planned": [list(p) for p in planned],
            "models": {},
            "tasks": {},
            "entries": [],
        }
        self._index: dict[tuple[str, str], dict[str, Any]] = {}
        self._closed = False
        self.write_manifest()

    @property
    def folder(self) -> Path:
        return self.root

    def add_model(self, spec: ModelSpec) -> None:
        self.manifest["models"][spec.name] = spec.run_record()
        self.write_manifest()

    def add_result(self, model: str, result: Any) -> tuple[Path, Path]:
        """Write one `evalkit.run.engine.TaskResult` (stamped with the run's id) and record it."""
        task = result.task.name
        folder = self.root / "results" / folder_name(model)
        results, samples = folder / f"{folder_name(task)}.json", folder / f"{folder_name(task)}.samples.jsonl"
        _write(samples, "".join(jsonsafe.dumps({**r.to_dict(), "run_id": self.run_id}) + "\n" for r in result.records))
        _write(results, jsonsafe.dumps({**result.to_dict(), "run_id": self.run_id}, indent=2) + "\n")
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
        doc = {"schema": "evalkit.drift", "schema_version": 1, "run_id": self.run_id, "model": model,
               "parent": parent, "task": task, **data}
        file = self.root / "drift" / folder_name(model) / f"{folder_name(task)}.json"
        _write(file, jsonsafe.dumps(doc, indent=2) + "\n")
        self._entry(model, task)["drift"] = file.relative_to(self.root).as_posix()
        self.write_manifest()
        return file

    def add_verdicts(self, verdicts: Sequence[Mapping[str, Any]]) -> Path:
        """Write verdicts.json: one `evalkit.gate.Verdict.to_dict()` per (model, task) (model, task, status, outcome,
        diagnoses, checks with their messages, summary)."""
        file = self.root / "verdicts.json"
        doc = {"schema": "evalkit.verdicts", "schema_version": 1, "run_id": self.run_id,
               "verdicts": [dict(v) for v in verdicts]}
        _write(file, jsonsafe.dumps(doc, indent=2) + "\n")
        self.manifest["verdicts"] = file.name
        self.write_manifest()
        return file

    def has(self, model: str, task: str) -> bool:
        """Whether (model, task) has its results written."""
        return bool(self._index.get((model, task), {}).get("results"))

    def _entry(self, model: str, task: str) -> dict[str, Any]:
        key = (model, task)
        if key not in self._index:
            entry = {"model": model, "task": task, "results": None, "samples": None, "drift": None}
            self.manifest["entries"].append(entry)
            self._index[key] = entry
        return self._index[key]

    def write_manifest(self) -> Path:
        file = self.root / "run.json"
        _write(file, jsonsafe.dumps(self.manifest, indent=2) + "\n")
        return file

    def close(self, status: str = "complete", reason: str = "") -> Path:
        """Record how the run ended and put the folder in place (swapping out an earlier run); returns it."""
        if self._closed:
            return self.target
        self._closed = True
        self.manifest["status"] = status
        self.manifest["status_reason"] = reason
        self.manifest["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        try:
            self.write_manifest()
        finally:
            self.root = self._claim.finish()
        return self.root

    def __enter__(self) -> RunWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None, _tb: Any) -> None:
        if kind is None:
            self.close()
        elif issubclass(kind, KeyboardInterrupt):
            self.close("interrupted", "interrupted (Ctrl-C or SIGINT) before every model was evaluated")
        else:
            self.close("interrupted" if issubclass(kind, SystemExit) else "failed",
                       f"{kind.__name__}: {err}".strip().splitlines()[0][:300])


# --------------------------------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class Entry:
    """One (model, task) of a run: the results document, and drift against the parent when there is one."""

    model: str
    task: str
    result: Mapping[str, Any]
    samples_path: Path | None = None
    drift: Mapping[str, Any] | None = None
    run_id: str | None = None  # the run the files must belong to (None: a run written before run ids)

    def samples(self) -> list[dict[str, Any]]:
        """The per-sample records (empty when the run kept none); a damaged line is a `RunError` naming it."""
        if self.samples_path is None or not self.samples_path.exists():
            return []
        out = []
        try:
            with self.samples_path.open(encoding="utf-8") as fh:
                for lineno, line in enumerate(fh, 1):
                    if not line.strip():
                        continue
                    try:
                        row = jsonsafe.loads(line)
                    except (ValueError, RecursionError) as err:
                        raise RunError(f"{self.samples_path}:{lineno}: not a JSON sample ({err}); the run folder is "
                                       "damaged: re-run `evalkit eval` into it") from None
                    if not isinstance(row, dict):
                        raise RunError(f"{self.samples_path}:{lineno}: expected a JSON object per line, got "
                                       f"{type(row).__name__}; re-run `evalkit eval` into the folder")
                    _same_run(self.samples_path, row, self.run_id, f"line {lineno} ")
                    out.append(row)
        except (OSError, UnicodeDecodeError) as err:
            raise RunError(f"{self.samples_path}: not readable ({err}); re-run `evalkit eval` into the folder") from None
        return out


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

    @property
    def status(self) -> str:
        """"complete" (or a run written before statuses), "running", "interrupted" or "failed"."""
        value = self.manifest.get("status", "complete")
        return value if value in STATUSES else "complete"

    @property
    def incomplete(self) -> str:
        """Why the run is incomplete, one line ("" for a complete run): what reports print at the top."""
        if self.status == "complete":
            return ""
        planned = self.manifest.get("planned") or []
        counted = f"{len(self.entries)} of {len(planned)}" if planned else f"{len(self.entries)}"
        how = {"running": "it never recorded an end (still running, or killed)",
               "interrupted": "it was interrupted", "failed": "it failed"}[self.status]
        reason = str(self.manifest.get("status_reason") or "")
        return (f"incomplete run: {how}{f' ({reason})' if reason and self.status != 'running' else ''}; "
                f"{counted} (model, task) results were written")

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
        run_id = manifest.get("run_id")
        run_id = run_id if isinstance(run_id, str) else None
        read = [_entry(folder, manifest_file, i, raw, run_id) for i, raw in enumerate(_list(manifest, "entries",
                                                                                              manifest_file))]
        entries = [e for e in read if e is not None]
        models = _models(manifest, manifest_file)
    else:
        manifest, entries, models, run_id = {"name": folder.name}, _scan(folder), {}, None
    if not entries and not (manifest_file.exists() and manifest.get("status") in ("running", "interrupted", "failed")):
        raise RunError(f"{folder}: no results in this run folder (no run.json entries, no *.json with schema "
                       f"{RESULTS_SCHEMA!r}); run `evalkit eval ... --out {folder}` first")
    for e in entries:  # models known only from their results (a scanned folder): describe them from their path
        if e.model not in models:
            model_info = e.result.get("model")
            path = str(model_info.get("path", "")) if isinstance(model_info, dict) else ""
            models[e.model] = describe_model(path, name=e.model) if path else ModelSpec(e.model, "", format="unknown")
    verdicts_name = manifest.get("verdicts", "verdicts.json")
    verdicts = _read_verdicts(_inside(folder, verdicts_name, manifest_file, "verdicts"), run_id)
    return Run(folder, manifest, models, tuple(entries), verdicts)


def _entry(folder: Path, manifest_file: Path, i: int, raw: Any, run_id: str | None) -> Entry | None:
    where = f"entries[{i}]"
    if not isinstance(raw, dict) or not isinstance(raw.get("model"), str) or not isinstance(raw.get("task"), str):
        raise RunError(f"{manifest_file}: {where} is not a (model, task) entry; the file is damaged: re-run "
                       "`evalkit eval` into a fresh folder")
    if not raw.get("results"):
        return None
    results = _inside(folder, raw["results"], manifest_file, f"{where}.results")
    result = _read_doc(results, RESULTS_SCHEMA)
    _same_run(results, result, run_id)
    drift = None
    if raw.get("drift"):
        drift_file = _inside(folder, raw["drift"], manifest_file, f"{where}.drift")
        drift = _read_doc(drift_file, "evalkit.drift")
        _same_run(drift_file, drift, run_id)
    samples = _inside(folder, raw["samples"], manifest_file, f"{where}.samples") if raw.get("samples") else None
    return Entry(raw["model"], raw["task"], result, samples, drift, run_id)


def _inside(folder: Path, name: Any, manifest_file: Path, what: str) -> Path:
    """A file named by run.json: a relative path inside the run folder, never outside it."""
    if not isinstance(name, str) or Path(name).is_absolute() or ".." in Path(name).parts:
        raise RunError(f"{manifest_file}: {what} is {name!r}, not a path inside the run folder; the file is damaged: "
                       "re-run `evalkit eval` into a fresh folder")
    return folder / name


def _same_run(file: Path, doc: Mapping[str, Any], run_id: str | None, what: str = "") -> None:
    """A file of another run (a rerun's leftovers, a copy from elsewhere) is refused, never mixed in."""
    if run_id is not None and doc.get("run_id") != run_id:
        raise RunError(f"{file}: {what}belongs to run {doc.get('run_id')!r}, not to this folder's run {run_id!r} "
                       "(run.json): the folder mixes two runs; re-run `evalkit eval` into a fresh folder")


def _list(doc: Mapping[str, Any], key: str, file: Path) -> list[Any]:
    value = doc.get(key, [])
    if not isinstance(value, list):
        raise RunError(f"{file}: {key!r} is a {type(value).__name__}, expected a list; the file is damaged: re-run "
                       "`evalkit eval` into a fresh folder")
    return value


def _models(manifest: Mapping[str, Any], file: Path) -> dict[str, ModelSpec]:
    raw = manifest.get("models", {})
    if not isinstance(raw, dict):
        raise RunError(f"{file}: 'models' is a {type(raw).__name__}, expected an object; re-run `evalkit eval`")
    models = {}
    for name, data in raw.items():
        try:
            if not isinstance(data, dict):
                raise TypeError(f"a {type(data).__name__}")
            models[name] = ModelSpec.from_run_record({**data, "name": name})
        except (TypeError, ValueError, KeyError) as err:
            raise RunError(f"{file}: models[{name!r}] is not a model record ({err}); re-run `evalkit eval`") from None
    return models


def _scan(folder: Path) -> list[Entry]:
    entries = []
    for file in sorted(folder.rglob("*.json")):
        doc = try_read_json(file)
        if not doc or doc.get("schema") != RESULTS_SCHEMA:
            continue
        model_info: dict[str, Any] = doc["model"] if isinstance(doc.get("model"), dict) else {}
        model_path = str(model_info.get("path", "")) or file.parent.name
        model = Path(model_path).name if file.parent == folder else file.parent.name
        task_info: dict[str, Any] = doc["task"] if isinstance(doc.get("task"), dict) else {}
        samples = file.with_name(file.stem + ".samples.jsonl")
        entries.append(Entry(model, str(task_info.get("name", file.stem)), doc,
                             samples if samples.exists() else None, None))
    return entries


def _read_doc(file: Path, schema: str) -> dict[str, Any]:
    try:
        doc = jsonsafe.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunError(f"{file}: missing; the run folder is incomplete (re-run `evalkit eval` into it)") from None
    except IsADirectoryError:
        raise RunError(f"{file}: a folder where a JSON file should be; re-run `evalkit eval` into a fresh "
                       "folder") from None
    except (OSError, ValueError, RecursionError) as err:
        raise RunError(f"{file}: not readable JSON ({err}); re-run `evalkit eval` into a fresh folder") from None
    if not isinstance(doc, dict) or doc.get("schema") != schema:
        found = doc.get("schema") if isinstance(doc, dict) else type(doc).__name__
        raise RunError(f"{file}: expected a {schema!r} document, found schema {found!r}")
    return doc


def _read_verdicts(file: Path, run_id: str | None) -> dict[tuple[str, str], dict[str, Any]]:
    if not file.exists():
        return {}
    doc = _read_doc(file, "evalkit.verdicts")
    _same_run(file, doc, run_id)
    out = {}
    for i, v in enumerate(_list(doc, "verdicts", file)):
        if not isinstance(v, dict) or not isinstance(v.get("model"), str) or not isinstance(v.get("task"), str):
            raise RunError(f"{file}: verdicts[{i}] is not a verdict (an object with model and task); re-run "
                           "`evalkit gate` into a fresh folder")
        out[(v["model"], v["task"])] = v
    return out
