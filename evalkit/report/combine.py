"""Which run a report is about: one run folder, or several combined on purpose; never duplicate (model, task) rows.

`evalkit report runs` on a parent folder used to scan every results file below it and report each (model, task) as
often as there were runs, exiting 0. Now a folder that holds several run folders is refused with their names, unless
the caller asks to combine them (``--combine``); combined, a model name that occurs in more than one run is told apart
by its run folder (``pr42/base``, its parent link renamed with it), so every row is one (model, task) of one run. Any folder
whose results still name a (model, task) twice is refused, naming the files.
"""

from __future__ import annotations

import dataclasses
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from evalkit.errors import RunError
from evalkit.report.rundir import Entry, Run, load_run

__all__ = ["combine", "load_for_report", "runs_under"]


def runs_under(folder: str | os.PathLike[str]) -> list[Path]:
    """The run folders (a ``run.json`` each) below `folder`, outermost only, sorted; [] when `folder` is a run."""
    root = Path(folder)
    if (root / "run.json").is_file():
        return []
    found = sorted(p.parent for p in root.rglob("run.json"))
    return [p for p in found if not any(q != p and q in p.parents for q in found)]


def load_for_report(folder: str | os.PathLike[str], *, combine_runs: bool = False) -> Run:
    """The run `evalkit report` reports: `folder` itself, or with `combine_runs` every run below it as one.

    >>> load_for_report("/nonexistent")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    evalkit.errors.RunError: /nonexistent: run folder does not exist; ...
    """
    runs = runs_under(folder) if Path(folder).is_dir() else []
    if len(runs) > 1 and not combine_runs:
        names = ", ".join(str(r.relative_to(folder)) for r in runs)
        raise RunError(f"{folder} holds {len(runs)} runs ({names}); report one of them (evalkit report "
                       f"{runs[0]}), or all of them together with evalkit report {folder} --combine")
    run = combine([load_run(r) for r in runs], root=Path(folder)) if len(runs) > 1 else \
        load_run(runs[0] if runs else folder)
    _refuse_duplicates(run)
    return run


def combine(runs: Sequence[Run], *, root: Path) -> Run:
    """Several runs as one: models, entries and verdicts together; a model name found in more than one run becomes
    ``<run>/<model>`` in each, the run named by its folder below `root` (and so does every parent link to it)."""
    counts = Counter(name for run in runs for name in run.models)
    models: dict[str, Any] = {}
    entries: list[Entry] = []
    verdicts: dict[tuple[str, str], Mapping[str, Any]] = {}
    for run in runs:
        label = run.root.relative_to(root).as_posix() if run.root.is_relative_to(root) else run.name  # unique
        rename = {name: f"{label}/{name}" if counts[name] > 1 else name for name in run.models}
        for name, spec in run.models.items():
            parent = rename.get(spec.parent, spec.parent) if spec.parent else None
            models[rename[name]] = dataclasses.replace(spec, name=rename[name], parent=parent)
        entries += [dataclasses.replace(e, model=rename.get(e.model, e.model)) for e in run.entries]
        for (model, task), v in run.verdicts.items():
            verdicts[(rename.get(model, model), task)] = {**v, "model": rename.get(model, model)}
    manifest = {"name": root.name, "combined": [str(r.root) for r in runs]}
    return Run(root, manifest, models, tuple(entries), verdicts)


def _refuse_duplicates(run: Run) -> None:
    twice = [key for key, n in Counter((e.model, e.task) for e in run.entries).items() if n > 1]
    if twice:
        model, task = twice[0]
        files = [str(e.samples_path or "?") for e in run.entries if (e.model, e.task) == (model, task)]
        raise RunError(f"{run.root}: {len(twice)} (model, task) pairs have more than one result, e.g. {model} on "
                       f"{task} ({'; '.join(files)}); report each run folder on its own")
