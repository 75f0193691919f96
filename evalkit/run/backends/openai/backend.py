"""`OpenAIBackend`: evalkit's Backend over any OpenAI-compatible `/v1/completions` server (vLLM, SGLang, TGI,
llama.cpp), one request per item.

What is decided here, not by the server:

- The prompt. evalkit renders it with the model's own tokenizer and chat template (`render_prompts`) and sends the
  token ids, so parent and variant see byte-identical prompts whatever template or BOS handling the server has;
  the chat endpoint is never used.
- Decoding. Greedy and explicit: temperature 0, top_p 1, n 1, a fixed seed, no penalties, `max_tokens` from the
  config, the model's end tokens as `stop_token_ids`. Nothing is left to the server's defaults, which may come from
  a checkpoint's generation_config.json (lm-eval#3154 lost a repetition penalty that way).
- The record. With the ``vllm`` dialect the server returns the generated token ids (`return_token_ids`), and the
  raw and clean texts are decoded here exactly as the transformers backend's `HFBackend._record` decodes its own
  tokens (cut after the first
  end token, special tokens kept in `raw_text`), so extraction sees the same strings from either engine. The
  ``openai`` dialect (servers without token ids) rebuilds the raw text from the reply and the stop string.

Every failure names the server and the item (`RequestError`); the servers' engine and version are part of
`describe()`, so they are part of evalkit's cache key.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from evalkit.errors import BackendError, RequestError
from evalkit.run.backends.openai import metrics
from evalkit.run.backends.openai.client import Client, OpenAIConfig
from evalkit.run.generation import Generation, GenerationConfig, GenerationRun, Prompt, eos_token_ids, render_prompts
from evalkit.core.types import Item


class OpenAIBackend:
    """Greedy generations from OpenAI-compatible servers that all serve the same model."""

    def __init__(self, tokenizer: Any, config: OpenAIConfig, *, eos_ids: Sequence[int]) -> None:
        if not eos_ids:
            raise BackendError("OpenAIBackend needs the model's end token ids (evalkit.run.generation.eos_token_ids)")
        self.tokenizer = tokenizer
        self.config = config
        self.eos_ids = tuple(int(i) for i in eos_ids)
        self.special_tokens = tuple(getattr(tokenizer, "all_special_tokens", ()) or ())
        self.client = Client(config)
        self._info: dict[str, str] | None = None
        self._max_model_len: int | None = None

    @classmethod
    def for_model(cls, model: Any, config: OpenAIConfig) -> OpenAIBackend:
        """For a LoadedModel, or a `evalkit.run.backends.served.ServedModel` (tokenizer and generation config, no
        weights)."""
        weights = getattr(model, "model", None)
        return cls(model.tokenizer, config, eos_ids=eos_token_ids(weights if weights is not None else model,
                                                                  model.tokenizer))

    # -- Backend protocol --------------------------------------------------------------------------------------

    def render(self, items: Sequence[Item], config: GenerationConfig) -> list[Prompt]:
        return render_prompts(self.tokenizer, items, config)

    def describe(self) -> dict[str, str]:
        """Engine, version and model of the servers (asked once); they must all agree, since which server answers
        an item must not change its reply."""
        if self._info is None:
            infos = self.client.each_server(self._server_info)
            differ = [(url, i) for url, i in zip(self.config.base_urls, infos, strict=True) if i != infos[0]]
            if differ:
                raise BackendError(f"servers disagree on engine or model: {self.config.base_urls[0]} has {infos[0]}, "
                                   + ", ".join(f"{url} has {i}" for url, i in differ))
            self._info = infos[0]
        return dict(self._info)

    def generate(self, prompts: Sequence[Prompt], config: GenerationConfig) -> GenerationRun:
        info = self.describe()
        self._check_lengths(prompts, config)
        before = self._metrics()
        start = time.perf_counter()
        gens = self.client.map(lambda i: self._one(prompts[i], config), len(prompts))
        seconds = time.perf_counter() - start
        after = self._metrics() if before else []
        engine = metrics.summary(before, after)
        # concurrency is recorded, not keyed: a healthy model's replies do not depend on it, but the engine batches
        # whatever is in flight, so a chaotic (broken) model's replies vary run to run unless it is 1.
        return GenerationRun(tuple(gens), seconds, {**info, **engine, "servers": str(len(self.config.base_urls)),
                                                    "concurrency": str(self.config.concurrency)},
                             metrics.phases(before, after))

    # -- one item ----------------------------------------------------------------------------------------------

    def request_body(self, prompt: Prompt, config: GenerationConfig) -> dict[str, Any]:
        """The completions request for one prompt: every decoding parameter explicit."""
        body: dict[str, Any] = {
            "model": self.model_name, "prompt": list(prompt.token_ids), "max_tokens": config.max_new_tokens,
            "temperature": 0.0, "top_p": 1.0, "n": 1, "seed": self.config.seed, "presence_penalty": 0.0,
            "frequency_penalty": 0.0, "stream": False, "echo": False, "logprobs": None,
        }
        if self.config.dialect == "vllm":
            body.update({
                "top_k": 0, "min_p": 0.0, "repetition_penalty": 1.0, "min_tokens": 0, "ignore_eos": False,
                "stop": [], "stop_token_ids": list(self.eos_ids), "skip_special_tokens": False,
                "spaces_between_special_tokens": False, "include_stop_str_in_output": True,
                "return_token_ids": True, "add_special_tokens": False,
            })
        else:
            body["stop"] = self._stop_strings()
        return body

    def _one(self, prompt: Prompt, config: GenerationConfig) -> Generation:
        what = f"item {prompt.item_id!r}"
        url, answer = self.client.post("/v1/completions", self.request_body(prompt, config), what)
        try:
            choice = answer["choices"][0]
            if self.config.dialect == "vllm":
                return self._from_token_ids(prompt, choice, config, url)
            return self._from_text(prompt, choice, answer.get("usage") or {})
        except (KeyError, IndexError, TypeError) as err:
            raise RequestError(f"{url}/v1/completions for {what}: unexpected answer ({err!r}): {str(answer)[:300]}"
                               ) from None

    def _from_token_ids(self, prompt: Prompt, choice: dict[str, Any], config: GenerationConfig, url: str
                        ) -> Generation:
        where = f"{url}/v1/completions for item {prompt.item_id!r}"
        row = choice.get("token_ids")
        if row is None:
            raise RequestError(f"{where}: the answer has no token_ids (a vLLM server returns them for "
                               "return_token_ids); for another engine use OpenAIConfig(dialect='openai')")
        echoed = choice.get("prompt_token_ids")
        if echoed is not None and tuple(echoed) != prompt.token_ids:
            raise RequestError(f"{where}: the server ran other prompt tokens than evalkit sent "
                               f"({len(echoed)} vs {len(prompt.token_ids)} tokens)")
        eos = set(self.eos_ids)
        cut = next((k + 1 for k, t in enumerate(row) if t in eos), None)
        tokens = row if cut is None else row[:cut]
        if cut is None and len(row) < config.max_new_tokens:
            raise RequestError(f"{where}: stopped after {len(row)} of {config.max_new_tokens} tokens without an end "
                               f"token (finish_reason {choice.get('finish_reason')!r}, stop_reason "
                               f"{choice.get('stop_reason')!r})")
        return self._record(prompt, list(tokens), "length" if cut is None else "eos")

    def _from_text(self, prompt: Prompt, choice: dict[str, Any], usage: dict[str, Any]) -> Generation:
        text, reason = choice["text"], choice.get("finish_reason")
        stops = self._stop_strings()
        if reason == "stop":  # the plain API drops the stop string: put the end token back, as HF records it
            stop = choice.get("stop_reason")
            text += stop if isinstance(stop, str) and stop in stops else stops[0]
        tokens = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        gen = self._record(prompt, tokens, "eos" if reason == "stop" else "length")
        count = usage.get("completion_tokens")
        if isinstance(count, int) and count != gen.output_tokens:  # the server counted what it generated
            gen = Generation(gen.item_id, gen.prompt, gen.raw_text, gen.text, gen.prompt_tokens, count,
                             gen.finish_reason, gen.token_ids)
        return gen

    def _record(self, prompt: Prompt, tokens: list[int], finish: str) -> Generation:
        return Generation(
            item_id=prompt.item_id, prompt=prompt.text,
            raw_text=self.tokenizer.decode(tokens, skip_special_tokens=False),
            text=self.tokenizer.decode(tokens, skip_special_tokens=True),
            prompt_tokens=len(prompt.token_ids), output_tokens=len(tokens), finish_reason=finish,  # type: ignore[arg-type]
            token_ids=tuple(int(t) for t in tokens),  # what drift teacher-forces when this model is a parent
        )

    # -- servers -----------------------------------------------------------------------------------------------

    @property
    def model_name(self) -> str:
        if self.config.model is not None:
            return self.config.model
        return self.describe()["model"]

    def _server_info(self, url: str) -> dict[str, str]:
        listed = self.client.get(url, "/v1/models").get("data") or []
        names = [m.get("id") for m in listed]
        name = self.config.model
        if name is None:
            if len(names) != 1:
                raise BackendError(f"{url} serves {names or 'no model'}; name the one to use in OpenAIConfig.model")
            name = names[0]
        entry = next((m for m in listed if m.get("id") == name), None)
        if entry is None:
            raise BackendError(f"{url} does not serve model {name!r} (it serves {names})")
        try:
            version = str(self.client.get(url, "/version").get("version", "unknown"))
        except RequestError:
            version = "unknown"  # not every engine has /version
        info = {"backend": "openai", "dialect": self.config.dialect, "engine": str(entry.get("owned_by") or "unknown"),
                "engine_version": version, "model": str(name)}
        if isinstance(entry.get("max_model_len"), int):
            info["max_model_len"] = str(entry["max_model_len"])
            self._max_model_len = entry["max_model_len"]
        return info

    def _check_lengths(self, prompts: Sequence[Prompt], config: GenerationConfig) -> None:
        limit = self._max_model_len
        if limit is None:
            return
        over = [p.item_id for p in prompts if len(p.token_ids) + config.max_new_tokens > limit]
        if over:
            raise BackendError(f"{len(over)} prompts plus max_new_tokens ({config.max_new_tokens}) exceed the server's "
                               f"max_model_len {limit} (first: item {over[0]!r}); the server would refuse them: "
                               "start it with a larger --max-model-len or lower max_new_tokens")

    def _metrics(self) -> list[dict[str, float]]:
        """Per-server engine counters, or [] when any server does not expose vLLM's /metrics."""
        if self.config.dialect != "vllm":
            return []
        try:
            return self.client.each_server(lambda url: metrics.parse(self.client.get(url, "/metrics", text=True)))
        except RequestError:
            return []

    def _stop_strings(self) -> list[str]:
        """The end tokens as strings, for servers that take only `stop` strings (the plain API allows four)."""
        strings = [self.tokenizer.convert_ids_to_tokens(i) for i in self.eos_ids]
        return [s for s in strings if s][:4]
