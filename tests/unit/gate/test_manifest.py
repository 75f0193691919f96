"""evalkit.manifest: parsing, threshold layers, and one clear error per bad manifest."""

from __future__ import annotations

from pathlib import Path

import pytest

from evalkit.gate.manifest import ManifestError, Thresholds, load, loads

REPO = Path(__file__).resolve().parents[3]

MINIMAL = """
[tasks.zoo_math]
limit = 8
[models.p]
path = "p"
"""

LAYERED = """
[gate]
device = "cpu"
max_new_tokens = 64
gpu_batch_size = 256
[thresholds]
min_compliance = 0.8
max_mean_kl = "none"
[tasks.zoo_math]
limit = 16
gpu_limit = 500
[tasks.zoo_math.thresholds]
min_metric = 0.5
min_compliance = 0.85
[tasks.zoo_span]
source = "data/span.jsonl"
[models.parent]
path = "models/parent"
[models.variant]
path = "zoo:parent_gptq_w4g64"
parent = "parent"
[models.variant.thresholds]
min_compliance = 0.7
[models.grandchild]
path = "/abs/grandchild"
parent = "variant"
tasks = ["zoo_math"]
[models.broken]
path = "zoo:parent_broken_empty"
parent = "parent"
expect = "fail"
diagnosis = ["empty", "whitespace_only"]
"""


def test_threshold_layers_resolve_defaults_then_task_then_model() -> None:
    m = loads(LAYERED, root="/r")
    assert m.thresholds("parent", "zoo_span").min_compliance == 0.8  # [thresholds]
    assert m.thresholds("parent", "zoo_math").min_compliance == 0.85  # task over defaults
    assert m.thresholds("variant", "zoo_math").min_compliance == 0.7  # model over task
    assert m.thresholds("variant", "zoo_math").min_metric == 0.5
    assert m.thresholds("parent", "zoo_math").max_mean_kl is None  # "none" switches a check off
    assert m.thresholds("parent", "zoo_math").min_top1_agreement == Thresholds().min_top1_agreement


def test_cases_groups_paths_and_expectations() -> None:
    m = loads(LAYERED, root="/r")
    assert [c.id for c in m.cases()] == [
        "parent-zoo_math", "parent-zoo_span", "variant-zoo_math", "variant-zoo_span", "broken-zoo_math",
        "broken-zoo_span", "grandchild-zoo_math",
    ]
    assert {c.group for c in m.cases()} == {"parent"}
    assert m.models["parent"].path == Path("/r/models/parent")
    assert m.models["variant"].path == "zoo:parent_gptq_w4g64" and m.models["variant"].is_zoo
    assert m.models["grandchild"].path == Path("/abs/grandchild")
    assert m.tasks["zoo_span"].source == "/r/data/span.jsonl"
    assert m.models["broken"].expect == "fail" and m.models["broken"].diagnosis == ("empty", "whitespace_only")
    assert m.tasks["zoo_math"].limit_for("cpu") == 16 and m.tasks["zoo_math"].limit_for("cuda:0") == 500
    assert m.tasks["zoo_span"].limit_for("cuda") is None
    assert m.gate.device == "cpu" and m.gate.max_new_tokens == 64
    assert m.gate.batch_size_for("cpu") == 32 and m.gate.batch_size_for("cuda:0") == 256


