"""The gate's models that run in a server (backend ``vllm`` or ``openai``): evaluated through the serving backend,
spread over server slots, with drift through the servers.

What changes against the transformers path (`evalkit.gate.runner.Gate`), and why:

- A model is described, not loaded: `served_model(path)` reads its tokenizer, config.json, generation config and
  fingerprint (no weights), which is all the engine's `evaluate` needs besides the backend, and all the artifacts
  check compares. The weights live in the server.
- Placement: ``vllm`` models are spread over ``[backends.vllm] servers`` slots (`run_placed`: round robin in plan
  order, each slot's models one after another on its own server), in stages by depth: every parent before its
  variants, since a variant's drift reads its parent's teacher logprobs. ``openai`` models name their own servers
  and run one after another.
- Drift: while a parent's server is up, its top-k prompt logprobs on its own replies (the teacher tokens of the
  transformers path, `teacher_from_generations`) are kept per task; a variant's server then answers the same
  requests, and `server_drift` compares them (`TopKDrift`: top-k KL is a lower bound, no layer localization; the
  drift check prints that). Drift needs parent and variant under the same kind of backend, else it is skipped
  with the reason.
- Failures stay the model's own: a server that exits while starting is the verdict ``engine_refused`` (the
  engine's root cause quoted, e.g. vLLM's "No compressed-tensors compatible scheme" for 2-bit weights), any other
  server or request failure ``backend_error``; the other models go on.

Placement never changes a result (the cache key holds no slot, URL or port); it is recorded in `Serving.placement`
for the run's log and the tests.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from evalkit.core.lineage import with_ancestors
from evalkit.errors import BackendError, DriftError, ModelLoadError, RequestError, ServerStartError
from evalkit.gate import serving
from evalkit.gate.records import Failure, where
from evalkit.run.drift import DriftResult, TeacherSequence, teacher_from_generations
from evalkit.run.engine import TaskResult, evaluate

__all__ = ["Placement", "Serving", "placement_table"]

Teacher = tuple[list[TeacherSequence], list[Any]]  # the parent's teacher sequences and its top-k logprobs on them


@dataclass(frozen=True, slots=True)
class Placement:
    """Where one model was served: its slot (None for ``openai``), the servers' URLs, and when (monotonic seconds)."""

    model: str
    slot: int | None
    urls: tuple[str, ...]
    started: float
    finished: float
    start_seconds: float | None  # until the first server was ready (None: none was started: all from the cache)


