"""syrupy extensions for the gate's two kinds of snapshot: metric summaries and golden greedy responses.

Both store one JSON document per (check, model, task) in syrupy's amber files (one ``.ambr`` per test module, under
``__snapshots__``), so a change is a readable line diff in review. What a document holds and how closely a run must
match it is `evalkit.gate.expectations` (pure); this module is the syrupy plumbing:

- One entry per (model, task) for every device flavour: the entry's name leaves the flavour out of the test id
  (``test_metric_summary[base-zoo_math]`` for ``...[cpu-base-zoo_math]`` and ``...[cuda-base-zoo_math]``), and the
  document keys its parts by flavour and platform. So a ``-m``, ``-k`` or ``--gate-device`` selection never leaves
  another flavour's entries unused (syrupy would report them and delete them on ``--snapshot-update``).
- ``--snapshot-update`` merges (`evalkit.gate.expectations.merge`): other flavours and platforms stay byte for byte, a part
  that still matches is not rewritten, and only what differs beyond tolerance is.
- A part recorded for no platform like this one is not a failure: the portable part was checked, and a
  `SnapshotPlatformWarning` names the platform key to record.

docs/snapshots.md is the reviewer's guide.

>>> ext = MetricSummaryExtension()
>>> stored = ext.serialize({"cpu": {"n": 64, "metrics": {"accuracy": 0.90625}}})
>>> ext.matches(serialized_data=ext.serialize({"cpu": {"n": 64, "metrics": {"accuracy": 0.921875}}}),
...             snapshot_data=stored)
True
>>> ext.problems(ext.serialize({"cpu": {"n": 63, "metrics": {"accuracy": 0.90625}}}), stored)
['cpu: n: stored 64, received 63']
"""

from __future__ import annotations

import functools
import json
import re
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

from syrupy.data import Snapshot, SnapshotCollection
from syrupy.extensions.amber import AmberSnapshotExtension
from syrupy.utils import exclusive_file_lock, snapshot_file_lock_enabled

from evalkit.core import paths
from evalkit.gate import expectations

__all__ = ["CheckedSnapshotExtension", "GoldenResponsesExtension", "MetricSummaryExtension",
           "SnapshotPlatformWarning", "for_session"]

_FLAVOUR_IN_ID = re.compile(r"\[(?:cpu|cuda)-")


class SnapshotPlatformWarning(UserWarning):
    """Expectations that only a platform like this one could check are not recorded for it yet."""


class CheckedSnapshotExtension(AmberSnapshotExtension):
    """The shared core: documents keyed by flavour and platform, compared and merged by `evalkit.gate.expectations`."""

    update: ClassVar[bool] = False  # --snapshot-update: a platform not recorded yet is a mismatch, so it gets written
    # Each write merges into the file at once: the cpu and cuda tests of a (model, task) share one entry, and a batch
    # written at the session's end would hold both under one name, the second replacing the first.
    write_immediately: ClassVar[bool] = True

    @staticmethod
    def compare(received: Mapping[str, Any], stored: Mapping[str, Any]) -> expectations.Comparison:
        return expectations.compare(received, stored)

    @staticmethod
    def merge_documents(stored: Mapping[str, Any] | None, received: Mapping[str, Any]) -> dict[str, Any]:
        return expectations.merge(stored, received)

    # -- syrupy ----------------------------------------------------------------------------------------------------

    @classmethod
    def get_snapshot_name(cls, *, test_location: Any, index: Any = 0) -> str:
        """The test's name without its device flavour: one entry serves the cpu and cuda tests of a (model, task)."""
        return _FLAVOUR_IN_ID.sub("[", super().get_snapshot_name(test_location=test_location, index=index), count=1)

    def serialize(self, data: Any, **kwargs: Any) -> str:
        if not isinstance(data, Mapping):
            raise TypeError(f"{type(self).__name__} snapshots a mapping of flavour -> part, got {type(data).__name__}")
        return _json(data)

    def matches(self, *, serialized_data: Any, snapshot_data: Any) -> bool:
        result = self.compare(_load(serialized_data, "received"), _load(snapshot_data, "stored"))
        if result.unrecorded and not self.update:
            for note in result.unrecorded:
                warnings.warn(SnapshotPlatformWarning(note), stacklevel=2)
        return result.matches and not (result.unrecorded and self.update)

    def problems(self, serialized_data: Any, snapshot_data: Any) -> list[str]:
        """Human-readable mismatches between a received and a stored dump; empty when they match."""
        return self.compare(_load(serialized_data, "received"), _load(snapshot_data, "stored")).problems

    def diff_lines(self, serialized_data: Any, snapshot_data: Any) -> Iterator[str]:
        if not snapshot_data:  # syrupy has said "Snapshot ... does not exist!"
            yield f"record it with --snapshot-update, then review the diff ({paths.doc('snapshots.md')})"
            return
        problems = self.problems(serialized_data, snapshot_data)
        if problems:
            yield f"{len(problems)} difference(s) beyond what this snapshot tolerates:"
            yield from (f"  {p}" for p in problems)
            yield "line diff (- stored, + received):"
        yield from super().diff_lines(serialized_data, snapshot_data)

    @classmethod
    def write_snapshot_collection(cls, *, snapshot_collection: SnapshotCollection,
                                  name_order: dict[str, int] | None = None) -> None:
        """Merge each document into the stored one, under the file lock xdist workers share."""
        location = snapshot_collection.location

        def write() -> None:
            stored = cls.serializer_class.read_file(location)
            merged = SnapshotCollection(location=location)
            for snapshot in snapshot_collection:
                old = stored.get(snapshot.name)
                doc = cls.merge_documents(_load(old.data, "stored") if old is not None and old.data else None,
                                          _load(snapshot.data, "received"))
                merged.add(Snapshot(name=snapshot.name, data=_json(doc)))
            cls.serializer_class.write_file(merged, merge=True, name_order=name_order, file_lock=locked,
                                            _already_locked=locked)

        locked = snapshot_file_lock_enabled()
        if locked:
            with exclusive_file_lock(location):
                write()
        else:
            write()


