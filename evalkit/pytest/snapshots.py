"""syrupy extensions for the gate's two kinds of snapshot: metric summaries and golden greedy responses.

Both store one JSON document per snapshot inside syrupy's amber files (one ``.ambr`` per test module, under
``__snapshots__``), so a change is a readable line diff in review. One shared core (`CheckedSnapshotExtension`)
does the syrupy plumbing; each kind adds only how to dump its data and how to compare two dumps:

- `MetricSummaryExtension`: numbers with a tolerance (relative and absolute), counts and strings exact. Floats from
  torch reductions (KL, F1 means over floats) move in the last digits with thread counts and BLAS builds; a
  summary that only moved that much is not a change worth reviewing, and is not rewritten by --snapshot-update.
- `GoldenResponsesExtension`: greedy responses byte for byte; the first differing character is named.

When a snapshot does not match, the failure lists the mismatches first (path, stored, received, tolerance), then
syrupy's line diff. ``pytest --snapshot-update`` rewrites what changed; unused snapshots are reported by syrupy
(and removed with --snapshot-update). docs/snapshots.md is the reviewer's guide.

>>> ext = MetricSummaryExtension()
>>> stored = ext.serialize({"n": 64, "metrics": {"accuracy": 0.90625}})
>>> ext.matches(serialized_data=ext.serialize({"n": 64, "metrics": {"accuracy": 0.9062501}}), snapshot_data=stored)
True
>>> ext.compare(ext.serialize({"n": 63, "metrics": {"accuracy": 0.90625}}), stored)
['n: stored 64, received 63 (counts must match exactly)']
"""

from __future__ import annotations

import json
import math
from abc import abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from syrupy.extensions.amber import AmberSnapshotExtension

__all__ = ["CheckedSnapshotExtension", "GoldenResponsesExtension", "MetricSummaryExtension", "Tolerance",
           "metric_summary_extension"]


@dataclass(frozen=True, slots=True)
class Tolerance:
    """How far a stored float may be from the received one: |a - b| <= max(abs, rel * |stored|).

    >>> Tolerance(rel=1e-3).close(1.0005, 1.0), Tolerance(rel=1e-3).close(1.002, 1.0)
    (True, False)
    """

    rel: float = 1e-4
    abs: float = 1e-6

    def close(self, received: float, stored: float) -> bool:
        if math.isnan(received) or math.isnan(stored):
            return False  # summaries never hold NaN; if one does, it is a difference to look at
        return abs(received - stored) <= max(self.abs, self.rel * abs(stored))


class CheckedSnapshotExtension(AmberSnapshotExtension):
    """The shared core: serialize with `dump`, match with `compare`, and lead the failure diff with its findings."""

    @abstractmethod
    def dump(self, data: Any) -> str:
        """The stored text of `data` (deterministic: the same data gives the same bytes)."""

    @abstractmethod
    def compare(self, received: str, stored: str) -> list[str]:
        """Human-readable mismatches between two dumps; empty when they match."""

    def serialize(self, data: Any, **kwargs: Any) -> str:
        return self.dump(data)

    def matches(self, *, serialized_data: Any, snapshot_data: Any) -> bool:
        return not self.compare(str(serialized_data), str(snapshot_data))

    def diff_lines(self, serialized_data: Any, snapshot_data: Any) -> Iterator[str]:
        problems = self.compare(str(serialized_data), str(snapshot_data))
        if problems:
            yield f"{len(problems)} difference(s) beyond what this snapshot tolerates:"
            yield from (f"  {p}" for p in problems)
            yield "line diff (- stored, + received):"
        yield from super().diff_lines(serialized_data, snapshot_data)


def _json(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False)


def _load(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{what} snapshot is not the JSON this extension writes ({err}); "
                         f"regenerate it with --snapshot-update") from None


