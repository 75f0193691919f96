"""Simulation benchmark of the gate's decision core (`evalkit.core.decision`): error rates and power on the seed's
grid.

    python scripts/simulate_gate.py                 # every table, ~2-4 minutes on 2 cores
    python scripts/simulate_gate.py --reps 1000     # quicker, rates to about +-1.5%
    python scripts/simulate_gate.py --only grid     # one section: grid, power, corners, validate

The grid is the seed report's: 12 models, 3 parents and 3 post-training variants of each, every variant
*exchangeable* with its parent (the pair (parent, variant) of per-item scores has the same distribution as
(variant, parent): same accuracy, and a share `psi` of items on which they disagree), on 4 tasks:

  arc    0/1 accuracy, parent accuracy 0.60, trivial baseline 0.25 (chance on 4 options)
  math   0/1 accuracy, 0.60, baseline 0.00
  boolq  0/1 accuracy, 0.75, baseline 0.62 (majority class)
  squad  token F1 in [0, 1] (0 w.p. 0.30, 1 w.p. 0.50, partial 0.4-0.8 otherwise: mean 0.62), baseline 0.50

Every model answers compliantly on 97% of the items (floor 0.90) and runs to the token limit on 1% (a variant on
another 1% than its parent's, exchangeably). Defaults everywhere: run alpha 0.05 over the 12 models, tolerated drop
1 point, detect drop 5 points, floor margin 5 points, power 0.90, weights of `evalkit.core.decision.Weights`.

Every decision is made by `evalkit.core.decision.decide_batch`, the function `decide` itself calls (and the gate
through it: `evalkit.gate.runner.Gate.decision` -> `evalkit.gate.decisions.decide_model` -> `decide`), on each
task's sufficient statistics (counts; exact, since every check depends on the data only through them); the
validation section rebuilds per-item data for some replicates, decides them with `decide` and with the gate itself
(engine records -> `decide_model` -> `evalkit.gate.verdict` and its checks), and checks that every status agrees
(the script exits 1 otherwise). "recommended n" is what the gate's plan prints for a task ("~N needed for a
5-point drop at 90% power"): `plan`'s recovery count at the planned disagreement.
Rates are over `--reps` seeded replicates; the Monte Carlo standard error of a rate r is sqrt(r (1 - r) / reps)
(printed as the largest over each table).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evalkit.core.decision import (FAIL, INCONCLUSIVE, PASS, STATUS, Criteria, PairedTask,  # noqa: E402
                                   TaskShape, TaskSummary, Weights, decide, decide_batch, family,
                                   floor_fail_probability, floor_pass_probability, plan, recovery_pass_probability,
                                   recovery_power)
from evalkit.gate import Evidence  # noqa: E402

RUN_ALPHA = 0.05
N_PARENTS, N_VARIANTS = 3, 3  # variants per parent
RUN_SIZE = N_PARENTS * (1 + N_VARIANTS)
COMPLIANCE, CUT = 0.97, 0.01
F1_VALUES = np.array([0.0, 0.4, 0.5, 0.67, 0.8, 1.0])
F1_PROBS = np.array([0.30, 0.05, 0.05, 0.05, 0.05, 0.50])


@dataclass(frozen=True)
class Task:
    name: str
    binary: bool
    accuracy: float  # parent accuracy (binary)
    baseline: float


TASKS = (Task("arc", True, 0.60, 0.25), Task("math", True, 0.60, 0.0), Task("boolq", True, 0.75, 0.62),
         Task("squad", False, float(F1_VALUES @ F1_PROBS), 0.50))


# ------------------------------------------------------------------------------------------------ data generation


def _binary_parent(rng, n: int, reps: int, acc: float) -> dict:
    return {"correct": rng.binomial(n, acc, reps), "compliant": rng.binomial(n, COMPLIANCE, reps),
            "cut": rng.binomial(n, CUT, reps)}


def _f1_parent(rng, n: int, reps: int) -> dict:
    return {"counts": rng.multinomial(n, F1_PROBS, size=reps), "compliant": rng.binomial(n, COMPLIANCE, reps),
            "cut": rng.binomial(n, CUT, reps)}


def _cuts(rng, n: int, parent_cut: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A variant's cut-offs, exchangeable with the parent's: it differs on 1% of items, half each way."""
    psi = CUT
    worse = rng.binomial(n - parent_cut, (psi / 2) / (1 - CUT))
    better = rng.binomial(parent_cut, (psi / 2) / CUT)
    return worse, better


