"""What the gate's snapshots store, and how closely a new run must match them (pure: JSON-ready data in, lines out).

A snapshot is for a reviewer: it must show the decisions and the numbers that mean something, and it must hold on
any machine. So it does not store one machine's rounding. Per (model, task) it keeps, for each device flavour
(``cpu``, ``cuda``):

- **portable** fields, compared wherever the gate runs, each with a tolerance grounded in what it means
  (`TOLERANCES`): the model's identity and the items exactly; the gate's decisions exactly; counts and rates within
  `FLIP_ITEMS` item(s), the replies that can flip on a near-tie under numeric noise; drift figures within an
  absolute floor far below the gate's drift bounds plus a relative band.
- **platform** fields, under ``"platforms": {<evalkit.run.platform.platform_key>: ...}``, for what greedy decoding does
  not reproduce across kernels: the chaotic replies of known-broken models (their counts, per-check verdicts and
  golden texts). They are compared only on the platform that recorded them; on another, the portable part is still
  checked and a note names the platform key to record.

`compare` lists the differences beyond tolerance (and the platform notes); `merge` is what ``--snapshot-update``
writes: other flavours and platforms are kept byte for byte, field groups that still match keep their stored values
(new fields are added beside them), and only a group that differs beyond tolerance is replaced. docs/snapshots.md is
the guide.

>>> stored = {"cpu": {"n": 48, "compliance": 1.0, "verdict": {"recovery": "pass"}}}
>>> compare({"cpu": {"n": 48, "compliance": 0.979167, "verdict": {"recovery": "pass"}}}, stored).problems
[]
>>> for line in compare({"cpu": {"n": 48, "compliance": 0.958333, "verdict": {"recovery": "fail"}}}, stored).problems:
...     print(line)
cpu: compliance: stored 1.0, received 0.958333 (2 item(s) of 48 apart; tolerated: 1, the replies that can flip)
cpu: verdict.recovery: stored 'pass', received 'fail'
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["FLIP_ITEMS", "Comparison", "Rule", "TOLERANCES", "compare", "compare_golden", "golden_document",
           "merge", "summary_document"]

FLIP_ITEMS = 1
"""Replies that may flip between platforms on a healthy model: across OMP thread counts 1 and 2, oneDNN capped at
AVX2 and ATen at AVX2, two CPU kinds and an H100 against an H200, no healthy zoo reply flipped; one is allowed for the
near-tie a real checkpoint can have. Known-broken models' replies are chaotic and keyed by platform instead."""

PLATFORMS = "platforms"


@dataclass(frozen=True, slots=True)
class Rule:
    """How one field of a summary is compared.

    exact: equal. items: counts within `k` (an absent count is 0). rate: a mean over the part's ``n`` items within
    `k` items (k/n). band: |received - stored| <= abs + rel * |stored|.
    """

    kind: Literal["exact", "items", "rate", "band"]
    k: int = 0
    abs: float = 0.0
    rel: float = 0.0
    why: str = ""

    def problem(self, received: Any, stored: Any, n: int | None) -> str | None:
        """None when within tolerance, else the reason."""
        if self.kind == "exact" or not (_number(received) and _number(stored)):
            return None if received == stored else ""
        if self.kind == "items":
            gap = abs(received - stored)
            return None if gap <= self.k else f"{gap:g} apart; tolerated: {self.k}, {self.why}"
        if self.kind == "rate":
            if not n:
                return None if received == stored else ""
            gap = abs(received - stored) * n
            return None if gap <= self.k + 1e-6 else (f"{round(gap)} item(s) of {n} apart; tolerated: {self.k}, "
                                                      f"{self.why}")
        if math.isnan(received) or math.isnan(stored):
            return ""
        bound = self.abs + self.rel * abs(stored)
        return None if abs(received - stored) <= bound else (f"|diff| {abs(received - stored):.3g} > "
                                                             f"{self.abs:g} + {self.rel:g} x |stored|, {self.why}")


