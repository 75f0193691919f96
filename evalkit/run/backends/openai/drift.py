"""Drift through a server: teacher-forced next-token distributions from `/v1/completions` prompt logprobs.

The same teacher tokens as `evalkit.run.drift` (the parent's own greedy replies, `teacher_from_generations`) are
sent as the prompt of a one-token completion with vLLM's `prompt_logprobs=k`: for every position the server returns the k most
likely next tokens with their logprobs, plus the logprob of the actual next token. Both models' answers are
compared position by position over the response tokens:

- KL(parent || variant) over the union of the two top-k supports plus one "rest" bucket for everything else. A token
  in one model's top-k but not in the other's gets the other model's leftover mass (1 - its top-k mass) spread
  evenly over such tokens, capped at that model's k-th probability (a token outside the top-k cannot be more
  likely); imputed probabilities (and the rest buckets) below `floor` are raised to it, while logprobs the server
  returned are used as they are (a floor there would cap every position's KL at -log(floor), 18.4 nats for 1e-8).
  Merging the tail into one bucket can only lower KL (data processing), so with a small k the figure is a lower-bound estimate; with k covering the vocabulary (k=-1) it is
  the full KL, up to the server's numerics.
- top-1 agreement: the two most likely tokens are the same (exact for any k >= 1).
- perplexities: from the actual next token's logprob, which the server always returns (exact for any k).

Layer localization (hidden-state cosines, the first divergent layer) needs the weights in evalkit's process: it
stays a transformers-backend feature, and the result says so (`first_divergent_layer=None`).

All logprobs come from prefill (prompt logprobs) on both sides: mixing them with decode-time logprobs adds a noise
floor of its own (NVIDIA ModelOpt measured ~0.03 KL).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from evalkit.errors import RequestError
from evalkit.run.drift import DriftError, DriftResult, TeacherSequence, _cut


@dataclass(frozen=True, slots=True)
class TopKConfig:
    """How many logprobs to ask for and how to treat what they leave out."""

    k: int = 20  # top-k per position; -1: the whole vocabulary (the server's --max-logprobs must allow it)
    floor: float = 1e-8  # the least probability an imputed token (or a rest bucket) is given, so log q stays finite
    max_tokens: int = 1024  # longer teacher sequences are cut, as in evalkit.run.drift.DriftConfig


@dataclass(frozen=True, slots=True)
class Position:
    """One next-token position: the k most likely tokens (best first) and the actual next token's logprob."""

    top: tuple[tuple[int, float], ...]
    target_logprob: float


UNMEASURED = ("embedding_cosine", "layer_cosine", "threshold", "largest_drop_layer")
"""`DriftResult` fields that need hidden states: a server returns none, so a `TopKDrift` leaves them out."""


@dataclass(frozen=True, slots=True)
class TopKDrift(DriftResult):
    """A `DriftResult` from top-k logprobs, with the k and floor it used and what it cannot say (`note`, which the
    gate's drift check prints). Hidden-state fields hold NaN and are left out of `to_dict` (and so out of the
    finite check and the run folder): they were not measured, not non-finite."""

    k: int = 20
    floor: float = 1e-8
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k not in UNMEASURED}


def teacher_logprobs(server: Any, sequences: Sequence[TeacherSequence], config: TopKConfig = TopKConfig()
                     ) -> list[list[Position]]:
    """Top-k logprobs of one model (an `OpenAIBackend` whose server speaks vLLM's `prompt_logprobs`) at every
    response position of every teacher sequence. Take the parent's while its server is up: a variant needs only
    its own server then."""
    seqs = [_cut(s, config.max_tokens) for s in sequences if s.response_ids]
    if not seqs:
        raise DriftError("no teacher sequence with a response: nothing to compare")

    def one(i: int) -> list[Position]:
        s = seqs[i]
        ids = list(s.prompt_ids) + list(s.response_ids)
        body = {"model": server.model_name, "prompt": ids, "max_tokens": 1, "temperature": 0.0,
                "prompt_logprobs": config.k, "add_special_tokens": False}
        url, answer = server.client.post("/v1/completions", body, f"teacher sequence {i} (prompt logprobs)")
        try:
            rows = answer["choices"][0]["prompt_logprobs"]
            return [_position(rows[j], ids[j], config.k) for j in range(len(s.prompt_ids), len(ids))]
        except (KeyError, IndexError, TypeError, ValueError) as err:
            raise RequestError(f"{url}/v1/completions for teacher sequence {i}: no usable prompt_logprobs ({err!r}); "
                               "drift through a server needs vLLM's prompt_logprobs") from None

    return server.client.map(one, len(seqs))


