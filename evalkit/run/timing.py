"""Per-phase timings of a generation run: what the slow-kernel check compares (`evalkit.gate.checks`).

Why per phase and per step: a run's wall time mixes one-time costs (first kernels, graph capture, compilation) with
the steady state, and on the gate's CPU zoo a whole run takes under a second, so the old whole-run check skipped most
variants. The prefill and each decode step are timed separately instead (CUDA events on a GPU, so nothing waits on the
host), the first `WARMUP_STEPS` decode steps of each batch are dropped, and each phase is reduced to one robust
number: the prefill's fastest batch (noise only ever adds time) and the median decode step. Per prompt token and per
batch row, so that batches of different sizes compare.

>>> log = PhaseLog()
>>> log.add(rows=4, width=10, intervals=[0.4, 9.0, 9.0, 0.2, 0.3, 0.2])  # prefill, 2 warm-up steps, 3 steps
>>> p = log.phases()
>>> (p.prefill_s_per_token, p.decode_s_per_row, p.decode_steps)
(0.01, 0.05, 3)
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterable, Sequence
from typing import Any

from evalkit.run.generation import Phases

__all__ = ["WARMUP_STEPS", "PhaseLog", "StepClock", "fastest"]

WARMUP_STEPS = 2  # decode steps of each batch left out (first-call allocations, cache warm-up)


class StepClock:
    """Marks on the device's timeline: host time on a CPU, CUDA events on a GPU (recorded without a sync)."""

    def __init__(self, device_type: str) -> None:
        self.cuda = device_type == "cuda"
        self.marks: list[Any] = []

    def mark(self) -> None:
        if self.cuda:
            import torch

            event = torch.cuda.Event(enable_timing=True)
            event.record()
            self.marks.append(event)
        else:
            self.marks.append(time.perf_counter())

    def intervals(self) -> list[float]:
        """Seconds between successive marks (waits for the last CUDA event once)."""
        if len(self.marks) < 2:
            return []
        if self.cuda:
            self.marks[-1].synchronize()
            return [a.elapsed_time(b) / 1000.0 for a, b in zip(self.marks, self.marks[1:])]
        return [b - a for a, b in zip(self.marks, self.marks[1:])]


class PhaseLog:
    """The timed phases of every batch of one run."""

    def __init__(self) -> None:
        self.prefill: list[float] = []  # seconds per prompt token, one per batch
        self.decode: list[float] = []  # seconds per row, one per timed decode step
        self.batches = 0

    def add(self, *, rows: int, width: int, intervals: Sequence[float]) -> None:
        """One batch: `intervals` from the start of its prefill, the prefill first, then one per decode step;
        `rows` the rows computed (filler rows included), `width` the padded prompt width."""
        if not intervals:
            return
        self.batches += 1
        self.prefill.append(intervals[0] / max(1, rows * width))
        self.decode.extend(s / max(1, rows) for s in intervals[1 + WARMUP_STEPS:])

    def phases(self) -> Phases | None:
        if not self.prefill:
            return None
        decode = statistics.median(self.decode) if self.decode else None
        return Phases(min(self.prefill), decode, len(self.decode), self.batches)


def fastest(runs: Iterable[Phases | None]) -> Phases | None:
    """One model's steady state over several runs (its tasks): each phase's fastest run. The runs of one model come
    one after the other, so the first carries what a process pays once (a GPU's clocks ramping up, first kernel
    loads: the parent, evaluated first, timed 7x slow on its first two tasks on an H200) and any run can be slowed by
    a neighbour on shared cores; neither makes a run faster.

    >>> fastest([Phases(3e-5, 2e-3, 40, 2), Phases(2e-5, None, 0, 1), None]).decode_s_per_row
    0.002
    """
    timed = [p for p in runs if p is not None]
    if not timed:
        return None
    decodes = [p.decode_s_per_row for p in timed if p.decode_s_per_row is not None]
    return Phases(min(p.prefill_s_per_token for p in timed), min(decodes) if decodes else None,
                  sum(p.decode_steps for p in timed), sum(p.batches for p in timed))


_CRITERION: list[type] = []


def clock_criterion(clock: StepClock) -> Any:
    """A transformers stopping criterion that never stops anything and marks `clock` at every generated token (the
    first call comes after the prefill): how eager ``generate`` is timed per step."""
    if not _CRITERION:
        import torch
        from transformers import StoppingCriteria

        class _Clock(StoppingCriteria):  # transformers is not followed by mypy: its classes are Any
            def __init__(self, clock: StepClock) -> None:
                self.clock = clock

            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                self.clock.mark()
                return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)

        _CRITERION.append(_Clock)
    return _CRITERION[0](clock)