_FLIP = "the replies that can flip"
_DRIFT = "drift noise of bf16 kernels"
EXACT = Rule("exact")
TOLERANCES: tuple[tuple[str, Rule], ...] = (
    ("model.*", EXACT),  # identity: a swapped checkpoint always shows
    ("n", EXACT), ("metric", EXACT), ("trivial_baseline.*", EXACT),  # the items
    ("outcome", EXACT), ("verdict.*", EXACT), ("diagnosis", EXACT), ("error", EXACT),  # the decisions
    ("compliance", Rule("rate", k=FLIP_ITEMS, why=_FLIP)),
    ("n_scored", Rule("items", k=FLIP_ITEMS, why=_FLIP)),
    ("diagnoses.*", Rule("items", k=FLIP_ITEMS, why=_FLIP)),
    ("metrics.*", Rule("rate", k=FLIP_ITEMS, why=_FLIP)),  # means of per-item scores in [0, 1]: one item moves 1/n
    ("recovery.worse", Rule("items", k=FLIP_ITEMS, why=_FLIP)),
    ("recovery.better", Rule("items", k=FLIP_ITEMS, why=_FLIP)),
    ("recovery.drop", Rule("rate", k=FLIP_ITEMS, why=_FLIP)),
    ("drift.first_divergent_layer", EXACT),
    # two points of agreement, 10x below the gap between full agreement and the gate's floor 0.80; a broken model's
    # agreement moved by 0.011 between two builds of it (oneDNN at AVX-512 BF16 and at AVX2)
    ("drift.top1_agreement", Rule("band", abs=0.02, why=_DRIFT)),
    # KL in nats, ppl ratio: 0.005 is 100x below the default bounds (mean KL 0.5, ppl ratio 1.5); 5% covers a
    # broken model's large values, which moved by up to 3.2% between CPU kinds (measured).
    ("drift.*", Rule("band", abs=0.005, rel=0.05, why=_DRIFT)),
)
"""Field pattern (dotted path, fnmatch) -> rule; the first match wins. A field no pattern names is compared exactly."""

# Fields of the gate's summary (evalkit.gate.summary.summarize) that a snapshot keeps, and where.
_IDENTITY = ("model", "n", "metric", "trivial_baseline", "outcome", "error")
_BEHAVIOUR = ("verdict", "diagnosis", "compliance", "n_scored", "diagnoses", "metrics", "recovery")
_RECOVERY = ("worse", "better", "drop")
_DRIFT_FIELDS = ("kl_mean", "kl_p99", "top1_agreement", "ppl_ratio", "first_divergent_layer")
UNBOUNDED_METRICS = frozenset({"avg_abs_diff"})
"""Metrics whose per-item values are unbounded (one flipped item can move the mean arbitrarily): left out of snapshots,
kept in results, reports and the gate's messages."""


def summary_document(summary: Mapping[str, Any], *, flavour: str, platform: str, reproducible: bool
                     ) -> dict[str, Any]:
    """The snapshot of one (model, task) from the gate's summary: portable fields, and under ``platforms`` the
    behaviour of a model whose replies are not reproducible across platforms (`reproducible` False).

    >>> doc = summary_document({"n": 4, "compliance": 0.5, "metrics": {"accuracy": 0.25, "avg_abs_diff": 9.0}},
    ...                        flavour="cpu", platform="cpu-x", reproducible=False)
    >>> doc
    {'cpu': {'n': 4, 'platforms': {'cpu-x': {'n': 4, 'compliance': 0.5, 'metrics': {'accuracy': 0.25}}}}}
    """
    portable = {k: summary[k] for k in _IDENTITY if k in summary}
    if "drift" in summary:
        portable["drift"] = {k: summary["drift"][k] for k in _DRIFT_FIELDS if k in summary["drift"]}
    behaviour = {k: summary[k] for k in _BEHAVIOUR if k in summary}
    if "metrics" in behaviour:
        behaviour["metrics"] = {k: v for k, v in behaviour["metrics"].items() if k not in UNBOUNDED_METRICS}
    if "recovery" in behaviour:
        behaviour["recovery"] = {k: behaviour["recovery"][k] for k in _RECOVERY if k in behaviour["recovery"]}
    if reproducible:
        return {flavour: {**portable, **behaviour}}
    if "n" in summary:  # rates in the platform part are over the same items
        behaviour = {"n": summary["n"], **behaviour}
    return {flavour: {**portable, PLATFORMS: {platform: behaviour}}}


def golden_document(responses: Mapping[str, str], *, flavour: str, platform: str, reproducible: bool
                    ) -> dict[str, Any]:
    """Golden responses (prompt id -> text), each stored as its lines, per flavour or per platform.

    >>> golden_document({"t/0": "a\\nb"}, flavour="cuda", platform="cuda-x", reproducible=True)
    {'cuda': {'t/0': ['a', 'b']}}
    """
    lines = {str(k): v.split("\n") for k, v in responses.items()}
    return {flavour: lines} if reproducible else {flavour: {PLATFORMS: {platform: lines}}}