def _position(row: dict[str, Any], target: int, k: int) -> Position:
    entries = sorted(((int(t), float(v["logprob"]), int(v.get("rank") or 0)) for t, v in row.items()),
                     key=lambda e: e[2])
    top = tuple((t, lp) for t, lp, rank in entries if k < 0 or 1 <= rank <= k)
    return Position(top, float(row[str(target)]["logprob"]))


def topk_kl(p: Sequence[tuple[int, float]], q: Sequence[tuple[int, float]], floor: float = 1e-8) -> float:
    """KL(p || q) in nats from two top-k lists of (token, logprob) (see the module docstring). Known logprobs are
    used as they are; only imputed probabilities and the rest buckets are raised to `floor`.

    >>> full = [(0, math.log(0.5)), (1, math.log(0.3)), (2, math.log(0.2))]
    >>> round(topk_kl(full, full), 12)
    0.0
    >>> other = [(0, math.log(0.2)), (1, math.log(0.3)), (2, math.log(0.5))]
    >>> exact = 0.5 * math.log(0.5 / 0.2) + 0.2 * math.log(0.2 / 0.5)
    >>> abs(topk_kl(full, other) - exact) < 1e-12
    True
    """
    support = list(dict.fromkeys([t for t, _ in p] + [t for t, _ in q]))
    lp, p_rest = _complete(p, support, floor)
    lq, q_rest = _complete(q, support, floor)
    kl = sum(math.exp(lp[t]) * (lp[t] - lq[t]) for t in support)
    if p_rest > floor:
        kl += p_rest * (math.log(p_rest) - math.log(max(q_rest, floor)))
    return max(kl, 0.0)


def _complete(side: Sequence[tuple[int, float]], support: Sequence[int], floor: float
              ) -> tuple[dict[int, float], float]:
    """Logprobs of every support token on one side (imputed where missing) and its leftover 'rest' mass."""
    logprobs = {t: max(v, -1e4) for t, v in side}  # a -inf from the server stays finite (and huge)
    left = max(0.0, 1.0 - sum(math.exp(v) for v in logprobs.values()))
    missing = [t for t in support if t not in logprobs]
    if missing:
        cap = math.exp(min(logprobs.values())) if logprobs else left
        share = min(cap, left / len(missing))
        logprobs.update(dict.fromkeys(missing, math.log(max(share, floor))))
        left = max(0.0, left - share * len(missing))
    return logprobs, left


def server_drift(parent: Sequence[Sequence[Position]], variant: Sequence[Sequence[Position]],
                 config: TopKConfig = TopKConfig()) -> TopKDrift:
    """Drift summary of two models' logprobs over the same teacher sequences (`teacher_logprobs` of each)."""
    if len(parent) != len(variant) or any(len(a) != len(b) for a, b in zip(parent, variant, strict=False)):
        raise DriftError("parent and variant logprobs cover different teacher sequences")
    kls, agree, nll_p, nll_v = [], 0, 0.0, 0.0
    for seq_p, seq_v in zip(parent, variant, strict=True):
        for a, b in zip(seq_p, seq_v, strict=True):
            kls.append(topk_kl(a.top, b.top, config.floor))
            agree += a.top[0][0] == b.top[0][0]
            nll_p -= a.target_logprob
            nll_v -= b.target_logprob
    n = len(kls)
    if n == 0:
        raise DriftError("no response positions to compare")
    ranked = sorted(kls)
    ppl_p, ppl_v = math.exp(nll_p / n), math.exp(nll_v / n)
    k = "the whole vocabulary" if config.k < 0 else f"top-{config.k}"
    bound = "the full KL, up to the server's numerics" if config.k < 0 else f"{k} KL is a lower bound"
    return TopKDrift(
        n_sequences=len(parent), n_tokens=n, kl_mean=sum(kls) / n, kl_median=_quantile(ranked, 0.5),
        kl_p90=_quantile(ranked, 0.9), kl_p99=_quantile(ranked, 0.99), kl_max=ranked[-1], top1_agreement=agree / n,
        ppl_parent=ppl_p, ppl_variant=ppl_v, ppl_ratio=ppl_v / ppl_p, embedding_cosine=math.nan, layer_cosine=(),
        first_divergent_layer=None, largest_drop_layer=None, threshold=math.nan, k=config.k, floor=config.floor,
        note=f"drift through the server from {k} prompt logprobs: {bound}; layer localization is a "
             "transformers-backend feature",
    )


def _quantile(ranked: Sequence[float], q: float) -> float:
    """Linear interpolation between order statistics (torch.quantile's default, as evalkit.run.drift uses).

    >>> _quantile([0.0, 1.0, 2.0, 3.0], 0.5)
    1.5
    """
    pos = q * (len(ranked) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(ranked) - 1)
    return ranked[lo] + (ranked[hi] - ranked[lo]) * (pos - lo)
