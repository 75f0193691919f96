"""The self-contained HTML report: tables, inline SVG charts, and the evidence behind every failure.

One file with no external resource (no script, no stylesheet, no font from a network), so it opens from a CI artifact
or an e-mail. The charts: the primary metric per model (dashed line: the trivial baseline), format compliance (dashed
line: the gate's default floor), the diagnosis breakdown (stacked), drift against the parent, and speed.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

from evalkit.core.extract import DIAGNOSIS_ORDER
from evalkit.models.description import METHOD_LABELS
from evalkit.report.rundir import Run
from evalkit.report.svg import DIAGNOSIS_COLORS, METHOD_COLORS, Bar, hbar_chart, legend, stacked_chart
from evalkit.report.tables import COMPLIANT, Row, method_rows, outcome_tally, rows, unevaluated, verdict_error

__all__ = ["html"]

CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif;margin:24px auto;max-width:1240px;
color:#222;padding:0 16px;line-height:1.4}
h1{font-size:24px;margin:0 0 4px}h2{font-size:19px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
h3{font-size:15px;margin:16px 0 6px}.muted{color:#666;font-size:13px}
table{border-collapse:collapse;font-size:13px;margin:6px 0}th,td{border:1px solid #ddd;padding:4px 8px;text-align:left;
vertical-align:top}th{background:#f5f5f5}td.num{text-align:right;font-variant-numeric:tabular-nums}
.pass{background:#e8f5e9}.fail{background:#ffebee}.warn{background:#fff8e1}
.grid{display:flex;flex-wrap:wrap;gap:12px 24px}.chart{margin:4px 0}
.legend{font-size:12px;margin:4px 0 8px}.key{margin-right:14px;white-space:nowrap}
.key i{display:inline-block;width:11px;height:11px;margin-right:4px;vertical-align:-1px;border-radius:2px}
pre{background:#f7f7f7;border:1px solid #e5e5e5;padding:8px;font-size:12px;white-space:pre-wrap;word-break:break-word;
margin:4px 0}code{font-size:12px}details{margin:6px 0}summary{cursor:pointer;font-weight:600}
.cards{display:flex;gap:12px;margin:12px 0}.card{border:1px solid #ddd;border-radius:6px;padding:8px 14px;min-width:110px}
.card b{font-size:22px;display:block}
.wide{overflow-x:auto;max-width:100%}
"""


def html(run: Run, table: Sequence[Row] | None = None) -> str:
    """The whole report page as one string."""
    table = rows(run) if table is None else table
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>evalkit report: {escape(run.name)}"
             f"</title><style>{CSS}</style></head><body>", _header(run, table), _method_section(table),
             _charts(run, table), _results_table(table), _notes(table), _drift_table(table), _failures(table),
             _inconclusive(table), _unevaluated(run), _footer(run),
             "</body></html>"]
    return "\n".join(parts)


# ------------------------------------------------------------------------------------------------------ parts


def _header(run: Run, table: Sequence[Row]) -> str:
    tally = outcome_tally(table)
    models = list(dict.fromkeys(r.model.name for r in table))
    devices = ", ".join(sorted({r.device for r in table if r.device})) or "?"
    created = escape(str(run.manifest.get("created", "")))
    cards = [("models", len(models)), ("tasks", len(run.tasks)), ("responses", sum(r.n for r in table))]
    cards += [(k.lower(), v) for k, v in tally.items()]
    bad = {"fail", "misdiagnosed", "escaped"}
    card_html = "".join(f"<div class='card{' fail' if k in bad else ' pass' if k in ('pass', 'caught') else ''}'>"
                        f"<b>{v}</b>{k}</div>" for k, v in cards)
    return (f"<h1>evalkit report: {escape(run.name)}</h1><div class='muted'>{created} · device {escape(devices)} · "
            f"tasks {escape(', '.join(run.tasks))}</div><div class='cards'>{card_html}</div>")


def _notes(table: Sequence[Row]) -> str:
    """What the engine could not do as asked, per (model, task) (`evalkit.report.tables.notes_of`)."""
    noted = [r for r in table if r.notes]
    if not noted:
        return ""
    items = "".join(f"<li><code>{escape(r.model.name)}</code> on {escape(r.task)}: "
                    f"{escape('; '.join(r.notes))}</li>" for r in noted)
    return ("<h2>Notes</h2><div class='muted'>What could not be done as asked: the numbers above rest on it.</div>"
            f"<ul class='warn'>{items}</ul>")