def parent_summary(task: Task, n: int, state: dict) -> TaskSummary:
    if task.binary:
        return TaskSummary.binary_counts(n, state["correct"], compliant=state["compliant"], baseline=task.baseline)
    return TaskSummary(n, False, F1_VALUES, state["counts"], compliant=state["compliant"], baseline=task.baseline)


def variant_summary(rng, task: Task, n: int, state: dict, psi: float, drop: float = 0.0,
                    joints: dict | None = None) -> TaskSummary:
    """A variant of the parent in `state` that disagrees with it on a share psi of the items and is `drop` worse
    (drop = 0: exchangeable). joints: where to keep an F1 task's (parent value, variant value) counts."""
    reps = state["compliant"].shape[0]
    compliant = rng.binomial(n, COMPLIANCE, reps)
    cut_worse, cut_better = _cuts(rng, n, state["cut"])
    if task.binary:
        lose, gain = (psi + drop) / 2, (psi - drop) / 2
        if gain < 0 or lose > task.accuracy or gain > 1 - task.accuracy:
            raise ValueError(f"psi {psi} and drop {drop} do not fit accuracy {task.accuracy}")
        k = state["correct"]
        worse = rng.binomial(k, lose / task.accuracy)
        better = rng.binomial(n - k, gain / (1 - task.accuracy))
        return TaskSummary.binary_counts(n, k - worse + better, worse=worse, better=better, compliant=compliant,
                                         cut_worse=cut_worse, cut_better=cut_better, baseline=task.baseline)
    if drop:
        raise ValueError("the benchmark drops binary tasks only")
    rho = psi / (1 - float(F1_PROBS @ F1_PROBS))  # share of items redrawn independently from the marginal
    parent = state["counts"]
    joint = np.stack([rng.multinomial(parent[:, k], (1 - rho) * np.eye(len(F1_VALUES))[k] + rho * F1_PROBS)
                      for k in range(len(F1_VALUES))], axis=1)  # (reps, parent value, variant value)
    if joints is not None:
        joints[task.name] = joint
    diffs = np.round(F1_VALUES[:, None] - F1_VALUES[None, :], 12)
    values, index = np.unique(diffs, return_inverse=True)
    drop_counts = np.zeros((reps, values.size), dtype=np.int64)
    flat = joint.reshape(reps, -1)
    for j in range(values.size):
        drop_counts[:, j] = flat[:, index.ravel() == j].sum(axis=1)
    return TaskSummary(n, False, F1_VALUES, joint.sum(axis=1), values, drop_counts, compliant, cut_worse,
                       cut_better, task.baseline)


def simulate_run(seed: int, n: int | dict, psi: float, reps: int, *, criteria: Criteria = Criteria(),
                 drop: tuple[str, float] | None = None, first_only: bool = False) -> dict:
    """One batch of `reps` replicates of the whole grid: the decisions of every model, and the per-model
    summaries (to rebuild per-item data for the validation). first_only: the first parent and its first variant
    only (the one `drop` applies to: its verdict depends on no other model's data, only on the run size)."""
    rng = np.random.default_rng(seed)
    ns = n if isinstance(n, dict) else {t.name: n for t in TASKS}
    out = {"parents": [], "variants": [], "summaries": {}, "joints": {}}
    for p in range(1 if first_only else N_PARENTS):
        states = {t.name: (_binary_parent(rng, ns[t.name], reps, t.accuracy) if t.binary
                           else _f1_parent(rng, ns[t.name], reps)) for t in TASKS}
        tasks = {t.name: parent_summary(t, ns[t.name], states[t.name]) for t in TASKS}
        out["summaries"][f"parent{p}"] = tasks
        out["parents"].append(decide_batch(tasks, criteria, alpha=RUN_ALPHA, run_size=RUN_SIZE))
        for v in range(1 if first_only else N_VARIANTS):
            tasks, joints = {}, {}
            for t in TASKS:
                d = drop[1] if drop is not None and (p, v) == (0, 0) and t.name == drop[0] else 0.0
                tasks[t.name] = variant_summary(rng, t, ns[t.name], states[t.name], psi, d, joints)
            out["summaries"][f"variant{p}.{v}"] = tasks
            out["joints"][f"variant{p}.{v}"] = joints
            out["variants"].append(decide_batch(tasks, criteria, alpha=RUN_ALPHA, run_size=RUN_SIZE))
    return out


