"""The assertion glue of the gate's tests: `require` (skip, pass, fail with the message, or xfail a known-broken
model) and `GateCase`, one (model, task) of a running gate as a test sees it."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from collections.abc import Sequence
from typing import Any, Literal

import pytest

from evalkit.gate.checks import error_result
from evalkit.gate.manifest import Case
from evalkit.gate.records import CheckResult
from evalkit.gate.runner import Gate

__all__ = ["GateCase", "GateInconclusive", "require"]


class GateInconclusive(UserWarning):
    """A gate check that could not tell the problem it must see from none at this many items: the test passes,
    and pytest's warnings summary lists the check with its reason and the items that would settle it."""


def require(result: CheckResult, *, expect: Literal["pass", "fail"] = "pass", expected: Sequence[str] = ()) -> None:
    """The assertion core of every gate test: skip, pass, fail with the message, or xfail a known-broken model.

    A known-broken model's failure is an xfail only when its diagnosis is one of `expected` (the manifest's
    ``diagnosis`` and ``symptoms``): a load error or any other diagnosis is a real failure, which the breakage must
    not hide. An inconclusive check passes with a `GateInconclusive` warning (require_power turns an inconclusive
    recovery into a failure before it gets here).
    """
    __tracebackhide__ = True
    if result.status == "skip":
        pytest.skip(f"{result.check}: {result.numbers}")  # model and task are in the test id; same reasons group
    if result.status == "inconclusive":  # issue 14: passes, and says so in the warnings summary
        warnings.warn(GateInconclusive(f"{result.model} on {result.task}: {result.check} INCONCLUSIVE: {result.note}"),
                      stacklevel=2)
        return
    if result.status == "fail":
        if expect == "fail" and result.diagnosis in expected:  # one line: the -ra summary lists every catch
            pytest.xfail(f"known-broken model caught: {result.message.splitlines()[0]}")
        if expect == "fail":
            pytest.fail(f"known-broken model failed for an unexpected reason ({result.diagnosis or 'no diagnosis'};"
                        f" expected {' or '.join(expected) or 'nothing listed'}):\n{result.message}", pytrace=False)
        pytest.fail(result.message, pytrace=False)




@dataclass(frozen=True, slots=True)
class GateCase:
    """One (model, task) of a running gate, as a test sees it: checks to require, summaries to snapshot."""

    gate: Gate
    case: Case

    def check(self, name: str) -> CheckResult:
        return self.gate.verdict(self.case.model, self.case.task).get(name)

    def require(self, name: str) -> None:
        """Assert one check (a known-broken model's failure is an xfail: the gate caught it)."""
        __tracebackhide__ = True
        require(self.check(name), expect=self.case.expect, expected=self._expected())

    def _expected(self) -> tuple[str, ...]:
        """The diagnoses a check of this known-broken model may fail with and still be an xfail: its root causes and
        their symptoms (none for a healthy one). Only a root cause counts as caught (`require_caught`)."""
        spec = self.gate.manifest.models[self.case.model]
        return (*spec.diagnosis, *spec.symptoms)

    def require_caught(self) -> None:
        """Assert that a known-broken model fails, and for one of its expected diagnoses."""
        __tracebackhide__ = True
        v = self.gate.verdict(self.case.model, self.case.task)
        if v.caught:
            return
        expected = " or ".join(v.expected)
        if v.status != "fail":  # passed, or inconclusive: either way not caught
            pytest.fail(f"{v.model} on {v.task}: known-broken model ESCAPED the gate: no check failed, but it "
                        f"should fail as {expected}.\n" + "\n".join(c.message for c in v.checks), pytrace=False)
        pytest.fail(f"{v.model} on {v.task}: known-broken model caught for the wrong reason: it fails as "
                    f"{', '.join(v.diagnoses)}, expected {expected}.\n" + "\n".join(c.message for c in v.failed),
                    pytrace=False)

    def summary(self) -> dict[str, Any]:
        """The metric summary that the snapshot keeps (`evalkit.gate.expectations.summary_document`)."""
        __tracebackhide__ = True
        from evalkit.gate.expectations import summary_document

        self._require_evaluated()
        summary = self.gate.verdict(self.case.model, self.case.task).summary
        return summary_document(summary, **self._where())

    def golden(self) -> dict[str, Any]:
        """The golden greedy responses that the snapshot keeps (`evalkit.gate.expectations.golden_document`)."""
        __tracebackhide__ = True
        from evalkit.gate.expectations import golden_document

        self._require_evaluated()
        return golden_document(self.gate.golden(self.case.model, self.case.task), **self._where())

    def _where(self) -> dict[str, Any]:
        """Flavour and platform of this run; a known-broken model's replies are not reproducible across platforms."""
        from evalkit.run.platform import flavour, platform_key

        return {"flavour": flavour(self.gate.device), "platform": platform_key(self.gate.device),
                "reproducible": self.case.expect == "pass"}

    def _require_evaluated(self) -> None:
        __tracebackhide__ = True
        if self.gate.served.serves(self.case.model):  # issue 16: never into the zoo's (transformers) snapshots
            pytest.skip(f"snapshots record the transformers backend (docs/snapshots.md); {self.case.model} is gated "
                        "through a server, whose replies are compared with the transformers backend's in tests/vllm")
        ev = self.gate.evidence(self.case.model, self.case.task)
        if ev.error is not None:
            require(error_result("evaluation", ev), expect=self.case.expect, expected=self._expected())
