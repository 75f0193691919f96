"""Issue 12: no broken model passes silently. Each case of the issue's "Why", as the gate sees it.

The pure cases build evidence from hand-written replies (as tests/unit/gate/test_gate.py does); the artifact and
drift cases run the real `Gate` over tiny saved model folders whose files were edited the way the issue describes.
"""

from __future__ import annotations

import json
import math
import shutil
import textwrap
from pathlib import Path

import pytest

import tiny_models as et
from evalkit.core.baselines import compare_with_baseline
from evalkit.core.stats import StatOptions, paired_drop
from evalkit.data.tasks import load_task
from evalkit.gate import Gate, check, verdict
from evalkit.gate.manifest import Thresholds, loads
from test_gate import EOS, _drift, _evidence, _right, _wrong


# --- NaN in drift is a named failure ------------------------------------------------------------------------------


def test_nan_drift_fails_and_names_where_it_first_appears() -> None:
    task = load_task("zoo_yes_no", limit=16)
    nan = math.nan
    ev = _evidence(task, lambda i, it: _right(it), lambda i, it: _right(it),
                   drift=_drift(kl_mean=nan, kl_p99=nan, top1_agreement=nan, ppl_ratio=nan, nonfinite="model.layers.2",
                                nonfinite_weights=("model.layers.2.mlp.down_proj.weight",), first_divergent_layer=2))
    d = check("drift", ev, Thresholds())
    assert (d.status, d.diagnosis) == ("fail", "non_finite")  # before: NaN > bound is False, so it passed
    assert "NaN/Inf first appears at model.layers.2" in d.message
    assert "model.layers.2.mlp.down_proj.weight" in d.message
    f = check("finite", ev, Thresholds())
    assert (f.status, f.diagnosis) == ("fail", "non_finite") and verdict(ev, Thresholds()).diagnosis == "non_finite"


def test_an_inf_bound_statistic_alone_also_fails() -> None:
    task = load_task("zoo_yes_no", limit=16)
    ev = _evidence(task, lambda i, it: _right(it), lambda i, it: _right(it), drift=_drift(ppl_ratio=math.inf))
    assert check("drift", ev, Thresholds()).diagnosis == "non_finite"


# --- a score at the trivial baseline fails whatever n --------------------------------------------------------------


def test_a_variant_at_the_trivial_baseline_fails_even_when_the_paired_test_cannot_see_it() -> None:
    """The seed's symptom at the CPU zoo's 48 items: a constant answer scores exactly the majority baseline, its
    parent clearly beats that baseline, and yet the paired test is not significant (the parent is wrong on many of
    the items the constant answer gets right)."""
    task = load_task("zoo_yes_no", limit=48)
    answers = [it.answers[0] for it in task.items]
    majority = max(set(answers), key=answers.count)
    wrong = {it.id for it in task.items if it.answers[0] == majority}
    wrong = set(sorted(wrong)[::2])  # half of the majority items

    def parent(i: int, it) -> str:  # right on every minority item, wrong on half of the majority items
        return _wrong(it) if it.id in wrong else _right(it)

    constant = lambda i, it: f"\\boxed{{{majority}}}{EOS}"  # noqa: E731
    ev = _evidence(task, constant, parent)
    mine = [float(r.score.correct) for r in ev.result.records]
    theirs = [float(r.score.correct) for r in ev.parent.records]
    assert sum(mine) / len(mine) == pytest.approx(answers.count(majority) / len(answers))  # at the baseline
    assert not paired_drop(theirs, mine, margin=0.01, options=StatOptions(alpha=0.01)).significant
    parent_rate = sum(theirs) / len(theirs)
    assert compare_with_baseline("accuracy", parent_rate, sum(mine) / len(mine), len(theirs)).beats  # clearly beats it
    c = check("baseline", ev, Thresholds())
    assert (c.status, c.diagnosis) == ("fail", "trivial_baseline")  # before: passed with "not significantly below"




