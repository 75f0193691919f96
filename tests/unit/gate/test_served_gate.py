"""The gate with backend "openai" on the ordinary test path (no vLLM needed): the zoo's parent and two variants made
here, each behind its own local OpenAI-compatible server that answers with the model's own greedy transformers
generation and prompt logprobs, gated and compared with the transformers backend on the same items; a server that
fails fails its model alone, named. Real vLLM servers: tests/vllm/test_vllm_gate.py.
"""

from __future__ import annotations

import math
import shutil
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from evalkit.gate.manifest import loads
from evalkit.gate.runner import Gate
from evalkit.gate.served import placement_table

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "run" / "backends"))
from fake_server import FakeServer  # noqa: E402

REPO = Path(__file__).resolve().parents[3]
PARENT = REPO / "fixtures" / "zoo" / "base"


def _edit(folder: Path, name: str, factor: float) -> None:
    from safetensors.torch import load_file, save_file

    tensors = load_file(folder / "model.safetensors")
    tensors[name] = tensors[name] * factor
    save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})


class TransformersServer:
    """What a vLLM server answers, computed with the checkpoint's transformers weights: greedy token ids up to the
    request's stop tokens, or a request's prompt logprobs (top-k by rank plus the actual next token)."""

    def __init__(self, folder: Path) -> None:
        from evalkit.models.loading import load_model

        self.model = load_model(folder).model
        self.lock = threading.Lock()

    def __call__(self, body: dict[str, Any]) -> dict[str, Any]:
        import torch

        ids = torch.tensor([body["prompt"]])
        with self.lock, torch.no_grad():
            if body.get("prompt_logprobs") is not None:
                logp = torch.log_softmax(self.model(ids).logits[0].float(), dim=-1)
                rows: list[Any] = [None]
                for j in range(1, ids.shape[1]):
                    order = torch.argsort(logp[j - 1], descending=True)[: body["prompt_logprobs"]].tolist()
                    row = {str(t): {"logprob": float(logp[j - 1, t]), "rank": r + 1} for r, t in enumerate(order)}
                    actual = int(ids[0, j])
                    row.setdefault(str(actual), {"logprob": float(logp[j - 1, actual]),
                                                 "rank": int((logp[j - 1] > logp[j - 1, actual]).sum()) + 1})
                    rows.append(row)
                return {"token_ids": [0], "text": "", "prompt_logprobs": rows}
            out = self.model.generate(ids, max_new_tokens=body["max_tokens"], do_sample=False,
                                      eos_token_id=body["stop_token_ids"], pad_token_id=body["stop_token_ids"][0])
        return {"token_ids": out[0, ids.shape[1]:].tolist(), "text": ""}


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("served")
    healthy, broken = root / "healthy", root / "broken"
    shutil.copytree(PARENT, healthy)
    _edit(healthy, "model.layers.2.mlp.down_proj.weight", 1.002)  # within bf16 noise of the parent
    shutil.copytree(PARENT, broken)
    _edit(broken, "model.layers.1.mlp.down_proj.weight", -8.0)
    return {"base": PARENT, "healthy": healthy, "broken": broken}


def _manifest(folders: dict[str, Path], cache: Path, urls: dict[str, str] | None) -> Any:
    text = (f'[gate]\ndevice = "cpu"\nmax_new_tokens = 48\ncache = "{cache}"\ndrift_k = 20\n'
            '[backends.openai]\nretries = 0\n[thresholds]\nmax_slowdown = "none"\n'
            '[tasks.zoo_multiple_choice]\nlimit = 6\n[tasks.zoo_yes_no]\nlimit = 6\n')
    for name, folder in folders.items():
        text += f'[models.{name}]\npath = "{folder}"\n'
        if name != "base":
            text += 'parent = "base"\n'
        if name == "broken":
            text += 'expect = "fail"\ndiagnosis = ["logit_drift", "backend_error"]\n'
            text += 'symptoms = ["wrong_answer", "invalid_answer", "runaway", "truncated", "trivial_baseline", ' \
                    '"repetition_loop", "no_box"]\n'
        if urls is not None:
            text += f'backend = "openai"\nbase_urls = ["{urls[name]}"]\n'
    return loads(text, source="served.toml")


@pytest.fixture(scope="module")
def gated(folders, tmp_path_factory):
    hf = Gate(_manifest(folders, tmp_path_factory.mktemp("hf-cache"), None)).report()
    with FakeServer(reply=TransformersServer(folders["base"])) as a, \
            FakeServer(reply=TransformersServer(folders["healthy"])) as b, \
            FakeServer(reply=TransformersServer(folders["broken"])) as c, \
            FakeServer(fail=[503] * 1000) as down:
        gate = Gate(_manifest(folders, tmp_path_factory.mktemp("served-cache"),
                              {"base": a.url, "healthy": b.url, "broken": c.url}))
        served = gate.report()
        m = _manifest(folders, tmp_path_factory.mktemp("down-cache"), {"base": a.url, "healthy": b.url,
                                                                       "broken": down.url})
        failing = Gate(m).report([c for c in m.cases() if c.model != "healthy"])  # its parent and itself
    return hf, gate, served, failing


def test_served_models_get_the_transformers_backends_verdicts(gated):
    hf, gate, served, _ = gated
    assert {(v.model, v.task): v.outcome for v in served.verdicts} == {(v.model, v.task): v.outcome
                                                                       for v in hf.verdicts}
    assert {v.outcome for v in served.verdicts if v.model != "broken"} <= {"PASS", "INCONCLUSIVE"}  # 6 items
    assert {v.outcome for v in served.verdicts if v.model == "broken"} == {"CAUGHT"}
    for v in served.verdicts:
        if v.model != "base":
            drift = v.get("drift")
            assert "top-20 prompt logprobs" in drift.numbers and "layer localization" in drift.numbers, drift
            assert math.isfinite(drift.values["kl_mean"])
    assert set(placement_table(gate.served.placement)) == {None}  # openai models name their own servers
    run = gate._results[("healthy", "zoo_yes_no")].run
    assert run.backend["backend"] == "openai"


def test_a_failing_server_fails_its_model_alone_naming_the_server(gated):
    _, _, served, failing = gated
    down = [v for v in failing.verdicts if v.model == "broken"]
    assert down and all(v.diagnosis == "backend_error" for v in down), [v.diagnoses for v in down]
    assert "503" in down[0].failed[0].numbers and "127.0.0.1" in down[0].failed[0].numbers
    rest = {(v.model, v.task): v.outcome for v in failing.verdicts if v.model != "broken"}
    assert rest == {(v.model, v.task): v.outcome for v in served.verdicts if v.model == "base"}