def _method_section(table: Sequence[Row]) -> str:
    body = []
    for m in method_rows(table):
        cls = "pass" if m.status.startswith("✅") else "fail" if m.status.startswith("❌") else \
            "warn" if m.status.startswith("⚠") else ""
        fmt_cls = "pass" if m.answer_format.startswith("✅") else "fail"
        body.append(f"<tr><td><i style='display:inline-block;width:10px;height:10px;background:"
                    f"{METHOD_COLORS.get(m.method, '#999')};margin-right:6px'></i>{escape(m.label)}</td>"
                    f"<td>{escape(m.bits)}</td><td class='{cls}'>{_code(m.status)}</td>"
                    f"<td class='{fmt_cls}'>{_code(m.answer_format)}</td><td class='num'>{escape(m.speed)}</td>"
                    f"<td>{escape(', '.join(m.models))}</td></tr>")
    return ("<h2>Quantization method comparison</h2><table><tr><th>Method</th><th>Weight bits</th><th>Status</th>"
            "<th>Answer format</th><th>Speed (s/sample)</th><th>Models</th></tr>" + "".join(body) + "</table>"
            "<div class='muted'>Status: the gate's verdicts over every (model, task) of the method. Answer format: "
            "share of responses with a valid \\boxed{} and the most frequent failure. Speed: measured generation "
            "time per sample (batched) and its ratio to the unquantized parent.</div>")


_SYMBOLS = {"✅": "✔", "❌": "✘", "⚠️": "⚠"}  # emoji fonts are rare on CI machines; these are in DejaVu Sans


def _symbols(text: str) -> str:
    for emoji, symbol in _SYMBOLS.items():
        text = text.replace(emoji, symbol)
    return text


def _code(text: str) -> str:
    """Markdown-style `code` spans to <code>, emoji to plain symbols."""
    pieces = escape(_symbols(text)).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(pieces))


def _charts(run: Run, table: Sequence[Row]) -> str:
    out = ["<h2>Charts</h2>"]
    methods = list(dict.fromkeys(r.model.method for r in table))
    out.append(legend([(METHOD_LABELS.get(m, m), METHOD_COLORS.get(m, "#999")) for m in methods]))
    for title, maker in (("Primary metric per model", _metric_chart), ("Format compliance", _compliance_chart),
                         ("Diagnosis breakdown", _diagnosis_chart), ("Drift against the parent", _drift_chart),
                         ("Speed", _speed_chart)):
        charts = [c for task in run.tasks if (c := maker(task, [r for r in table if r.task == task]))]
        if not charts:
            continue
        out.append(f"<h3>{escape(title)}</h3>")
        if maker is _diagnosis_chart:
            seen = [d for d in DIAGNOSIS_ORDER if any(r.diagnoses.get(d) for r in table)]
            out.append(legend([(d, DIAGNOSIS_COLORS[d]) for d in seen]))
        out.append("<div class='grid'>" + "".join(f"<div class='chart'>{c}</div>" for c in charts) + "</div>")
    return "".join(out)


def _metric_chart(task: str, group: Sequence[Row]) -> str:
    if not group:
        return ""
    metric = group[0].metric
    bars = [Bar(r.model.name, r.value, METHOD_COLORS.get(r.model.method, "#999"),
                note="" if r.value is not None else "undefined: no answer extracted", title=r.reason or r.model.name)
            for r in group]
    baseline = group[0].baseline
    return hbar_chart(f"{task}: {metric}", bars, reference=baseline, reference_label="trivial baseline")


def _compliance_chart(task: str, group: Sequence[Row]) -> str:
    bars = [Bar(r.model.name, r.compliance, "#2e7d32" if _compliant(r) else "#c62828",
                note=f"{100 * r.compliance:.0f}%") for r in group]
    return hbar_chart(f"{task}: share with a valid \\boxed{{}}", bars, reference=COMPLIANT, reference_label="floor")


def _compliant(r: Row) -> bool:
    """The gate's compliance check passed; without a verdict, compliance at or above the default floor."""
    return r.compliance_ok if r.compliance_ok is not None else r.compliance >= COMPLIANT


def _diagnosis_chart(task: str, group: Sequence[Row]) -> str:
    return stacked_chart(f"{task}: diagnoses", [(r.model.name, r.diagnoses) for r in group], DIAGNOSIS_ORDER,
                         DIAGNOSIS_COLORS)


