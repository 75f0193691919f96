"""The gate: a manifest of models and tasks, pure checks over each (model, task)'s evidence, verdicts with a named
diagnosis, and the runner that gathers the evidence (`Gate`, `run_gate`). No pytest here: the plugin is
`evalkit.pytest`."""

from evalkit.errors import ManifestError
from evalkit.gate.checks import CHECKS, CheckSpec, check
from evalkit.gate.manifest import Case, Manifest, Thresholds, load, loads
from evalkit.gate.records import LABELS, CheckResult, Evidence, Failure, Verdict
from evalkit.gate.render import GateReport, render_summary
from evalkit.gate.runner import Gate, run_gate, select_cases, verdict

__all__ = ["CHECKS", "Case", "CheckResult", "CheckSpec", "Evidence", "Failure", "Gate", "GateReport", "LABELS",
           "Manifest", "ManifestError", "Thresholds", "Verdict", "check", "load", "loads", "render_summary",
           "run_gate", "select_cases", "verdict"]
