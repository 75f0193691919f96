"""Logit drift of a variant against its parent, teacher-forced on the same tokens: the fast signal.

A broken quantization shows here before a single answer is generated: one forward pass of each model over the same
sequences gives, per next-token position, the KL divergence KL(parent || variant), whether the two argmaxes agree,
and each model's log-likelihood of the actual next token. Summaries follow llama.cpp's KL-divergence mode (mean,
median, p90, p99, max KL; "same top p" = top-1 agreement; PPL(variant)/PPL(parent)).

A broken layer is located, not just detected: hidden states are compared layer by layer (mean cosine similarity
over tokens), and the first decoder layer whose similarity falls below a threshold is named by its index in
``model.layers`` (the index in its weight names, e.g. ``model.layers.3.mlp.down_proj``). Before that layer the
models agree; quantization noise lowers the similarity gradually, a broken layer makes it drop at once, and the
largest single drop is reported too.

Teacher text, decided: the parent's own greedy responses (prompt + response, as the parent's evaluation generated
them, so they come free from its cache). They exist for every task (real datasets have no reference responses in
the model's style), and they are the path the parent actually takes at eval time, so the KL measures drift exactly
where answers are made. Reference responses (the zoo's `synthetic.reference_response`) are supported through
`teacher_from_references` for tasks that have them. KL and top-1 agreement are taken over response tokens only
(the prompt is the same for every variant); hidden-state similarity over every token.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from evalkit.core.types import Item
from evalkit.errors import DriftError
from evalkit.run.generation import Generation, GenerationConfig, render_prompts

__all__ = ["DriftConfig", "DriftError", "DriftResult", "TeacherSequence", "check_same_vocabulary", "drift",
           "teacher_from_generations", "teacher_from_references"]


@dataclass(frozen=True, slots=True)
class DriftConfig:
    """How to compare a variant with its parent."""

    batch_size: int = 8  # sequences per forward pass
    max_tokens: int = 1024  # longer sequences are cut (prompt kept, response shortened)
    layer_threshold: float = 0.95  # the first layer whose mean hidden-state cosine falls below this is named


@dataclass(frozen=True, slots=True)
class TeacherSequence:
    """Token ids fed to both models: a prompt and the response whose next-token distributions are compared."""

    prompt_ids: tuple[int, ...]
    response_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class DriftResult:
    """Drift statistics of a variant against its parent (see the module docstring)."""

    n_sequences: int
    n_tokens: int  # next-token positions compared (response tokens)
    kl_mean: float
    kl_median: float
    kl_p90: float
    kl_p99: float
    kl_max: float
    top1_agreement: float  # share of positions where both models' most likely next token is the same
    ppl_parent: float
    ppl_variant: float
    ppl_ratio: float  # PPL(variant) / PPL(parent) on the teacher tokens; 1.0 = no change
    embedding_cosine: float  # mean cosine of the embedding outputs (hidden_states[0])
    layer_cosine: tuple[float, ...]  # per decoder layer (model.layers[i]): mean cosine of its output
    first_divergent_layer: int | None  # first i with layer_cosine[i] < threshold; None when none is
    largest_drop_layer: int | None  # i with the largest fall from the previous layer's cosine (embedding for i=0)
    threshold: float
    missing_layers: str = ""  # decoder layers one model has and the other lacks ("" when the depths agree)
    nonfinite: str = ""  # where NaN/Inf first appears in the variant's forward ("model.layers.3", "logits"); "": none
    nonfinite_weights: tuple[str, ...] = ()  # the variant's parameters holding NaN/Inf (the first few)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ----------------------------------------------------------------------------------------------- teacher text


def teacher_from_generations(tokenizer: Any, generations: Sequence[Generation], *, plain: bool = False
                             ) -> list[TeacherSequence]:
    """Teacher sequences from a parent's generations: the prompt as rendered (text -> ids, as `render_prompts`
    tokenized it) and the response token ids the parent generated, eos included. Re-tokenizing the decoded text
    would feed other ids wherever decoding is not invertible; generations recorded before token ids were kept fall
    back to it.

    plain: the prompts were plain prompts (tokenized with the tokenizer's special tokens, e.g. BOS).
    Items whose prompt was too long to send (finish reason ``prompt_too_long``) have no response and are skipped.
    """
    out = []
    for g in generations:
        if g.finish_reason == "prompt_too_long":
            continue
        prompt = tokenizer(g.prompt, add_special_tokens=plain)["input_ids"]
        response = list(g.token_ids) or tokenizer(g.raw_text, add_special_tokens=False)["input_ids"]
        if response:
            out.append(TeacherSequence(tuple(prompt), tuple(response)))
    return out


def teacher_from_references(tokenizer: Any, items: Sequence[Item], references: Sequence[str],
                            config: GenerationConfig = GenerationConfig()) -> list[TeacherSequence]:
    """Teacher sequences from reference responses (e.g. `synthetic.reference_response`), each ended with eos."""
    if len(items) != len(references):
        raise DriftError(f"{len(items)} items but {len(references)} reference responses")
    prompts = render_prompts(tokenizer, items, config)
    eos = tokenizer.eos_token or ""
    return [TeacherSequence(p.token_ids, tuple(tokenizer(ref + eos, add_special_tokens=False)["input_ids"]))
            for p, ref in zip(prompts, references, strict=True)]


# ----------------------------------------------------------------------------------------------------- drift


def check_same_vocabulary(variant: Any, parent: Any) -> None:
    """Raise DriftError unless both tokenizers map the same strings to the same ids."""
    pv, vv = parent.tokenizer.get_vocab(), variant.tokenizer.get_vocab()
    if pv != vv:
        only_p = sorted(set(pv.items()) - set(vv.items()))[:3]
        only_v = sorted(set(vv.items()) - set(pv.items()))[:3]
        raise DriftError(
            f"variant {getattr(variant, 'path', '?')} and parent {getattr(parent, 'path', '?')} have different "
            f"vocabularies ({len(vv)} vs {len(pv)} tokens; parent-only e.g. {only_p}, variant-only e.g. {only_v}); "
            "drift compares next-token distributions and needs the same tokenizer: compare against the right parent"
        )


def drift(variant: Any, parent: Any, sequences: Sequence[TeacherSequence], config: DriftConfig = DriftConfig()
          ) -> DriftResult:
    """Teacher-forced drift of `variant` against `parent` (both LoadedModel-like: .model and .tokenizer).

    Both models run one forward pass per batch over the same token ids; nothing is generated.
    """
    import torch

    check_same_vocabulary(variant, parent)
    seqs = [_cut(s, config.max_tokens) for s in sequences if s.response_ids]
    if not seqs:
        raise DriftError("no teacher sequence with a response: nothing to compare")
    device = next(parent.model.parameters()).device
    kls, agree, nll_p, nll_v = [], 0, 0.0, 0.0
    cos_sum: list[float] | None = None
    cos_n = 0
    nonfinite: int | None = None  # index into hidden states (0: embeddings), or len(hidden states): logits
    shared = 0  # hidden states (embeddings + decoder layers) both models have
    with torch.inference_mode():
        for b in range(0, len(seqs), config.batch_size):
            batch = seqs[b : b + config.batch_size]
            ids, mask, target = (t.to(device) for t in _right_pad(batch))
            lp, hp = _forward(parent.model, ids, mask, device)
            lv, hv = _forward(variant.model, ids, mask, device)
            if lp.shape[-1] != lv.shape[-1]:
                raise DriftError(f"logit widths differ (parent {lp.shape[-1]}, variant {lv.shape[-1]}): not the same "
                                 "vocabulary")
            sel = target >= 0  # positions whose next token is a response token
            logp = torch.log_softmax(lp[sel].float(), dim=-1)
            logq = torch.log_softmax(lv[sel].float(), dim=-1)
            kls.append((logp.exp() * (logp - logq)).sum(-1).clamp(min=0.0).cpu())
            agree += int((logp.argmax(-1) == logq.argmax(-1)).sum())
            tgt = target[sel]
            nll_p -= float(logp.gather(-1, tgt[:, None]).sum())
            nll_v -= float(logq.gather(-1, tgt[:, None]).sum())
            valid = mask.bool()
            nonfinite = _first_nonfinite([h[valid] for h in hv] + [lv[valid]], nonfinite)
            shared = min(len(hp), len(hv))
            if hp[0].shape[-1] == hv[0].shape[-1]:  # other hidden sizes: no cosine, the logits still compare
                sims = [float(_cosine(a[valid], c[valid]).sum()) for a, c in zip(hp[:shared], hv[:shared])]
                cos_sum = sims if cos_sum is None else [x + y for x, y in zip(cos_sum, sims, strict=True)]
                cos_n += int(valid.sum())
    kl = torch.cat(kls)
    n = int(kl.numel())
    q = torch.quantile(kl, torch.tensor([0.5, 0.9, 0.99], dtype=kl.dtype)).tolist() if n > 1 else [float(kl[0])] * 3
    cosines = [c / cos_n for c in cos_sum] if cos_sum else []
    embedding, layers = (cosines[0], tuple(cosines[1:])) if cosines else (math.nan, ())
    first = next((i for i, c in enumerate(layers) if not c >= config.layer_threshold), None)  # NaN diverges too
    drops = [prev - cur if math.isfinite(prev - cur) else math.inf
             for prev, cur in zip((embedding, *layers[:-1]), layers, strict=True)]
    largest = max(range(len(drops)), key=drops.__getitem__) if drops and max(drops) > 1e-6 else None
    ppl_p, ppl_v = math.exp(nll_p / n), math.exp(nll_v / n)
    depth_p, depth_v = len(hp) - 1, len(hv) - 1
    missing = "" if depth_p == depth_v else (
        f"model.layers.{shared - 1}-{max(depth_p, depth_v) - 1} of the {'parent' if depth_p > depth_v else 'variant'}"
        f" have no counterpart ({depth_v} vs the parent's {depth_p} decoder layers; the first {shared - 1} compared)")
    where = "" if nonfinite is None else "logits" if nonfinite == len(hv) else \
        "model.embed_tokens" if nonfinite == 0 else f"model.layers.{nonfinite - 1}"
    return DriftResult(
        n_sequences=len(seqs), n_tokens=n, kl_mean=float(kl.mean()), kl_median=q[0], kl_p90=q[1], kl_p99=q[2],
        kl_max=float(kl.max()), top1_agreement=agree / n, ppl_parent=ppl_p, ppl_variant=ppl_v, ppl_ratio=ppl_v / ppl_p,
        embedding_cosine=embedding, layer_cosine=layers, first_divergent_layer=first, largest_drop_layer=largest,
        threshold=config.layer_threshold, missing_layers=missing, nonfinite=where,
        nonfinite_weights=_nonfinite_weights(variant.model) if where else (),
    )


def _first_nonfinite(tensors: Sequence[Any], so_far: int | None) -> int | None:
    """The index of the first tensor holding NaN or Inf, or `so_far` when that comes earlier (None: none does)."""
    import torch

    limit = len(tensors) if so_far is None else so_far
    found = next((i for i, t in enumerate(tensors[:limit]) if not bool(torch.isfinite(t).all())), None)
    return so_far if found is None else found


def _nonfinite_weights(model: Any, shown: int = 3) -> tuple[str, ...]:
    """The parameters holding NaN or Inf: where a non-finite forward comes from, when it is the weights."""
    import torch

    names = [name for name, p in model.named_parameters() if p.is_floating_point() and not bool(torch.isfinite(p).all())]
    return tuple(names[:shown]) + ((f"and {len(names) - shown} more",) if len(names) > shown else ())


def _cut(s: TeacherSequence, max_tokens: int) -> TeacherSequence:
    prompt, response = s.prompt_ids, s.response_ids
    if not prompt:  # the first token has no prediction: it becomes the prompt
        prompt, response = response[:1], response[1:]
    room = max(1, max_tokens - len(prompt))
    return TeacherSequence(prompt, response[:room])


def _right_pad(batch: Sequence[TeacherSequence]):
    """ids and mask (right padded) and, per position, the response token it predicts (-1 elsewhere)."""
    import torch

    width = max(len(s.prompt_ids) + len(s.response_ids) for s in batch)
    ids = torch.zeros((len(batch), width), dtype=torch.long)
    mask = torch.zeros_like(ids)
    target = torch.full_like(ids, -1)
    for j, s in enumerate(batch):
        row = list(s.prompt_ids) + list(s.response_ids)
        ids[j, : len(row)] = torch.tensor(row)
        mask[j, : len(row)] = 1
        p, r = len(s.prompt_ids), len(s.response_ids)
        target[j, p - 1 : p - 1 + r] = torch.tensor(s.response_ids)  # position t predicts token t + 1
    return ids, mask, target


def _cosine(a: Any, b: Any):
    """Row-wise cosine similarity; two zero vectors (e.g. a padding token's zero embedding) count as identical."""
    import torch

    a, b = a.float(), b.float()
    na, nb = a.norm(dim=-1), b.norm(dim=-1)
    cos = (a * b).sum(-1) / (na * nb).clamp(min=1e-12)
    both_zero = (na < 1e-12) & (nb < 1e-12)
    return torch.where(both_zero, torch.ones_like(cos), cos)


def _forward(model: Any, ids: Any, mask: Any, device: Any):
    """Logits and hidden states for right-padded ids, moved to `device` (the parent's)."""
    own = next(model.parameters()).device
    out = model(input_ids=ids.to(own), attention_mask=mask.to(own), output_hidden_states=True, use_cache=False)
    return out.logits.to(device), [h.to(device) for h in out.hidden_states]