def test_thresholds_are_frozen() -> None:
    with pytest.raises(AttributeError):
        Thresholds().alpha = 0.5  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[tasks.zoo_math]\n", "no \\[models"),
        ("[models.p]\npath='p'\n", "no \\[tasks"),
        (MINIMAL + "[extra]\n", "unknown key\\(s\\) 'extra'"),
        (MINIMAL.replace("limit = 8", "limt = 8"),
         "\\[tasks.zoo_math\\]: unknown key\\(s\\) 'limt'; allowed: gpu_limit"),
        (MINIMAL.replace("limit = 8", "limit = 0"), "limit must be >= 1"),
        (MINIMAL.replace("limit = 8", "limit = '8'"), "limit must be a int"),
        (MINIMAL.replace('path = "p"', ""), "needs a path"),
        (MINIMAL + "[models.v]\npath='v'\nparent='nope'\n", "parent 'nope' is not a model"),
        (MINIMAL + "[models.v]\npath='v'\ntasks=['zoo_yes_no']\n", "not in \\[tasks\\]"),
        # a variant without a task list runs every task, its parent only one: nothing to compare the rest with
        (MINIMAL + "[tasks.zoo_span]\n[models.q]\npath='q'\ntasks=['zoo_math']\n[models.v]\npath='v'\nparent='q'\n",
         "tasks \\['zoo_span'\\] are not evaluated for its parent 'q'"),
        (MINIMAL + "[models.v]\npath='v'\nexpect='fail'\n", "needs the expected diagnosis"),
        (MINIMAL + "[models.v]\npath='v'\ndiagnosis='empty'\n", "needs expect = \"fail\""),
        (MINIMAL + "[models.v]\npath='v'\nexpect='maybe'\n", "expect must be"),
        (MINIMAL + "[thresholds]\nmin_compliance = 1.5\n", "min_compliance must be in \\[0, 1\\]"),
        (MINIMAL + "[thresholds]\nalpha = 0.9\n", "alpha must be in"),
        (MINIMAL + "[thresholds]\nmax_slowdown = 0.5\n", "max_slowdown must be >= 1"),
        (MINIMAL + "[thresholds]\nalpha = 'none'\n", "alpha cannot be switched off"),
        (MINIMAL + "[thresholds]\nrequire_power = 1\n", "require_power must be a bool"),
        (MINIMAL + "[thresholds]\nmin_compliance = true\n", "min_compliance must be a number"),
        (MINIMAL + "[gate]\nbatch_size = 0\n", "\\[gate\\]: max_new_tokens, batch_size and gpu_batch_size must be >= 1"),
        (MINIMAL + "[gate]\ngpu_batch_size = 0\n", "gpu_batch_size must be >= 1"),
        ("[tasks.zoo_math\n", "not valid TOML"),
    ],
)
def test_bad_manifests_get_one_clear_error(text: str, message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        loads(text, source="m.toml")


def test_parent_cycles_are_refused() -> None:
    text = MINIMAL.replace('path = "p"', 'path = "p"\nparent = "q"') + "[models.q]\npath='q'\nparent='p'\n"
    with pytest.raises(ManifestError, match="loops back"):
        loads(text)


def test_missing_file_names_the_flag() -> None:
    with pytest.raises(ManifestError, match="--zoo"):
        load("/nonexistent/zoo.toml")


def test_seed_example_lists_the_reports_models() -> None:
    m = load(REPO / "docs" / "examples" / "seed_models.toml")
    assert len(m.models) == 13  # the twelve of the 3 x 4 grid, plus the QLoRA control
    parents = [n for n, s in m.models.items() if s.parent is None]
    assert parents == ["base", "openmath_SFT_NoPeft_NoQuant", "openmath_SFT_LoRa64_NoQuant"]
    for name, spec in m.models.items():
        if name not in parents and "QLORA" not in name:
            assert name.startswith(spec.parent), f"{name} should be compared with the model it was made from"
    assert m.models["openmath_SFT_LoRa64_QLORA_w4_headbf16"].parent == "openmath_SFT_LoRa64_NoQuant"
    assert set(m.tasks) == {"arc_challenge", "openmath", "boolq", "squad_v2"}
    assert all(t.gpu_limit and t.gpu_limit >= 1000 for t in m.tasks.values())
    assert m.thresholds("base_gptq_w4g64", "openmath").max_slowdown == 6.0


def test_seed_example_asks_on_cuda_for_the_items_its_plan_needs() -> None:
    """Its comment's promise: the GPU limits reach the counts the plan asks for (a 5-point drop at 90% power at a
    10% disagreement, and each floor), so its verdicts can settle; require_power stays off (ARC-Challenge's 1,172
    test items are fewer than require_power would need)."""
    from evalkit.gate.decisions import plan_lines

    m = load(REPO / "docs" / "examples" / "seed_models.toml")
    assert plan_lines(m, "cuda") == []
    assert plan_lines(m, "cpu")  # the 100-item CPU smoke run is far below: the plan says so
    assert not any(m.thresholds(c.model, c.task).require_power for c in m.cases())
    strict = loads((REPO / "docs" / "examples" / "seed_models.toml").read_text().replace(
        "[thresholds]", "[thresholds]\nrequire_power = true"), root=REPO / "docs" / "examples")
    assert any(line.startswith("arc_challenge: 1,172 items asked") for line in plan_lines(strict, "cuda"))


def test_fixture_zoo_manifest_gates_every_zoo_model_and_expects_the_broken_ones_to_fail() -> None:
    from evalkit import zoo

    m = load(REPO / "fixtures" / "zoo.toml")
    assert all(spec.is_zoo for spec in m.models.values())
    gated = {name for name, v in zoo.VARIANTS.items() if v.kind != "mutation"}  # fixtures/mutations.toml has those
    assert {str(spec.path).removeprefix("zoo:") for spec in m.models.values()} == gated
    for name, spec in m.models.items():
        v = zoo.variant(str(spec.path).removeprefix("zoo:"))
        assert (spec.expect == "fail") == (v.kind == "broken"), f"{name}: expect={spec.expect}, zoo kind={v.kind}"
        assert (spec.parent or name) == v.parent, f"{name} must be compared with the zoo's parent {v.parent}"
        if spec.expect == "fail":
            assert spec.diagnosis, name
    assert set(m.tasks) == {"zoo_math", "zoo_multiple_choice", "zoo_yes_no", "zoo_span"}
