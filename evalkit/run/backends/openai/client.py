"""HTTP to OpenAI-compatible servers: JSON requests with retries, and per-item requests over a set of servers.

Why per item: the gate emits one request per item and leaves batching to the engine (vLLM's scheduler batches
whatever is in flight), so a slow item never holds up a batch and a failure names exactly one item. Why the
standard library: `urllib` is enough for JSON over loopback or a LAN and adds no dependency to evalkit.

Concurrency: every server has `concurrency` slots; a request takes a free slot of any server and gives it back
when it ends, so no server ever has more than `concurrency` requests of this client in flight and faster servers
take more items. Retries (5xx, 429, connection errors, timeouts) wait `backoff_s * 2**attempt` outside any slot and
may land on another server; client errors (other 4xx) fail at once, since sending the same request again cannot
help.
"""

from __future__ import annotations

import http.client
import json
import os
import queue
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, TypeVar

from evalkit.errors import BackendError, RequestError

T = TypeVar("T")
RETRY_STATUS = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class OpenAIConfig:
    """Where the servers are and how to talk to them.

    >>> OpenAIConfig(("http://127.0.0.1:8000/",)).base_urls
    ('http://127.0.0.1:8000',)
    """

    base_urls: tuple[str, ...]  # every server serves the same model (replicas); requests are spread over them
    model: str | None = None  # the served model name; None: the one model the first server lists in /v1/models
    concurrency: int = 8  # requests in flight per server
    timeout_s: float = 600.0  # per request (a 256-token reply on a busy 2-core CPU server can take minutes)
    retries: int = 3  # further attempts after a retryable failure
    backoff_s: float = 1.0  # first wait before a retry; doubles with every attempt
    dialect: str = "vllm"  # "vllm": send vLLM's sampling extensions and read token ids; "openai": the plain API
    seed: int = 0
    api_key_env: str | None = None  # name of an environment variable holding a bearer token (never the token itself)

    def __post_init__(self) -> None:
        urls = tuple(u.rstrip("/") for u in self.base_urls)
        if not urls:
            raise ValueError("OpenAIConfig.base_urls is empty: name at least one server")
        object.__setattr__(self, "base_urls", urls)
        if self.concurrency < 1 or self.retries < 0 or self.timeout_s <= 0 or self.backoff_s < 0:
            raise ValueError(f"OpenAIConfig: concurrency >= 1, retries >= 0, timeout_s > 0, backoff_s >= 0 "
                             f"(got {self.concurrency}, {self.retries}, {self.timeout_s}, {self.backoff_s})")
        if self.dialect not in ("vllm", "openai"):
            raise ValueError(f"OpenAIConfig.dialect must be 'vllm' or 'openai', got {self.dialect!r}")


class _Retryable(Exception):
    """One attempt failed in a way another attempt may not (carried to the final error)."""


def request_json(url: str, body: dict[str, Any] | None = None, *, timeout_s: float, api_key: str | None = None
                 ) -> Any:
    """One GET (body None) or POST of JSON; raises _Retryable or RequestError with the status and body."""
    raw = request_bytes(url, body, timeout_s=timeout_s, api_key=api_key)
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise RequestError(f"answer is not JSON: {raw[:300]!r}") from None


def request_bytes(url: str, body: dict[str, Any] | None = None, *, timeout_s: float, api_key: str | None = None
                  ) -> bytes:
    """The answer's bytes; a status worth retrying (5xx, 429), a lost connection or a timeout raise _Retryable."""
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"} if data is not None else {}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    req = urllib.request.Request(url, data=data, headers=headers, method="GET" if data is None else "POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            return resp.read()
    except urllib.error.HTTPError as err:
        text = _body(err)
        if err.code in RETRY_STATUS:
            raise _Retryable(f"HTTP {err.code}: {text}") from None
        raise RequestError(f"HTTP {err.code}: {text}") from None
    except (urllib.error.URLError, http.client.HTTPException, ConnectionError, socket.timeout, TimeoutError) as err:
        reason = getattr(err, "reason", None) or err
        raise _Retryable(f"{type(err).__name__}: {reason}") from None


def _body(err: urllib.error.HTTPError) -> str:
    try:
        return err.read().decode("utf-8", "replace")[:600]
    except OSError:
        return "(no body)"


class Client:
    """Requests to a set of equivalent servers, each limited to `config.concurrency` in flight."""

    def __init__(self, config: OpenAIConfig) -> None:
        self.config = config
        self.api_key = os.environ.get(config.api_key_env) if config.api_key_env else None
        if config.api_key_env and not self.api_key:
            raise BackendError(f"OpenAIConfig.api_key_env names {config.api_key_env}, which is not set")
        self._slots: queue.Queue[str] = queue.Queue()
        for _ in range(config.concurrency):
            for url in config.base_urls:
                self._slots.put(url)

    def get(self, url: str, path: str, *, timeout_s: float = 30.0, text: bool = False) -> Any:
        """GET one server's `path`: JSON, or the text when `text` (no retries: used for metadata and metrics,
        where the caller decides what a failure means)."""
        try:
            if text:
                return request_bytes(url + path, timeout_s=timeout_s, api_key=self.api_key).decode("utf-8", "replace")
            return request_json(url + path, timeout_s=timeout_s, api_key=self.api_key)
        except (_Retryable, RequestError) as err:
            raise RequestError(f"GET {url}{path} failed: {err}") from None

    def post(self, path: str, body: dict[str, Any], what: str) -> tuple[str, Any]:
        """POST `body` to `path` of any free server, retrying; returns (server url, answer).

        what: names the request in errors (e.g. "item zoo_math/3").
        """
        cfg, attempts = self.config, []
        for attempt in range(cfg.retries + 1):
            url = self._slots.get()
            try:
                return url, request_json(url + path, body, timeout_s=cfg.timeout_s, api_key=self.api_key)
            except _Retryable as err:
                attempts.append(f"{url}: {err}")
            except RequestError as err:
                raise RequestError(f"POST {url}{path} for {what} failed: {err}") from None
            finally:
                self._slots.put(url)
            if attempt < cfg.retries:
                time.sleep(cfg.backoff_s * 2**attempt)
        raise RequestError(f"POST {path} for {what} failed after {cfg.retries + 1} attempts: "
                           + "; ".join(attempts))

    def map(self, fn: Callable[[int], T], n: int) -> list[T]:
        """`fn(i)` for i in range(n) on as many threads as there are slots; results in order. The first failure
        cancels what has not started and is raised."""
        workers = max(1, min(n, self.config.concurrency * len(self.config.base_urls)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="evalkit-openai") as pool:
            futures = [pool.submit(fn, i) for i in range(n)]
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            failed = next((f for f in futures if f in done and f.exception() is not None), None)
            if failed is not None:
                for f in futures:
                    f.cancel()
                raise failed.exception()  # type: ignore[misc]
            return [f.result() for f in futures]

    def each_server(self, fn: Callable[[str], T]) -> list[T]:
        """`fn(url)` for every server, in order (metadata and metrics)."""
        return [fn(url) for url in self.config.base_urls]

