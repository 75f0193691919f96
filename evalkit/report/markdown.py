"""The pull-request report in Markdown: the method comparison, per (model, task) results, drift, and why each
failure failed, from a run folder's tables (`evalkit.report.tables`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from evalkit.core.extract import DIAGNOSIS_ORDER, Diagnosis
from evalkit.report.rundir import Run
from evalkit.report.tables import Row, fmt_seconds, method_rows, outcome_tally, rows, unevaluated, verdict_error

__all__ = ["markdown"]


def markdown(run: Run, table: Sequence[Row] | None = None) -> str:
    """The pull-request report: method comparison, per model x task results, drift, and why each failure failed."""
    table = rows(run) if table is None else table
    devices = sorted({r.device for r in table if r.device})
    lines = [f"# evalkit report: {run.name}", ""]
    tally = outcome_tally(table)
    lines.append(f"{len({r.model.name for r in table})} models x {len(run.tasks)} tasks "
                 f"({', '.join(run.tasks)}), {sum(r.n for r in table)} responses on {', '.join(devices) or '?'}; "
                 + (f"gate: {', '.join(f'{k} {v}' for k, v in tally.items())}." if tally else "not gated."))
    lines += ["", "## Quantization method comparison", "",
              "| Method | Weight bits | Status | Answer format | Speed (s/sample) | Models |",
              "|---|---|---|---|---|---|"]
    for m in method_rows(table):
        lines.append(f"| {m.label} | {m.bits} | {m.status} | {m.answer_format} | {m.speed} | {len(m.models)} |")
    lines += ["", "Status: the gate's verdicts over every (model, task) of the method; answer format: share of "
              "responses with a valid `\\boxed{}` and the most frequent failure; speed: the engine's measured "
              "generation time per sample (batched), and its ratio to each model's unquantized parent.", ""]
    lines += ["## Results per model and task", "",
              "| Model | Method | Bits | Task | Metric | Compliance | Trivial baseline | Diagnoses | s/sample "
              "| vs parent | Status |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in table:
        lines.append("| " + " | ".join([
            f"`{r.model.name}`", r.model.method_label, r.model.bits_label, r.task, _metric_cell(r),
            f"{100 * r.compliance:.0f}%", _baseline_cell(r), _diag_cell(r.diagnoses),
            fmt_seconds(r.seconds_per_sample) if r.seconds_per_sample else "—", _vs_parent(r), _status_cell(r),
        ]) + " |")
    noted = [r for r in table if r.notes]
    if noted:  # what the engine could not do as asked: the numbers above rest on it
        lines += ["", "## Notes", "", "What could not be done as asked, per model and task:", ""]
        lines += [f"- `{r.model.name}` on {r.task}: {'; '.join(r.notes)}" for r in noted]
    drift_rows = [r for r in table if r.drift]
    if drift_rows:
        lines += ["", "## Drift against the parent", "",
                  "Teacher-forced on the parent's own responses: mean KL(parent ‖ variant) per response token, "
                  "top-1 agreement, perplexity ratio, and the first decoder layer whose hidden states diverge.", "",
                  "| Model | Parent | Task | mean KL | p99 KL | top-1 agreement | PPL ratio | first diverging layer |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in drift_rows:
            d = r.drift or {}
            if "kl_mean" not in d:
                lines.append(f"| `{r.model.name}` | `{r.model.parent}` | {r.task} | error: {d.get('error', '?')} "
                             "| | | | |")
                continue
            layer = d.get("first_divergent_layer")
            lines.append(f"| `{r.model.name}` | `{r.model.parent}` | {r.task} | {d['kl_mean']:.4g} | "
                         f"{d['kl_p99']:.4g} | {100 * d['top1_agreement']:.1f}% | {d['ppl_ratio']:.3g} | "
                         f"{'—' if layer is None else f'model.layers.{layer}'} |")
    lines += _failures(table)
    lines += _inconclusive(table)
    errors = unevaluated(run)
    if errors:
        lines += ["", "## Not evaluated", ""]
        lines += [f"- `{v['model']}` on {v['task']}: {verdict_error(v)}" for v in errors]
    lines += ["", _legend(table), ""]
    return "\n".join(lines)


def _metric_cell(r: Row) -> str:
    if r.value is None:
        return f"{r.metric} undefined"
    return f"{r.metric} {r.value:.3f}"


def _baseline_cell(r: Row) -> str:
    if r.baseline is None:
        return "—"
    flag = " ⚠️ equal" if r.baseline_matches else ""
    return f"{r.baseline:.3f}{flag}"


def _diag_cell(diagnoses: Mapping[str, int]) -> str:
    parts = [f"{k} {v}" for k, v in sorted(diagnoses.items(), key=lambda kv: (-kv[1], kv[0])) if v]
    return ", ".join(parts) or "—"


def _vs_parent(r: Row) -> str:
    test = (r.comparison or {}).get("metric_test")
    if not test:
        return "—" if r.model.parent is None else (r.comparison or {}).get("error", "—")
    rec = f"recovery {test['recovery']:.2f}" if test.get("recovery") is not None else f"drop {100 * test['drop']:.0f} pts"
    return f"{rec}, p={test['p_value']:.2g}"


def _status_cell(r: Row) -> str:
    if not r.verdict:
        return "—"
    if r.status == "pass":
        return "✅ pass"
    if r.status == "inconclusive":
        return "❔ inconclusive: " + ", ".join(c for c, _ in r.inconclusive)
    return "❌ fail: " + ", ".join(r.status_diagnoses)


def _inconclusive(table: Sequence[Row]) -> list[str]:
    """Each inconclusive check with its reason: what these items could not tell, and how many would."""
    found = [(r, check, why) for r in table for check, why in r.inconclusive]
    if not found:
        return []
    out = ["", "## Inconclusive", "", "Checks that could not tell the problem they must see from none at this many "
           "items (they fail nothing unless `require_power` is set); each says how many items would settle it.", ""]
    out += [f"- `{r.model.name}` on {r.task}: {check}: {why}" for r, check, why in found]
    return out


def _failures(table: Sequence[Row]) -> list[str]:
    """Why each failing (model, task) failed: the gate's messages, or the dominant diagnosis with an example."""
    out: list[str] = []
    for r in table:
        if not r.failing:
            continue
        if not out:
            out += ["", "## Why they fail", "", "Each failing (model, task), folded: the gate's message for its primary "
                    "failure (counts per failure class, example responses, the numbers compared).", ""]
        note = f" ({r.model.note})" if r.model.note else ""
        out += [f"<details><summary><code>{r.model.name}</code> on {r.task}: {r.causes}{note}</summary>", ""]
        failed = [c for c in (r.verdict or {}).get("checks", []) if c.get("status") == "fail"]
        if failed:  # the primary failure in full (counts, examples, numbers); the others in one line each
            out += ["```", str(failed[0].get("message", "")), "```"]
            out += [f"- also {c.get('check')}: {c.get('diagnosis')} ({c.get('numbers')})" for c in failed[1:]]
        if not r.verdict:
            top = r.dominant_failure
            if top:
                try:
                    why = Diagnosis(top).explain
                except ValueError:
                    why = top
                out.append(f"- {r.diagnoses[top]} of {r.n} responses are `{top}`: {why}")
            for ex in list((r.failure_examples or {}).get(top or "", []))[:1]:
                out.append(f"- e.g. item {ex.get('id')}: gold {ex.get('gold')}, {ex.get('finish_reason')} after "
                           f"{ex.get('output_tokens')} tokens: `{_one_line(str(ex.get('raw_text', '')), 160)}`")
        out += ["", "</details>", ""]
    return out


def _one_line(text: str, limit: int) -> str:
    text = text.replace("\n", "⏎").replace("`", "'")
    return text if len(text) <= limit else text[: limit - 20] + " … " + text[-17:]


def _legend(table: Sequence[Row]) -> str:
    seen = [d for d in DIAGNOSIS_ORDER if any(r.diagnoses.get(d) for r in table) and d != "ok"]
    if not seen:
        return ""
    return "Diagnoses: " + "; ".join(f"`{d}`: {Diagnosis(d).explain}" for d in seen) + "."
