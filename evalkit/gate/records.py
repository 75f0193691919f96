"""The gate's records: the evidence of one (model, task), each check's result, and the verdict over them.

Errors that travel inside the gate (a model that could not be loaded or evaluated, a parent that failed, drift that
could not be computed) are `Failure` records with fields, never strings parsed back; they print as they always did
(``load_error: <detail>``).
"""

from __future__ import annotations

import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from evalkit.core.extract import Diagnosis
from evalkit.errors import GateError

if TYPE_CHECKING:  # the engine and drift load with the first evaluation, not with the records
    from evalkit.core.decision import CheckDecision, ModelDecision
    from evalkit.models.artifacts import Difference
    from evalkit.run.generation import Phases
    from evalkit.run.drift import DriftResult
    from evalkit.run.engine import TaskResult

__all__ = ["CheckResult", "Evaluated", "Evidence", "Failure", "LABELS", "OK_OUTCOMES", "OUTCOMES", "Status", "Verdict", "explain",
           "where"]

Status = Literal["pass", "inconclusive", "fail", "skip"]
"""A check's outcome. inconclusive: a statistical check whose data cannot tell the problem it must see from none
at this n (its note says why and how many items would settle it); it fails nothing unless require_power is set."""

OUTCOMES = ("PASS", "INCONCLUSIVE", "FAIL", "CAUGHT", "MISDIAGNOSED", "ESCAPED")
"""A verdict's outcomes, in the order tallies list them."""

OK_OUTCOMES = frozenset({"PASS", "INCONCLUSIVE", "CAUGHT"})
"""Outcomes that keep a run green: a healthy model passed or could not be told apart at this n, a known-broken one
was caught for one of its reasons."""

LABELS = {
    "no_chat_template": "the model has no chat template, so its prompts fell back to plain text while its parent's "
                        "used the template: it is asked in a format it was not trained on",
    "prompt_mismatch": "the model is prompted differently from its parent (another prompt text or token ids)",
    "runaway": "replies run to max_new_tokens where the parent's stop: the end-of-turn token no longer ends "
               "generation (eos lost from the generation config or tokenizer)",
    "wrong_answer": "answers are well-formed (a valid \\boxed{}) but wrong",
    "trivial_baseline": "the score is no better than answering a constant (the trivial baseline)",
    "logit_drift": "the next-token distributions moved far from the parent's on the parent's own responses",
    "slow_kernel": "generation is far slower than the parent's: a slow kernel (e.g. dequantizing on the fly)",
    "underpowered": "inconclusive recovery with require_power on: these items cannot tell the drop the gate must "
                    "see from none; the note says how many would",
    "load_error": "the model folder could not be loaded",
    "evaluation_error": "the evaluation raised an error",
    "drift_error": "drift against the parent could not be computed",
    "parent_error": "the parent could not be evaluated, so nothing can be compared with it",
    # issue 12: loud failures and the artifacts a variant shares with its parent (evalkit.models.artifacts)
    "non_finite": "NaN or Inf in the model's numbers (weights, logits, hidden states, metrics or timings); the "
                  "first place it appears is named",
    "architecture_mismatch": "config.json describes another architecture than the parent's (layers, heads, sizes, "
                             "rope, tied embeddings, ...)",
    "tokenizer_mismatch": "the tokenizer differs from the parent's (vocabulary, merges, special or added tokens)",
    "chat_template_mismatch": "the chat template differs from the parent's: the model is asked in another format",
    "generation_config_mismatch": "generation_config.json differs from the parent's (eos, pad, bos or sampling "
                                  "defaults)",
    # issue 16: models gated through a server (evalkit.gate.served)
    "engine_refused": "the serving engine refused the checkpoint: its server exited while starting (e.g. no kernel "
                      "for its quantization scheme); the engine's own error is quoted",
    "backend_error": "the serving backend failed: the server did not become ready, or a request failed for good",
    "backend_mismatch": "parent and variant are gated by different kinds of backend, whose next-token "
                        "distributions do not compare",
    "no_prompt_logprobs": "the servers speak the plain OpenAI API, which has no prompt logprobs to compute drift from",
}
"""Diagnoses a check can name besides `evalkit.core.extract.Diagnosis` values, with their one-line explanations."""



