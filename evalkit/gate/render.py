"""The gate's printable report: one row per (model, task) and the tally (`evalkit gate`, the pytest summary)."""

from __future__ import annotations

import collections
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from evalkit.gate.records import OUTCOMES, Verdict

__all__ = ["GateReport", "ROW_HEADER", "render_summary"]


@dataclass(frozen=True, slots=True)
class GateReport:
    """Every verdict of a run, and where the time went."""

    verdicts: tuple[Verdict, ...]
    timings: Mapping[str, float]  # seconds: load, generate (engine, cache misses), drift, total
    device: str

    @property
    def ok(self) -> bool:
        """Healthy models pass and every known-broken one is caught for the right reason."""
        return all(v.as_expected for v in self.verdicts)

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def rows(self) -> list[tuple[str, ...]]:
        """One row of strings per verdict: model, task, compliance, metric, recovery, outcome, diagnosis, and the
        notes of what the engine could not do as asked (printed under the table)."""
        return [_row(v) for v in self.verdicts]

    def summary(self) -> str:
        """The printable report: one row per (model, task), then the tally."""
        return render_summary(self.rows(), self.timings, self.device)


ROW_HEADER = ("model", "task", "compliance", "metric", "recovery", "verdict", "diagnosis")


def _row(v: Verdict) -> tuple[str, ...]:
    s = v.summary
    comp = f"{s['compliance']:.2f}" if "compliance" in s else "-"
    name, value = s.get("metric"), s.get("metrics", {}).get(s.get("metric"))
    metric = "-" if "error" in s else f"{name} {value:.2f}" if value is not None else f"{name} undefined"
    rec = s.get("recovery")
    recovery = "-" if not rec else (f"{rec['recovery']:.2f} (p={rec['p_value']:.2g})" if rec.get("recovery") is not None
                                    else f"drop {100 * rec['drop']:.0f}pt")
    underpowered = any(c.note.startswith("underpowered") for c in v.checks)
    diagnosis = ", ".join(v.diagnoses) or ("(underpowered)" if underpowered else "")
    return (v.model, v.task, comp, metric, recovery, v.outcome, diagnosis, "; ".join(s.get("notes", ())))


def render_summary(rows: Sequence[Sequence[str]], timings: Mapping[str, float], device: str) -> str:
    """The verdict table and tally from `GateReport.rows()` (also rows merged from several xdist workers).

    A row's notes (its eighth field) are numbered in its diagnosis cell and printed under the table.

    >>> print(render_summary([("m", "t", "1.00", "accuracy 0.90", "-", "PASS", "", "3 of 8 prompts are too long")],
    ...                      {"total": 2.0}, "cpu"))
    model  task  compliance  metric         recovery  verdict  diagnosis
    -----  ----  ----------  -------------  --------  -------  ---------
    m      t     1.00        accuracy 0.90  -         PASS     [note 1]
    <BLANKLINE>
    notes (what could not be done as asked):
      [1] m on t: 3 of 8 prompts are too long
    <BLANKLINE>
    PASS 1 of 1 (model, task) on cpu; OK
    time: 2.0s total = load 0.0s + generation 0.0s + drift 0.0s + other
    """
    notes: list[str] = []
    shown = []
    for r in rows:
        cells = list(r[:7])
        if len(r) > 7 and r[7]:
            notes.append(f"  [{len(notes) + 1}] {r[0]} on {r[1]}: {r[7]}")
            cells[6] = f"{cells[6]} [note {len(notes)}]".strip()
        shown.append(tuple(cells))
    table = [ROW_HEADER, *shown]
    widths = [max(len(r[i]) for r in table) for i in range(len(ROW_HEADER))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    tally = collections.Counter(r[5] for r in rows)
    ok = all(r[5] in ("PASS", "CAUGHT") for r in rows)
    t = timings
    if notes:
        lines += ["", "notes (what could not be done as asked):", *notes]
    lines.append("")
    lines.append(", ".join(f"{k} {tally[k]}" for k in OUTCOMES if tally[k])
                 + f" of {len(rows)} (model, task) on {device}; {'OK' if ok else 'NOT OK'}")
    lines.append(f"time: {t.get('total', 0):.1f}s total = load {t.get('load', 0):.1f}s + generation "
                 f"{t.get('generate', 0):.1f}s + drift {t.get('drift', 0):.1f}s + other")
    return "\n".join(lines)