class MetricSummaryExtension(CheckedSnapshotExtension):
    """Metric summaries: portable fields within `evalkit.gate.expectations.TOLERANCES`, chaotic ones per platform."""


class GoldenResponsesExtension(CheckedSnapshotExtension):
    """Golden greedy responses, byte for byte; each response is stored as its lines (split on "\\n" only), so a
    diff shows the changed line and JSON escaping keeps every byte (special tokens, trailing spaces, \\r) exact.

    >>> ext = GoldenResponsesExtension()
    >>> ext.problems(ext.serialize({"cpu": {"zoo_math/3": ["x = 4", "so 4"]}}),
    ...              ext.serialize({"cpu": {"zoo_math/3": ["x = 4", "so 5"]}}))
    ["cpu: zoo_math/3: differs from character 9 (line 2): stored 'so 5', received 'so 4'"]
    """

    @staticmethod
    def compare(received: Mapping[str, Any], stored: Mapping[str, Any]) -> expectations.Comparison:
        return expectations.compare_golden(received, stored)

    @staticmethod
    def merge_documents(stored: Mapping[str, Any] | None, received: Mapping[str, Any]) -> dict[str, Any]:
        return expectations.merge(stored, received, compare_part=expectations.compare_golden_part)


@functools.cache
def for_session(extension: type[CheckedSnapshotExtension], update: bool, folder: str | None = None,
                anchor: str | None = None) -> type[CheckedSnapshotExtension]:
    """`extension` as a pytest session with (or without) --snapshot-update uses it (one class per mode, so syrupy
    discovers each snapshot file once).

    folder, anchor: the ini key ``gate_snapshots``: the snapshots of the tests collected at the manifest `anchor` go
    into `folder` instead of syrupy's ``__snapshots__`` beside it (the file keeps the manifest's stem)."""
    body: dict[str, Any] = {"update": update, "__module__": extension.__module__}
    if folder is None or anchor is None:
        return type(extension.__name__, (extension,), body)
    into, manifest = Path(folder), Path(anchor)

    class Located(extension):  # type: ignore[valid-type,misc]  # a class made at run time, from the argument
        @classmethod
        def dirname(cls, *, test_location: Any) -> str:
            if Path(test_location.filepath) == manifest:
                return str(into)
            return str(super().dirname(test_location=test_location))

        @classmethod
        def matches_test_location(cls, *, test_location: Any, snapshot_location: str) -> bool:
            if Path(test_location.filepath) == manifest:
                return Path(snapshot_location) == into / f"{test_location.basename}.{cls.file_extension}"
            return bool(super().matches_test_location(test_location=test_location,
                                                      snapshot_location=snapshot_location))

    Located.update = update
    Located.__name__ = Located.__qualname__ = extension.__name__
    Located.__module__ = extension.__module__
    return Located


def _json(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False)


def _load(text: Any, what: str) -> Any:
    try:
        return json.loads(str(text))
    except json.JSONDecodeError as err:
        raise ValueError(f"{what} snapshot is not the JSON this extension writes ({err}); "
                         f"regenerate it with --snapshot-update") from None
