"""One loader for every checkpoint format a team has on disk, detected from the folder itself.

The seed's team could not tell a broken model from a broken evaluator partly because each format went through a
different ad-hoc loader. Here every model (plain, compressed-tensors GPTQ/AWQ/W8A8, peft LoRA, bitsandbytes nf4,
legacy GPTQ/AWQ) comes back as one `LoadedModel`, with notes saying what runs at eval time (e.g. whether W8A8's
activation quantization is active), and every malformed folder fails with one error naming the thing and the fix.

Security defaults: safetensors only, `trust_remote_code=False`, local files only (no hub access).

Each format is one `Loader` in `LOADERS`: the ``quant_method`` of config.json that marks it and the function that
loads it; adding a format is one registration here (docs/ARCHITECTURE.md).
"""

from __future__ import annotations

import json
import os
import struct
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalkit.core.registry import Registry
from evalkit.errors import ModelLoadError
from evalkit.models.dtypes import DTYPES, check_dtype
from evalkit.models.dtypes import torch_dtype as _dtype
from evalkit.models.files import JSONFileError, read_json_object
from evalkit.models.fingerprint import combine, fingerprint
from evalkit.models.legacy import LEGACY_SIDE_FILES, legacy_config
from evalkit.models.load_report import check_load_report
from evalkit.models.oneline import first_line as _first_line
from evalkit.models.oneline import held_logs as _held_logs

__all__ = ["DTYPES", "FORMATS", "LOADERS", "LoadedModel", "Loader", "ModelLoadError", "check_dtype", "detect_format",
           "format_of_quant_method", "load_model", "resolve_adapter_base"]

_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
ADAPTER_WEIGHTS = "adapter_model.safetensors"  # the one file name an adapter's weights are read from
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "tokenizer_config.json")


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """A model ready for evaluation, with what it is and how it was loaded.

    `fingerprint` identifies everything that decides behaviour: for an adapter it combines the adapter's folder,
    its base's folder and the base's load-time quantization.
    """

    model: Any  # a transformers PreTrainedModel (or peft PeftModel), in eval mode
    tokenizer: Any  # a transformers tokenizer
    path: Path  # the folder that was loaded (for an adapter: the adapter folder)
    format: str  # one of FORMATS
    fingerprint: str
    notes: tuple[str, ...] = ()  # e.g. "activation quantization active (W8A8 dynamic per-token)"
    base: Path | None = None  # the base folder of an adapter, else None

    @property
    def has_chat_template(self) -> bool:
        """False when the folder lost its chat template; prompts then fall back to `evalkit.core.prompts.plain_prompt`."""
        return bool(getattr(self.tokenizer, "chat_template", None))


# --------------------------------------------------------------------------------------------------- detection


def detect_format(path: str | os.PathLike[str]) -> str:
    """The folder's format (one of FORMATS), after checking it is loadable; raises ModelLoadError otherwise.

    Detection reads only small files: `adapter_config.json` marks a peft adapter (nf4 base -> "bnb-nf4"),
    else `config.json`'s `quantization_config.quant_method` (absent -> "plain"); weight files are checked for
    presence, safetensors format and truncation (header vs size) without reading tensors.

    >>> import tempfile
    >>> detect_format(tempfile.mkdtemp())  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    evalkit.errors.ModelLoadError: ...: no config.json (a transformers model folder needs one)...
    """
    root = _folder(path)
    adapter = _read_json(root / "adapter_config.json")
    if adapter is not None:
        peft_type = adapter.get("peft_type")
        if peft_type != "LORA":
            raise ModelLoadError(f"{root}: adapter_config.json has peft_type {peft_type!r}; evalkit loads LoRA adapters"
                                 " only (peft_type 'LORA'). Merge the adapter into its base and load the merged folder.")
        _check_weights(root, adapter=True)
        return "bnb-nf4" if _adapter_base_quantization(root) else "peft-lora"
    config = _read_json(root / "config.json")
    if config is None:
        extra = " It holds adapter weights: add the adapter_config.json saved with them." if any(
            root.glob("adapter_model.*")) else ""
        raise ModelLoadError(f"{root}: no config.json (a transformers model folder needs one).{extra} Re-save the model"
                             " with `save_pretrained`, or copy config.json from the model it came from.")
    fmt = _format_from_config(root, config)
    _check_weights(root, adapter=False)
    return fmt