# --- artifacts against the parent, and drift that never errors on a pair that loads --------------------------------


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    """A tiny parent (4 layers) and variants of it made by editing its files as the issue describes."""
    root = tmp_path_factory.mktemp("artifacts")
    parent = et.save_tiny(root / "parent", layers=4, seed=3)
    out = {"parent": parent}

    def variant(name: str) -> Path:
        out[name] = Path(shutil.copytree(parent, root / name))
        return out[name]

    template = variant("template")  # renders other prompts than the parent's
    config = json.loads((template / "tokenizer_config.json").read_text())
    chat = (template / "chat_template.jinja")
    if chat.exists():
        chat.write_text(chat.read_text().replace("<|im_start|>assistant\n", "<|im_start|>assistant\nSure.\n"))
    else:
        config["chat_template"] = config["chat_template"].replace("assistant\n", "assistant\nSure.\n")
        (template / "tokenizer_config.json").write_text(json.dumps(config))
    eos = variant("eos")  # generation_config lists other end tokens
    gen = json.loads((eos / "generation_config.json").read_text())
    gen["eos_token_id"] = [0]
    (eos / "generation_config.json").write_text(json.dumps(gen))
    vocab = variant("vocab")  # another tokenizer: two words swap ids
    tok = json.loads((vocab / "tokenizer.json").read_text())
    words = tok["model"]["vocab"]
    words["yes"], words["no"] = words["no"], words["yes"]
    (vocab / "tokenizer.json").write_text(json.dumps(tok))
    et.truncate_depth(variant("shallow"), 2)  # fewer decoder layers, consistently
    return out


@pytest.fixture(scope="module")
def gate(folders) -> Gate:
    models = "".join(f'[models.{name}]\npath = "{path}"\n' + ("" if name == "parent" else 'parent = "parent"\n')
                     for name, path in folders.items())
    m = loads(textwrap.dedent("""
        [gate]
        max_new_tokens = 8
        [tasks.zoo_yes_no]
        limit = 4
    """) + models, root=Path("/"))
    return Gate(m, device="cpu")


@pytest.mark.parametrize(("name", "diagnosis", "shown"), [
    ("template", "chat_template_mismatch", "chat template differs from character"),
    ("eos", "generation_config_mismatch", "generation_config eos_token_id: [0], the parent's [3]"),
    ("vocab", "tokenizer_mismatch", "vocabulary: id"),
    ("shallow", "architecture_mismatch", "config.json num_hidden_layers: 2, the parent's 4 (2 fields differ"),
])
def test_each_artifact_difference_is_a_named_root_cause(gate, name, diagnosis, shown) -> None:
    v = gate.verdict(name, "zoo_yes_no")
    a = v.get("artifacts")
    assert (a.status, a.diagnosis) == ("fail", diagnosis) and v.diagnosis == diagnosis, a.message
    assert shown in a.message
    assert "drift_error" not in v.diagnoses  # before: 'different vocabularies' and a zip() error from drift


def test_a_template_that_renders_other_prompts_names_the_first_differing_prompt(gate) -> None:
    a = gate.verdict("template", "zoo_yes_no").get("artifacts")
    assert "prompt_mismatch: 4 of 4 prompts differ; first item test-0-00000: text differs from character" in a.message
    assert "'assistant\\nSure.\\n<think>" in a.message


def test_drift_over_different_tokenizers_is_skipped_with_the_artifact_diagnosis(gate) -> None:
    d = gate.verdict("vocab", "zoo_yes_no").get("drift")
    assert d.status == "skip" and "tokenizer_mismatch" in d.numbers and "different vocabularies" in d.numbers


def test_drift_over_different_depths_compares_the_shared_layers(gate) -> None:
    d = gate.verdict("shallow", "zoo_yes_no").get("drift")
    assert d.status in ("pass", "fail") and d.diagnosis != "drift_error", d.message
    assert "model.layers.2-3 of the parent have no counterpart (2 vs the parent's 4 decoder layers" in d.numbers
    assert len(gate.evidence("shallow", "zoo_yes_no").drift.layer_cosine) == 2


def test_the_parent_has_nothing_to_compare_its_artifacts_with(gate) -> None:
    assert gate.verdict("parent", "zoo_yes_no").get("artifacts").status == "skip"