# ------------------------------------------------------------------------------------------------------ the tables


def _se(rates: list[float], reps: int) -> float:
    return max(math.sqrt(max(r * (1 - r), 1 / reps) / reps) for r in rates)


def _rate(x: np.ndarray) -> float:
    return float(np.mean(x))


def _fmt(r: float) -> str:
    return f"{100 * r:.1f}%" if r >= 0.001 or r == 0 else f"{100 * r:.2f}%"


def table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    return "\n".join([line(header), "| " + " | ".join("-" * w for w in widths) + " |", *map(line, rows)])


def grid_section(reps: int, seed: int) -> None:
    print(f"## Healthy runs: {RUN_SIZE} models (3 parents + 9 exchangeable variants) x 4 tasks, run alpha "
          f"{RUN_ALPHA}\n")
    rows, rates = [], []
    for n in (500, 1000):
        for psi in (0.02, 0.05, 0.10, 0.20, 0.30):
            started = time.perf_counter()
            run = simulate_run(seed + int(1000 * psi) + n, n, psi, reps)
            cols = []
            for require in (False, True):
                variants = [b.with_require_power(require) for b in run["variants"]]
                parents = run["parents"]
                v = np.stack([b.model_status for b in variants])  # (9, reps)
                p = np.stack([b.model_status for b in parents])
                red = ((v == FAIL).any(axis=0) | (p == FAIL).any(axis=0))
                vals = [_rate(red), _rate(v == FAIL), _rate(p == FAIL)]
                if not require:
                    vals += [_rate(v == INCONCLUSIVE), _rate(p == INCONCLUSIVE),
                             _rate(~red & ((v == INCONCLUSIVE).any(axis=0) | (p == INCONCLUSIVE).any(axis=0)))]
                cols += vals
                rates += vals
            rows.append([str(n), f"{psi:.2f}", *(_fmt(c) for c in cols), f"{time.perf_counter() - started:.1f}s"])
    print(table(["n", "psi", "run red", "variant FAIL", "parent FAIL", "variant INCONCL.", "parent INCONCL.",
                 "run not red, not all PASS", "run red (req. power)", "variant FAIL (req. power)",
                 "parent FAIL (req. power)", "time"], rows))
    print(f"\nMonte Carlo SE <= {100 * _se(rates, reps):.2f} points ({reps} replicates per row). 'variant' and "
          f"'parent': the share of models of that kind with that status (per-model rate). require_power fails an "
          f"inconclusive recovery; the other columns are without it.\n")


def _recommended(psi: float, require_power: bool) -> tuple[int, float]:
    """The items per task the gate recommends for the seed grid's variants at disagreement psi (binary tasks), and
    the exact power there to fail a 5-point drop on arc (at its Bonferroni share of the model's alpha)."""
    crit = Criteria(plan_disagreement=psi, require_power=require_power)
    shapes = {t.name: TaskShape(binary=t.binary) for t in TASKS}
    p = plan(shapes, crit, alpha=RUN_ALPHA, run_size=RUN_SIZE)
    entry = next(e for e in p.entries if (e.task, e.check) == ("arc", "recovery"))
    return entry.needed.n, entry.needed.power


