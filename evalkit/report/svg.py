"""Inline SVG charts for the HTML report: horizontal bars and 100% stacked bars, no plotting library.

The report must open anywhere (a CI artifact, an air-gapped laptop), so charts are plain SVG strings written here:
no matplotlib, no JavaScript, no fonts or scripts from a CDN. Horizontal bars because model names are long.

>>> svg = hbar_chart("t", [Bar("model-a", 0.5), Bar("model-b", None, note="undefined")])
>>> svg.startswith("<svg") and "model-b" in svg and "undefined" in svg
True
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape

from evalkit.core.extract import DIAGNOSIS_ORDER

__all__ = ["Bar", "DIAGNOSIS_COLORS", "METHOD_COLORS", "hbar_chart", "legend", "stacked_chart"]

METHOD_COLORS = {
    "none": "#455a64", "qlora": "#00897b", "gptq": "#1e88e5", "awq": "#8e24aa", "smoothquant": "#fb8c00",
    "rtn": "#6d4c41", "other": "#9e9e9e", "broken": "#e53935",
}
DIAGNOSIS_COLORS = dict(zip(DIAGNOSIS_ORDER, ("#2e7d32", "#c62828", "#e57373", "#ad1457", "#ef6c00", "#f9a825",
                                               "#6a1b9a", "#1565c0", "#00838f", "#8d6e63", "#424242"), strict=True))
"""One colour per diagnosis, in `evalkit.core.extract.DIAGNOSIS_ORDER` (ok green, no text reds, format failures)."""
FONT = "font-family:system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif"
ROW = 22  # px per bar
CHAR_W = 7.4  # px per character of a 12px label (DejaVu Sans / system-ui average)
MAX_LABEL_CHARS = 40  # longer labels are shortened in the middle (the tooltip has them whole)
BAR_W = 200  # px for the longest bar
VALUE_W = 84  # px for the value text after a bar
TOP = 28  # px for the title


@dataclass(frozen=True, slots=True)
class Bar:
    """One horizontal bar; value None draws no bar and shows `note` (e.g. "undefined") in red."""

    label: str
    value: float | None
    color: str = "#455a64"
    note: str = ""  # text after the bar (default: the formatted value)
    title: str = ""  # tooltip


def _text(x: float, y: float, s: str, *, anchor: str = "start", size: int = 12, fill: str = "#222",
          weight: str = "normal", italic: bool = False) -> str:
    style = " font-style='italic'" if italic else ""
    return (f"<text x='{x:.1f}' y='{y:.1f}' font-size='{size}' fill='{fill}' text-anchor='{anchor}' "
            f"font-weight='{weight}'{style}>{escape(s)}</text>")


def _clip(label: str, chars: int = MAX_LABEL_CHARS) -> str:
    return label if len(label) <= chars else label[: chars - 15] + "…" + label[-14:]


def _label_width(labels: Sequence[str]) -> int:
    """Room for the longest (clipped) label, so small multiples of short names sit side by side."""
    longest = max((len(_clip(x)) for x in labels), default=8)
    return int(max(80, min(longest, MAX_LABEL_CHARS) * CHAR_W + 12))


def _open(title: str, label_w: int, height: int) -> list[str]:
    """A chart's opening <svg> tag (its title for screen readers) and its visible title."""
    width = label_w + BAR_W + VALUE_W
    return [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' viewBox='0 0 {width} {height}' "
            f"role='img' aria-label='{escape(title, quote=True)}' style='{FONT}'>",
            _text(0, 16, title, size=13, weight="600")]


def _decades(vmin: float, vmax: float) -> tuple[int, int]:
    """The log axis in whole decades: 10^lo <= vmin, 10^hi >= vmax, at least one decade wide."""
    return math.floor(math.log10(vmin)), math.ceil(math.log10(max(vmax, vmin * 10)))


