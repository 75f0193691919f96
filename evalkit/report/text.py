"""Terminal reports: `evalkit debug` (each response and why it scored what it did) and `evalkit compare`.

Plain text for a terminal or a CI log; the same numbers as the Markdown and HTML reports (`evalkit.report.tables`).

>>> _cell(None), _cell(0.5)
('undefined', '0.500')
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["render_compare", "render_debug"]


def render_debug(result: Any, *, show_prompt: bool = False, stop_tokens: Sequence[str] = (),
                 special_tokens: Sequence[str] = ()) -> str:
    """Each response with what was read from it, why, and its score; then the task's summary.

    stop_tokens: the tokens that end generation for this model; a reply that ran to the length limit although it
    holds another special token (e.g. <|im_end|> after a lost eos) gets a hint naming both.
    """
    from evalkit.core.extract import Diagnosis

    doc = result.to_dict()
    model = doc["model"]
    lines = [f"model   {model['path']} ({model['format']}); fingerprint {model['fingerprint'][:12]}"]
    if stop_tokens:
        lines.append(f"  generation stops at: {', '.join(stop_tokens)}")
    lines += [f"  note: {n}" for n in model.get("notes", [])]
    lines.append(f"task    {result.task.name} ({result.task.family}), {len(result.records)} items from "
                 f"{result.task.source}; prompts: {result.prompt_mode}")
    lines += [f"  note: {n}" for n in result.notes]
    for i, r in enumerate(result.records, 1):
        g, ex, s = r.generation, r.extraction, r.score
        lines += ["", f"--- [{i}/{len(result.records)}] item {r.item.id} " + "-" * 40]
        if show_prompt:
            lines.append(f"prompt     {g.prompt!r}")
        else:
            lines.append(f"question   {_short(r.item.question, 160)!r}")
        lines.append(f"gold       {list(r.item.answers)!r}")
        lines.append(f"response   {g.raw_text!r}")
        lines.append(f"           {g.output_tokens} tokens, stopped by {g.finish_reason}")
        missed = [t for t in special_tokens if t in g.raw_text and t not in stop_tokens and t.startswith("<|")]
        if g.finish_reason == "length" and missed and stop_tokens:
            lines.append(f"hint       the reply holds {', '.join(missed)}, which does not stop generation for this "
                         f"model (it stops at {', '.join(stop_tokens)}): a lost or wrong eos token?")
        box = "no box" if ex.raw_box is None else f"\\boxed{{{ex.raw_box}}}"
        lines.append(f"extracted  {box} -> answer {ex.answer!r}")
        lines.append(f"diagnosis  {ex.diagnosis.value}: {Diagnosis(ex.diagnosis).explain}")
        verdict = "correct" if s.correct else ("wrong" if s.scored else "not scored (no answer)")
        extra = f", F1 {s.f1:.2f}" if s.f1 is not None and s.scored else ""
        extra += f", |answer - gold| {s.abs_diff:g}" if s.abs_diff is not None else ""
        lines.append(f"score      {s.score:.2f} ({verdict}{extra})")
    n = len(result.records)
    ok = doc["diagnoses"].get("ok", 0)
    lines += ["", "=== summary " + "=" * 48,
              f"compliance {ok}/{n} ({100 * doc['compliance']:.0f}%) with a valid \\boxed{{}} answer",
              "diagnoses  " + ", ".join(f"{k} {v}" for k, v in doc["diagnoses"].items() if v)]
    for name, m in doc["metrics"].items():
        value = "undefined" if m["value"] is None else f"{m['value']:.3f}"
        lines.append(f"{name:<10} {value} (n={m['n']}, scored {m['n_scored']})" + (f": {m['reason']}" if m["reason"]
                                                                                    else ""))
    for c in doc["baseline_comparison"].values():
        lines.append(f"baseline   {c['message']}")
    t = doc["throughput"]
    lines.append(f"speed      {t['seconds_per_sample']:.3g} s/sample, {t['tokens_per_second']:.1f} tokens/s on "
                 f"{t.get('device', '?')} (batch {t['batch_size']}{', from cache' if t['from_cache'] else ''})")
    return "\n".join(lines)


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def render_compare(run: Any, variant: str, parent: str) -> str:
    """Metrics side by side, diagnoses, the paired tests and drift, per task."""
    from evalkit.report.tables import compare_entries, drift_cells

    lines = [f"{variant}  vs  parent {parent}"]
    for task in run.tasks:
        v, p = run.entry(variant, task), run.entry(parent, task)
        if v is None or p is None:
            continue
        lines += ["", f"== {task} (n={v.result['task']['n']}, primary metric {v.result['primary_metric']})",
                  f"{'':<16}{'parent':>12}{'variant':>12}{'delta':>10}"]
        pm, vm = p.result["metrics"], v.result["metrics"]
        for name in vm:
            a, b = (pm.get(name) or {}).get("value"), vm[name]["value"]
            delta = f"{b - a:+.3f}" if a is not None and b is not None else "—"
            lines.append(f"{name:<16}{_cell(a):>12}{_cell(b):>12}{delta:>10}")
        a, b = p.result["compliance"], v.result["compliance"]
        lines.append(f"{'compliance':<16}{_cell(a):>12}{_cell(b):>12}{b - a:+10.3f}")
        a, b = p.result["throughput"].get("seconds_per_sample"), v.result["throughput"].get("seconds_per_sample")
        lines.append(f"{'s/sample':<16}{_cell(a):>12}{_cell(b):>12}"
                     + (f"{b / a:>9.2f}x" if a and b else f"{'—':>10}"))
        for label, doc in (("parent", p.result), ("variant", v.result)):
            lines.append(f"diagnoses ({label}): " + ", ".join(f"{k} {c}" for k, c in doc["diagnoses"].items() if c))
        comp = compare_entries(v, p)
        if "error" in comp:
            lines.append(f"paired test: {comp['error']}")
        else:
            lines.append(f"paired test ({comp['metric']}): {comp['metric_test']['describe']}")
            lines.append(f"paired test (compliance): {comp['compliance_test']['describe']}")
        d = v.drift
        if d and "kl_mean" in d:
            c = drift_cells(d)
            lines.append(f"drift: mean KL {c['kl_mean']}, p99 KL {c['kl_p99']}, top-1 agreement {c['top1']}, PPL "
                         f"ratio {c['ppl_ratio']}, first diverging layer {c['layer'].replace('—', 'none')} over "
                         f"{d.get('n_tokens', '?')} tokens")
        elif d:
            lines.append(f"drift: {d.get('error')}")
        verdict = run.verdicts.get((variant, task))
        if verdict:
            lines.append(f"gate verdict: {str(verdict['status']).upper()}"
                         + (f" ({', '.join(verdict['diagnoses'])})" if verdict.get("diagnoses") else ""))
    return "\n".join(lines)


def _cell(x: float | None) -> str:
    return "undefined" if x is None else f"{x:.3f}"