def power_section(reps: int, seed: int) -> None:
    print("## Power: one variant 5 points worse on arc (at the same disagreement psi), the others healthy\n")
    checks, share = family({t.name: TaskShape(binary=t.binary) for t in TASKS}, {t.name: Criteria() for t in TASKS},
                           Weights())
    a_share = float(share[checks.index(("arc", "recovery"))]) * RUN_ALPHA / RUN_SIZE
    rows, rates = [], []
    for psi in (0.05, 0.10, 0.20, 0.30):
        started = time.perf_counter()
        n_rec, exact = _recommended(psi, False)
        n_rp, _ = _recommended(psi, True)
        cells = []
        for n, r in ((500, reps), (1000, reps), (n_rec, 16 * reps)):
            run = simulate_run(seed + n + int(100 * psi), n, psi, r, drop=("arc", 0.05), first_only=True)
            caught = run["variants"][0].model_status == FAIL
            cells.append(_rate(caught))
        run = simulate_run(seed + 7 + int(100 * psi), n_rp, psi, reps, drop=("arc", 0.05), first_only=True)
        caught_rp = _rate(run["variants"][0].with_require_power(True).model_status == FAIL)
        healthy = simulate_run(seed + 11 + int(100 * psi), n_rp, psi, reps)
        v = np.stack([b.with_require_power(True).model_status for b in healthy["variants"]])
        p = np.stack([b.with_require_power(True).model_status for b in healthy["parents"]])
        red_rp = _rate((v == FAIL).any(axis=0) | (p == FAIL).any(axis=0))
        var_rp = _rate(v == FAIL)
        rates += [*cells, caught_rp, red_rp, var_rp]
        rows.append([f"{psi:.2f}", _fmt(cells[0]), _fmt(cells[1]), f"{n_rec:,}", _fmt(cells[2]), _fmt(exact),
                     f"{n_rp:,}", _fmt(caught_rp), _fmt(red_rp), _fmt(var_rp),
                     f"{time.perf_counter() - started:.1f}s"])
    print(table(["psi", "caught at 500", "caught at 1000", "recommended n", "caught there", "exact power (planner)",
                 "recommended n, req. power", "caught there (req. power)", "healthy run red there (req. power)",
                 "healthy variant FAIL there (req. power)", "time"], rows))
    print(f"\nMonte Carlo SE <= {100 * _se(rates, reps):.2f} points ({16 * reps} replicates, SE <= "
          f"{100 * _se(rates, 16 * reps):.2f}, in the 'caught there' column). 'caught': the dropped variant's verdict "
          f"is FAIL "
          f"(whatever check fails). The planner's exact power is that of arc's recovery test alone at its "
          f"Bonferroni share {a_share:.2g} of the model's alpha; Holm and the other checks only add to it. "
          f"All four tasks run at the recommended n.\n")


def _single(n: int, *, reps: int, seed: int, drop_values: np.ndarray, probs: np.ndarray, alpha: float,
            run_size: int = 1, pass_test: bool = False) -> np.ndarray:
    """Status of a lone recovery check (a model whose family is that one check) on continuous differences; with
    pass_test, whether its pass test alone rejects (a status is FAIL before it can be PASS)."""
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n, probs, size=reps)
    t = TaskSummary(n, False, np.array([0.0, 1.0]), np.stack([np.zeros(reps, int), np.full(reps, n)], axis=1),
                    drop_values, counts)
    b = decide_batch({"squad": t}, Criteria(), alpha=alpha, run_size=run_size)
    return np.where(b.p_pass[:, 0] <= b.alpha, PASS, INCONCLUSIVE) if pass_test else b.status[:, 0]


