"""Engine-side counters from a server's Prometheus `/metrics` (vLLM's), read before and after a batch.

Why engine-side: the wall time of a batch includes HTTP and queueing; the slow-kernel check wants what the kernels
did, and vLLM's own histograms say it: mean inter-token latency (one decode step of one sequence) and mean prefill
time per request. Servers without `/metrics` simply report nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

# vLLM counter and histogram sums/counts that the summary needs (summed over label sets: one model per server).
NAMES = ("vllm:generation_tokens_total", "vllm:prompt_tokens_total", "vllm:inter_token_latency_seconds_sum",
         "vllm:inter_token_latency_seconds_count", "vllm:request_prefill_time_seconds_sum",
         "vllm:request_prefill_time_seconds_count", "vllm:request_decode_time_seconds_sum")


def parse(text: str, names: Sequence[str] = NAMES) -> dict[str, float]:
    """Sum each named series of a Prometheus text exposition over its labels.

    >>> parse('# HELP x\\nvllm:prompt_tokens_total{engine="0"} 172.0\\nvllm:prompt_tokens_total{engine="1"} 8\\n')
    {'vllm:prompt_tokens_total': 180.0}
    """
    wanted, out = set(names), {}
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
    delta: dict[str, float] = {}
    for b, a in zip(before, after, strict=True):
        for name in NAMES:
            if name in a and name in b:
                delta[name] = delta.get(name, 0.0) + a[name] - b[name]
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
