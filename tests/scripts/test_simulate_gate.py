"""scripts/simulate_gate.py decides with the gate's own code: its validation section, on one replicate of the grid."""

from __future__ import annotations

import simulate_gate


def test_the_benchmarks_decisions_are_the_gates_on_rebuilt_evidence(capsys) -> None:
    """Every check status of `decide_batch` (what the tables use) equals `decide`'s and the gate's (`verdict` and
    its checks on engine records rebuilt from the replicate), for 12 models x 4 tasks at 500 items, one variant 5
    points worse on arc."""
    assert simulate_gate.validate_section(seed=3, replicates=1)
    out = capsys.readouterr().out
    assert "`decide`: 168 of 168" in out and "the gate (`evalkit.gate.verdict` on rebuilt evidence): 168 of 168" in out
