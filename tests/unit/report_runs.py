"""Test helper: a run folder written by the real writer from the real engine and gate functions, without a model.

Responses are written by hand (a healthy parent, a slightly worse GPTQ variant, a known-broken variant whose every
reply is the bare eos token, the seed's symptom); everything downstream is evalkit's own code: extraction, diagnosis
and scoring (`engine.score_generations`), the results documents (`TaskResult`), the gate's verdicts
(`gate.verdict`), and the run folder (`rundir.RunWriter`). Reports built from it are deterministic and fast.
"""

from __future__ import annotations

from pathlib import Path

from evalkit.run.engine import TaskResult, score_generations
from evalkit.gate import Evidence, verdict
from evalkit.run.generation import Generation, GenerationConfig, GenerationRun
from evalkit.gate.manifest import Thresholds
from evalkit.models.description import ModelSpec
from evalkit.report.rundir import RunWriter
from evalkit.data.tasks import load_task

EOS = "<|im_end|>"
N = 24
MODELS = {
    "parent": ModelSpec("parent", "/models/parent", None, method="none", weight_bits=16, format="plain"),
    "parent_gptq_w4g64": ModelSpec("parent_gptq_w4g64", "/models/gptq", "parent", method="gptq", weight_bits=4,
                                   format="compressed-tensors", recipe="gptq-w4g64"),
    "parent_eos_flood": ModelSpec("parent_eos_flood", "/models/flood", "parent", method="broken", weight_bits=4,
                                  format="compressed-tensors", note="eos logit flooded"),
}


def _responses(model: str, task) -> list[tuple[str, str]]:
    out = []
    for i, item in enumerate(task.items):
        gold = item.answers[0] if item.answers else ""
        if model == "parent_eos_flood":
            out.append((EOS, "eos"))
        elif model == "parent_gptq_w4g64" and i % 6 == 5:
            out.append(("The answer is " * 30, "length"))  # ran out of tokens: truncated
        elif i % 8 == 7:
            out.append((f"I think it is {gold}." + EOS, "eos"))  # no box
        else:
            out.append((f"So the answer is \\boxed{{{gold}}}." + EOS, "eos"))
    return out


def task_result(model: str, task_name: str) -> TaskResult:
    task = load_task(task_name, limit=N)
    gens = tuple(Generation(item.id, f"prompt {item.id}", raw, raw.replace(EOS, ""), 20, max(1, len(raw) // 4), fin)
                 for item, (raw, fin) in zip(task.items, _responses(model, task)))
    seconds = {"parent": 2.0, "parent_gptq_w4g64": 2.4, "parent_eos_flood": 0.3}[model]
    backend = {"backend": "transformers", "device": "cpu", "dtype": "bfloat16", "decoder": "eager"}
    records = score_generations(task, gens, [EOS])
    info = {"path": MODELS[model].path, "fingerprint": f"fp-{model}", "format": MODELS[model].format, "notes": []}
    return TaskResult(info, task, GenerationConfig(max_new_tokens=64), "chat_template", records,
                      GenerationRun(gens, seconds, backend), False, None, seconds)


def write_run(folder: Path, tasks: tuple[str, ...] = ("zoo_yes_no", "zoo_span")) -> Path:
    """A complete run folder: 3 models x `tasks`, drift for the variants, the gate's verdicts."""
    writer = RunWriter(folder, name="fixture-run", command=["evalkit", "eval", "(test fixture)"])
    for info in MODELS.values():
        writer.add_model(info)
    verdicts = []
    for task in tasks:
        results = {m: task_result(m, task) for m in MODELS}
        for name, result in results.items():
            writer.add_result(name, result)
            parent = MODELS[name].parent
            ev = Evidence(name, task, result, result.to_dict()["primary_metric"], parent_name=parent,
                          parent=results[parent] if parent else None)
            v = verdict(ev, Thresholds(max_mean_kl=None, min_top1_agreement=None, max_ppl_ratio=None))
            verdicts.append(v.to_dict())
            if parent:
                flood = name == "parent_eos_flood"
                writer.add_drift(name, task, parent, {
                    "n_sequences": N, "n_tokens": 400, "kl_mean": 18.5 if flood else 0.004,
                    "kl_median": 0.002, "kl_p90": 0.01, "kl_p99": 25.0 if flood else 0.03, "kl_max": 30.0,
                    "top1_agreement": 0.05 if flood else 0.97, "ppl_parent": 1.5, "ppl_variant": 9.0 if flood else 1.52,
                    "ppl_ratio": 6.0 if flood else 1.013, "embedding_cosine": 1.0, "layer_cosine": [0.99, 0.98],
                    "first_divergent_layer": None, "largest_drop_layer": None, "threshold": 0.95})
    writer.add_verdicts(verdicts)
    writer.close()
    return folder
