"""Drift from top-k logprobs (`evalkit.run.backends.openai.drift`): the estimator's properties, and the requests it sends."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest
from fake_server import FakeServer

from evalkit.run.backends.served import served_model
from evalkit.run.backends.openai.drift import Position, TopKConfig, server_drift, teacher_logprobs, topk_kl
from evalkit.run.backends.openai import OpenAIBackend, OpenAIConfig
from evalkit.run.drift import DriftResult, TeacherSequence

BASE = Path(__file__).resolve().parents[4] / "fixtures" / "zoo" / "base"


def dist(rng: random.Random, n: int, sharp: float) -> list[tuple[int, float]]:
    """A random distribution over n tokens as (token, logprob), most likely first."""
    logits = [rng.gauss(0, sharp) for _ in range(n)]
    z = math.log(sum(math.exp(x) for x in logits))
    return sorted(((t, x - z) for t, x in enumerate(logits)), key=lambda e: -e[1])


def exact_kl(p, q) -> float:
    qd = dict(q)
    return sum(math.exp(lp) * (lp - qd[t]) for t, lp in p)


def test_full_support_gives_the_exact_kl_and_truncation_stays_close_or_below():
    rng = random.Random(0)
    for _ in range(50):
        p = dist(rng, 64, 3.0)
        q = [(t, lp + rng.gauss(0, 0.3)) for t, lp in p]
        z = math.log(sum(math.exp(lp) for _, lp in q))
        q = sorted(((t, lp - z) for t, lp in q), key=lambda e: -e[1])
        exact = exact_kl(p, q)
        assert topk_kl(p, q) == pytest.approx(exact, rel=1e-9, abs=1e-12)
        top8 = topk_kl(p[:8], q[:8])
        assert 0.0 <= top8 <= exact * 1.5 + 1e-3  # a lower-bound estimate: the tail merged into one bucket


def test_identical_top_k_lists_have_zero_kl_and_disjoint_ones_a_large_one():
    p = [(1, math.log(0.6)), (2, math.log(0.3))]
    assert topk_kl(p, p) == 0.0
    q = [(7, math.log(0.6)), (8, math.log(0.3))]
    assert topk_kl(p, q) > 1.0


def test_server_drift_summarizes_positions_and_states_its_limits():
    a = Position(((1, math.log(0.9)), (2, math.log(0.1))), math.log(0.9))
    b = Position(((2, math.log(0.6)), (1, math.log(0.4))), math.log(0.4))
    r = server_drift([[a, a]], [[a, b]], TopKConfig(k=2))
    assert isinstance(r, DriftResult)  # what the gate's drift check reads, whichever backend produced it
    assert (r.n_sequences, r.n_tokens, r.top1_agreement) == (1, 2, 0.5)
    assert r.kl_max == pytest.approx(0.9 * math.log(0.9 / 0.4) + 0.1 * math.log(0.1 / 0.6))
    assert r.ppl_ratio == pytest.approx(math.exp(-(math.log(0.9) + math.log(0.4)) / 2) / (1 / 0.9))
    assert r.first_divergent_layer is None and r.layer_cosine == ()
    assert r.note == ("drift through the server from top-2 prompt logprobs: top-2 KL is a lower bound; layer "
                      "localization is a transformers-backend feature")
    # what was not measured (hidden states) is left out, not reported as NaN
    assert set(r.to_dict()) >= {"kl_mean", "top1_agreement", "k", "floor", "note"}
    assert not {"embedding_cosine", "threshold", "layer_cosine"} & set(r.to_dict())
    assert all(math.isfinite(v) for v in r.to_dict().values() if isinstance(v, float))
    full = server_drift([[a, a]], [[a, b]], TopKConfig(k=-1))
    assert "the whole vocabulary" in full.note and "the full KL" in full.note


def test_teacher_logprobs_asks_for_prompt_logprobs_of_the_response_positions():
    def reply(body):
        ids = body["prompt"]
        rows = [None] + [{str(t): {"logprob": -0.1, "rank": 1, "decoded_token": "x"},
                          "999": {"logprob": -3.0, "rank": 2, "decoded_token": "y"}} for t in ids[1:]]
        return {"token_ids": [2], "prompt_logprobs": rows}

    seqs = [TeacherSequence((1, 2, 3), (4, 5)), TeacherSequence((1,), (6,)), TeacherSequence((1,), ())]
    with FakeServer(reply=reply) as s:
        server = OpenAIBackend.for_model(served_model(BASE), OpenAIConfig((s.url,)))
        lps = teacher_logprobs(server, seqs, TopKConfig(k=1))
    assert [len(x) for x in lps] == [2, 1]  # response positions only; the empty response is skipped
    assert lps[0][0].top == ((4, -0.1),) and lps[0][0].target_logprob == -0.1
    body = next(b for b in s.requests if len(b["prompt"]) == 5)  # requests run at once: in any order
    assert len(s.requests) == 2 and body["prompt"] == [1, 2, 3, 4, 5] and body["prompt_logprobs"] == 1 and body["max_tokens"] == 1
