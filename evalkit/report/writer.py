"""Writing run folders and reports: the run folder as a gate runs (`RunRecorder`, what ``evalkit eval`` /
``evalkit gate`` / ``evalkit compare`` keep; `write_run` is its one-call form over a finished gate), and the CSV,
Markdown and HTML reports of a run folder (`write_reports`, what ``evalkit report`` writes)."""

from __future__ import annotations

import dataclasses
import io
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalkit.errors import RunError
from evalkit.gate.manifest import Case
from evalkit.gate.records import Failure
from evalkit.gate.render import GateReport
from evalkit.gate.runner import Gate
from evalkit.models.description import ModelSpec
from evalkit.report import lm_eval
from evalkit.report.html import html
from evalkit.report.markdown import markdown
from evalkit.report.combine import load_for_report
from evalkit.report.runfolder import REPORT_FILES
from evalkit.report.rundir import RUN_SCHEMA, RunWriter
from evalkit.report.tables import csv_text, rows

__all__ = ["ReportPaths", "RunRecorder", "write_reports", "write_run"]


class RunRecorder:
    """A run folder written while the gate runs: each model's results and drift as soon as it is done
    (`evalkit.gate.runner.Gate`'s ``on_model``), the verdicts at the end (`finish`).

    Created before the first model loads, so a bad ``--out`` is one error up front; used as a context manager, an
    exception or Ctrl-C leaves a readable folder whose run.json says it is incomplete, with what was finished.

    describe: a model's name -> its description (`evalkit.models.description.describe`), asked once the model is
    done (a zoo variant's folder is built by then); parents outside the reported cases are written too, so each
    variant can be compared with its parent. cases: what the run means to evaluate (an incomplete run says how
    much of it is there).
    """

    def __init__(self, out: Path, gate: Gate, describe: Callable[[str], ModelSpec], *, name: str | None,
                 argv: Sequence[str], cases: Sequence[Case] = ()) -> None:
        g = gate.manifest.gate
        settings = {"device": gate.device, "limit": gate.limit, "max_new_tokens": g.max_new_tokens,
                    "batch_size": g.batch_size, "enable_thinking": g.enable_thinking, "decoder": g.decoder,
                    "seed": g.seed, "tasks": {t: dataclasses.asdict(e) for t, e in gate.manifest.tasks.items()},
                    "manifest": gate.manifest.source}
        self.gate, self.describe = gate, describe
        self.writer = RunWriter(out, name=name or out.name, settings=settings, command=["evalkit", *argv],
                                planned=[(c.model, c.task) for c in cases])
        gate.on_model = self.model_done

    def model_done(self, model: str) -> None:
        """Describe `model` and write every finished (model, task) of it."""
        if model not in self.writer.manifest["models"]:
            self.writer.add_model(self.describe(model))
        spec = self.gate.manifest.models[model]
        for task in spec.tasks or tuple(self.gate.manifest.tasks):
            self._write(model, task)

    def _write(self, model: str, task: str) -> None:
        if self.writer.has(model, task):
            return
        result, drift = self.gate.done(model, task)
        if result is None or isinstance(result, Failure):
            return
        self.writer.add_result(model, result)
        parent = self.gate.manifest.models[model].parent
        if parent is not None and isinstance(drift, Failure):
            self.writer.add_drift(model, task, parent, {"error": drift.text})
        elif parent is not None and drift is not None:
            self.writer.add_drift(model, task, parent, drift)

    def finish(self, report: GateReport) -> list[str]:
        """Write what is left and the verdicts, and close the run "complete"; returns the errors met (models that
        could not be evaluated)."""
        errors: list[str] = []
        reported = [(v.model, v.task) for v in report.verdicts]
        parents: list[tuple[str, str]] = []  # parents outside the reported cases: their results, for the comparisons
        for model, task in reported:
            for ancestor in self.gate.manifest.with_ancestors([model]):
                if (ancestor, task) not in reported and (ancestor, task) not in parents:
                    parents.append((ancestor, task))
        for model, task in parents + reported:
            ev = self.gate.evidence(model, task)
            if model not in self.writer.manifest["models"]:
                self.writer.add_model(self.describe(model))
            if ev.result is None:
                errors.append(f"{model} on {task}: {ev.error}")
                continue
            self._write(model, task)
        self.writer.add_verdicts([v.to_dict() for v in report.verdicts])
        self._keep_log()
        self.writer.close()
        return list(dict.fromkeys(errors))

    def _keep_log(self) -> None:
        """run.log in the run folder: evalkit's steps and the libraries' own output, which the terminal did not
        show (the gate's ``third_party`` sink; nothing with ``--verbose``)."""
        sink = self.gate.third_party
        if isinstance(sink, io.StringIO):
            (self.writer.folder / "run.log").write_text(sink.getvalue(), encoding="utf-8")

    def __enter__(self) -> RunRecorder:
        return self

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None, tb: Any) -> None:
        if kind is not None:
            try:
                self._keep_log()
            except OSError:  # the folder itself is what failed: the run's own error says so
                pass
            self.writer.__exit__(kind, err, tb)


