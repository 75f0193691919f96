"""The gate's run: load each model once, evaluate each (model, task) once through the engine's cache, keep the
evidence, and run every check over it -> `Verdict`s and a `GateReport`.

`Gate` serves the pytest plugin and ``evalkit gate`` alike; `run_gate` is its one-call form.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TextIO

from evalkit.core.metrics import PRIMARY_METRIC
from evalkit.data.tasks import Task, load_task
from evalkit.errors import DriftError, GateError, ManifestError, ModelLoadError, TaskError
from evalkit.gate.checks import CHECKS, check
from evalkit.gate.decisions import alpha_note, decide_alone, decide_model, plan_lines
from evalkit.gate.manifest import Case, Manifest, Thresholds, load
from evalkit.gate.records import Evidence, Failure, Verdict
from evalkit.gate.records import where as _where
from evalkit.gate.served import Serving
from evalkit.models.artifacts import Difference
from evalkit.gate.render import GateReport
from evalkit.gate.summary import golden, summarize
from evalkit.models.capture import captured, own_warning
from evalkit.models.loading import LoadedModel, load_model
from evalkit.run.cache import Cache
from evalkit.run.device import resolve_device
from evalkit.run.drift import DriftResult, drift, teacher_from_generations
from evalkit.run.engine import TaskResult, evaluate
from evalkit.run.generation import GenerationConfig, Phases, render_prompts
from evalkit.run.timing import fastest

if TYPE_CHECKING:
    from evalkit.core.decision import ModelDecision

__all__ = ["Gate", "run_gate", "select_cases", "verdict"]


def verdict(ev: Evidence, th: Thresholds, *, decision: ModelDecision | None = None,
            expect: Literal["pass", "fail"] = "pass", expected: Sequence[str] = ()) -> Verdict:
    """Every check of one (model, task), with its summary.

    decision: the model's statistical checks decided as one family (`Gate.decision`); None decides this (model,
    task) on its own, as a one-task family at the thresholds' alpha.
    """
    if decision is None and ev.error is None and ev.result is not None:
        decision = decide_alone(ev, th)
    checks = tuple(check(name, ev, th, decision) for name in CHECKS)
    v = Verdict(ev.model, ev.task, checks, expect, tuple(expected))
    return dataclasses.replace(v, summary=summarize(ev, v))


class Gate:
    """Loads each model once, evaluates each (model, task) once through the engine's cache, and keeps the evidence.

    One broken model never takes the others down: its load or evaluation error becomes its own failed checks.
    Models are evaluated on every task at first touch and kept in a small LRU (a variant and its parent together,
    for drift), so memory stays bounded on a zoo of any size.

    log: one line per step, for people. progress: called with (model, task) as each (model, task) is evaluated
    (or fails to be), for a progress bar; parents outside the reported cases count too. third_party: where the
    libraries' own output goes while they load, build, generate and measure drift (their progress bars, warnings,
    log records: `evalkit.models.capture`); None leaves it on the terminal (``--verbose``, and pytest, which
    captures it per test). on_model (an attribute, set after construction): called with a model's name once it is
    done (every task evaluated, drift against its parent measured, or its error kept), so a run folder can be
    written as the run goes and an interrupted run keeps what it finished.
    """

    def __init__(self, manifest: Manifest, *, device: str | None = None, limit: int | None = None,
                 log: Callable[[str], None] | None = None, progress: Callable[[str, str], None] | None = None,
                 max_loaded: int = 3, helper: bool = False, third_party: TextIO | None = None) -> None:
        self.manifest = manifest
        self.third_party = third_party
        self.device = resolve_device(device or manifest.gate.device)
        self.limit = limit
        self.log = log or (lambda _msg: None)
        self.progress = progress or (lambda _model, _task: None)
        self.on_model: Callable[[str], None] = lambda _model: None
        self.max_loaded = max(2, max_loaded)
        self.helper = helper  # a second process builds zoo variants and generates beside this one (2+ cores)
        self.timings: dict[str, float] = collections.defaultdict(float)
        self._loaded: collections.OrderedDict[str, LoadedModel] = collections.OrderedDict()
        self._tasks: dict[str, Task | Failure] = {}
        self._results: dict[tuple[str, str], TaskResult | Failure] = {}  # (model, task) -> result or why not
        self._drift: dict[tuple[str, str], DriftResult | Failure | None] = {}  # (model, task) -> drift or why not
        self._artifacts: dict[tuple[str, str], tuple[Difference, ...]] = {}  # (model, task) -> vs the parent's
        self._model_errors: dict[str, Failure] = {}
        self._verdicts: dict[tuple[str, str], Verdict] = {}
        self._decisions: dict[str, ModelDecision] = {}
        self._identities: dict[str, dict[str, str]] = {}
        self._cache: Cache | None = None
        self.served = Serving(self)  # issue 16: the models of a serving backend (vllm, openai; evalkit.gate.served)
        self._started = time.perf_counter()

    # -- public ----------------------------------------------------------------------------------------------------

    def evidence(self, model: str, task: str) -> Evidence:
        """The evidence for one (model, task), evaluating what is missing."""
        spec = self.manifest.models[model]
        self._process(model)
        metric = self._metric(task)
        own = self._results.get((model, task))
        if not isinstance(own, TaskResult):
            return Evidence(model, task, None, metric, parent_name=spec.parent,
                            error=own or Failure("evaluation_error", f"{model} was not evaluated on {task}"))
        identity = self.identity(model, own)
        if spec.parent is None:
            return Evidence(model, task, own, metric, identity=identity)
        theirs = self._results.get((spec.parent, task))
        if not isinstance(theirs, TaskResult):
            return Evidence(model, task, own, metric, parent_name=spec.parent,
                            parent_error=theirs or Failure("", "not evaluated"), identity=identity)
        d = self._drift.get((model, task))
        return Evidence(model, task, own, metric, parent_name=spec.parent, parent=theirs,
                        drift=d if isinstance(d, DriftResult) else None,
                        drift_error=d if isinstance(d, Failure) else None, identity=identity,
                        artifacts=self._artifacts.get((model, task)),
                        speed=self._speed(model, spec.parent))

    def _speed(self, model: str, parent: str) -> tuple[Phases, Phases] | None:
        """Issue 18: each model's fastest phases over its tasks (`evalkit.run.timing.fastest`), for the speed check."""
        mine, theirs = (fastest(r.run.phases for t in self._tasks_of(m)
                                if isinstance(r := self._results.get((m, t)), TaskResult)) for m in (model, parent))
        return (mine, theirs) if mine is not None and theirs is not None else None

    def done(self, model: str, task: str) -> tuple[TaskResult | Failure | None, DriftResult | Failure | None]:
        """What is known of (model, task) so far, evaluating nothing: its result (or why not) and its drift."""
        return self._results.get((model, task)), self._drift.get((model, task))

    def identity(self, model: str, result: TaskResult) -> dict[str, str]:
        """What a snapshot records of an evaluated checkpoint, so that a swapped one always shows in review: its
        content fingerprint; for a zoo variant built on this machine, the key of its build instead (committed
        parent, recipe, breakage, library versions), since GPTQ and AWQ bytes differ between CPU kinds while the
        build is the same."""
        if model not in self._identities:
            build = None
            if self.manifest.models[model].zoo_name is not None:
                from evalkit.zoo.build import recorded_build_key

                build = recorded_build_key(self._path(model))
            fingerprint = str(result.model.get("fingerprint") or "")
            self._identities[model] = ({"zoo_build": build[:16]} if build else
                                       {"fingerprint": fingerprint[:16]} if fingerprint else {})
        return self._identities[model]

    def decision(self, model: str) -> ModelDecision:
        """The statistical checks of every task of `model`, decided once as one family.

        The model's alpha is the run's alpha over every model of the manifest (parents and known-broken ones
        included), whatever --model, -k or --gate-limit select, so a model's verdict does not depend on which others
        are shown. Under pytest-xdist a model's tests are one work unit (`evalkit.pytest.scheduling`): one worker
        decides it.
        """
        if model not in self._decisions:
            tasks = self._tasks_of(model)
            thresholds = {t: self.manifest.thresholds(model, t) for t in tasks}
            alpha, size = self.manifest.gate.model_alpha(len(self.manifest.models), thresholds[tasks[0]].alpha)
            self._decisions[model] = decide_model({t: self.evidence(model, t) for t in tasks}, thresholds,
                                                  alpha=alpha, run_size=size, weights=self.manifest.gate.weights)
        return self._decisions[model]

    def verdict(self, model: str, task: str) -> Verdict:
        """All checks of one (model, task), computed once, its statistical checks from the model's decision."""
        if (model, task) not in self._verdicts:
            spec = self.manifest.models[model]
            ev = self.evidence(model, task)
            decision = self.decision(model) if ev.error is None else None
            self._verdicts[(model, task)] = verdict(ev, self.manifest.thresholds(model, task), decision=decision,
                                                    expect=spec.expect, expected=spec.diagnosis)
        return self._verdicts[(model, task)]

    def plan(self) -> list[str]:
        """The tasks that ask for fewer items on this device than their checks need, one line each (before any
        model runs: `evalkit.gate.decisions.plan_lines`)."""
        return plan_lines(self.manifest, self.device, self.limit)

    def golden(self, model: str, task: str) -> dict[str, str]:
        ev = self.evidence(model, task)
        if ev.result is None:
            raise GateError(f"{model} on {task}: no responses to snapshot ({ev.error})")
        return golden(ev.result, self.manifest.gate.golden)

    def report(self, cases: Iterable[Case] | None = None) -> GateReport:
        """Verdicts for `cases` (default: every case of the manifest), computing what is missing; the plan's lines
        (tasks asking for fewer items than their checks need) go to the log first."""
        started = time.perf_counter()
        for line in self.plan():
            self.log(f"plan: {line}")
        cases = list(cases or self.manifest.cases())
        with self._helping(cases) as helped:
            self.served.run([c.model for c in cases])  # issue 16: served models over their slots, parents first
            if helped:
                self._evaluate_ready_first(cases)
            verdicts = tuple(self.verdict(c.model, c.task) for c in cases)
        self.timings["total"] += time.perf_counter() - started
        return GateReport(verdicts, dict(self.timings), self.device, alpha_note(self.manifest))

    def computed(self) -> GateReport:
        """The verdicts computed so far (a pytest session's share), in manifest order."""
        done = [self._verdicts[(c.model, c.task)] for c in self.manifest.cases() if (c.model, c.task) in self._verdicts]
        return GateReport(tuple(done), {**self.timings, "total": time.perf_counter() - self._started}, self.device,
                          alpha_note(self.manifest))

    # -- evaluation --------------------------------------------------------------------------------------------------

    # --- issue 18: a second process builds zoo variants, then evaluates from the end of the plan --------------------

    def _plan(self, cases: Sequence[Case]) -> list[str]:
        """The models `cases` need, each parent before its variants."""
        from evalkit.core.lineage import with_ancestors

        return with_ancestors([c.model for c in cases], lambda n: self.manifest.models[n].parent)

    @contextlib.contextmanager
    def _helping(self, cases: Sequence[Case]) -> Iterator[bool]:
        """With ``helper`` and 2+ cores, a second process (`_helper`) works beside this one: it builds the zoo
        variants `cases` need (single-threaded by design, for deterministic bytes), then generates from the end of
        the plan into the shared cache until it meets models this process has done. Yields whether it runs. Every
        model still comes through `_path` and `evaluate` here, which read what the helper made (the same bytes:
        builds are deterministic and generations are the same code with the same settings), so the verdicts, the
        snapshot parts and the results are those of a gate without it."""
        plan = self._plan(cases)
        names = [z for m in plan if (z := self.manifest.models[m].zoo_name) is not None]
        if not self.helper or (os.cpu_count() or 1) < 2:
            yield False
            return
        import multiprocessing

        from evalkit.zoo.build import prebuild_order

        spawn = multiprocessing.get_context("spawn")
        stop = spawn.Event()
        local = [m for m in plan[::-1] if not self.served.serves(m)]  # served models generate in their servers
        worker = spawn.Process(target=_helper, daemon=True,
                               args=(self.manifest, self.device, self.limit, prebuild_order(names), local, stop))
        worker.start()
        try:
            yield True
        finally:
            stop.set()  # this process has everything: the helper ends after the build or task it is on
            worker.join(timeout=60)
            if worker.is_alive():
                worker.terminate()
                worker.join()

    def _evaluate_ready_first(self, cases: Sequence[Case]) -> None:
        """Evaluate the models `cases` need, each next one the first whose build is finished (else the first in
        order, built or waited for here): the verdicts that follow read these results in manifest order."""
        from evalkit.zoo.build import looks_built

        def ready(model: str) -> bool:
            name = self.manifest.models[model].zoo_name
            return name is None or looks_built(name)

        pending = self._plan(cases)
        while pending:
            self._process(next((m for m in pending if ready(m)), pending[0]))
            pending = [m for m in pending if m not in self._model_errors
                       and not all((m, t) in self._results for t in self._tasks_of(m))]

    def fill_cache(self, models: Sequence[str], stop: Callable[[], bool] = lambda: False) -> None:
        """Generate `models` on all their tasks into the cache, in order, passing over a model whose first task is
        there already (the gate's own process got to it first), until `stop()`: the helper's second half."""
        for model in models:
            if stop():
                return
            loaded = self._load(model)
            if loaded is None:
                continue
            for task in self._tasks_of(model):
                if stop():
                    return
                result = self._evaluate(model, loaded, task)
                if isinstance(result, TaskResult) and result.cache_hit:
                    break

    # --- end of issue 18's helper ---------------------------------------------------------------------------------

    def _metric(self, task: str) -> str:
        entry = self.manifest.tasks[task]
        if entry.metric:
            return entry.metric
        t = self._task(task)
        return PRIMARY_METRIC[t.family] if isinstance(t, Task) else "accuracy"

    def _task(self, name: str) -> Task | Failure:
        if name not in self._tasks:
            entry = self.manifest.tasks[name]
            limit = self.limit if self.limit is not None else entry.limit_for(self.device)
            try:
                self._tasks[name] = load_task(name, entry.source, limit=limit, seed=self.manifest.gate.seed)
            except TaskError as err:
                self._tasks[name] = Failure("evaluation_error", f"task {name}: {err}")
        return self._tasks[name]

    def _config(self) -> GenerationConfig:
        g = self.manifest.gate
        return GenerationConfig(max_new_tokens=g.max_new_tokens, batch_size=g.batch_size_for(self.device),
                                enable_thinking=g.enable_thinking, decoder=g.decoder)

    def _tasks_of(self, model: str) -> tuple[str, ...]:
        return self.manifest.models[model].tasks or tuple(self.manifest.tasks)

    def _process(self, model: str) -> None:
        """Evaluate `model` on all its tasks (and drift against its parent) unless done already."""
        if model in self._model_errors or all((model, t) in self._results for t in self._tasks_of(model)):
            return
        if self.served.serves(model):  # its whole family at once, so each parent's server is up for its variants
            root = self.manifest.root_of(model)
            self.served.run([m for m in self.manifest.models if self.manifest.root_of(m) == root])
            return
        spec = self.manifest.models[model]
        if spec.parent is not None:
            self._process(spec.parent)
        loaded = self._load(model)
        served_parent = spec.parent is not None and self.served.serves(spec.parent)  # issue 16: no weights here
        parent = self._load(spec.parent) if loaded is not None and spec.parent is not None and not served_parent \
            else None
        if loaded is not None and parent is not None:  # before any generation: the cheap root causes first
            self._compare_artifacts(model, loaded, parent)
        for t in self._tasks_of(model):
            result = self._model_errors[model] if loaded is None else self._evaluate(model, loaded, t)
            self._results[(model, t)] = result
            self.progress(model, t)
        if loaded is not None and spec.parent is not None and spec.parent not in self._model_errors:
            parent = None if served_parent else self._load(spec.parent)
            for t in self._tasks_of(model):
                self._drift[(model, t)] = Failure("backend_mismatch", f"{spec.parent} is gated through a server and "
                                                  f"{model} by the transformers backend: drift compares one engine's "
                                                  "distributions") if served_parent else \
                    self._compute_drift(model, loaded, parent, spec.parent, t)
        self.on_model(model)

    def _compare_artifacts(self, model: str, loaded: Any, parent: Any) -> None:
        """Differences from the parent's artifacts, per task: the model's own (tokenizer, template, generation
        config, architecture), then the first item whose rendered prompt differs. `loaded`, `parent`: LoadedModels,
        or a served model's `ServedModel` (its config and generation config stand in for the weights')."""
        from evalkit.models.artifacts import compare, compare_prompts, describe

        own = compare(*(describe(m.model if m.model is not None else m, m.tokenizer) for m in (loaded, parent)))
        for t in self._tasks_of(model):
            task = self._task(t)
            prompts = None
            if isinstance(task, Task):
                mine, theirs = (render_prompts(m.tokenizer, task.items, self._config()) for m in (loaded, parent))
                prompts = compare_prompts([(p.item_id, p.text, p.token_ids) for p in mine],
                                          [(p.item_id, p.text, p.token_ids) for p in theirs])
            self._artifacts[(model, t)] = own + ((prompts,) if prompts else ())

    def _load(self, model: str) -> LoadedModel | None:
        if model in self._model_errors:
            return None
        if model in self._loaded:
            self._loaded.move_to_end(model)
            return self._loaded[model]
        started = time.perf_counter()
        spec = self.manifest.models[model]
        try:
            try:
                path = self._path(model)
                with captured(self.third_party):
                    loaded = load_model(path, device=self.device, dtype=spec.dtype or self.manifest.gate.dtype,
                                        base=spec.base)
            except ModelLoadError as err:
                self._model_errors[model] = Failure("load_error", str(err))
                return None
        except Exception as err:  # noqa: BLE001 - one broken model must not take down the others
            self._model_errors[model] = Failure("load_error", f"{type(err).__name__}: {err}")
            return None
        finally:
            self.timings["load"] += time.perf_counter() - started
        self.log(f"loaded {model} ({loaded.format}) in {time.perf_counter() - started:.1f}s")
        self._loaded[model] = loaded
        while len(self._loaded) > self.max_loaded:
            self._loaded.popitem(last=False)
        return loaded

    def _path(self, model: str) -> Path:
        spec = self.manifest.models[model]
        name = spec.zoo_name
        if name is None:
            return Path(spec.path)
        from evalkit.zoo.build import build

        with captured(self.third_party):
            return build(only=[name], log=self.log)[name]

    def _evaluate(self, model: str, loaded: LoadedModel, task: str) -> TaskResult | Failure:
        t = self._task(task)
        if isinstance(t, Failure):
            return t
        if self._cache is None:
            self._cache = Cache(self.manifest.gate.cache)
        started = time.perf_counter()
        try:
            with captured(self.third_party):
                result = evaluate(loaded, t, self._config(), cache=self._cache)
        except Exception as err:  # noqa: BLE001
            return Failure("evaluation_error", f"{type(err).__name__}: {err}", where=_where(err))
        finally:
            self.timings["generate"] += time.perf_counter() - started
        self.log(f"evaluated {model} on {task}: {len(result.records)} items "
                 f"({'cache' if result.cache_hit else f'{result.run.seconds:.1f}s'})")
        return result

    def _compute_drift(self, model: str, loaded: LoadedModel, parent: LoadedModel | None, parent_name: str,
                       task: str) -> DriftResult | Failure | None:
        theirs = self._results.get((parent_name, task))
        if parent is None or not isinstance(theirs, TaskResult):
            return None
        vocab = self._vocabulary_mismatch(model, parent_name, task)
        if vocab is not None:
            return vocab
        started = time.perf_counter()
        try:
            seqs = teacher_from_generations(parent.tokenizer, theirs.run.generations[: self.manifest.gate.drift_limit],
                                            plain=theirs.prompt_mode == "plain")
            with captured(self.third_party):
                return drift(loaded, parent, seqs)
        except DriftError as err:
            return Failure("drift_error", str(err))
        except Exception as err:  # noqa: BLE001
            return Failure("drift_error", f"{type(err).__name__}: {err}", where=_where(err))
        finally:
            self.timings["drift"] += time.perf_counter() - started


    def _vocabulary_mismatch(self, model: str, parent_name: str, task: str) -> Failure | None:
        """Why drift is not computed when the artifacts check found other vocabularies (their next-token
        distributions do not compare), else None."""
        differences = self._artifacts.get((model, task), ())
        vocab = next((d for d in differences if d.diagnosis == "tokenizer_mismatch" and d.detail.startswith("vocab")),
                     None)
        if vocab is None:
            return None
        return Failure("tokenizer_mismatch", f"{model} and {parent_name} have different vocabularies ({vocab.detail})")