def corners_section(reps: int, seed: int) -> None:
    print("## The issue's corner cases\n")
    rows = []
    a_model = RUN_ALPHA / RUN_SIZE
    # 1. a true compliance of 0.85 against a 0.90 floor (one task of a variant of the grid)
    for n in (48, 500):
        rng = np.random.default_rng(seed + n)
        state = {t.name: (_binary_parent(rng, n, reps, t.accuracy) if t.binary else _f1_parent(rng, n, reps))
                 for t in TASKS}
        tasks = {t.name: variant_summary(rng, t, n, state[t.name], 0.05) for t in TASKS}
        tasks["arc"] = replace(tasks["arc"], compliant=rng.binomial(n, 0.85, reps))
        batch = decide_batch(tasks, Criteria(), alpha=RUN_ALPHA, run_size=RUN_SIZE)
        st = batch.status_of(task="arc", check="compliance")
        share = float(batch.share[batch.checks.index(("arc", "compliance"))]) * a_model
        exact_pass = floor_pass_probability(n, 0.85, low=0.85, alpha=a_model)
        exact_fail = floor_fail_probability(n, 0.85, floor=0.90, alpha=share)
        rows.append([f"true compliance 0.85 vs floor 0.90 (zone 0.85-0.90), n={n}", _fmt(_rate(st == PASS)),
                     _fmt(_rate(st == INCONCLUSIVE)), _fmt(_rate(st == FAIL)),
                     f"exact: pass {_fmt(exact_pass)} (<= 0.42%), fail >= {_fmt(exact_fail)}"])
    # 2. a reference model 5 points above the majority baseline
    rng = np.random.default_rng(seed + 2)
    n = 500
    t = TaskSummary.binary_counts(n, rng.binomial(n, 0.67, reps), compliant=rng.binomial(n, COMPLIANCE, reps),
                                  baseline=0.62)
    batch = decide_batch({"boolq": t}, Criteria(), alpha=RUN_ALPHA, run_size=RUN_SIZE)
    st = batch.status_of(check="baseline")
    share = float(batch.share[batch.checks.index(("boolq", "baseline"))]) * a_model
    rows.append(["reference 5 pts above the majority baseline (0.67 vs 0.62), n=500", _fmt(_rate(st == PASS)),
                 _fmt(_rate(st == INCONCLUSIVE)), _fmt(_rate(st == FAIL)),
                 f"exact: fail {_fmt(floor_fail_probability(n, 0.67, floor=0.67, alpha=share))} (<= its share "
                 f"{share:.2g}), pass {_fmt(floor_pass_probability(n, 0.67, low=0.62, alpha=a_model))}"])
    # 3. the power quoted in an inconclusive note at n = 48 against the simulated rate
    checks, share = family({x.name: TaskShape(binary=x.binary) for x in TASKS}, {x.name: Criteria() for x in TASKS},
                           Weights())
    a_share = float(share[checks.index(("arc", "recovery"))]) * a_model
    for n, psi in ((48, 0.05), (500, 0.10), (1000, 0.10)):
        exact = recovery_power(n, psi, 0.05, tolerated_drop=0.01, alpha=a_share)
        run = simulate_run(seed + 3 + n, n, psi, reps, drop=("arc", 0.05))
        simulated = _rate(run["variants"][0].status_of(task="arc", check="recovery") == FAIL)
        rows.append([f"power quoted in the note (exact) vs simulated: 5-pt drop, psi {psi:.2f}, n={n}", "", "",
                     _fmt(simulated), f"exact {_fmt(exact)} at the Bonferroni share (Holm: >=)"])
    # 4. a catastrophic F1 drop at a tiny alpha (the old sign-flip floor was 2.5e-4)
    f1_parent = np.ones(64)
    f1_variant = np.full(64, 0.2)
    d = decide({"squad": PairedTask(f1_variant, f1_parent)}, Criteria(), alpha=1e-6)
    c = d.check("squad", "recovery")
    rows.append([f"F1 1.0 -> 0.2 on 64 items at alpha 1e-6: p={c.p_value:.2g}", "", "", c.status.upper(),
                 "fail (no p-value floor)"])
    # 5. asymmetric F1 differences with equal means: many small losses, rare big gains
    values, probs = np.array([-1.0, 0.0, 0.2]), np.array([0.02, 0.88, 0.10])
    for n in (64, 500):
        at01 = _single(n, reps=reps, seed=seed + 5 + n, drop_values=values, probs=probs, alpha=0.01)
        gate = _single(n, reps=reps, seed=seed + 6 + n, drop_values=values, probs=probs, alpha=RUN_ALPHA,
                       run_size=RUN_SIZE)
        rows.append([f"F1: -1 on 2%, +0.2 on 10% of items (mean 0), n={n}: FAIL at alpha 0.01 / at the gate's",
                     "", "", f"{_fmt(_rate(at01 == FAIL))} / {_fmt(_rate(gate == FAIL))}", "<= 1% / <= 0.42%"])
    # 6. false pass: a real 5-point drop passing recovery (binary at the gate's alpha; F1 carried by rare losses)
    run = simulate_run(seed + 8, 1000, 0.10, reps, drop=("arc", 0.05))
    fp = _rate(run["variants"][0].status_of(task="arc", check="recovery") == PASS)
    rows.append(["a 5-pt arc drop (psi 0.10) that PASSES recovery, n=1000", _fmt(fp), "", "",
                 "<= 0.42% (the model's alpha)"])
    values, probs = np.array([-0.1, 0.0, 1.0]), np.array([0.20, 0.73, 0.07])  # mean 0.05: rare full losses
    for n in (200, 1000):
        st = _single(n, reps=reps, seed=seed + 9 + n, drop_values=values, probs=probs, alpha=RUN_ALPHA,
                     run_size=RUN_SIZE)
        rows.append([f"a 5-pt F1 drop (+1 on 7%, -0.1 on 20%) that PASSES recovery, n={n}", _fmt(_rate(st == PASS)),
                     "", "", "<= 0.42%"])
    print(table(["case", "PASS", "INCONCLUSIVE", "FAIL", "bound"], rows))
    print(f"\nMonte Carlo SE of a rate r: sqrt(r(1-r)/{reps}) (<= {100 * math.sqrt(0.25 / reps):.2f} points).\n")


