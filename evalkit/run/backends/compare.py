"""One model and task through two backends: how often the replies are identical, and compliance and the primary
metric under each. The vLLM tests assert on these rows; scripts/compare_backends.py prints them as a table.

Agreement is strict: the share of items whose raw text (special tokens included) is byte-identical. Greedy
decoding through two engines differs only where their kernels round differently enough to flip an argmax; the
replies after such a flip differ, so agreement says how often that happened within a reply.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from evalkit.core import metrics


@dataclass(frozen=True, slots=True)
class Comparison:
    model: str
    task: str
    n: int
    agreement: float  # share of items with identical raw text
    compliance: tuple[float, float]  # (reference, served)
    metric_name: str
    metric: tuple[float | None, float | None]
    seconds: tuple[float, float]  # generation wall time of each


def compare(model: str, reference: Any, served: Any) -> Comparison:
    """Rows of two `TaskResult`s of the same items (reference: usually the transformers backend)."""
    ids = [r.item.id for r in reference.records]
    if ids != [r.item.id for r in served.records]:
        raise ValueError(f"{model}/{reference.task.name}: the two results hold different items")
    same = sum(a.generation.raw_text == b.generation.raw_text for a, b in zip(reference.records, served.records,
                                                                               strict=True))
    name = metrics.PRIMARY_METRIC[reference.task.family]
    return Comparison(model, reference.task.name, len(ids), same / len(ids), (reference.compliance, served.compliance),
                      name, (reference.metrics[name].value, served.metrics[name].value),
                      (reference.run.seconds, served.run.seconds))


def table(rows: Sequence[Comparison], names: tuple[str, str] = ("hf", "vllm")) -> str:
    """A Markdown table of comparisons.

    >>> print(table([Comparison("base", "zoo_math", 8, 1.0, (1.0, 1.0), "accuracy", (0.5, 0.5), (1.0, 2.0))]))
    | model | task | n | agreement | compliance hf/vllm | metric hf/vllm | gen s hf/vllm |
    |---|---|---|---|---|---|---|
    | base | zoo_math | 8 | 8/8 | 1.00/1.00 | accuracy 0.500/0.500 | 1.0/2.0 |
    """
    a, b = names
    out = [f"| model | task | n | agreement | compliance {a}/{b} | metric {a}/{b} | gen s {a}/{b} |",
           "|---|---|---|---|---|---|---|"]
    for r in rows:
        m = "/".join("undef" if v is None else f"{v:.3f}" for v in r.metric)
        out.append(f"| {r.model} | {r.task} | {r.n} | {round(r.agreement * r.n)}/{r.n} | {r.compliance[0]:.2f}/"
                   f"{r.compliance[1]:.2f} | {r.metric_name} {m} | {r.seconds[0]:.1f}/{r.seconds[1]:.1f} |")
    return "\n".join(out)