class MetricSummaryExtension(CheckedSnapshotExtension):
    """Metric summaries: floats within `tolerance`, ints (counts) and everything else exact."""

    tolerance: ClassVar[Tolerance] = Tolerance()

    def dump(self, data: Any) -> str:
        if not isinstance(data, Mapping):
            raise TypeError(f"MetricSummaryExtension snapshots a mapping of numbers, got {type(data).__name__}")
        return _json(data)

    def compare(self, received: str, stored: str) -> list[str]:
        out: list[str] = []
        self._walk(_load(received, "received"), _load(stored, "stored"), "", out)
        return out

    def _walk(self, got: Any, want: Any, path: str, out: list[str]) -> None:
        here = path or "<root>"
        if isinstance(want, dict) and isinstance(got, dict):
            for key in sorted(set(want) | set(got)):
                sub = f"{path}.{key}" if path else str(key)
                if key not in got:
                    out.append(f"{sub}: stored {want[key]!r}, missing from the received summary")
                elif key not in want:
                    out.append(f"{sub}: new in the received summary ({got[key]!r})")
                else:
                    self._walk(got[key], want[key], sub, out)
        elif isinstance(want, list) and isinstance(got, list):
            if len(want) != len(got):
                out.append(f"{here}: stored {len(want)} entries, received {len(got)}")
            for i, (g, w) in enumerate(zip(got, want)):
                self._walk(g, w, f"{path}[{i}]", out)
        elif _is_count(want) and _is_count(got):
            if want != got:
                out.append(f"{here}: stored {want}, received {got} (counts must match exactly)")
        elif _is_number(want) and _is_number(got):
            if not self.tolerance.close(float(got), float(want)):
                t = self.tolerance
                out.append(f"{here}: stored {want!r}, received {got!r} (|diff| {abs(got - want):.3g} > "
                           f"tolerance max({t.abs:g}, {t.rel:g} x |stored|))")
        elif got != want:
            out.append(f"{here}: stored {want!r}, received {got!r}")


def metric_summary_extension(*, rel: float = 1e-4, abs: float = 1e-6) -> type[MetricSummaryExtension]:
    """A `MetricSummaryExtension` with another tolerance, for ``snapshot.use_extension(...)``.

    >>> metric_summary_extension(rel=0.01).tolerance
    Tolerance(rel=0.01, abs=1e-06)
    """
    return type("MetricSummaryExtension", (MetricSummaryExtension,), {"tolerance": Tolerance(rel=rel, abs=abs)})


def _is_count(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


class GoldenResponsesExtension(CheckedSnapshotExtension):
    """Golden greedy responses, byte for byte. Data: a mapping of prompt id -> response text.

    Each response is stored as a list of its lines (split on "\\n", nothing else touched), so a diff shows the
    changed line and JSON escaping keeps every byte (special tokens, trailing spaces, \\r) exact.

    >>> ext = GoldenResponsesExtension()
    >>> ext.compare(ext.serialize({"zoo_math/3": "x = 4\\nso 4"}), ext.serialize({"zoo_math/3": "x = 4\\nso 5"}))
    ["zoo_math/3: differs from character 9 (line 2): stored 'so 5', received 'so 4'"]
    """

    def dump(self, data: Any) -> str:
        if not isinstance(data, Mapping) or not all(isinstance(v, str) for v in data.values()):
            raise TypeError("GoldenResponsesExtension snapshots a mapping of prompt id -> response text")
        return _json({str(k): v.split("\n") for k, v in data.items()})

    def compare(self, received: str, stored: str) -> list[str]:
        got, want = _load(received, "received"), _load(stored, "stored")
        out = []
        for key in sorted(set(got) | set(want)):
            if key not in got:
                out.append(f"{key}: stored, but no longer produced")
            elif key not in want:
                out.append(f"{key}: new response, not in the snapshot")
            elif got[key] != want[key]:
                g, w = "\n".join(got[key]), "\n".join(want[key])
                at = next((i for i, (a, b) in enumerate(zip(g, w)) if a != b), min(len(g), len(w)))
                line = g[:at].count("\n") + 1
                out.append(f"{key}: differs from character {at} (line {line}): stored {_line_at(w, at)!r}, "
                           f"received {_line_at(g, at)!r}")
        return out


def _line_at(text: str, at: int, width: int = 60) -> str:
    """The line of `text` holding character `at`, cut to `width` characters."""
    start = text.rfind("\n", 0, at) + 1
    end = text.find("\n", at)
    return text[start : end if end >= 0 else len(text)][:width]
