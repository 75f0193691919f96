"""The description of a model, from manifest to report: `ModelSpec`, and what its folder's small files say.

A model is named once (a manifest table, a command-line MODEL, a zoo variant) as a `ModelSpec`: its name, its folder
or ``zoo:<name>``, the parent it is compared with, and how the gate should treat it. `describe` adds what the folder
says, read from its small files only (config.json, provenance.json, adapter_config.json; no weights): the
quantization method and bit widths a report groups by, the checkpoint format and the recipe. The run folder keeps
the report-facing part of it (`ModelSpec.run_record`), and a report reads it back (`ModelSpec.from_run_record`).
The loaded model, with its live weights, is `evalkit.models.loading.LoadedModel`.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path
from typing import Any, Literal

from evalkit.errors import ModelLoadError
from evalkit.models.files import try_read_json
from evalkit.models.loading import detect_format, format_of_quant_method, resolve_adapter_base
from evalkit.models.recipes import RECIPES

__all__ = ["METHOD_LABELS", "ModelSpec", "ZOO_SCHEME", "describe", "describe_model"]

ZOO_SCHEME = "zoo:"
"""A model path ``zoo:<name>`` names a fixture-zoo variant that `evalkit.zoo` builds into its cache on first use."""

METHOD_LABELS = {
    "none": "No quantization",
    "qlora": "QLoRA (training-time)",
    "gptq": "GPTQ (post-training)",
    "awq": "AWQ (post-training)",
    "smoothquant": "SmoothQuant (post-training)",
    "rtn": "RTN (post-training)",
    "other": "Other quantization",
    "broken": "Known-broken (gate self-test)",
}
"""Methods in report order; the seed report's rows (none, QLoRA, GPTQ, AWQ, SmoothQuant) come first."""



RUN_RECORD_FIELDS = ("name", "path", "parent", "method", "weight_bits", "activation_bits", "format", "recipe", "note")
"""The report-facing fields a run folder's run.json keeps per model, in this order."""


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """One model: how it is named and gated (manifest, command line, zoo), and what its folder says (`describe`)."""

    name: str
    path: Path | str  # a folder, or "zoo:<name>" (built on demand by evalkit.zoo)
    parent: str | None = None  # name of the model it must recover (None: a parent/reference itself)
    _: KW_ONLY
    base: Path | None = None  # base folder of a LoRA adapter (default: from the adapter's config)
    dtype: str | None = None  # overrides [gate].dtype for this model
    tasks: tuple[str, ...] = ()  # subset of the manifest's tasks (empty: all)
    expect: Literal["pass", "fail"] = "pass"  # "fail": a known-broken model the gate must catch
    diagnosis: tuple[str, ...] = ()  # with expect="fail": the root causes that count as caught for the right reason
    symptoms: tuple[str, ...] = ()  # with expect="fail": further diagnoses its checks may fail with (not a catch)
    note: str = ""  # free text, shown in reports (e.g. how the broken variant was made)
    thresholds: Mapping[str, Any] = field(default_factory=dict)
    # issue 16: the engine that gates it (None: the gate's) and, for backend "openai", the servers already running it
    backend: str | None = None
    base_urls: tuple[str, ...] = ()
    served_name: str | None = None  # the model's name on those servers (None: the one model they serve)
    # what the folder says (`describe`): the report-facing description
    method: str = "none"  # a key of METHOD_LABELS
    weight_bits: int | None = None  # 16 for bf16/fp16 weights, 4 for GPTQ w4 / nf4, ...
    activation_bits: int | None = None  # None: activations stay in the model dtype
    format: str = "plain"  # evalkit.models.loading format, or "unknown" when the folder was not readable
    recipe: str | None = None  # evalkit.models.recipes recipe, when the folder says it was made by one

    @property
    def is_zoo(self) -> bool:
        return isinstance(self.path, str) and self.path.startswith(ZOO_SCHEME)

    @property
    def zoo_name(self) -> str | None:
        """The evalkit.zoo variant name of a ``zoo:<name>`` path (None for a folder)."""
        return str(self.path)[len(ZOO_SCHEME):] if self.is_zoo else None

    @property
    def method_label(self) -> str:
        return METHOD_LABELS.get(self.method, self.method)

    @property
    def bits_label(self) -> str:
        """"16", "4", "8/8" (weights/activations) or "?"."""
        if self.weight_bits is None:
            return "?"
        return f"{self.weight_bits}/{self.activation_bits}" if self.activation_bits else str(self.weight_bits)

    def run_record(self) -> dict[str, Any]:
        """The report-facing description, as a run folder's run.json keeps it (`RUN_RECORD_FIELDS`)."""
        record = {name: getattr(self, name) for name in RUN_RECORD_FIELDS}
        record["path"] = str(self.path)
        return record

    @classmethod
    def from_run_record(cls, data: Mapping[str, Any]) -> ModelSpec:
        """Read `run_record`'s dict back (fields a newer evalkit added are ignored)."""
        fields = {k: v for k, v in data.items() if k in RUN_RECORD_FIELDS}
        return cls(fields.pop("name"), fields.pop("path", ""), fields.pop("parent", None), **fields)


