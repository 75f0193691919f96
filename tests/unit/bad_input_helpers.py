"""Fixtures of the bad-input suite (tests/unit/bad_inputs/, issue 13): what a careless or hostile user gives evalkit,
one test per class, each a reproduction that failed before the fix. Shared here: real model folders on disk and the
command line's runner. (A module, not a conftest.py: a nested conftest shadows tests/unit/conftest.py under
--doctest-modules; the tests import the fixtures they use, as with tiny_models.)

Models are the fixture zoo's trained ``base`` (512 positions; tests needing it skip when fixtures/zoo is absent) and
tiny random Qwen3 folders (tests/unit/tiny_models.py), changed by real means (zeroed embeddings, NaN weights).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

import tiny_models as et
from evalkit import cli

REPO = Path(__file__).resolve().parents[2]
ZOO_BASE = Path(os.environ.get("EVALKIT_ZOO_DIR") or REPO / "fixtures" / "zoo") / "base"


edit_weights = et.edit_weights


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    """A tiny parent, a healthy variant, a broken one (zeroed embeddings) and one with NaN weights."""
    root = tmp_path_factory.mktemp("bad-input-models")
    parent = et.save_tiny(root / "parent", seed=1)
    out = {"parent": parent}
    for name, tensor, factor in (("variant", "model.layers.1.mlp.down_proj.weight", 1.05),
                                 ("broken", "model.embed_tokens.weight", 0.0),
                                 ("nan", "model.layers.1.mlp.down_proj.weight", float("nan"))):
        shutil.copytree(parent, root / name)
        edit_weights(root / name, tensor, factor)
        out[name] = root / name
    return out


@pytest.fixture(scope="session")
def zoo_pair(zoo_base, tmp_path_factory) -> dict[str, Path]:
    """The zoo's trained base and a copy with zeroed embeddings (every reply is special tokens): two models whose
    numbers differ at a glance."""
    broken = tmp_path_factory.mktemp("zoo-pair") / "broken"
    shutil.copytree(zoo_base, broken)
    edit_weights(broken, "model.embed_tokens.weight", 0.0)
    return {"base": zoo_base, "broken": broken}


@pytest.fixture(scope="session")
def zoo_base() -> Path:
    if not (ZOO_BASE / "model.safetensors").is_file():
        pytest.skip(f"the fixture zoo's base is not at {ZOO_BASE}")
    return ZOO_BASE


class Ran:
    def __init__(self, rc: int, out: str, err: str) -> None:
        self.rc, self.out, self.err = rc, out, err

    @property
    def line(self) -> str:
        """The one error line (the test fails unless there is exactly one line on stderr)."""
        lines = [line for line in self.err.splitlines() if line.strip()]
        assert len(lines) == 1 and "Traceback" not in self.err, self.err
        return lines[0]


@pytest.fixture
def run_cli(capsys):
    """``cli.main(argv)`` in-process: its exit status, stdout and stderr."""
    def run(*argv: str) -> Ran:
        rc = cli.main([str(a) for a in argv])
        captured = capsys.readouterr()
        return Ran(rc, captured.out, captured.err)
    return run