def _drift_chart(task: str, group: Sequence[Row]) -> str:
    with_drift = [r for r in group if r.drift and "kl_mean" in r.drift]
    if not with_drift:
        return ""
    drifts = [(r, r.drift or {}) for r in with_drift]
    kl = [Bar(r.model.name, max(float(d["kl_mean"]), 0.0), METHOD_COLORS.get(r.model.method, "#999"),
              note=f"{d['kl_mean']:.3g} nats", title=f"vs {r.model.parent}") for r, d in drifts]
    top = max(b.value or 0.0 for b in kl)
    agree = [Bar(r.model.name, float(d["top1_agreement"]), METHOD_COLORS.get(r.model.method, "#999"),
                 note=f"{100 * d['top1_agreement']:.1f}%") for r, d in drifts]
    return (hbar_chart(f"{task}: mean KL(parent ‖ variant), log scale", kl, vmax=max(top, 1e-3), log=True,
                       fmt="{:.3g}")
            + "</div><div class='chart'>" + hbar_chart(f"{task}: top-1 agreement with the parent", agree))


def _speed_chart(task: str, group: Sequence[Row]) -> str:
    timed = [r for r in group if r.seconds_per_sample]
    if not timed:
        return ""
    top = max(r.seconds_per_sample or 0.0 for r in timed)
    bars = [Bar(r.model.name, r.seconds_per_sample, METHOD_COLORS.get(r.model.method, "#999"),
                note=f"{r.seconds_per_sample:.3g} s") for r in timed]
    return hbar_chart(f"{task}: seconds per sample", bars, vmax=top * 1.05, fmt="{:.3g}")


def _results_table(table: Sequence[Row]) -> str:
    head = ("<h2>Results per model and task</h2><div class='wide'><table><tr><th>Model</th><th>Method</th><th>Bits</th><th>Parent</th>"
            "<th>Task</th><th>n</th><th>Metric</th><th>Compliance</th><th>Trivial baseline</th><th>Diagnoses</th>"
            "<th>s/sample</th><th>vs parent</th><th>Status</th></tr>")
    body = []
    for r in table:
        metric = (f"{escape(r.metric)} {r.value:.3f}" if r.value is not None
                  else f"<span title='{escape(r.reason, quote=True)}'>{escape(r.metric)} undefined</span>")
        base = "—" if r.baseline is None else f"{r.baseline:.3f}" + (" (equal)" if r.baseline_matches else "")
        test = (r.comparison or {}).get("metric_test")
        vs = "—"
        if test:
            vs = (f"recovery {test['recovery']:.2f}" if test.get("recovery") is not None
                  else f"drop {100 * test['drop']:.0f} pts") + f", p={test['p_value']:.2g}"
        status_cls = {"pass": "pass", "fail": "fail", "inconclusive": "warn"}.get(r.status, "")
        status = escape(r.status) + (": " + escape(", ".join(r.status_diagnoses)) if r.status_diagnoses else "")
        if r.inconclusive:  # the reason on hover: what the data could not tell, and the items that would
            why = escape("; ".join(f"{c}: {w}" for c, w in r.inconclusive), quote=True)
            status = f"<span title='{why}'>{status}: {escape(', '.join(c for c, _ in r.inconclusive))}</span>"
        diag = ", ".join(f"{escape(k)} {v}" for k, v in sorted(r.diagnoses.items(), key=lambda kv: -kv[1]) if v)
        body.append(
            f"<tr><td><code>{escape(r.model.name)}</code></td><td>{escape(r.model.method_label)}</td>"
            f"<td>{escape(r.model.bits_label)}</td><td>{escape(r.model.parent or '—')}</td><td>{escape(r.task)}</td>"
            f"<td class='num'>{r.n}</td><td class='{'fail' if r.value is None else ''}'>{metric}</td>"
            f"<td class='num {'pass' if _compliant(r) else 'fail'}'>{100 * r.compliance:.0f}%</td>"
            f"<td class='{'warn' if r.baseline_matches else ''}'>{base}</td><td>{diag}</td>"
            f"<td class='num'>{'—' if not r.seconds_per_sample else f'{r.seconds_per_sample:.3g}'}</td>"
            f"<td>{vs}</td><td class='{status_cls}'>{status}</td></tr>")
    return head + "".join(body) + "</table></div>"