def _format_from_config(root: Path, config: dict) -> str:
    qc = config.get("quantization_config")
    if qc is None:
        if (root / LEGACY_SIDE_FILES["gptq-legacy"]).exists():  # AutoGPTQ's legacy side file
            return "gptq-legacy"
        if (root / LEGACY_SIDE_FILES["awq-legacy"]).exists():  # AutoAWQ's
            return "awq-legacy"
        return "plain"
    method = qc.get("quant_method") if isinstance(qc, dict) else None
    fmt = format_of_quant_method(method)
    if fmt is None:
        known = sorted(str(loader.quant_method) for loader in LOADERS.values() if loader.quant_method)
        raise ModelLoadError(f"{root}: config.json has quantization_config.quant_method {method!r}, which evalkit does"
                             f" not load; supported: {known}. Re-quantize with an evalkit recipe"
                             " (`evalkit.models.quantization.quantize`) or dequantize to a plain folder.")
    if method == "bitsandbytes" and not qc.get("load_in_4bit"):
        raise ModelLoadError(f"{root}: bitsandbytes checkpoint is not 4-bit (load_in_8bit); evalkit loads nf4 only."
                             " Save the model unquantized, or in nf4 (load_in_4bit=True, bnb_4bit_quant_type='nf4').")
    return fmt


def _check_weights(root: Path, *, adapter: bool) -> None:
    """Weights present, in safetensors, complete. Pickles are refused: loading one can run arbitrary code."""
    stem = "adapter_model" if adapter else "model"
    if adapter:
        _check_adapter_file(root)
    safetensors = [root / ADAPTER_WEIGHTS] if adapter else sorted(root.glob("*.safetensors"))
    index = root / f"{stem}.safetensors.index.json"
    if index.exists():
        shards = sorted(set((_read_json(index) or {}).get("weight_map", {}).values()))
        missing = [s for s in shards if not (root / s).exists()]
        if missing:
            raise ModelLoadError(f"{root}: {index.name} lists shard(s) {missing} that are not in the folder; copy the"
                                 " missing shards (or re-save the model with `save_pretrained`).")
    if not safetensors:
        pickles = sorted(p.name for p in root.iterdir() if p.suffix in _PICKLE_SUFFIXES)
        if pickles:
            raise ModelLoadError(
                f"{root}: weights only as pickle ({', '.join(pickles)}); evalkit loads safetensors only, because"
                " unpickling can run arbitrary code. Convert once in a trusted environment: load the model and"
                " `save_pretrained(folder, safe_serialization=True)`.")
        raise ModelLoadError(f"{root}: no weights ({stem}.safetensors or {stem}.safetensors.index.json) in the folder;"
                             " copy the weight files next to the config.")
    for file in safetensors:
        _check_safetensors(file)


def _check_adapter_file(root: Path) -> None:
    """An adapter's weights are `adapter_model.safetensors` and nothing else: peft reads that name only, and falls
    back to unpickling `adapter_model.bin` when it is absent, whatever other safetensors files lie beside it."""
    if (root / ADAPTER_WEIGHTS).is_file():
        return
    others = sorted(p.name for p in root.iterdir() if p.name.startswith("adapter_model") or p.suffix == ".safetensors")
    pickles = [name for name in others if Path(name).suffix in _PICKLE_SUFFIXES]
    if pickles and len(pickles) == len(others):
        raise ModelLoadError(f"{root}: adapter weights only as pickle ({', '.join(pickles)}); evalkit loads"
                             f" {ADAPTER_WEIGHTS} only, because unpickling can run arbitrary code. Convert once in a"
                             " trusted environment: `PeftModel.save_pretrained(folder, safe_serialization=True)`.")
    found = f" (found {', '.join(others)}: rename the adapter's safetensors file to {ADAPTER_WEIGHTS})" if others else ""
    raise ModelLoadError(f"{root}: no {ADAPTER_WEIGHTS} in the adapter folder{found}; peft reads that file name only"
                         " (and would unpickle adapter_model.bin instead).")