# ------------------------------------------------------------------------------------------------ comparing


@dataclass(frozen=True, slots=True)
class Comparison:
    """Differences beyond tolerance (`problems`), and parts that could not be compared here (`unrecorded`)."""

    problems: list[str] = field(default_factory=list)
    unrecorded: list[str] = field(default_factory=list)

    @property
    def matches(self) -> bool:
        return not self.problems


PartCompare = Callable[[Any, Any], list[str]]


def compare(received: Mapping[str, Any], stored: Mapping[str, Any], *, compare_part: PartCompare | None = None
            ) -> Comparison:
    """Compare every part of `received` (this run's flavour, and its platform) with the stored document."""
    compare_part = compare_part or compare_summary_part
    mine, theirs = _parts(received), _parts(stored)
    out = Comparison()
    for (flavour, platform), part in mine.items():
        where = flavour if platform is None else f"{flavour} on {platform}"
        if (flavour, platform) in theirs:
            out.problems.extend(f"{where}: {p}" for p in compare_part(part, theirs[(flavour, platform)]))
        elif platform is None:
            out.problems.append(f"{flavour}: nothing recorded for the {flavour} flavour yet; record it with "
                                f"--snapshot-update and review the diff")
        else:
            recorded = sorted(p for f, p in theirs if f == flavour and p is not None)
            out.unrecorded.append(f"{flavour}: no expectations recorded for platform {platform!r} (recorded: "
                                  f"{', '.join(recorded) or 'none'}); its portable part was checked. Record this "
                                  "platform with --snapshot-update and review the diff")
    return out


def compare_summary_part(received: Any, stored: Any) -> list[str]:
    """Field-by-field differences of two summary parts beyond `TOLERANCES`."""
    out: list[str] = []
    n = stored.get("n") if isinstance(stored, Mapping) else None
    _walk(received, stored, "", n if isinstance(n, int) else None, out)
    return out


def compare_golden(received: Mapping[str, Any], stored: Mapping[str, Any]) -> Comparison:
    """`compare` for golden responses: byte for byte, naming the first differing character."""
    return compare(received, stored, compare_part=compare_golden_part)


def compare_golden_part(received: Any, stored: Any) -> list[str]:
    """
    >>> compare_golden_part({"t/3": ["x = 4", "so 4"]}, {"t/3": ["x = 4", "so 5"]})
    ["t/3: differs from character 9 (line 2): stored 'so 5', received 'so 4'"]
    """
    out = []
    for key in sorted(set(received) | set(stored)):
        if key not in received:
            out.append(f"{key}: stored, but no longer produced")
        elif key not in stored:
            out.append(f"{key}: new response, not in the snapshot")
        elif received[key] != stored[key]:
            g, w = "\n".join(received[key]), "\n".join(stored[key])
            at = next((i for i, (a, b) in enumerate(zip(g, w)) if a != b), min(len(g), len(w)))
            line = g[:at].count("\n") + 1
            out.append(f"{key}: differs from character {at} (line {line}): stored {_line_at(w, at)!r}, "
                       f"received {_line_at(g, at)!r}")
    return out


def rule_for(path: str) -> Rule:
    """The tolerance of one dotted field path (exact when no pattern names it).

    >>> rule_for("drift.kl_mean").kind, rule_for("diagnoses.ok").kind, rule_for("verdict.drift").kind
    ('band', 'items', 'exact')
    """
    return next((rule for pattern, rule in TOLERANCES if fnmatch.fnmatchcase(path, pattern)), EXACT)


def _walk(got: Any, want: Any, path: str, n: int | None, out: list[str]) -> None:
    if isinstance(want, Mapping) and isinstance(got, Mapping):
        for key in sorted(set(want) | set(got), key=str):
            sub = f"{path}.{key}" if path else str(key)
            rule = rule_for(sub)
            if key in want and key in got:
                _walk(got[key], want[key], sub, n, out)
            elif rule.kind == "items":  # an absent count is a count of 0
                _leaf(got.get(key, 0), want.get(key, 0), sub, rule, n, out)
            elif key not in got:
                out.append(f"{sub}: stored {want[key]!r}, missing from the received summary")
            else:
                out.append(f"{sub}: new in the received summary ({got[key]!r})")
    else:
        _leaf(got, want, path or "<root>", rule_for(path), n, out)


