"""Shared helpers for the unit tests: where the real dataset samples live.

The samples are never copied into the repository: `data_dir` finds them through EVALKIT_DATA_DIR, else
``<repo>/../shared/data``, and the tests that need them skip when they are absent (CI without the share).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

import pytest

REPO = Path(__file__).resolve().parents[2]


def data_root() -> Path:
    return Path(os.environ.get("EVALKIT_DATA_DIR") or REPO.parent / "shared" / "data")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    root = data_root()
    if not root.is_dir():
        pytest.skip(f"real dataset samples not found at {root}; set EVALKIT_DATA_DIR to run these tests")
    return root


@pytest.fixture(scope="session")
def dataset(data_dir: Path) -> Callable[[str], list[dict[str, Any]]]:
    """``dataset("gsm8k/gsm8k_test_sample.jsonl")``: the rows of one sample file, or a skip naming it when absent."""

    def read(relative: str) -> list[dict[str, Any]]:
        path = data_dir / relative
        if not path.is_file():
            pytest.skip(f"{path} is absent")
        with path.open(encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]

    return read