def _exact_sizes(size, psis: tuple[float, ...], alphas: tuple[float, ...]) -> None:
    """A table of size(n, psi, alpha) / alpha over the grid, and its largest value."""
    rows, worst = [], 0.0
    for n in (48, 100, 500, 1000, 2000):
        for psi in psis:
            ratios = [size(n, psi, a) / a for a in alphas]
            worst = max(worst, *ratios)
            rows.append([str(n), f"{psi:.3f}", *(f"{r:.2f}" for r in ratios)])
    print(table(["n", "psi", *(f"alpha {a:g}" for a in alphas)], rows))
    print(f"\nlargest: {worst:.2f} x alpha\n")


def levels_section(reps: int, seed: int) -> None:
    print("## Levels of the asymptotic tests (paired 0/1: exact; continuous: simulated)\n")
    print("Exact size (probability of rejecting, over alpha) of the recovery fail test at the boundary of its null "
          "(the variant exactly `tolerated_drop` = 1 pt worse, disagreeing on a share psi), by trinomial "
          "enumeration; 1.00 = exactly alpha, below 1 conservative:\n")
    _exact_sizes(lambda n, psi, a: recovery_power(n, psi, 0.01, tolerated_drop=0.01, alpha=a),
                 (0.01, 0.015, 0.02, 0.05, 0.10, 0.30), (1e-2, 1e-3, 1e-4))
    print("Exact size of the recovery pass test at the boundary of its null (the variant exactly `detect_drop` = 5 "
          "pts worse), over alpha: a bound on a false confident pass (the verdict is FAIL before it can be PASS, so "
          "the rate of PASS verdicts is lower still):\n")
    _exact_sizes(lambda n, psi, a: recovery_pass_probability(n, psi, 0.05, detect_drop=0.05, alpha=a),
                 (0.05, 0.06, 0.10, 0.30, 0.60), (5e-2, 4e-3, 1e-3))
    print(f"Continuous paired differences (F1), skewed, at the boundary of each null: rejection rate of the fail "
          f"test (drop <= 1 pt) and of the pass test (drop >= 5 pts) over alpha ({reps} replicates, lone check at the "
          f"given alpha):\n")
    scenarios = [
        ("fail", "mean 0: +0.2 on 10%, -1 on 2% (the issue's skew)", [0.2, -1.0, 0.0], [0.10, 0.02, 0.88]),
        ("fail", "mean tol: +0.2 on 15%, -1 on 2%", [0.2, -1.0, 0.0], [0.15, 0.02, 0.83]),
        ("fail", "mean tol: +0.1 on 33%, -1 on 2.3%", [0.1, -1.0, 0.0], [0.33, 0.023, 0.647]),
        ("pass", "mean D: +1 on 5% (full losses)", [1.0, 0.0], [0.05, 0.95]),
        ("pass", "mean D: +1 on 7%, -0.1 on 20%", [1.0, -0.1, 0.0], [0.07, 0.20, 0.73]),
        ("pass", "mean D: +0.25 on 30%, -0.25 on 10%", [0.25, -0.25, 0.0], [0.30, 0.10, 0.60]),
    ]
    rows = []
    for side, label, values, probs in scenarios:
        order = np.argsort(values)
        values, probs = np.array(values)[order], np.array(probs)[order]
        cells = []
        for n in (64, 200, 1000):
            for a in (1e-2, 1e-3):
                st = _single(n, reps=reps, seed=seed + n + int(1e4 * a), drop_values=values, probs=probs, alpha=a,
                             pass_test=side == "pass")
                hit = st == (FAIL if side == "fail" else PASS)
                cells.append(f"{_rate(hit) / a:.2f}")
        rows.append([side, label, *cells])
    print(table(["test", "differences (parent - variant)", "n=64 a=1e-2", "n=64 a=1e-3", "n=200 a=1e-2",
                 "n=200 a=1e-3", "n=1000 a=1e-2", "n=1000 a=1e-3"], rows))
    print(f"\nMonte Carlo SE of a ratio r at alpha a: sqrt(r / (a {reps})) (e.g. +-{math.sqrt(1 / (1e-3 * reps)):.2f} "
          f"at r = 1, a = 1e-3).\n")