def hbar_chart(title: str, bars: Sequence[Bar], *, vmax: float = 1.0, fmt: str = "{:.2f}", log: bool = False,
               vmin: float = 1e-4, reference: float | None = None, reference_label: str = "") -> str:
    """Horizontal bars on a 0..vmax axis (or log10 vmin..vmax), with an optional dashed reference line.

    >>> "stroke-dasharray" in hbar_chart("m", [Bar("a", 0.2)], reference=0.5, reference_label="baseline")
    True
    """
    # A value that is not a finite number is drawn as undefined, never on an axis (log10 of NaN has no decade)
    bars = [b if b.value is None or math.isfinite(b.value) else Bar(b.label, None, b.color, b.note or "undefined",
                                                                      b.title) for b in bars]
    vmax = vmax if math.isfinite(vmax) and vmax > 0 else 1.0
    vmin = vmin if math.isfinite(vmin) and 0 < vmin < vmax else min(1e-4, vmax / 10)
    if reference is not None and not math.isfinite(reference):
        reference = None
    LABEL_W = _label_width([b.label for b in bars])  # noqa: N806 - a layout constant per chart
    out = _open(title, LABEL_W, TOP + ROW * max(1, len(bars)) + 26)

    def pos(v: float) -> float:
        if log:  # whole decades, so the ticks (10^k) span the axis exactly
            lo, hi = _decades(vmin, vmax)
            return BAR_W * min(1.0, max(0.0, (math.log10(max(v, vmin)) - lo) / (hi - lo)))
        return BAR_W * min(1.0, max(0.0, v / vmax if vmax > 0 else 0.0))

    axis_y = TOP + ROW * max(1, len(bars))
    for tick in _ticks(vmax, log=log, vmin=vmin):
        x = LABEL_W + pos(tick)
        out.append(f"<line x1='{x:.1f}' y1='{TOP - 4}' x2='{x:.1f}' y2='{axis_y}' stroke='#e0e0e0'/>")
        out.append(_text(x, axis_y + 14, _tick_label(tick, log), anchor="middle", size=10, fill="#666"))
    for i, bar in enumerate(bars):
        y = TOP + i * ROW
        tip = f"<title>{escape(bar.title or bar.label)}</title>"
        out.append(f"<g>{tip}" + _text(LABEL_W - 6, y + 15, _clip(bar.label), anchor="end"))
        if bar.value is None:
            out.append(_text(LABEL_W + 4, y + 15, bar.note or "undefined", fill="#c62828", italic=True) + "</g>")
            continue
        w = pos(bar.value)
        out.append(f"<rect x='{LABEL_W}' y='{y + 3}' width='{max(w, 1.5):.1f}' height='{ROW - 6}' rx='2' "
                   f"fill='{bar.color}'/>")
        out.append(_text(LABEL_W + w + 5, y + 15, bar.note or fmt.format(bar.value), size=11, fill="#333") + "</g>")
    out.append(f"<line x1='{LABEL_W}' y1='{TOP - 4}' x2='{LABEL_W}' y2='{axis_y}' stroke='#9e9e9e'/>")
    if reference is not None:
        x = LABEL_W + pos(reference)
        out.append(f"<line x1='{x:.1f}' y1='{TOP - 6}' x2='{x:.1f}' y2='{axis_y}' stroke='#c62828' "
                   f"stroke-width='1.5' stroke-dasharray='5,3'/>")
        if reference_label:
            out.append(_text(x + 3, TOP - 8, f"{reference_label} {fmt.format(reference)}", size=10, fill="#c62828"))
    out.append("</svg>")
    return "".join(out)


def _ticks(vmax: float, *, log: bool, vmin: float) -> list[float]:
    if log:
        lo, hi = _decades(vmin, vmax)
        return [10.0 ** k for k in range(lo, hi + 1)]
    if vmax <= 0:
        return [0.0]
    step = 10 ** math.floor(math.log10(vmax))
    if vmax / step < 3:
        step /= 4 if vmax / step < 1.5 else 2
    n = int(vmax / step + 1e-9)
    return [k * step for k in range(n + 1)]


def _tick_label(v: float, log: bool) -> str:
    if log:
        return f"1e{round(math.log10(v))}" if v < 0.01 or v >= 100 else f"{v:g}"
    return f"{v:g}"


def stacked_chart(title: str, rows: Sequence[tuple[str, Mapping[str, int]]], order: Sequence[str],
                  colors: Mapping[str, str]) -> str:
    """100% stacked horizontal bars: each row's counts per segment (e.g. diagnoses), in `order`.

    >>> svg = stacked_chart("d", [("m", {"ok": 3, "empty": 1})], ["ok", "empty"], {"ok": "#0a0", "empty": "#a00"})
    >>> svg.count("<rect")
    2
    """
    LABEL_W = _label_width([label for label, _ in rows])  # noqa: N806 - a layout constant per chart
    out = _open(title, LABEL_W, TOP + ROW * max(1, len(rows)) + 8)
    for i, (label, counts) in enumerate(rows):
        y = TOP + i * ROW
        total = sum(counts.values())
        out.append(f"<g><title>{escape(label)}</title>" + _text(LABEL_W - 6, y + 15, _clip(label), anchor="end")
                   + "</g>")
        x = float(LABEL_W)
        for seg in order:
            c = counts.get(seg, 0)
            if not c or not total:
                continue
            w = BAR_W * c / total
            out.append(f"<rect x='{x:.1f}' y='{y + 3}' width='{w:.1f}' height='{ROW - 6}' fill='{colors.get(seg, '#999')}'>"
                       f"<title>{escape(f'{label}: {seg} {c}/{total}')}</title></rect>")
            x += w
        ok = counts.get("ok", 0)
        out.append(_text(LABEL_W + BAR_W + 6, y + 15, f"{ok}/{total} ok", size=11, fill="#333"))
    out.append("</svg>")
    return "".join(out)


def legend(items: Sequence[tuple[str, str]]) -> str:
    """An HTML legend (colored squares and names) for a chart."""
    parts = [f"<span class='key'><i style='background:{color}'></i>{escape(name)}</span>" for name, color in items]
    return f"<div class='legend'>{''.join(parts)}</div>"
