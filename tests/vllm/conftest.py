"""The vLLM tests run only when asked for: `pytest -m vllm tests/vllm` (after scripts/setup_vllm_venv.sh).

Why opt-in even when the venv exists: they start real servers (about 20 s each on 2 cores, 3 GB of RAM each) and
take minutes, and the ordinary `make test` must not grow by that; `.ci/run` selects them in a step of their own.
Unselected, or selected without a vLLM interpreter, they are skipped with a one-line reason.
"""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    marked = [item for item in items if item.get_closest_marker("vllm") is not None]
    if not marked:
        return
    expr = config.getoption("markexpr") or ""
    if "vllm" not in expr or "not vllm" in expr:
        reason = "starts real vLLM servers (minutes): run with `pytest -m vllm tests/vllm`"
    else:
        from evalkit.run.backends.vllm import unavailable

        reason = unavailable()
    if reason:
        for item in marked:
            item.add_marker(pytest.mark.skip(reason=reason))
