"""Placement: spread models over N server slots (local replicas or remote hosts), each slot working through its
models one after another.

Decided: round robin in the order given, model i on slot i mod N. Placement never changes a result: every slot runs
the same engine with the same flags on the same kind of hardware, the cache key holds no slot, and a variant's
comparison with its parent reads the parent's records (and, for drift, the parent's logprobs taken while its server
was up), not its server. So the only thing placement decides is balance, and models of one zoo or one family cost
about the same. What a gate must order is stages, not slots: parents first (their records are the teacher text
of their variants' drift), then the variants, each stage spread with `run_placed`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

S = TypeVar("S")
R = TypeVar("R")


def place(models: Sequence[str], n_slots: int) -> dict[str, int]:
    """Slot of each model: round robin in the given order (deterministic, balanced for similar models).

    >>> place(["base", "base_gptq_w4g64", "sft", "sft_gptq_w4g64"], 2)
    {'base': 0, 'base_gptq_w4g64': 1, 'sft': 0, 'sft_gptq_w4g64': 1}
    """
    if n_slots < 1:
        raise ValueError(f"need at least one server slot, got {n_slots}")
    if len(set(models)) != len(models):
        raise ValueError(f"models must be distinct, got {list(models)}")
    return {m: i % n_slots for i, m in enumerate(models)}


def run_placed(models: Sequence[str], slots: Sequence[S], work: Callable[[str, S], R]) -> dict[str, R]:
    """`work(model, slot)` for every model, the models of one slot in order on that slot's own thread, the slots at
    once. Returns model -> result in the given order; the first failure is raised once every slot has stopped.

    >>> run_placed(["a", "b", "c"], ["s0", "s1"], lambda m, s: f"{m}@{s}")
    {'a': 'a@s0', 'b': 'b@s1', 'c': 'c@s0'}
    """
    where = place(models, len(slots))
    queues = [[m for m in models if where[m] == i] for i in range(len(slots))]

    def drain(i: int) -> dict[str, R]:
        return {m: work(m, slots[i]) for m in queues[i]}

    with ThreadPoolExecutor(max_workers=len(slots), thread_name_prefix="evalkit-slot") as pool:
        futures = [pool.submit(drain, i) for i in range(len(slots)) if queues[i]]
        errors = [f.exception() for f in futures if f.exception() is not None]
        if errors:
            raise errors[0]  # type: ignore[misc]
        done = {m: r for f in futures for m, r in f.result().items()}
    return {m: done[m] for m in models}