def write_run(out: Path, gate: Gate, report: GateReport, models: Mapping[str, ModelSpec], *, name: str | None,
              argv: Sequence[str]) -> list[str]:
    """Write the run folder of a finished gate in one call; returns the errors met (see `RunRecorder`)."""
    with RunRecorder(out, gate, models.__getitem__, name=name, argv=argv) as recorder:
        return recorder.finish(report)


@dataclass(frozen=True)
class ReportPaths:
    csv: Path
    markdown: Path
    html: Path
    lm_eval: tuple[Path, ...] = ()  # one lm-evaluation-harness results file per model (`evalkit.report.lm_eval`)


def write_reports(run_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str] | None = None, *,
                  combine: bool = False) -> ReportPaths:
    """Write metrics_summary.csv, report.md and report.html for the run in `run_dir` (into `out_dir`, default the
    run folder itself). A folder of several runs is refused unless `combine` (`evalkit.report.combine`).

    An existing file of one of those names is replaced only inside a run folder or when evalkit wrote it (its
    first line says so): a report never overwrites a file of someone else's.
    """
    run = load_for_report(run_dir, combine_runs=combine)
    out = Path(out_dir) if out_dir is not None else run.root
    csv_name, md_name, html_name = REPORT_FILES
    paths = ReportPaths(out / csv_name, out / md_name, out / html_name)
    _check_report_folder(out, paths)
    table = rows(run)
    for path, text in ((paths.csv, csv_text(table)), (paths.markdown, markdown(run, table)),
                       (paths.html, html(run, table))):
        tmp = path.with_name(f".tmp-{path.name}")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    return dataclasses.replace(paths, lm_eval=tuple(lm_eval.write_all(run, out)))


_SIGNATURES = {"metrics_summary.csv": "model,task,", "report.md": "# evalkit report", "report.html": "<!DOCTYPE html>"
               "<html lang='en'><head><meta charset='utf-8'><title>evalkit report"}


def _check_report_folder(out: Path, paths: ReportPaths) -> None:
    if out.exists() and not out.is_dir():
        raise RunError(f"--out {out} is a file, not a folder; pass a folder for the reports")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise RunError(f"--out {out}: cannot create the report folder ({err.strerror}); pass a folder you can "
                       "write") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise RunError(f"{out} is not writable; pass --out with a folder you can write for the reports")
    run_json = out / "run.json"
    in_run = run_json.is_file() and RUN_SCHEMA in run_json.read_text(encoding="utf-8", errors="replace")[:200]
    for path in (paths.csv, paths.markdown, paths.html):
        if path.is_dir() or path.is_symlink():
            raise RunError(f"{path} is a folder or a link, not a report evalkit wrote; pass another --out")
        if path.exists() and not in_run:
            with path.open(encoding="utf-8", errors="replace") as fh:
                head = fh.read(200)
            if not head.startswith(_SIGNATURES[path.name]):
                raise RunError(f"{path} exists and was not written by evalkit; it is never overwritten: pass another "
                               "--out for the reports")
