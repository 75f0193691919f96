"""The gate's decision core: paired per-item scores in, three-outcome verdicts with family-wise error control out.

Pure: numpy only; no model, torch, file or pytest. A team can gate results produced by any evaluator (e.g.
lm-eval's ``--log_samples``), and the statistics can be tested in isolation. The procedure is documented for a
statistician in docs/gate.md ("The decision"); in short:

- **One family per model.** Every statistical check of every task of a model (compliance floor, stopping,
  metric floor, recovery against the parent, trivial baseline) is one hypothesis of a weighted Holm procedure at
  the model's alpha; recovery gets most of the weight (`Weights`).
- **One alpha per run.** A model's alpha is the run's alpha over the number of models gated (Bonferroni across
  models): a run of sound models is red with probability at most ``alpha`` (default 0.05), and any model that
  passes while it is worse than allowed does so with probability at most its own alpha.
- **Three outcomes.** A check *fails* when Holm rejects "no real problem" (a drop above ``tolerated_drop``, a rate
  below its floor); it *passes* when "a problem as large as the check must see" (a drop of ``detect_drop``, a rate
  at ``floor - floor_margin``) is rejected at the model's alpha; otherwise it is *inconclusive*, with the exact
  power at this n and the items that would settle it. ``require_power`` turns an inconclusive recovery into a
  failure.
- **Tests.** Exact where the data allow (binomial floors, McNemar / sign flips under exchangeability), otherwise
  the intersection of a score test and a likelihood-ratio test whose null is the least-favourable distribution on
  the scores' support (`evalkit.core.decision.pvalues`).

>>> parent = [1] * 300 + [0] * 200
>>> broken = [1] * 250 + [0] * 250                                  # lost 50 items, gained none
>>> d = decide({"arc": PairedTask(broken, parent, compliant=[True] * 500)}, Criteria(), alpha=0.05, run_size=12)
>>> d.status, d.check("arc", "recovery").status
('fail', 'fail')
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from evalkit.core.decision.criteria import CHECKS, Criteria, Status, TaskShape, Weights

if TYPE_CHECKING:  # the statistics load numpy: on first use, so that the manifest's settings stay cheap to import
    from evalkit.core.decision.core import Batch, PairedTask, TaskSummary, decide_batch, family
    from evalkit.core.decision.holm import FAIL, INCONCLUSIVE, PASS, STATUS, resolve, weighted_holm
    from evalkit.core.decision.planning import (Needed, floor_fail_probability, floor_pass_probability,
                                                items_needed_floor, items_needed_recovery,
                                                recovery_pass_probability, recovery_power)
    from evalkit.core.decision.verdicts import (CheckDecision, ModelDecision, Plan, PlanEntry, RunDecision, decide,
                                                plan, run_decision)

_LAZY = {
    **dict.fromkeys(("Batch", "PairedTask", "TaskSummary", "decide_batch", "family"), "core"),
    **dict.fromkeys(("FAIL", "INCONCLUSIVE", "PASS", "STATUS", "resolve", "weighted_holm"), "holm"),
    **dict.fromkeys(("Needed", "floor_fail_probability", "floor_pass_probability", "items_needed_floor",
                     "items_needed_recovery", "recovery_pass_probability", "recovery_power"), "planning"),
    **dict.fromkeys(("CheckDecision", "ModelDecision", "Plan", "PlanEntry", "RunDecision", "decide", "plan",
                     "run_decision"), "verdicts"),
}

__all__ = ["CHECKS", "FAIL", "INCONCLUSIVE", "PASS", "STATUS", "Batch", "CheckDecision", "Criteria",
           "ModelDecision", "Needed", "PairedTask", "Plan", "PlanEntry", "RunDecision", "Status", "TaskShape",
           "TaskSummary", "Weights", "decide", "decide_batch", "family", "floor_fail_probability",
           "floor_pass_probability", "items_needed_floor", "items_needed_recovery", "plan",
           "recovery_pass_probability", "recovery_power", "resolve", "run_decision", "weighted_holm"]


def __getattr__(name: str) -> Any:
    """Load the statistics (numpy) on first use of one of their names."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'evalkit.core.decision' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"evalkit.core.decision.{module}"), name)
    globals()[name] = value
    return value
