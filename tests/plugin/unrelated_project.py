"""An unrelated project, for the inertness tests: its own ``gpu`` marker and a test that carries it, plain and
parametrized tests, and a conftest that records, at the end of each process's session, the environment, whether
torch was imported, which evalkit modules were, the distribution mode and every registered ``gpu`` marker (into
``$RECORDS/<worker>.json``). `FAKE_SMI` is an ``nvidia-smi`` that logs each call to ``$SMI_LOG`` and reports two GPUs.

Used by tests/plugin/test_inert.py (the plugin loaded or not) and tests/plugin/test_wheel.py (evalkit installed or
not, in a fresh venv).
"""

import textwrap

CONFTEST = textwrap.dedent("""
    import json, os, sys
    from pathlib import Path

    def pytest_configure(config):
        config.addinivalue_line("markers", "gpu: this project's own GPU tests (it decides what they do)")

    def pytest_sessionfinish(session):
        who = os.environ.get("PYTEST_XDIST_WORKER", "main")
        record = {"env": dict(os.environ), "torch": "torch" in sys.modules,
                  "evalkit_loaded": sorted(m for m in sys.modules if m.startswith("evalkit.") and
                                           m not in ("evalkit.plugin", "evalkit.pytest", "evalkit.pytest.plugin")),
                  "dist": getattr(session.config.option, "dist", None),
                  "gpu_markers": [m for m in session.config.getini("markers") if m.startswith("gpu")]}
        if "RECORDS" in os.environ:  # set by the inertness tests; other runs of the folder record nothing
            Path(os.environ["RECORDS"], f"{who}.json").write_text(json.dumps(record, sort_keys=True))
""")

TESTS = textwrap.dedent("""
    import pytest

    @pytest.mark.gpu
    def test_own_gpu_marker_runs_as_the_project_says():
        pass  # no GPU here: a plugin giving `gpu` a meaning would skip it

    def test_plain():
        pass

    @pytest.mark.parametrize("i", range(4))
    def test_many(i):
        assert i < 4
""")

FAKE_SMI = "#!/bin/sh\necho called >> \"$SMI_LOG\"\necho 'GPU 0: Fake (UUID: GPU-0)'\necho 'GPU 1: Fake (UUID: GPU-1)'\n"


def differences(a: object, b: object, where: str = "") -> list[str]:
    """Where two records differ, as dotted paths (a readable failure instead of two screens of dicts)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b), key=str) for d in differences(a.get(k), b.get(k), f"{where}.{k}")]
    return [] if a == b else [f"{where}: {a!r} != {b!r}"]