_DTYPE_BITS = {"bfloat16": 16, "float16": 16, "float32": 32, "float64": 64}


def describe_model(path: str | os.PathLike[str], *, name: str | None = None, parent: str | None = None) -> ModelSpec:
    """Method, weight bits and format of a model folder, from its small files only.

    Sources, first that applies: the zoo's record in provenance.json (known-broken variants), the evalkit recipe in
    provenance.json, then the format `evalkit.models.loading.detect_format` finds (nf4 -> QLoRA, compressed-tensors bits from
    config.json), else the dtype in config.json. A folder that cannot be read is described as format "unknown".

    >>> import tempfile, json, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "config.json").write_text(json.dumps({"torch_dtype": "bfloat16"}))
    >>> info = describe_model(folder, name="m")
    >>> info.method, info.bits_label
    ('none', '16')
    """
    root = Path(path)
    name = name or root.name
    prov = try_read_json(root / "provenance.json") or {}
    config = try_read_json(root / "config.json") or {}
    zoo: dict[str, Any] = prov["zoo"] if isinstance(prov.get("zoo"), dict) else {}
    recipe = prov.get("evalkit_recipe") if isinstance(prov.get("evalkit_recipe"), str) else None
    fmt = _format(root)
    kind = fmt if fmt != "unknown" else _config_format(config)  # an unloadable folder: what its config says
    try:
        w_bits, a_bits = _bits(root, kind, config, recipe)
    except (TypeError, ValueError, AttributeError):  # a malformed quantization_config: bits unknown, never a crash
        w_bits, a_bits = None, None
    method = _method(kind, recipe, config)
    note = ""
    if zoo.get("kind") == "broken":
        method = "broken"
        note = "; ".join(str(x) for x in (zoo.get("breakage_detail") or recipe, zoo.get("expected_failure")) if x)
    elif zoo.get("kind") == "qlora":
        method = "qlora"
    return ModelSpec(name, str(root), parent, method=method, weight_bits=w_bits, activation_bits=a_bits, format=fmt,
                     recipe=recipe, note=note)


def describe(spec: ModelSpec, folder: str | os.PathLike[str]) -> ModelSpec:
    """`spec` with what its folder says (method, bits, format, recipe); its own note comes first.

    >>> import tempfile, json, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "config.json").write_text(json.dumps({"torch_dtype": "float32"}))
    >>> d = describe(ModelSpec("m", "zoo:m", "p", note="made by hand"), folder)
    >>> d.path == str(folder), d.parent, d.bits_label, d.note
    (True, 'p', '32', 'made by hand')
    """
    found = describe_model(folder, name=spec.name, parent=spec.parent)
    return dataclasses.replace(spec, path=found.path, method=found.method, weight_bits=found.weight_bits,
                               activation_bits=found.activation_bits, format=found.format, recipe=found.recipe,
                               note="; ".join(x for x in (spec.note, found.note) if x))


def _format(root: Path) -> str:
    try:
        return detect_format(root)
    except ModelLoadError:
        return "unknown"


def _config_format(config: Mapping[str, Any]) -> str:
    qc = config.get("quantization_config")
    method = qc.get("quant_method") if isinstance(qc, dict) else None
    return format_of_quant_method(method) or "plain"


def _method(fmt: str, recipe: str | None, config: Mapping[str, Any]) -> str:
    if recipe:
        head = recipe.split("-")[0]
        return head if head in METHOD_LABELS else "other"
    if fmt == "bnb-nf4":
        return "qlora"
    if fmt in ("gptq-legacy", "awq-legacy"):
        return fmt.split("-")[0]
    if fmt == "compressed-tensors":
        qc = config.get("quantization_config") or {}
        text = json.dumps(qc).lower()
        for key in ("smoothquant", "awq", "gptq"):
            if key in text:
                return key
        return "other"
    return "none"


def _bits(root: Path, fmt: str, config: Mapping[str, Any], recipe: str | None) -> tuple[int | None, int | None]:
    if recipe and recipe in RECIPES:
        spec = RECIPES.get(recipe)
        return spec.weight_bits, spec.activation_bits
    if fmt == "bnb-nf4":
        return 4, None
    qc = config.get("quantization_config") or {}
    if fmt == "compressed-tensors":
        for group in (qc.get("config_groups") or {}).values():
            weights, acts = (group or {}).get("weights") or {}, (group or {}).get("input_activations") or {}
            if weights.get("num_bits"):
                return int(weights["num_bits"]), (int(acts["num_bits"]) if acts.get("num_bits") else None)
    if fmt in ("gptq-legacy", "awq-legacy"):
        side = try_read_json(root / "quantize_config.json") or {}
        bits = qc.get("bits") or qc.get("w_bit") or side.get("bits")
        return (int(bits) if bits else None), None
    if fmt in ("peft-lora",):
        try:
            config = try_read_json(resolve_adapter_base(root) / "config.json") or {}
        except ModelLoadError:  # the base is not a local folder: its dtype is unknown
            config = {}
    dtype = config.get("dtype") or config.get("torch_dtype")
    return _DTYPE_BITS.get(str(dtype)), None