def _helper(manifest: Manifest, device: str, limit: int | None, builds: Sequence[str], models: Sequence[str],
            stop: Any) -> None:
    """The second process of a gate with ``helper`` (`Gate._helping`): builds, then generations, nothing printed, on
    one thread (the gate's process keeps its own; replies do not depend on the thread count: docs/gate.md)."""
    import torch

    from evalkit.zoo.build import prebuild

    torch.set_num_threads(1)
    prebuild(builds, stop=stop.is_set)  # quiet: this process's output goes nowhere from here on
    terminal = sys.__stderr__  # but evalkit's own warnings (a damaged cache entry it regenerates) reach the user

    def show(message: Any, *_args: Any, **_kwargs: Any) -> None:
        own_warning(message, terminal)

    warnings.showwarning = show
    Gate(manifest, device=device, limit=limit).fill_cache(models, stop=stop.is_set)






def run_gate(manifest: Manifest | str | Path, *, device: str | None = None, limit: int | None = None,
             models: Sequence[str] | None = None, log: Callable[[str], None] | None = None) -> GateReport:
    """Run the gate over a manifest and return its report (``report.summary()`` prints it; ``report.exit_code``).

    models: only these models (their parents are evaluated as needed, but not reported).
    """
    m = manifest if isinstance(manifest, Manifest) else load(manifest)
    return Gate(m, device=device, limit=limit, log=log).report(select_cases(m, models))


def select_cases(manifest: Manifest, models: Sequence[str] | None = None) -> list[Case]:
    """The manifest's cases, or only those of `models`; an unknown name is a `ManifestError` naming the known ones.

    >>> from evalkit.gate.manifest import loads
    >>> m = loads("[tasks.t]\\n[models.p]\\npath='p'\\n[models.v]\\npath='v'\\nparent='p'\\n")
    >>> [c.id for c in select_cases(m, ["v"])]
    ['v-t']
    """
    unknown = sorted(set(models or ()) - set(manifest.models))
    if unknown:
        raise ManifestError(f"unknown model(s) {unknown}; the manifest {manifest.source} has "
                            f"{', '.join(manifest.models)}")
    return [c for c in manifest.cases() if not models or c.model in models]