class Serving:
    """The served part of one `Gate`: its models' descriptions, results, teacher logprobs and drift."""

    def __init__(self, gate: Any) -> None:
        self.gate = gate
        self.manifest = gate.manifest
        self.views: dict[str, Any] = {}  # model -> ServedModel, or Failure when it cannot be described
        self.teachers: dict[tuple[str, str], Teacher | Failure] = {}
        self.placement: dict[str, Placement] = {}
        self._lock = threading.RLock()  # view() holds it while _describe() charges its time

    def serves(self, model: str) -> bool:
        return serving.backend_of(self.manifest, model) in serving.SERVED

    # -- the plan ----------------------------------------------------------------------------------------------

    def run(self, models: Sequence[str]) -> None:
        """Evaluate the served models among `models` and their ancestors: stage by stage (parents first), each
        stage's ``vllm`` models spread over the slots at once."""
        from evalkit.run.backends.vllm import run_placed

        plan = [m for m in with_ancestors(models, self._parent) if self.serves(m)]
        pending = [m for m in plan if self._pending(m, plan)]
        if not pending:
            return
        if self.gate._cache is None:
            from evalkit.run.cache import Cache

            self.gate._cache = Cache(self.manifest.gate.cache)
        stages: dict[int, list[str]] = collections.defaultdict(list)
        for m in pending:
            stages[len(with_ancestors([m], self._parent))].append(m)
        for depth in sorted(stages):
            local = [m for m in stages[depth] if serving.backend_of(self.manifest, m) == "vllm"]
            if local:
                slots = list(range(min(self.manifest.backends.vllm.servers, len(local))))
                run_placed(local, slots, lambda m, slot: self._serve(m, slot, plan))
            for m in stages[depth]:
                if m not in local:
                    self._serve(m, None, plan)

    def _parent(self, model: str) -> str | None:
        return self.manifest.models[model].parent

    def _children(self, model: str, plan: Sequence[str]) -> list[str]:
        return [m for m in plan if self._parent(m) == model]

    def _pending(self, model: str, plan: Sequence[str]) -> bool:
        g = self.gate
        if model in g._model_errors:
            return False
        tasks = g._tasks_of(model)
        missing = any((model, t) not in g._results for t in tasks)
        teacher = bool(self._children(model, plan)) and any((model, t) not in self.teachers for t in tasks)
        parent = self._parent(model)
        drift = parent is not None and self.serves(parent) and any((model, t) not in g._drift for t in tasks)
        return missing or teacher or drift

    # -- one model on one slot ---------------------------------------------------------------------------------

    def _serve(self, model: str, slot: int | None, plan: Sequence[str]) -> None:
        g, began = self.gate, time.monotonic()
        view = self.view(model)
        if isinstance(view, Failure):
            g._model_errors[model] = view
            for t in g._tasks_of(model):
                g._results.setdefault((model, t), view)
                g.progress(model, t)
            return
        parent = self._parent(model)
        if parent is not None and (model, g._tasks_of(model)[0]) not in g._artifacts:
            theirs = self.view(parent)
            if not isinstance(theirs, Failure):
                g._compare_artifacts(model, view, theirs)  # before any server starts: the cheap root causes first
        backend = self._backend(model, view, slot)
        try:
            self._work(model, view, backend, plan)
        finally:
            stop = getattr(backend, "stop", None)
            if stop is not None:
                stop()
            self._record(model, slot, backend, began)

    def _work(self, model: str, view: Any, backend: Any, plan: Sequence[str]) -> None:
        g, tasks = self.gate, self.gate._tasks_of(model)
        try:
            for t in tasks:
                if (model, t) not in g._results:
                    g._results[(model, t)] = self._evaluate(model, view, backend, t)
                    g.progress(model, t)
            if self._children(model, plan):
                for t in tasks:
                    self.teachers.setdefault((model, t), self._teacher(model, view, backend, t))
            parent = self._parent(model)
            if parent is not None:
                for t in tasks:
                    if (model, t) not in g._drift:
                        g._drift[(model, t)] = self._drift(model, parent, backend, t)
        except ServerStartError as err:  # the server never came up: every part still missing fails for it
            failure = Failure("engine_refused" if err.refused else "backend_error", str(err).splitlines()[0])
            self.gate.log(f"{model}: {failure}")
            if not any(isinstance(g._results.get((model, t)), TaskResult) for t in tasks):
                g._model_errors[model] = failure
            for t in tasks:
                if (model, t) not in g._results:
                    g._results[(model, t)] = failure
                    g.progress(model, t)
                self.teachers.setdefault((model, t), failure)
                g._drift.setdefault((model, t), Failure("drift_error", failure.detail))

    def _evaluate(self, model: str, view: Any, backend: Any, task: str) -> TaskResult | Failure:
        t = self.gate._task(task)
        if isinstance(t, Failure):
            return t
        started, starts = time.perf_counter(), _start_cost(backend)
        try:
            result = evaluate(view, t, self.gate._config(), cache=self.gate._cache, backend=backend)
        except ServerStartError:
            raise
        except (RequestError, BackendError) as err:
            return Failure("backend_error", str(err).splitlines()[0])
        except Exception as err:  # noqa: BLE001 - one broken model must not take down the others
            return Failure("evaluation_error", f"{type(err).__name__}: {err}", where=where(err))
        finally:
            self._charge("generate", time.perf_counter() - started, _start_cost(backend) - starts)
        self.gate.log(f"evaluated {model} on {task} ({serving.backend_of(self.manifest, model)}): "
                      f"{len(result.records)} items ({'cache' if result.cache_hit else f'{result.run.seconds:.1f}s'})")
        return result

    # -- drift through the servers -----------------------------------------------------------------------------

    def _teacher(self, model: str, view: Any, backend: Any, task: str) -> Teacher | Failure:
        """This parent's top-k logprobs on its own replies to `task` (while its server is up)."""
        result = self.gate._results.get((model, task))
        if not isinstance(result, TaskResult):
            return Failure("drift_error", f"{model} has no replies on {task} to teacher-force its variants on")
        gens = result.run.generations[: self.manifest.gate.drift_limit]
        seqs = teacher_from_generations(view.tokenizer, gens, plain=result.prompt_mode == "plain")
        return self._logprobs(backend, seqs, model, task)

    def _drift(self, model: str, parent: str, backend: Any, task: str) -> DriftResult | Failure | None:
        if not self.serves(parent):
            return Failure("backend_mismatch", f"{parent} is gated by the transformers backend and {model} through a "
                                               "server: drift compares one engine's distributions")
        theirs = self.teachers.get((parent, task))
        if theirs is None:
            return None
        if isinstance(theirs, Failure):
            return Failure("drift_error", f"the parent's teacher logprobs: {theirs.detail}")
        vocab = self.gate._vocabulary_mismatch(model, parent, task)
        if vocab is not None:
            return vocab
        seqs, parent_positions = theirs
        mine = self._logprobs(backend, seqs, model, task)
        if isinstance(mine, Failure):
            return mine
        from evalkit.run.backends.openai.drift import TopKConfig, server_drift

        return server_drift(parent_positions, mine[1], TopKConfig(k=self.manifest.gate.drift_k))

    def _logprobs(self, backend: Any, seqs: list[TeacherSequence], model: str, task: str) -> Teacher | Failure:
        from evalkit.run.backends.openai.drift import TopKConfig, teacher_logprobs

        dialect = "vllm" if hasattr(backend, "servers") else backend.config.dialect
        if dialect != "vllm":
            return Failure("no_prompt_logprobs", f"{model}'s servers speak the plain OpenAI API (dialect \"openai\"): "
                                                 "drift needs vLLM's prompt_logprobs")
        started, starts = time.perf_counter(), _start_cost(backend)
        try:
            client = getattr(backend, "openai", backend)  # VLLMBackend's OpenAIBackend (started now), or itself
            return seqs, teacher_logprobs(client, seqs, TopKConfig(k=self.manifest.gate.drift_k))
        except ServerStartError:
            raise
        except (RequestError, BackendError, DriftError) as err:
            return Failure("drift_error", f"{model} on {task}: {str(err).splitlines()[0]}")
        finally:
            self._charge("drift", time.perf_counter() - started, _start_cost(backend) - starts)

    # -- backends ----------------------------------------------------------------------------------------------

    def view(self, model: str) -> Any:
        """The model's `ServedModel` (tokenizer, configs, fingerprint; no weights), or why it has none."""
        with self._lock:
            if model not in self.views:
                self.views[model] = self._describe(model)
            return self.views[model]

    def _describe(self, model: str) -> Any:
        from evalkit.run.backends.served import served_model

        started = time.perf_counter()
        try:
            return served_model(self.gate._path(model))
        except (ModelLoadError, BackendError) as err:
            return Failure("load_error", str(err))
        except Exception as err:  # noqa: BLE001
            return Failure("load_error", f"{type(err).__name__}: {err}")
        finally:
            self._time("load", time.perf_counter() - started)

    def _backend(self, model: str, view: Any, slot: int | None) -> Any:
        from evalkit.run.backends import BACKENDS
        from evalkit.run.backends.openai import OpenAIConfig
        from evalkit.run.backends.vllm import VLLMConfig

        spec, gate, b = self.manifest.models[model], self.manifest.gate, self.manifest.backends
        if serving.backend_of(self.manifest, model) == "openai":
            o = b.openai
            config = OpenAIConfig(spec.base_urls or o.base_urls, model=spec.served_name, concurrency=o.concurrency,
                                  timeout_s=o.timeout_s, retries=o.retries, backoff_s=o.backoff_s, dialect=o.dialect,
                                  seed=gate.seed, api_key_env=o.api_key_env)
            return BACKENDS.get("openai")(view, config=config)
        v = b.vllm
        one = VLLMConfig(python=v.python, dtype=spec.dtype or gate.dtype or "bfloat16", max_model_len=v.max_model_len,
                         kv_cache_gib=v.kv_cache_gib, threads=v.threads, max_logprobs=v.max_logprobs,
                         startup_timeout_s=v.startup_timeout_s, env=v.slot_env(slot or 0), extra_args=v.extra_args)
        return BACKENDS.get("vllm")(view, configs=[one] * v.replicas, concurrency=v.concurrency,
                                    timeout_s=v.timeout_s)

    def _record(self, model: str, slot: int | None, backend: Any, began: float) -> None:
        servers = getattr(backend, "servers", ())
        urls = tuple(f"http://{s.config.host}:{s.port}" for s in servers if s.start_seconds is not None) or \
            tuple(getattr(getattr(backend, "config", None), "base_urls", ()))
        cost = _start_cost(backend)
        self.placement[model] = Placement(model, slot, urls, began, time.monotonic(), cost if cost > 0 else None)
        where = f"slot {slot}" if slot is not None else "its servers"
        failed = self.gate._model_errors.get(model)
        what = (f"failed: {failed.diagnosis}" if failed is not None else
                ", ".join(urls) or "no server started: every task cached")
        self.gate.log(f"served {model} on {where} ({what})")

    def _time(self, key: str, seconds: float) -> None:
        with self._lock:
            self.gate.timings[key] += seconds

    def _charge(self, key: str, seconds: float, start: float) -> None:
        """`seconds` of work under `key`, of which `start` went into starting servers: that is loading."""
        self._time("load", start)
        self._time(key, seconds - start)


def _start_cost(backend: Any) -> float:
    """Seconds the backend's servers took to start and warm up so far (replicas start at once: the slowest)."""
    costs = [s.start_seconds + (s.warmup_seconds or 0.0) for s in getattr(backend, "servers", ())
             if s.start_seconds is not None]
    return max(costs, default=0.0)


def placement_table(placement: dict[str, Placement]) -> dict[int | None, list[str]]:
    """Models per slot, in the order each slot served them."""
    out: dict[int | None, list[str]] = {}
    for p in sorted(placement.values(), key=lambda p: p.started):
        out.setdefault(p.slot, []).append(p.model)
    return out

