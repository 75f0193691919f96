"""What a quantization calibrates on: the team's own data, not only the zoo's synthetic items.

Three sources, each recorded in the output's provenance.json (kind, source, count, seed, digest of the exact texts):

- the zoo's training items (the default; `evalkit.models.quantization.calibration_items`);
- a task's rows (``evalkit quantize ... --task gsm8k --data my/gsm8k.jsonl``): a `evalkit.data.tasks.Task`, each item
  rendered as evaluation renders it, followed by its gold answer in the answer format;
- chat examples (``--chat conversations.jsonl``): one JSON object per line with ``messages`` (a list of ``{role,
  content}``, OpenAI's and Hugging Face's chat format), rendered through the model's own chat template, assistant
  turns included: calibration sees what the model will be asked and how it answers, in its own format.

Chat files are sampled by a seeded hash of each line's position and content (``--n-calibration`` of them); a line that
is not a conversation is one error naming the file and the line.

>>> import json, tempfile, pathlib
>>> f = pathlib.Path(tempfile.mkdtemp()) / "chats.jsonl"
>>> _ = f.write_text(json.dumps({"messages": [{"role": "user", "content": "2+2?"},
...                                            {"role": "assistant", "content": "\\\\boxed{4}"}]}) + "\\n")
>>> chats = load_chat_examples(f, 8)
>>> len(chats.conversations), chats.records
(1, (('chat', 'chats.jsonl:1'),))
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalkit.errors import QuantizationError

__all__ = ["ChatExamples", "load_chat_examples"]

_ROLES = ("system", "user", "assistant", "tool")


@dataclass(frozen=True, slots=True)
class ChatExamples:
    """Conversations to calibrate on, rendered through the model's own chat template."""

    source: str  # the file they came from
    conversations: tuple[tuple[Mapping[str, str], ...], ...]
    records: tuple[tuple[str, str], ...]  # ("chat", "<file>:<line>") per conversation, for calibration.jsonl
    seed: int = 0
    total: int = 0  # conversations in the file (a sample of them is kept)

    def texts(self, tokenizer: Any) -> list[str]:
        """Each conversation as the model's chat template writes it (no generation prompt: the answers are there)."""
        if not getattr(tokenizer, "chat_template", None):
            raise QuantizationError(f"{self.source}: chat examples need the model's chat template, and this model "
                                    "has none; calibrate on task rows instead (--task with --data)")
        return [tokenizer.apply_chat_template([dict(m) for m in c], tokenize=False, add_generation_prompt=False)
                for c in self.conversations]


def load_chat_examples(path: str | os.PathLike[str], n: int, *, seed: int = 0) -> ChatExamples:
    """`n` conversations of a JSONL file of ``{"messages": [...]}`` (all of them when it has fewer)."""
    file = Path(path)
    if not file.is_file():
        raise QuantizationError(f"{file}: no such chat examples file; pass a .jsonl with one {{\"messages\": [...]}} "
                                "per line")
    found: list[tuple[bytes, int, tuple[Mapping[str, str], ...]]] = []
    with file.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if line.strip():
                rank = hashlib.sha256(f"{seed}|{lineno}|".encode() + line.encode()).digest()
                found.append((rank, lineno, _conversation(line, file, lineno)))
    if not found:
        raise QuantizationError(f"{file}: holds no chat examples")
    kept = sorted(sorted(found)[:n], key=lambda entry: entry[1])  # a seeded sample, in file order
    return ChatExamples(str(file), tuple(c for _, _, c in kept), tuple(("chat", f"{file.name}:{ln}") for _, ln, _ in kept),
                        seed, len(found))


def _conversation(line: str, file: Path, lineno: int) -> tuple[Mapping[str, str], ...]:
    where = f"{file}:{lineno}"
    try:
        row = json.loads(line)
    except json.JSONDecodeError as err:
        raise QuantizationError(f"{where}: not valid JSON ({err.msg})") from None
    messages = row.get("messages") if isinstance(row, dict) else None
    if not isinstance(messages, list) or not messages:
        raise QuantizationError(f"{where}: expected {{\"messages\": [{{\"role\": ..., \"content\": ...}}, ...]}}")
    out = []
    for m in messages:
        if not isinstance(m, dict) or m.get("role") not in _ROLES or not isinstance(m.get("content"), str):
            raise QuantizationError(f"{where}: each message needs a role ({', '.join(_ROLES)}) and a string "
                                    f"content, got {m!r}")
        out.append({"role": m["role"], "content": m["content"]})
    return tuple(out)
