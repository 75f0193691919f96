"""Writing run folders and reports: the run folder from a finished gate's evidence (`write_run`, what
``evalkit eval`` / ``evalkit gate`` / ``evalkit compare`` keep), and the CSV, Markdown and HTML reports of a run
folder (`write_reports`, what ``evalkit report`` writes)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from evalkit.gate.render import GateReport
from evalkit.gate.runner import Gate
from evalkit.models.description import ModelSpec
from evalkit.report import lm_eval
from evalkit.report.html import html
from evalkit.report.markdown import markdown
from evalkit.report.combine import load_for_report
from evalkit.report.rundir import RunWriter
from evalkit.report.tables import csv_text, rows

__all__ = ["ReportPaths", "write_reports", "write_run"]


def write_run(out: Path, gate: Gate, report: GateReport, models: Mapping[str, ModelSpec], *, name: str | None,
              argv: Sequence[str]) -> list[str]:
    """Write the run folder from the gate's evidence; returns the errors met (models that could not be evaluated).

    models: every model of the run, described (`evalkit.models.description.describe`); parents outside the
    reported cases are written too, so each variant can be compared with its parent.
    """
    g = gate.manifest.gate
    settings = {"device": gate.device, "limit": gate.limit, "max_new_tokens": g.max_new_tokens,
                "batch_size": g.batch_size, "enable_thinking": g.enable_thinking, "decoder": g.decoder, "seed": g.seed,
                "tasks": {t: dataclasses.asdict(e) for t, e in gate.manifest.tasks.items()},
                "manifest": gate.manifest.source}
    writer = RunWriter(out, name=name or out.name, settings=settings, command=["evalkit", *argv])
    for spec in models.values():
        writer.add_model(spec)
    errors: list[str] = []
    reported = [(v.model, v.task) for v in report.verdicts]
    parents: list[tuple[str, str]] = []  # parents outside the reported cases: their results, for the comparisons
    for model, task in reported:
        for ancestor in gate.manifest.with_ancestors([model]):
            if (ancestor, task) not in reported and (ancestor, task) not in parents:
                parents.append((ancestor, task))
    for model, task in parents + reported:
        ev = gate.evidence(model, task)
        if ev.result is None:
            errors.append(f"{model} on {task}: {ev.error}")
            continue
        writer.add_result(model, ev.result)
        if ev.parent_name is not None and ev.drift is not None:
            writer.add_drift(model, task, ev.parent_name, ev.drift)
        elif ev.parent_name is not None and ev.drift_error:
            writer.add_drift(model, task, ev.parent_name, {"error": ev.drift_error.text})
    writer.add_verdicts([v.to_dict() for v in report.verdicts])
    return list(dict.fromkeys(errors))


@dataclass(frozen=True)
class ReportPaths:
    csv: Path
    markdown: Path
    html: Path
    lm_eval: tuple[Path, ...] = ()  # one lm-evaluation-harness results file per model (`evalkit.report.lm_eval`)


def write_reports(run_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str] | None = None, *,
                  combine: bool = False) -> ReportPaths:
    """Write metrics_summary.csv, report.md and report.html for the run in `run_dir` (into `out_dir`, default the
    run folder itself). A folder of several runs is refused unless `combine` (`evalkit.report.combine`)."""
    run = load_for_report(run_dir, combine_runs=combine)
    out = Path(out_dir) if out_dir is not None else run.root
    out.mkdir(parents=True, exist_ok=True)
    table = rows(run)
    paths = ReportPaths(out / "metrics_summary.csv", out / "report.md", out / "report.html")
    paths.csv.write_text(csv_text(table), encoding="utf-8")
    paths.markdown.write_text(markdown(run, table), encoding="utf-8")
    paths.html.write_text(html(run, table), encoding="utf-8")
    return dataclasses.replace(paths, lm_eval=tuple(lm_eval.write_all(run, out)))