def _items(summary: TaskSummary, task: Task, rng, row: int, joint: np.ndarray | None) -> PairedTask:
    """Per-item data with exactly the statistics of one replicate (for `decide`)."""
    n = summary.n
    compliant = np.zeros(n, bool)
    compliant[: int(summary.compliant[row])] = True
    rng.shuffle(compliant)
    if summary.drop_counts is None:
        scores = np.repeat(summary.score_values, summary.score_counts[row])
        return PairedTask(rng.permutation(scores), compliant=compliant, baseline=task.baseline)
    if task.binary:
        w, b = int(summary.drop_counts[row, 2]), int(summary.drop_counts[row, 0])
        k = int(summary.score_counts[row, 1]) + w - b  # the parent's correct items
        parent = np.array([1.0] * k + [0.0] * (n - k))
        variant = parent.copy()
        variant[:w] = 0.0
        variant[k:k + b] = 1.0
    else:  # F1: one item per (parent value, variant value) count
        cells = [(F1_VALUES[i], F1_VALUES[j], int(joint[row, i, j])) for i in range(len(F1_VALUES))  # type: ignore
                 for j in range(len(F1_VALUES))]
        parent = np.concatenate([np.full(c, a) for a, _, c in cells])
        variant = np.concatenate([np.full(c, b) for _, b, c in cells])
    cw, cb = int(summary.cut_worse[row]), int(summary.cut_better[row])
    parent_cut = np.zeros(n, bool)
    cut = np.zeros(n, bool)
    cut[:cw] = True
    parent_cut[cw:cw + cb] = True
    perm = rng.permutation(n)
    return PairedTask(variant[perm], parent[perm], compliant=compliant[perm], cut=cut[perm],
                      parent_cut=parent_cut[perm], baseline=task.baseline)


FAMILY = {"arc": "multiple_choice", "math": "math", "boolq": "yes_no", "squad": "span"}


def _gate_evidence(model: str, task: Task, items: PairedTask) -> Evidence:
    """The gate's evidence for per-item data: engine records whose extraction, score and finish reason carry exactly
    the replicate's compliance, score and cut-off flags (the simulation draws compliance independently of the score,
    which no real reply does, so the records are built directly rather than read from replies), the trivial
    baseline of the grid, and the parent's records on the same items."""
    from evalkit.core.extract import Diagnosis, Extraction
    from evalkit.core.scoring import ItemScore
    from evalkit.core.types import Item
    from evalkit.data.tasks import Task as EngineTask
    from evalkit.run.engine import SampleRecord, TaskResult
    from evalkit.run.generation import Generation, GenerationConfig, GenerationRun

    family = FAMILY[task.name]
    metric = "f1" if family == "span" else "accuracy"

    @dataclass(frozen=True)
    class GridTask(EngineTask):  # the grid's trivial baseline, not one computed from (invented) gold answers
        def trivial_baseline(self) -> dict[str, float]:
            return {metric: task.baseline}

    gold = {"multiple_choice": ("A",), "math": ("1",), "yes_no": ("yes",), "span": ("a",)}[family]
    choices = ("w", "x", "y", "z") if family == "multiple_choice" else ()
    n = items.n
    engine_items = tuple(Item(task.name, str(i), family, "q", gold, choices=choices) for i in range(n))

    def records(scores, compliant, cut) -> tuple:
        out = []
        for item, v, ok, c in zip(engine_items, scores, compliant, cut):
            i = item.id
            diagnosis = Diagnosis.OK if ok else Diagnosis.NO_BOX
            gen = Generation(i, "p", "r", "r", 1, 1, "length" if c else "eos")
            f1 = float(v) if metric == "f1" else None
            score = ItemScore(family, float(v), bool(v == 1.0), True, Diagnosis.OK, f1=f1)
            out.append(SampleRecord(item, gen, Extraction("a", "a" if ok else None, diagnosis), score))
        return tuple(out)

    engine_task = GridTask(task.name, family, engine_items, "simulated")

    def result(recs: tuple) -> TaskResult:
        run = GenerationRun(tuple(r.generation for r in recs), 0.1, {"backend": "simulated", "device": "cpu"})
        return TaskResult({"path": model}, engine_task, GenerationConfig(), "chat_template", recs, run, False, None,
                          0.1)

    def flags(name: str, default: bool) -> np.ndarray:
        given = items.flags(name)  # type: ignore[arg-type]
        return np.full(n, default) if given is None else given

    mine = result(records(items.values, flags("compliant", True), flags("cut", False)))
    if items.parent_values is None:
        return Evidence(model, task.name, mine, metric)
    theirs = result(records(items.parent_values, np.full(n, True), flags("parent_cut", False)))
    return Evidence(model, task.name, mine, metric, parent_name="parent", parent=theirs)