def _leaf(got: Any, want: Any, path: str, rule: Rule, n: int | None, out: list[str]) -> None:
    if isinstance(want, list) and isinstance(got, list) and want != got:
        out.append(f"{path}: stored {want!r}, received {got!r}")
        return
    reason = rule.problem(got, want, n)
    if reason is not None:
        out.append(f"{path}: stored {want!r}, received {got!r}" + (f" ({reason})" if reason else ""))


# ------------------------------------------------------------------------------------------------- merging


def merge(stored: Mapping[str, Any] | None, received: Mapping[str, Any], *, compare_part: PartCompare | None = None
          ) -> dict[str, Any]:
    """What ``--snapshot-update`` writes: `stored` with the parts of `received` merged in.

    Parts `received` does not hold (other flavours, other platforms) are kept as stored. Within a received part,
    each field group (a top-level field: the verdicts, the diagnosis counts, the metrics, the drift figures, one
    golden reply) that still matches keeps its stored values, with fields new to it added; a group that differs
    beyond tolerance is replaced whole; groups the summary no longer has are dropped. So an update shows a reviewer
    exactly the groups that changed, and a group's numbers always come from one recording.

    >>> stored = {"cpu": {"n": 4, "compliance": 1.0, "verdict": {"recovery": "pass"}}, "cuda": {"n": 4}}
    >>> merge(stored, {"cpu": {"n": 4, "compliance": 1.0, "verdict": {"recovery": "pass"}, "model": {"fp": "ab"}}})
    {'cpu': {'compliance': 1.0, 'model': {'fp': 'ab'}, 'n': 4, 'verdict': {'recovery': 'pass'}}, 'cuda': {'n': 4}}
    >>> merge(stored, {"cpu": {"n": 4, "compliance": 0.75, "verdict": {"recovery": "inconclusive"}}})["cpu"]
    {'compliance': 1.0, 'n': 4, 'verdict': {'recovery': 'inconclusive'}}
    """
    compare_part = compare_part or compare_summary_part
    parts = _parts(stored or {})
    for key, part in _parts(received).items():
        old = parts.get(key)
        parts[key] = part if old is None else _merge_part(old, part, compare_part)
    return _assemble(parts)


def _merge_part(old: Any, new: Any, compare_part: PartCompare) -> Any:
    """One part: stored field groups that still match, received ones that do not (see `merge`)."""
    if not compare_part(new, old):
        return old
    if not (isinstance(old, Mapping) and isinstance(new, Mapping)):
        return new
    context = {"n": old["n"]} if "n" in old else {}  # rates are judged on the recorded item count
    out = {}
    for field, value in new.items():
        if field not in old:
            out[field] = value
            continue
        problems = compare_part({**context, field: value}, {**context, field: old[field]})
        if not problems:
            out[field] = old[field]
        elif all(": new in the received summary" in p for p in problems):
            out[field] = _with_new_fields(old[field], value)
        else:
            out[field] = value
    return dict(sorted(out.items()))


def _with_new_fields(old: Any, new: Any) -> Any:
    if not (isinstance(old, Mapping) and isinstance(new, Mapping)):
        return old
    out = {k: _with_new_fields(old[k], new[k]) if k in new else old[k] for k in old}
    out.update({k: v for k, v in new.items() if k not in old})
    return dict(sorted(out.items()))


def _parts(doc: Mapping[str, Any]) -> dict[tuple[str, str | None], Any]:
    """(flavour, platform or None) -> part."""
    out: dict[tuple[str, str | None], Any] = {}
    for flavour, body in doc.items():
        if not isinstance(body, Mapping):
            out[(flavour, None)] = body
            continue
        portable = {k: v for k, v in body.items() if k != PLATFORMS}
        if portable or PLATFORMS not in body:
            out[(flavour, None)] = portable
        for platform, part in (body.get(PLATFORMS) or {}).items():
            out[(flavour, platform)] = part
    return out


def _assemble(parts: Mapping[tuple[str, str | None], Any]) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    for (flavour, platform), part in sorted(parts.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")):
        body = doc.setdefault(flavour, {})
        if platform is None:
            body.update(part)
        else:
            body.setdefault(PLATFORMS, {})[platform] = part
    return doc


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _line_at(text: str, at: int, width: int = 60) -> str:
    """The line of `text` holding character `at`, cut to `width` characters."""
    start = text.rfind("\n", 0, at) + 1
    end = text.find("\n", at)
    return text[start : end if end >= 0 else len(text)][:width]
