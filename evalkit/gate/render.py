"""The gate's printable report: one row per (model, task) and the tally (`evalkit gate`, the pytest summary)."""

from __future__ import annotations

import collections
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from evalkit.gate.records import OK_OUTCOMES, OUTCOMES, Verdict

__all__ = ["GateReport", "ROW_HEADER", "render_summary"]


@dataclass(frozen=True, slots=True)
class GateReport:
    """Every verdict of a run, and where the time went."""

    verdicts: tuple[Verdict, ...]
    timings: Mapping[str, float]  # seconds: load, generate (engine, cache misses), drift, total
    device: str
    alpha: str = ""  # how the run's alpha is spent (`evalkit.gate.decisions.alpha_note`)

    @property
    def ok(self) -> bool:
        """Healthy models pass (or are inconclusive) and every known-broken one is caught for the right reason."""
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
        return render_summary(self.rows(), self.timings, self.device, self.alpha)


ROW_HEADER = ("model", "task", "compliance", "metric", "recovery", "verdict", "diagnosis")


def _row(v: Verdict) -> tuple[str, ...]:
    s = v.summary
    comp = f"{s['compliance']:.2f}" if "compliance" in s else "-"
    name, value = s.get("metric"), s.get("metrics", {}).get(s.get("metric"))
    metric = "-" if "error" in s else f"{name} {value:.2f}" if value is not None else f"{name} undefined"
    rec = s.get("recovery")
    recovery = "-"
    if rec and rec.get("drop") is not None:  # the recovery ratio, and the drop's bound that decided the check
        recovery = (f"{rec['recovery']:.2f}" if rec.get("recovery") is not None else f"drop {100 * rec['drop']:.0f}pt")
        failed = s.get("verdict", {}).get("recovery") == "fail" and v.get("recovery").diagnosis != "underpowered"
        bound = rec.get("lower") if failed else rec.get("upper")
        if bound is not None:
            recovery += f" (drop {'>=' if failed else '<='} {100 * bound:.1f}pt)"
    diagnosis = ", ".join(v.diagnoses)
    if not diagnosis and v.inconclusive:
        diagnosis = f"(inconclusive: {', '.join(c.check for c in v.inconclusive)})"
    return (v.model, v.task, comp, metric, recovery, v.outcome, diagnosis, "; ".join(s.get("notes", ())))


_RANK = {"PASS": 0, "CAUGHT": 0, "INCONCLUSIVE": 1, "FAIL": 2, "MISDIAGNOSED": 2, "ESCAPED": 3}


def _models_line(rows: Sequence[Sequence[str]], alpha: str) -> str:
    """One outcome per model (the worst of its rows) and how the run's alpha is spent."""
    worst: dict[str, str] = {}
    for r in rows:
        if r[0] not in worst or _RANK.get(r[5], 2) > _RANK.get(worst[r[0]], 2):
            worst[r[0]] = r[5]
    tally = collections.Counter(worst.values())
    kinds = [*OUTCOMES, *sorted(set(tally) - set(OUTCOMES))]
    return "models: " + ", ".join(f"{k} {tally[k]}" for k in kinds if tally[k]) + (f"; {alpha}" if alpha else "")


def render_summary(rows: Sequence[Sequence[str]], timings: Mapping[str, float], device: str, alpha: str = "") -> str:
    """The verdict table and tallies from `GateReport.rows()` (also rows merged from several xdist workers).

    alpha: how the run's alpha is spent (`evalkit.gate.decisions.alpha_note`), for the models line. A row's notes
    (its eighth field) are numbered in its diagnosis cell and printed under the table.

    >>> print(render_summary([("m", "t", "1.00", "accuracy 0.90", "-", "PASS", "", "3 of 8 prompts are too long")],
    ...                      {"total": 2.0}, "cpu", "run alpha 0.05 over 1 model (0.05 each)"))
    model  task  compliance  metric         recovery  verdict  diagnosis
    -----  ----  ----------  -------------  --------  -------  ---------
    m      t     1.00        accuracy 0.90  -         PASS     [note 1]
    <BLANKLINE>
    notes (what could not be done as asked):
      [1] m on t: 3 of 8 prompts are too long
    <BLANKLINE>
    PASS 1 of 1 (model, task) on cpu; OK
    models: PASS 1; run alpha 0.05 over 1 model (0.05 each)
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
    ok = all(r[5] in OK_OUTCOMES for r in rows)
    t = timings
    if notes:
        lines += ["", "notes (what could not be done as asked):", *notes]
    lines.append("")
    lines.append(", ".join(f"{k} {tally[k]}" for k in OUTCOMES if tally[k])
                 + f" of {len(rows)} (model, task) on {device}; {'OK' if ok else 'NOT OK'}")
    lines.append(_models_line(rows, alpha))
    lines.append(f"time: {t.get('total', 0):.1f}s total = load {t.get('load', 0):.1f}s + generation "
                 f"{t.get('generate', 0):.1f}s + drift {t.get('drift', 0):.1f}s + other")
    return "\n".join(lines)