@dataclass(frozen=True, slots=True)
class Failure:
    """Why something could not be evaluated: a diagnosis (a key of `LABELS`) and its detail, with fields.

    >>> f = Failure("evaluation_error", "ValueError: bad row", where="at engine.py:212")
    >>> str(f), f.text
    ('evaluation_error: ValueError: bad row (at engine.py:212)', 'ValueError: bad row (at engine.py:212)')
    """

    diagnosis: str  # "load_error", "evaluation_error", "drift_error", ...; "" when only the detail is known
    detail: str
    where: str = ""  # where an unexpected exception was raised, e.g. "at engine.py:212"

    @property
    def text(self) -> str:
        """The detail and where it happened: the numbers line of a check that fails for it."""
        return f"{self.detail} ({self.where})" if self.where else self.detail

    def __str__(self) -> str:
        return f"{self.diagnosis}: {self.text}" if self.diagnosis else self.text


@dataclass(frozen=True, slots=True)
class Evidence:
    """Everything the checks of one (model, task) read. `error` set: the model could not be evaluated."""

    model: str
    task: str
    result: TaskResult | None
    metric: str  # the primary metric's name
    parent_name: str | None = None
    parent: TaskResult | None = None
    drift: DriftResult | None = None
    error: Failure | None = None  # the model could not be loaded or evaluated
    parent_error: Failure | None = None
    drift_error: Failure | None = None
    identity: Mapping[str, str] = field(default_factory=dict)  # what the checkpoint is (`Gate.identity`)
    artifacts: tuple[Difference, ...] | None = None  # differences from the parent's artifacts; None: not compared
    speed: tuple[Phases, Phases] | None = None  # (model, parent): each one's fastest phases over its tasks (Gate)


