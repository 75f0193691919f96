"""Placement of models over server slots (`evalkit.run.backends.vllm.pool`)."""

from __future__ import annotations

import threading

import pytest

from evalkit.run.backends.vllm import place, run_placed


def test_placement_is_round_robin_and_deterministic():
    models = [f"m{i}" for i in range(5)]
    assert place(models, 2) == {"m0": 0, "m1": 1, "m2": 0, "m3": 1, "m4": 0}
    assert place(models, 2) == place(list(models), 2)
    with pytest.raises(ValueError):
        place(["a", "a"], 2)


def test_slots_work_at_once_and_each_slot_in_order():
    seen: dict[str, list[str]] = {}
    both = threading.Barrier(2, timeout=5)  # both slots must be running at the same time to pass it

    def work(model: str, slot: str) -> str:
        if model in ("a", "b"):
            both.wait()
        seen.setdefault(slot, []).append(model)
        return model.upper()

    assert run_placed(["a", "b", "c", "d", "e"], ["s0", "s1"], work) == {m: m.upper() for m in "abcde"}
    assert seen == {"s0": ["a", "c", "e"], "s1": ["b", "d"]}


def test_a_failure_is_raised_after_every_slot_stopped():
    done = []

    def work(model: str, slot: int) -> None:
        if model == "bad":
            raise RuntimeError("server for bad did not start")
        done.append(model)

    with pytest.raises(RuntimeError, match="bad did not start"):
        run_placed(["bad", "ok1", "ok2"], [0, 1], work)
    assert done == ["ok1"]  # slot 0 stops at its failure; slot 1 finishes its own models