def _check_safetensors(file: Path) -> None:
    """Compare the header's declared tensor extent with the file size: catches truncated copies without loading."""
    size = file.stat().st_size
    fix = "re-copy or re-download the file (its size must match the original), or re-save the model."
    try:
        with open(file, "rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            if n > size - 8:
                raise ValueError("header longer than the file")
            header = json.loads(fh.read(n))
    except (struct.error, ValueError, UnicodeDecodeError) as err:
        raise ModelLoadError(f"{file}: not a valid safetensors file ({err}); {fix}") from None
    end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
    if 8 + n + end > size:
        raise ModelLoadError(f"{file}: truncated: its header declares {8 + n + end} bytes of data, the file has {size};"
                             f" {fix}")


# ----------------------------------------------------------------------------------------------------- loading


def load_model(path: str | os.PathLike[str], *, device: str = "cpu", dtype: Any = None,
               base: str | os.PathLike[str] | None = None) -> LoadedModel:
    """Load any supported model folder for evaluation (eval mode, on `device`).

    dtype: None keeps the checkpoint's own dtype ("auto"); a torch dtype or its name ("float32") overrides it.
    base: for a LoRA adapter, the base model folder (default: the adapter's `base_model_name_or_path`, resolved
    relative to the adapter folder when it is a relative path).

    >>> load_model("/nonexistent")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    evalkit.errors.ModelLoadError: /nonexistent: model folder does not exist...
    """
    root = _folder(path)
    fmt = detect_format(root)
    torch_dtype = _dtype(dtype)
    if fmt in ("peft-lora",) or (fmt == "bnb-nf4" and (root / "adapter_config.json").exists()):
        return _load_adapter(root, fmt, device=device, dtype=torch_dtype, base=base)
    load = LOADERS.get(fmt).load
    assert load is not None  # only adapter formats have none, and they were handled above
    model, notes = load(root, device=device, dtype=torch_dtype)
    tokenizer = _tokenizer(root)
    notes = notes + _generation_notes(model) + _template_notes(tokenizer)
    return LoadedModel(model=model.eval(), tokenizer=tokenizer, path=root, format=fmt, fingerprint=fingerprint(root),
                       notes=notes)


def _load_plain(root: Path, *, device: str, dtype: Any) -> tuple[Any, tuple[str, ...]]:
    model = _from_pretrained(root, device=device, dtype=dtype)
    return model, (f"weights {_param_dtype(model)}",)


def _from_pretrained(root: Path, *, device: str, dtype: Any, **kwargs: Any) -> Any:
    from transformers import AutoModelForCausalLM

    with _held_logs() as held:
        try:
            # ignore_mismatched_sizes: transformers then reports a size mismatch instead of raising without naming
            # the tensor; `check_load_report` turns every entry of the report into one error naming the keys.
            model, report = AutoModelForCausalLM.from_pretrained(
                root, dtype=dtype, device_map={"": device}, use_safetensors=True, trust_remote_code=False,
                local_files_only=True, output_loading_info=True, ignore_mismatched_sizes=True, **kwargs)
        except ValueError as err:
            held.replay = False
            if "trust_remote_code" in str(err) or "auto_map" in str(err):
                raise ModelLoadError(f"{root}: the model needs custom code (trust_remote_code); evalkit never runs "
                                     "code from a model folder. Use a transformers-native architecture.") from err
            raise ModelLoadError(f"{root}: transformers could not load the model: {_first_line(err)}") from err
        except (OSError, KeyError, RuntimeError) as err:
            raise ModelLoadError(f"{root}: transformers could not load the model: {held.explain(err)}") from err
        if any(report.get(k) for k in ("missing_keys", "unexpected_keys", "mismatched_keys")):
            held.replay = False  # the error below says it in one line; transformers' table is not shown
        check_load_report(root, report)
    return model


def _tokenizer(root: Path) -> Any:
    from transformers import AutoTokenizer

    if not any((root / name).exists() for name in _TOKENIZER_FILES):
        raise ModelLoadError(f"{root}: no tokenizer (tokenizer.json / tokenizer_config.json); save the tokenizer"
                             " next to the model (`tokenizer.save_pretrained(folder)`).")
    try:
        return AutoTokenizer.from_pretrained(root, trust_remote_code=False, local_files_only=True)
    except (OSError, ValueError) as err:
        raise ModelLoadError(f"{root}: the tokenizer could not be loaded: {err}") from err


def _generation_notes(model: Any) -> tuple[str, ...]:
    config = getattr(model, "generation_config", None)
    if config is None or getattr(config, "eos_token_id", None) is None:
        return ("generation config has no eos_token_id: generation stops only at max_new_tokens",)
    return ()


def _template_notes(tokenizer: Any) -> tuple[str, ...]:
    if not getattr(tokenizer, "chat_template", None):
        return ("no chat template: prompts fall back to evalkit.prompts.plain_prompt",)  # the note text results documents keep
    return ()


# ------------------------------------------------------------------------------------------------- formats


def _load_compressed(root: Path, *, device: str, dtype: Any) -> tuple[Any, tuple[str, ...]]:
    _require("compressed_tensors", "quant")
    from transformers import CompressedTensorsConfig

    # dequantize=True: weights are decompressed once at load (exactly the quantized values), while the modules keep
    # their quantization scheme, so input activations are still fake-quantized on every forward (see notes).
    with warnings.catch_warnings():  # "quantization_config passed and in config.json": intended, only loading options
        warnings.filterwarnings("ignore", message=".*already has a `quantization_config` attribute.*")
        model = _from_pretrained(root, device=device, dtype=dtype,
                                 quantization_config=CompressedTensorsConfig(dequantize=True))
    return model, _compressed_notes(model)


def _compressed_notes(model: Any) -> tuple[str, ...]:
    """Describe each distinct scheme in the loaded modules, as it will run: weights, and activations if active."""
    seen: dict[str, int] = {}
    for module in model.modules():
        scheme = getattr(module, "quantization_scheme", None)
        if scheme is None:
            continue
        w, a = scheme.weights, scheme.input_activations
        desc = "weights " + (_describe_args(w) if w else "unquantized")
        if a is not None:
            active = getattr(module, "quantization_enabled", True) and getattr(module, "quantization_status", None)
            desc += f"; activation quantization {'active' if active else 'INACTIVE'} ({_describe_args(a)})"
        seen[desc] = seen.get(desc, 0) + 1
    return tuple(f"{desc} [{count} modules]" for desc, count in seen.items()) or ("no quantized modules",)


def _describe_args(args: Any) -> str:
    kind = f"{args.type}{args.num_bits}" if args.type != "int" else f"int{args.num_bits}"
    detail = str(args.strategy.value if hasattr(args.strategy, "value") else args.strategy)
    if args.group_size:
        detail += f" {args.group_size}"
    dynamic = args.dynamic
    if dynamic is True:
        detail += " dynamic"
    elif dynamic not in (False, None):
        detail += f" {dynamic}"
    return f"{kind} {'sym' if args.symmetric else 'asym'} {detail}"


def _load_bnb(root: Path, *, device: str, dtype: Any) -> tuple[Any, tuple[str, ...]]:
    _require("bitsandbytes", "peft")
    model = _from_pretrained(root, device=device, dtype=dtype)
    return model, (_bnb_note(model.config.quantization_config),)


def _bnb_note(qc: Any) -> str:
    qc = qc.to_dict() if hasattr(qc, "to_dict") else dict(qc)
    skip = qc.get("llm_int8_skip_modules") or []
    return (f"bitsandbytes 4-bit {qc.get('bnb_4bit_quant_type', 'fp4')}, compute {qc.get('bnb_4bit_compute_dtype')}"
            + (f", unquantized: {', '.join(skip)}" if skip else ""))


def _load_gptq_legacy(root: Path, *, device: str, dtype: Any) -> tuple[Any, tuple[str, ...]]:
    for module in ("gptqmodel", "optimum"):
        if not _installed(module):
            raise ModelLoadError(f"{root}: a legacy GPTQ checkpoint needs the optional package {module!r} (its"
                                 " packed weights mean nothing to plain transformers): pip install"
                                 " 'evalkit[legacy-gptq]' (gptqmodel with --no-deps, docs/quantization.md)")
    model = _from_pretrained(root, device=device, dtype=dtype, **legacy_config(root, "gptq-legacy"))
    return model, ("legacy GPTQ checkpoint, kernels from gptqmodel",)


def _load_awq_legacy(root: Path, *, device: str, dtype: Any) -> tuple[Any, tuple[str, ...]]:
    # transformers 5 runs AWQ checkpoints through gptqmodel's kernels; autoawq is the fallback for old stacks.
    if _installed("gptqmodel"):
        model = _from_pretrained(root, device=device, dtype=dtype, **legacy_config(root, "awq-legacy"))
        return model, ("legacy AWQ checkpoint, kernels from gptqmodel",)
    if _installed("awq"):
        from awq import AutoAWQForCausalLM

        wrapper = AutoAWQForCausalLM.from_quantized(str(root), device_map={"": device}, safetensors=True,
                                                    trust_remote_code=False, fuse_layers=False)
        return wrapper.model, ("legacy AWQ checkpoint, kernels from autoawq",)
    raise ModelLoadError(f"{root}: a legacy AWQ checkpoint needs gptqmodel or autoawq: "
                         "pip install 'evalkit[legacy-gptq]' (gptqmodel) or 'evalkit[legacy-awq]' (autoawq)")


LoadFunction = Callable[..., tuple[Any, tuple[str, ...]]]  # (root, *, device, dtype) -> (model, notes)


@dataclass(frozen=True, slots=True)
class Loader:
    """One checkpoint format: what marks it in config.json, and how it loads."""

    format: str
    load: LoadFunction | None  # None: an adapter format, loaded onto its base (`_load_adapter`)
    quant_method: str | None = None  # config.json's quantization_config.quant_method of this format


LOADERS: Registry[Loader] = Registry("format", error=ModelLoadError)
"""Every format `detect_format` can return, in that order."""

for _loader in (Loader("plain", _load_plain), Loader("compressed-tensors", _load_compressed, "compressed-tensors"),
                Loader("peft-lora", None), Loader("bnb-nf4", _load_bnb, "bitsandbytes"),
                Loader("gptq-legacy", _load_gptq_legacy, "gptq"), Loader("awq-legacy", _load_awq_legacy, "awq")):
    LOADERS.register(_loader.format, _loader)

FORMATS: tuple[str, ...] = LOADERS.names()
"""Every format `detect_format` can return."""


def format_of_quant_method(method: object) -> str | None:
    """The format whose checkpoints config.json marks with ``quant_method`` = `method`; None for an unknown one.

    >>> format_of_quant_method("gptq"), format_of_quant_method("mystery")
    ('gptq-legacy', None)
    """
    return next((loader.format for loader in LOADERS.values() if loader.quant_method == method), None)


# ------------------------------------------------------------------------------------------------- adapters


def resolve_adapter_base(path: str | os.PathLike[str], base: str | os.PathLike[str] | None = None) -> Path:
    """The base folder of a LoRA adapter: `base` if given, else what the adapter names, found locally.

    A relative `base_model_name_or_path` is tried against the adapter folder, then its parent; a hub id
    ("Qwen/Qwen3-0.6B") cannot be fetched (evalkit is offline), so it must be passed as `base`.
    """
    root = _folder(path)
    if base is not None:
        found = Path(base)
        if not found.is_dir():
            raise ModelLoadError(f"{root}: the base folder given for this adapter, {found}, does not exist.")
        return found
    named = ((_read_json(root / "adapter_config.json") or {}).get("base_model_name_or_path") or "").strip()
    candidates = [Path(named)] if Path(named).is_absolute() else [root / named, root.parent / named]
    for candidate in candidates if named else []:
        if (candidate / "config.json").exists():
            return candidate.resolve()
    raise ModelLoadError(
        f"{root}: adapter without its base: adapter_config.json names base_model_name_or_path={named!r}, which is"
        " not a local model folder (evalkit never downloads). Pass base=<path to the base model folder>"
        " (load_model(path, base=...)), or set base_model_name_or_path to a path relative to the adapter folder.")


def _adapter_base_quantization(root: Path) -> dict | None:
    """How the adapter's base must be quantized at load time (QLoRA), or None for a full-precision base.

    Declared by the adapter folder's provenance.json key "base_quantization" (BitsAndBytesConfig fields), because
    peft's adapter_config.json has no field for it.
    """
    provenance = _read_json(root / "provenance.json") or {}
    spec = provenance.get("base_quantization")
    return spec if isinstance(spec, dict) and spec else None


def _load_adapter(root: Path, fmt: str, *, device: str, dtype: Any, base: Any) -> LoadedModel:
    _require("peft", "peft")
    from peft import PeftModel

    base_dir = resolve_adapter_base(root, base)
    base_fmt = detect_format(base_dir)
    if base_fmt not in ("plain", "bnb-nf4") or (base_dir / "adapter_config.json").exists():
        raise ModelLoadError(f"{root}: the adapter's base {base_dir} is a {base_fmt!r} folder; a LoRA adapter needs a"
                             " plain (or nf4) base. Point base= at the unquantized model the adapter was trained on.")
    spec = _adapter_base_quantization(root)
    kwargs: dict[str, Any] = {}
    notes: list[str] = []
    if spec is not None:
        _require("bitsandbytes", "peft")
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(**spec)
        notes.append(_bnb_note(spec) + " (base quantized at load, as in QLoRA training)")
    model = _from_pretrained(base_dir, device=device, dtype=dtype, **kwargs)
    if base_fmt == "bnb-nf4":
        notes.append(_bnb_note(model.config.quantization_config))
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = PeftModel.from_pretrained(model, str(root), is_trainable=False)
    except (ValueError, RuntimeError, KeyError) as err:
        raise ModelLoadError(f"{root}: the adapter does not fit its base {base_dir}: {err}. Pass the base it was"
                             " trained on as base=.") from err
    missing = [str(w.message) for w in caught if "missing adapter keys" in str(w.message)]
    if missing:  # peft leaves those LoRA matrices at their initialization and only warns
        raise ModelLoadError(f"{root}: {ADAPTER_WEIGHTS} does not hold every tensor of adapter_config.json: "
                             f"{missing[0][:300]}. Re-save the adapter with `save_pretrained`.")
    notes.append("LoRA adapter applied unmerged")
    has_tokenizer = any((root / name).exists() for name in _TOKENIZER_FILES)
    tokenizer = _tokenizer(root if has_tokenizer else base_dir)
    notes.extend(_generation_notes(model) + _template_notes(tokenizer))
    parts = [fingerprint(root), fingerprint(base_dir)]
    if spec is not None:
        parts.append(json.dumps(spec, sort_keys=True))
    return LoadedModel(model=model.eval(), tokenizer=tokenizer, path=root, format=fmt, fingerprint=combine(*parts),
                       notes=tuple(notes), base=base_dir)


# --------------------------------------------------------------------------------------------------- helpers


def _folder(path: str | os.PathLike[str]) -> Path:
    root = Path(path)
    if not root.exists():
        raise ModelLoadError(f"{root}: model folder does not exist; check the path (evalkit loads local folders only,"
                             " never hub ids).")
    if not root.is_dir():
        raise ModelLoadError(f"{root}: not a folder; pass the model folder (with config.json), not a file in it.")
    return root


def _read_json(file: Path) -> dict[str, Any] | None:
    try:
        return read_json_object(file)
    except JSONFileError as err:
        raise ModelLoadError(f"{file}: {err}; restore the file from the original model.") from None


def _param_dtype(model: Any) -> str:
    return str(next(model.parameters()).dtype).removeprefix("torch.")


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _require(module: str, extra: str) -> None:
    if not _installed(module):
        raise ModelLoadError(f"this model needs the optional package {module!r}: pip install 'evalkit[{extra}]'")
