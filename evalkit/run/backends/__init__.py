"""Generation backends, one folder each (as lighteval keeps them): each registers a factory in `BACKENDS`.

- ``transformers``: evalkit's own batched greedy decoding in this process (the default).
- ``openai``: any OpenAI-compatible `/v1/completions` server, one request per item (`openai/`).
- ``vllm``: evalkit starts `vllm serve` from its own venv and gates through ``openai`` (`vllm/`).

Beside them: `served` (a model folder as a server sees it: tokenizer, configs and fingerprint, no weights) and
`compare` (one model and task through two backends). Adding a backend is one new folder here whose module registers
it, plus its import below (docs/ARCHITECTURE.md). Importing this package loads neither torch nor vLLM.
"""

from evalkit.run.backends import openai, transformers, vllm  # noqa: F401  (each registers itself)
from evalkit.run.backends.registry import BACKENDS, BackendFactory

__all__ = ["BACKENDS", "BackendFactory"]