def _drift_table(table: Sequence[Row]) -> str:
    with_drift = [r for r in table if r.drift]
    if not with_drift:
        return ""
    body = []
    for r in with_drift:
        d: Any = r.drift
        if "kl_mean" not in d:
            body.append(f"<tr><td><code>{escape(r.model.name)}</code></td><td>{escape(r.task)}</td>"
                        f"<td colspan='6' class='fail'>{escape(str(d.get('error', '?')))}</td></tr>")
            continue
        layer = d.get("first_divergent_layer")
        body.append(f"<tr><td><code>{escape(r.model.name)}</code></td><td>{escape(r.task)}</td>"
                    f"<td class='num'>{d['kl_mean']:.4g}</td><td class='num'>{d['kl_p99']:.4g}</td>"
                    f"<td class='num'>{100 * d['top1_agreement']:.1f}%</td><td class='num'>{d['ppl_ratio']:.3g}</td>"
                    f"<td>{'—' if layer is None else f'model.layers.{layer}'}</td>"
                    f"<td>{escape(_cosines(d.get('layer_cosine') or []))}</td></tr>")
    return ("<h2>Drift against the parent</h2><div class='muted'>Teacher-forced on the parent's own responses.</div>"
            "<table><tr><th>Model</th><th>Task</th><th>mean KL</th><th>p99 KL</th><th>top-1 agreement</th>"
            "<th>PPL ratio</th><th>first diverging layer</th><th>hidden-state cosine per layer</th></tr>"
            + "".join(body) + "</table>")


def _cosines(values: Sequence[float]) -> str:
    return " ".join(f"{v:.3f}" for v in values)


def _failures(table: Sequence[Row]) -> str:
    out = []
    for r in table:
        if not r.failing:
            continue
        title = f"{r.model.name} on {r.task}: {r.causes}"
        inner = []
        if r.model.note:
            inner.append(f"<div class='muted'>{escape(r.model.note)}</div>")
        for check in (r.verdict or {}).get("checks", []):
            if check.get("status") == "fail":
                inner.append(f"<pre>{escape(str(check.get('message', '')))}</pre>")
        for cls, examples in (r.failure_examples or {}).items():
            for ex in list(examples)[:2]:
                inner.append(f"<div><b>{escape(cls)}</b> · item {escape(str(ex.get('id')))} · gold "
                             f"{escape(str(ex.get('gold')))} · {escape(str(ex.get('finish_reason')))} after "
                             f"{escape(str(ex.get('output_tokens')))} tokens</div>"
                             f"<pre>{escape(str(ex.get('raw_text', '')))}</pre>")
        out.append(f"<details><summary>{escape(title)}</summary>{''.join(inner)}</details>")
    if not out:
        return ""
    return "<h2>Why they fail</h2>" + "".join(out)


def _inconclusive(table: Sequence[Row]) -> str:
    found = [(r, check, why) for r in table for check, why in r.inconclusive]
    if not found:
        return ""
    items = "".join(f"<li><code>{escape(r.model.name)}</code> on {escape(r.task)}: {escape(check)}: {escape(why)}</li>"
                    for r, check, why in found)
    return ("<h2>Inconclusive</h2><div class='muted'>Checks that could not tell the problem they must see from none "
            "at this many items (they fail nothing unless require_power is set); each says how many items would "
            f"settle it.</div><ul class='warn'>{items}</ul>")


def _unevaluated(run: Run) -> str:
    errors = unevaluated(run)
    if not errors:
        return ""
    items = "".join(f"<li><code>{escape(str(v['model']))}</code> on {escape(str(v['task']))}: "
                    f"{escape(verdict_error(v))}</li>" for v in errors)
    return f"<h2>Not evaluated</h2><ul class='fail'>{items}</ul>"


def _footer(run: Run) -> str:
    first = run.entries[0].result if run.entries else {}  # one run: one environment and generation config
    env, gen = dict(first.get("environment") or {}), dict(first.get("generation") or {})
    text = "; ".join(f"{k} {v}" for k, v in env.items())
    gen_text = ", ".join(f"{k}={v}" for k, v in gen.items())
    command = " ".join(str(c) for c in run.manifest.get("command", []))
    return (f"<h2>Environment</h2><div class='muted'>{escape(text)}<br>generation: {escape(gen_text)}"
            + (f"<br>command: <code>{escape(command)}</code>" if command else "") + "</div>")
