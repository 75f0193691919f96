"""Engine-side counters from a server's Prometheus `/metrics` (vLLM's), read before and after a batch.

Why engine-side: the wall time of a batch includes HTTP and queueing; the slow-kernel check wants what the kernels
did, and vLLM's own histograms say it: mean inter-token latency (one decode step of one sequence) and mean prefill
time per request. Servers without `/metrics` simply report nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from evalkit.run.generation import Phases

# vLLM counter and histogram sums/counts that the summary needs (summed over label sets: one model per server).
NAMES = ("vllm:generation_tokens_total", "vllm:prompt_tokens_total", "vllm:inter_token_latency_seconds_sum",
         "vllm:inter_token_latency_seconds_count", "vllm:request_prefill_time_seconds_sum",
         "vllm:request_prefill_time_seconds_count", "vllm:request_decode_time_seconds_sum")


def parse(text: str, names: Sequence[str] = NAMES) -> dict[str, float]:
    """Sum each named series of a Prometheus text exposition over its labels.

    >>> parse('# HELP x\\nvllm:prompt_tokens_total{engine="0"} 172.0\\nvllm:prompt_tokens_total{engine="1"} 8\\n')
    {'vllm:prompt_tokens_total': 180.0}
    """
    wanted, out = set(names), dict[str, float]()
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in wanted:
            try:
                out[name] = out.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
            except (IndexError, ValueError):
                continue
    return out


def _delta(before: Sequence[Mapping[str, float]], after: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Each counter's growth between two per-server snapshots, summed over the servers."""
    delta: dict[str, float] = {}
    for b, a in zip(before, after, strict=True):
        for name in NAMES:
            if name in a and name in b:
                delta[name] = delta.get(name, 0.0) + a[name] - b[name]
    return delta


def phases(before: Sequence[Mapping[str, float]], after: Sequence[Mapping[str, float]]) -> Phases | None:
    """The engine's own per-phase figures of one batch, in the shape the slow-kernel check compares
    (`evalkit.run.generation.Phases`): prefill seconds per prompt token (the requests' prefill time over the prompt
    tokens the engine computed) and decode seconds per generated token of one sequence (the mean inter-token
    latency: one engine step, whatever else it batched). None when the server exposes no such counters.

    >>> b = [{"vllm:prompt_tokens_total": 0.0, "vllm:request_prefill_time_seconds_sum": 0.0,
    ...       "vllm:request_prefill_time_seconds_count": 0.0, "vllm:inter_token_latency_seconds_sum": 0.0,
    ...       "vllm:inter_token_latency_seconds_count": 0.0}]
    >>> a = [{"vllm:prompt_tokens_total": 400.0, "vllm:request_prefill_time_seconds_sum": 0.2,
    ...       "vllm:request_prefill_time_seconds_count": 4.0, "vllm:inter_token_latency_seconds_sum": 1.5,
    ...       "vllm:inter_token_latency_seconds_count": 60.0}]
    >>> phases(b, a)
    Phases(prefill_s_per_token=0.0005, decode_s_per_row=0.025, decode_steps=60, batches=4)
    """
    if not before or not after or len(before) != len(after):
        return None
    d = _delta(before, after)
    prompt, prefill = d.get("vllm:prompt_tokens_total", 0.0), d.get("vllm:request_prefill_time_seconds_sum", 0.0)
    if prompt <= 0 or prefill <= 0:
        return None
    steps = int(d.get("vllm:inter_token_latency_seconds_count", 0.0))
    decode = d["vllm:inter_token_latency_seconds_sum"] / steps if steps > 0 else None
    return Phases(prefill / prompt, decode, steps, int(d.get("vllm:request_prefill_time_seconds_count", 0.0)))


def summary(before: Sequence[Mapping[str, float]], after: Sequence[Mapping[str, float]]) -> dict[str, str]:
    """Engine figures of one batch from per-server snapshots (strings: they join `GenerationRun.backend`).

    >>> b = [{"vllm:generation_tokens_total": 10.0, "vllm:inter_token_latency_seconds_sum": 1.0,
    ...       "vllm:inter_token_latency_seconds_count": 10.0}]
    >>> a = [{"vllm:generation_tokens_total": 30.0, "vllm:inter_token_latency_seconds_sum": 3.0,
    ...       "vllm:inter_token_latency_seconds_count": 30.0}]
    >>> summary(b, a)
    {'engine_generation_tokens': '20', 'engine_mean_inter_token_s': '0.1'}
    """
    if not before or not after or len(before) != len(after):
        return {}
    delta = _delta(before, after)
    out = {}
    if "vllm:generation_tokens_total" in delta:
        out["engine_generation_tokens"] = f"{delta['vllm:generation_tokens_total']:.0f}"
    if "vllm:prompt_tokens_total" in delta:
        out["engine_prompt_tokens"] = f"{delta['vllm:prompt_tokens_total']:.0f}"
    for key, total, count in (("engine_mean_inter_token_s", "vllm:inter_token_latency_seconds_sum",
                               "vllm:inter_token_latency_seconds_count"),
                              ("engine_mean_prefill_s", "vllm:request_prefill_time_seconds_sum",
                               "vllm:request_prefill_time_seconds_count")):
        if delta.get(count, 0.0) > 0:
            out[key] = f"{delta[total] / delta[count]:.6g}"
    return out
