"""The lm-evaluation-harness export: one ``results_<date>.json`` per model, in lm-eval's own layout, so the tooling and
dashboards built on lm-eval (its ``make_table``, its results-file discovery, leaderboards reading ``results`` and
``configs``) read an evalkit run without an adapter.

Layout, as ``lm_eval --output_path`` writes it: ``lm_eval/<model_name_sanitized>/results_<date>.json``, where the
document is lm-eval's ``EvalResults`` (``lm_eval/result_schema.py``)::

    results      {task: {"alias", "name", "sample_len", "<metric>,none", "<metric>_stderr,none", ...}}
    configs      {task: {"task", "dataset_path", "output_type": "generate_until", "num_fewshot": 0,
                         "generation_kwargs", "metric_list", "metadata"}}
    versions     {task: "rows:<digest>"}   (the items evaluated: equal versions, equal items)
    n-shot, higher_is_better, n-samples {task: {"original", "effective"}}, group_subtasks,
    config, date, model_name, model_name_sanitized, evalkit_version

Metric keys use lm-eval's ``<metric>,<filter>`` form with the filter ``none`` (evalkit's extraction of the boxed
answer is part of the metric, not a filter). Each metric's standard error is the sample standard deviation over
sqrt(n) of its per-item scores, as lm-eval's ``mean_stderr``; an undefined metric is ``null`` with stderr ``"N/A"``
(lm-eval's own spelling of a missing stderr). Format compliance is reported as the metric ``compliance``.
Values are evalkit's (generative, \\boxed{} answers, the zoo's or the datasets' items), not comparable with lm-eval's
own tasks of the same name: the export is for tooling, not for leaderboards of other harnesses.

>>> lm_eval_name("zoo:base/x y")
'zoo__base__x y'
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from evalkit.core.metrics import mean_stderr
from evalkit.core.versions import EVALKIT_VERSION
from evalkit.report.rundir import Entry, Run

__all__ = ["LOWER_IS_BETTER", "lm_eval_name", "lm_eval_results", "models_of", "results_file_name", "write_all"]

LOWER_IS_BETTER = frozenset({"avg_abs_diff"})
"""Metrics where a smaller value is better (lm-eval's ``higher_is_better: false``)."""


def lm_eval_name(model: str) -> str:
    """A model name as lm-eval sanitizes it for its output folder (``lm_eval.utils.sanitize_model_name``)."""
    return re.sub(r"[\"<>:/|\\?*\[\]]+", "__", model)


def results_file_name(run: Run) -> str:
    """``results_<date>.json`` with the run's creation time, as lm-eval names it (its ``get_file_datetime`` reads
    what follows the last ``_``)."""
    created = str(run.manifest.get("created") or datetime.now(timezone.utc).isoformat(timespec="seconds"))
    return f"results_{created.replace(':', '-')}.json"


def lm_eval_results(run: Run, model: str) -> dict[str, Any]:
    """The lm-eval results document of one model of a run (every task it was evaluated on)."""
    entries = [e for e in run.entries if e.model == model]
    if not entries:
        raise KeyError(f"model {model!r} has no results in {run.root}")
    results, configs, versions, higher, samples = {}, {}, {}, {}, {}
    for e in entries:
        r = e.result
        results[e.task] = _task_metrics(e)
        higher[e.task] = {m: m not in LOWER_IS_BETTER for m in (r.get("metrics") or {})} | {"compliance": True}
        configs[e.task] = _task_config(e)
        versions[e.task] = f"rows:{str((r.get('task') or {}).get('rows_digest', ''))[:12]}"
        n = int((r.get("task") or {}).get("n", 0))
        samples[e.task] = {"original": n, "effective": n}
    first = entries[0].result
    spec = run.models.get(model)
    generation = first.get("generation") or {}
    created = str(run.manifest.get("created") or "")
    return {
        "results": results,
        "group_subtasks": {task: [] for task in results},
        "configs": configs,
        "versions": versions,
        "n-shot": {task: 0 for task in results},
        "higher_is_better": higher,
        "n-samples": samples,
        "config": {
            "model": "evalkit",
            "model_args": f"pretrained={(first.get('model') or {}).get('path', '')}",
            "model_dtype": str((first.get("throughput") or {}).get("dtype", "")),
            "batch_size": str(generation.get("batch_size", "")),
            "device": str((first.get("throughput") or {}).get("device", "")),
            "gen_kwargs": {"max_gen_toks": generation.get("max_new_tokens"), "do_sample": False},
            "model_sha": str((first.get("model") or {}).get("fingerprint", "")),
            "evalkit_run": run.name,
            "parent": spec.parent if spec is not None else None,
        },
        "date": _timestamp(created),
        "model_name": model,
        "model_name_sanitized": lm_eval_name(model),
        "evalkit_version": EVALKIT_VERSION,
        "total_evaluation_time_seconds": str(round(sum(float((e.result.get("throughput") or {}).get("seconds") or 0)
                                                       for e in entries), 4)),
    }


def _task_metrics(e: Entry) -> dict[str, Any]:
    r = e.result
    out: dict[str, Any] = {"alias": e.task, "name": e.task, "sample_len": int((r.get("task") or {}).get("n", 0))}
    for name, m in (r.get("metrics") or {}).items():
        value = m.get("value")
        out[f"{name},none"] = value
        stderr = m.get("stderr")
        out[f"{name}_stderr,none"] = stderr if value is not None and stderr is not None else "N/A"
    ok = [float(s.get("diagnosis") == "ok") for s in e.samples()]
    out["compliance,none"] = r.get("compliance")
    out["compliance_stderr,none"] = _or_na(mean_stderr(ok) if ok else None)
    return out


def _task_config(e: Entry) -> dict[str, Any]:
    r = e.result
    task = r.get("task") or {}
    generation = r.get("generation") or {}
    return {
        "task": e.task,
        "dataset_path": str(task.get("source", "")),
        "output_type": "generate_until",
        "num_fewshot": 0,
        "doc_to_text": f"evalkit.core.prompts.render ({generation.get('prompt_mode', 'chat_template')})",
        "generation_kwargs": {"max_gen_toks": generation.get("max_new_tokens"), "do_sample": False},
        "metric_list": [{"metric": m, "aggregation": "mean", "higher_is_better": m not in LOWER_IS_BETTER}
                        for m in (r.get("metrics") or {})],
        "metadata": {"version": f"rows:{str(task.get('rows_digest', ''))[:12]}", "family": task.get("family"),
                     "evalkit_results_schema": r.get("schema_version"), "notes": list(r.get("notes") or ())},
    }


def _or_na(x: float | None) -> float | str:
    return x if x is not None and math.isfinite(x) else "N/A"


def _timestamp(created: str) -> float:
    try:
        return datetime.fromisoformat(created).timestamp()
    except ValueError:
        return 0.0


def models_of(run: Run) -> Sequence[str]:
    """The run's models that have results, in run order."""
    return list(dict.fromkeys(e.model for e in run.entries))


def write_all(run: Run, out: Path) -> list[Path]:
    """Write every model's export under ``<out>/lm_eval/``; returns the files."""
    files = []
    for model in models_of(run):
        file = out / "lm_eval" / lm_eval_name(model) / results_file_name(run)
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(json.dumps(lm_eval_results(run, model), indent=2, ensure_ascii=False, allow_nan=False)
                        + "\n", encoding="utf-8")
        files.append(file)
    return files