def validate_section(seed: int, replicates: int = 8) -> bool:
    """The decisions of `decide_batch` (what every table above uses) against the gate's own path on the same data:
    per-item data rebuilt from each replicate's statistics, decided by `decide` and by the gate (`evalkit.gate`'s
    evidence -> one family per model -> `verdict` and its checks), every check status compared."""
    from evalkit.gate import Thresholds, verdict
    from evalkit.gate.decisions import decide_model

    print("## Validation: the batch decisions against `decide` and against the gate, on rebuilt per-item data\n")
    run = simulate_run(seed + 99, 500, 0.10, replicates, drop=("arc", 0.05))
    rng = np.random.default_rng(seed)
    compared = agree = gate_agree = 0
    batches = dict(zip([k for k in run["summaries"] if k.startswith("parent")], run["parents"]))
    batches |= dict(zip([k for k in run["summaries"] if k.startswith("variant")], run["variants"]))
    th = {t.name: Thresholds() for t in TASKS}  # the manifest's defaults are the decision core's Criteria()
    if th["arc"].criteria() != Criteria():
        raise AssertionError("the gate's default thresholds are not the decision core's default criteria")
    for name, tasks in run["summaries"].items():
        batch = batches[name]
        joints = run["joints"].get(name, {})
        for row in range(replicates):
            items = {t.name: _items(tasks[t.name], t, rng, row, joints.get(t.name)) for t in TASKS}
            d = decide(items, Criteria(), alpha=RUN_ALPHA, run_size=RUN_SIZE)
            theirs = [c.status for c in d.checks]
            ref = [STATUS[int(s)] for s in batch.status[row]]
            if [(c.task, c.check) for c in d.checks] != list(batch.checks):
                raise AssertionError(f"{name}: decide built another family than decide_batch")
            evidence = {t.name: _gate_evidence(name, t, items[t.name]) for t in TASKS}
            decision = decide_model(evidence, th, alpha=RUN_ALPHA, run_size=RUN_SIZE)
            gate = [verdict(evidence[t], th[t], decision=decision).get(c).status for t, c in batch.checks]
            compared += len(ref)
            agree += sum(a == b for a, b in zip(theirs, ref))
            gate_agree += sum(a == b for a, b in zip(gate, ref))
    print(f"`decide`: {agree} of {compared} check statuses agree; the gate (`evalkit.gate.verdict` on rebuilt "
          f"evidence): {gate_agree} of {compared} ({len(batches)} models x {replicates} replicates, n=500, psi 0.10, "
          f"one variant 5 points worse on arc)\n")
    return agree == gate_agree == compared


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=4000, help="replicates per row (default 4000)")
    ap.add_argument("--seed", type=int, default=14)
    ap.add_argument("--validate", type=int, default=8, metavar="R", help="replicates rebuilt item by item (default 8)")
    ap.add_argument("--only", choices=["grid", "power", "corners", "levels", "validate"], action="append")
    args = ap.parse_args(argv)
    started = time.perf_counter()
    sections = args.only or ["grid", "power", "corners", "levels", "validate"]
    print(f"# evalkit decision core: simulation benchmark ({args.reps} replicates per row, seed {args.seed})\n")
    if "grid" in sections:
        grid_section(args.reps, args.seed)
    if "power" in sections:
        power_section(args.reps, args.seed)
    if "corners" in sections:
        corners_section(args.reps, args.seed)
    if "levels" in sections:
        levels_section(args.reps * 5, args.seed)
    ok = True
    if "validate" in sections:
        ok = validate_section(args.seed, args.validate)
    print(f"total {time.perf_counter() - started:.0f}s")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
