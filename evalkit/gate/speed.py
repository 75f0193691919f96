"""The speed check (the slow-kernel alarm), from the per-phase steady-state timings every run records, so that
every variant is timed, however short its run; runs without phase timings fall back to whole-run throughput."""
from __future__ import annotations

from evalkit.gate.manifest import Thresholds
from evalkit.gate.records import CheckResult, Evaluated
from evalkit.gate.serving import engine_note

MIN_TIMED_SECONDS = 1.0  # a parent run shorter than this is too short to time against (runs without phase timings)
MIN_TIMED_TOKENS = 4  # fewer output tokens per reply than this (an eos flood) time the prompts, not decoding

def speed(ev: Evaluated, th: Thresholds) -> CheckResult:
    """The slow-kernel alarm. Each phase of the variant against the same phase of the parent, from the timings the
    runs themselves recorded (`evalkit.run.timing`; a cached run keeps those of the run that produced it): prefill
    seconds per prompt token (fastest batch) and decode seconds per row and step (median step, warm-up steps
    excluded), per model over all its tasks when the gate gathered them (`Evidence.speed`: each phase's fastest
    task), else this task's run. Robust on shared cores, defined however short a run is; the alarm names the slower
    phase."""
    if th.max_slowdown is None:
        return _skip(ev, "switched off (max_slowdown = none)")
    mine, theirs = ev.speed if ev.speed is not None else (ev.result.run.phases, ev.theirs.run.phases)
    if mine is None or theirs is None:
        return _whole_run_speed(ev, th)
    where = ev.result.throughput().get("device", "?")
    ratios = {"prefill": mine.prefill_s_per_token / theirs.prefill_s_per_token}
    parts = [f"prefill {mine.prefill_s_per_token * 1e6:.3g} vs the parent's {theirs.prefill_s_per_token * 1e6:.3g} "
             f"us/token ({ratios['prefill']:.1f}x)"]
    note = ""
    if mine.decode_s_per_row is not None and theirs.decode_s_per_row is not None:
        ratios["decode"] = mine.decode_s_per_row / theirs.decode_s_per_row
        parts.insert(0, f"decode {mine.decode_s_per_row * 1e3:.3g} vs the parent's {theirs.decode_s_per_row * 1e3:.3g} "
                        f"ms/row-step ({ratios['decode']:.1f}x; {mine.decode_steps} and {theirs.decode_steps} steps "
                        f"timed)")
    else:
        note = "no decode step timed (the replies ended at their first token): prefill compared alone"
    phase = max(ratios, key=lambda k: ratios[k])
    slowdown = ratios[phase]
    scope = " (each model's fastest task)" if ev.speed is not None else ""
    numbers = f"{'; '.join(parts)}{scope}; alarm at {th.max_slowdown:g}x on {where}"
    numbers += engine_note(ev.result.throughput())  # issue 16: a served model's figures are the engine's
    values = {"slowdown": slowdown, "phase": phase, **{f"{k}_slowdown": v for k, v in ratios.items()},
              "prefill_s_per_token": mine.prefill_s_per_token, "decode_s_per_row": mine.decode_s_per_row,
              "parent_prefill_s_per_token": theirs.prefill_s_per_token,
              "parent_decode_s_per_row": theirs.decode_s_per_row}
    if slowdown <= th.max_slowdown:
        return CheckResult("speed", ev.model, ev.task, "pass", numbers, note=note, values=values)
    return CheckResult("speed", ev.model, ev.task, "fail", f"{phase} {slowdown:.1f}x slower than the parent's: {numbers}",
                       diagnosis="slow_kernel", values=values,
                       note=note or "timings come from each model's own run (the cache keeps them)")


def _whole_run_speed(ev: Evaluated, th: Thresholds) -> CheckResult:
    """Runs without phase timings (a backend that does not measure them): whole-run throughput, when long enough."""
    mine, theirs = ev.result.throughput(), ev.theirs.throughput()
    if theirs["seconds"] < MIN_TIMED_SECONDS or mine["tokens_per_second"] <= 0:
        return _skip(ev, f"the parent's run took under {MIN_TIMED_SECONDS:g}s and has no phase timings: "
                                  "too short to time against")
    if mine["output_tokens"] < MIN_TIMED_TOKENS * max(1, mine["samples"]):  # the prompts' prefill is all it timed
        return _skip(ev, f"under {MIN_TIMED_TOKENS} output tokens per reply: too few to time decoding")
    slowdown = theirs["tokens_per_second"] / mine["tokens_per_second"]
    numbers = (f"{mine['tokens_per_second']:.1f} tokens/s vs the parent's {theirs['tokens_per_second']:.1f} "
               f"({slowdown:.1f}x slower; alarm at {th.max_slowdown:g}x); {mine['seconds_per_sample']:.3f} vs "
               f"{theirs['seconds_per_sample']:.3f} s/sample on {mine.get('device', '?')}")
    values = {"slowdown": slowdown, "tokens_per_second": mine["tokens_per_second"],
              "parent_tokens_per_second": theirs["tokens_per_second"]}
    if slowdown <= th.max_slowdown:
        return CheckResult("speed", ev.model, ev.task, "pass", numbers, values=values)
    return CheckResult("speed", ev.model, ev.task, "fail", numbers, diagnosis="slow_kernel",
                       note="timings come from each model's own run (the cache keeps them)", values=values)


def _skip(ev: Evaluated, why: str) -> CheckResult:
    return CheckResult("speed", ev.model, ev.task, "skip", why)