@dataclass(frozen=True, slots=True)
class Evaluated:
    """The evidence of a (model, task) whose model was evaluated: what a check function reads (`check` builds it)."""

    model: str
    task: str
    metric: str  # the primary metric's name
    result: TaskResult
    parent_name: str | None = None
    parent: TaskResult | None = None
    drift: DriftResult | None = None
    drift_error: Failure | None = None
    artifacts: tuple[Difference, ...] | None = None  # differences from the parent's artifacts (None: not compared)
    speed: tuple[Phases, Phases] | None = None  # (model, parent) fastest phases over their tasks (Evidence.speed)
    decision: ModelDecision | None = None  # the model's statistical checks, decided as one family

    def decided(self, name: str) -> CheckDecision:
        """The decision of one statistical check of this task (`check` decides the task alone when no decision of
        the whole model was given)."""
        if self.decision is None:
            raise GateError(f"{self.model} on {self.task}: {name} needs the model's decision")
        try:
            return self.decision.check(self.task, name)
        except KeyError as err:
            raise GateError(f"{self.model} on {self.task}: the model's decision has no {name} check ({err})") from None

    @property
    def theirs(self) -> TaskResult:
        """The parent's result: `check` runs a check that needs a parent only when the parent was evaluated."""
        if self.parent is None:
            raise GateError(f"{self.model} on {self.task}: the parent's result is missing")
        return self.parent


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check's outcome; `message` is what a failed test prints."""

    check: str
    model: str
    task: str
    status: Status
    numbers: str  # the numbers compared, one line
    diagnosis: str = ""  # the named cause of a failure
    classes: str = ""  # counts per failure class of the model's responses
    examples: tuple[str, ...] = ()  # example responses behind the diagnosis
    note: str = ""  # e.g. why an inconclusive check could not decide, and how many items would
    values: Mapping[str, Any] = field(default_factory=dict)  # machine-readable numbers

    @property
    def message(self) -> str:
        head = f"{self.model} on {self.task}: {self.check} {self.status.upper()}"
        if self.status == "skip":
            return f"{head}: {self.numbers}"
        lines = [head + (f" - {self.diagnosis}: {explain(self.diagnosis)}" if self.diagnosis else "")]
        lines.append(f"  {'error' if self.diagnosis.endswith('_error') else 'compared'}: {self.numbers}")
        if self.classes:
            lines.append(f"  responses: {self.classes}")
        lines += [f"  {'e.g.' if i == 0 else '    '} {e}" for i, e in enumerate(self.examples)]
        if self.note:
            lines.append(f"  note: {self.note}")
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class Verdict:
    """All checks of one (model, task), and what the manifest expected of it."""

    model: str
    task: str
    checks: tuple[CheckResult, ...]
    expect: Literal["pass", "fail"] = "pass"
    expected: tuple[str, ...] = ()  # diagnoses that count as caught, for expect="fail"
    summary: Mapping[str, Any] = field(default_factory=dict)  # the metric summary (see `summarize`)

    @property
    def failed(self) -> tuple[CheckResult, ...]:
        return tuple(c for c in self.checks if c.status == "fail")

    @property
    def inconclusive(self) -> tuple[CheckResult, ...]:
        return tuple(c for c in self.checks if c.status == "inconclusive")

    @property
    def status(self) -> Literal["pass", "inconclusive", "fail"]:
        """The worst of its checks: fail, else inconclusive, else pass (skipped checks do not count)."""
        return "fail" if self.failed else "inconclusive" if self.inconclusive else "pass"

    @property
    def diagnosis(self) -> str:
        """The primary diagnosis: the first failed check's, in check order ("" when it passed)."""
        return self.failed[0].diagnosis if self.failed else ""

    @property
    def diagnoses(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(c.diagnosis for c in self.failed))

    @property
    def caught(self) -> bool:
        """A known-broken model failed for one of the expected reasons."""
        return self.status == "fail" and any(d in self.expected for d in self.diagnoses)

    @property
    def outcome(self) -> str:
        """PASS, INCONCLUSIVE or FAIL for a model expected to pass; CAUGHT (expected failure, right diagnosis),
        MISDIAGNOSED or ESCAPED for a known-broken one."""
        if self.expect == "pass":
            return self.status.upper()
        if self.caught:
            return "CAUGHT"
        return "MISDIAGNOSED" if self.status == "fail" else "ESCAPED"

    @property
    def as_expected(self) -> bool:
        return self.outcome in OK_OUTCOMES

    def get(self, check_name: str) -> CheckResult:
        return next(c for c in self.checks if c.check == check_name)

    def to_dict(self) -> dict[str, Any]:
        """The verdict as JSON-ready data (a run folder's verdicts.json, read back by `evalkit.report`).

        >>> from evalkit.gate.manifest import Thresholds
        >>> from evalkit.gate.runner import verdict
        >>> v = verdict(Evidence("m", "t", None, "accuracy", error=Failure("load_error", "gone")), Thresholds())
        >>> d = v.to_dict(); d["outcome"], d["diagnosis"], d["checks"][0]["numbers"]
        ('FAIL', 'load_error', 'gone')
        """
        import json

        checks = [{"check": c.check, "status": c.status, "diagnosis": c.diagnosis, "numbers": c.numbers,
                   "note": c.note, "message": c.message, "values": dict(c.values)} for c in self.checks]
        data = {"model": self.model, "task": self.task, "status": self.status, "outcome": self.outcome,
                "expect": self.expect, "expected": list(self.expected), "diagnosis": self.diagnosis,
                "diagnoses": list(self.diagnoses), "checks": checks, "summary": dict(self.summary)}
        return json.loads(json.dumps(data, default=str))  # what JSON cannot hold, as its string


def where(err: BaseException) -> str:
    """Where an unexpected exception was raised (`Failure.where`), e.g. "at engine.py:212"."""
    tb = traceback.extract_tb(err.__traceback__)
    return f"at {Path(tb[-1].filename).name}:{tb[-1].lineno}" if tb else "no traceback"


def explain(label: str) -> str:
    """The one-line explanation of a diagnosis: a gate label's, or an `evalkit.core.extract.Diagnosis`'s."""
    if label in LABELS:
        return LABELS[label]
    try:
        return Diagnosis(label).explain
    except ValueError:
        return label
