"""Legacy AutoGPTQ / AutoAWQ folders: a config.json without quantization_config and the settings in a side file.

Such a folder loads with its real (packed) weights only when transformers is told what they are; otherwise it
builds a plain model, finds none of its tensors and initializes them all randomly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evalkit.errors import ModelLoadError
from evalkit.models.files import JSONFileError, read_json_object

__all__ = ["LEGACY_SIDE_FILES", "legacy_config"]


LEGACY_SIDE_FILES = {"gptq-legacy": "quantize_config.json", "awq-legacy": "quant_config.json"}
"""The side file AutoGPTQ / AutoAWQ wrote beside a config.json that has no quantization_config."""


def legacy_config(root: Path, fmt: str) -> dict[str, Any]:
    """For a legacy folder whose config.json has no quantization_config: the config with the side file's settings
    as its quantization_config, so transformers loads the packed weights as packed (without it, it would build a
    plain model, find none of its tensors and initialize them all randomly)."""
    from transformers import AutoConfig

    config = _read(root / "config.json")
    if config.get("quantization_config") is not None:
        return {}
    side = _read(root / LEGACY_SIDE_FILES[fmt])
    if fmt == "gptq-legacy":
        qc = {"quant_method": "gptq", "bits": side.get("bits", 4), "group_size": side.get("group_size", 128),
              "desc_act": side.get("desc_act", False), "sym": side.get("sym", True),
              "checkpoint_format": side.get("checkpoint_format", "gptq")}
    else:
        qc = {"quant_method": "awq", "bits": side.get("w_bit", side.get("bits", 4)),
              "group_size": side.get("q_group_size", side.get("group_size", 128)),
              "zero_point": side.get("zero_point", True), "version": str(side.get("version", "gemm")).lower()}
    hf_config = AutoConfig.from_pretrained(root, trust_remote_code=False, local_files_only=True)
    hf_config.quantization_config = qc
    return {"config": hf_config}


def _read(file: Path) -> dict[str, Any]:
    try:
        return read_json_object(file) or {}
    except JSONFileError as err:
        raise ModelLoadError(f"{file}: {err}; restore the file from the original model.") from None
