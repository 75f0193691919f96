"""The ``evalkit`` subcommands: each reads its parsed arguments and calls the library (`evalkit.cli.parser`
declares them, `evalkit.cli.dispatch` runs them). A MODEL argument becomes a `evalkit.models.description.ModelSpec`;
a zoo variant brings its parent chain."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from evalkit import zoo
from evalkit.core.lineage import with_ancestors
from evalkit.data.tasks import Task, load_task
from evalkit.errors import CLIError, EvalkitError
from evalkit.gate.manifest import (DEFAULT_MANIFEST, ZOO_SCHEME, Case, GateSettings, Manifest, ModelSpec, TaskEntry,
                                   load)
from evalkit.gate import serving
from evalkit.gate.preflight import check_manifest, check_model_name, check_run, check_tasks
from evalkit.gate.render import GateReport
from evalkit.gate.runner import Gate, select_cases
from evalkit.models.calibration import ChatExamples, load_chat_examples
from evalkit.models.capture import captured
from evalkit.models.description import describe
from evalkit.models.loading import check_dtype, detect_format, load_model, resolve_adapter_base
from evalkit.models.recipes import RECIPES
from evalkit.report.runfolder import check_target
from evalkit.report.rundir import load_run
from evalkit.report.text import render_compare, render_debug
from evalkit.report.writer import RunRecorder, write_reports
from evalkit.run.cache import Cache
from evalkit.run.device import check_device, resolve_device
from evalkit.run.engine import evaluate
from evalkit.run.generation import GenerationConfig, eos_token_ids

__all__ = ["cmd_compare", "cmd_debug", "cmd_eval", "cmd_gate", "cmd_quantize", "cmd_report", "cmd_zoo_build",
           "cmd_zoo_list", "parse_models"]


def parse_models(specs: Sequence[str], parents: Sequence[str] = (), *, with_zoo_parents: bool = True
                 ) -> list[ModelSpec]:
    """MODEL arguments -> model descriptions; a zoo variant brings its parent (so drift and recovery have a
    reference).

    >>> [(m.name, m.parent) for m in parse_models(["zoo:base_gptq_w4g64"])]
    [('base', None), ('base_gptq_w4g64', 'base')]
    >>> [(m.name, str(m.path)) for m in parse_models(["a=/m/x", "/m/y"])]
    [('a', '/m/x'), ('y', '/m/y')]
    """
    refs: dict[str, ModelSpec] = {}

    def add(ref: ModelSpec) -> None:
        try:
            check_model_name(ref.name, "model name")
        except EvalkitError as err:
            raise CLIError(f"{err}; name it with NAME=FOLDER") from None
        if ref.name in refs and refs[ref.name] != ref:
            raise CLIError(f"model name {ref.name!r} is used twice; name them apart with NAME=FOLDER")
        refs[ref.name] = ref

    for spec in specs:
        if spec.startswith(ZOO_SCHEME):
            wanted = spec[len(ZOO_SCHEME):]
            names = list(zoo.VARIANTS) if wanted == "all" else [zoo.variant(wanted).name]
            for name in with_ancestors(names, zoo.parent_of) if with_zoo_parents else names:
                add(zoo.spec(name))
            continue
        name, sep, path = spec.partition("=")
        if not sep:
            name, path = Path(spec).name or spec, spec
        if not name or not path:
            raise CLIError(f"model {spec!r}: expected FOLDER, NAME=FOLDER or zoo:NAME")
        add(ModelSpec(name, Path(path)))
    out = list(refs.values())
    for item in parents:
        variant, sep, parent = item.partition("=")
        if not sep or variant not in refs or parent not in refs:
            raise CLIError(f"--parent {item!r}: expected VARIANT=PARENT with both names among the models "
                           f"({', '.join(refs)})")
        out = [dataclasses.replace(m, parent=parent) if m.name == variant else m for m in out]
    return out


def _resolve_paths(refs: Sequence[ModelSpec], log: Callable[[str], None]) -> dict[str, Path]:
    """Folder of every model: zoo models are built (or found up to date) first; folders are checked, not loaded."""
    zoo_names = [r.zoo_name for r in refs if r.zoo_name]
    built = zoo.build(only=zoo_names, log=log) if zoo_names else {}
    paths = {}
    for r in refs:
        path = built[r.zoo_name] if r.zoo_name else Path(r.path)
        detect_format(path)  # raises ModelLoadError naming the folder and the fix
        if (path / "adapter_config.json").exists():
            resolve_adapter_base(path)  # an adapter whose base is not on disk: now, not after the other models
        paths[r.name] = path
    return paths


def _settings(args: argparse.Namespace) -> GateSettings:
    return GateSettings(device=args.device, dtype=args.dtype, max_new_tokens=args.max_new_tokens,
                        batch_size=args.batch_size, enable_thinking=args.thinking, decoder=args.decoder,
                        cache=Path(args.cache), seed=args.seed)


def _manifest(refs: Sequence[ModelSpec], paths: dict[str, Path], tasks: Sequence[str], args: argparse.Namespace,
              source: str) -> Manifest:
    """A gate manifest built from the command line (default thresholds), so eval and compare reuse the gate's run."""
    task_entries = {t: TaskEntry(t, source=args.data, limit=args.limit) for t in tasks}
    models = {r.name: ModelSpec(r.name, paths[r.name], parent=r.parent) for r in refs}
    return Manifest(source=source, gate=_settings(args), tasks=task_entries, models=models)


def _check_tasks(tasks: Sequence[str], args: argparse.Namespace) -> None:
    """Load each task once before any model is loaded, so an unknown task or a bad data file fails fast."""
    for t in tasks:
        load_task(t, args.data, limit=args.limit, seed=args.seed)


def _check_generation(args: argparse.Namespace) -> str:
    """The device and dtype of the command line, checked before anything loads; returns the device."""
    check_dtype(args.dtype)
    return check_device(args.device)


@contextlib.contextmanager
def _progress(total: int, quiet: bool, verbose: bool
              ) -> Iterator[tuple[Callable[[str], None], Callable[[str, str], None], io.StringIO | None]]:
    """A progress bar over `total` (model, task) evaluations on a terminal, else one line per step; yields the
    (log, progress, third_party) of `evalkit.gate.runner.Gate`.

    Unless `verbose`, the libraries' own output (their bars, warnings, log records) is captured with evalkit's steps
    into the gate's log (the run folder's run.log), so the terminal shows one bar and the table."""
    from tqdm import tqdm

    bar = tqdm(total=total, unit="eval", desc="evaluating", file=sys.stderr,
               disable=True if quiet else not sys.stderr.isatty(), dynamic_ncols=True)
    sink = None if verbose else io.StringIO()
    terminal = sys.stderr  # now: the capture swaps sys.stderr process-wide, and served slots log from threads

    def log(message: str) -> None:  # not a terminal (CI logs): one line per step instead of a bar
        if sink is not None:
            sink.write(f"evalkit: {message}\n")
        if bar.disable and not quiet:
            print(message, file=terminal, flush=True)

    def progress(model: str, task: str) -> None:
        bar.update(1)
        bar.set_postfix_str(f"{model} on {task}", refresh=True)

    try:
        yield log, progress, sink
    finally:
        bar.close()


@dataclasses.dataclass(frozen=True)
class _Output:
    """Where `_run_gate` writes its run folder (None: nowhere), how it records it there, and whether the
    libraries' own output stays on the terminal (``--verbose``) instead of going to run.log."""

    out: Path | None
    record: Callable[[Gate, Path], RunRecorder] | None = None
    verbose: bool = False


def _run_gate(manifest: Manifest, cases: Sequence[Case], *, device: str | None, limit: int | None, quiet: bool,
              output: _Output) -> tuple[GateReport, list[str]]:
    """Evaluate every case through `evalkit.gate.runner.Gate` with one progress bar, writing the run folder as it
    goes (`evalkit.report.writer.RunRecorder`, run.log included); returns (report, errors met)."""
    with _progress(len({(c.model, c.task) for c in cases}), quiet, output.verbose) as (log, progress, sink):
        gate = Gate(manifest, device=device, limit=limit, log=log, progress=progress, helper=True, third_party=sink)
        if output.out is None or output.record is None:
            return gate.report(cases), []
        try:
            with output.record(gate, output.out) as recorder:
                report = gate.report(cases)
                return report, recorder.finish(report)
        except KeyboardInterrupt:
            print(f"{output.out}/ keeps the results finished so far and says the run is incomplete; evalkit report "
                  f"{output.out} reads it", file=sys.stderr)
            raise


def cmd_eval(args: argparse.Namespace) -> int:
    tasks = _split(args.task)
    refs = parse_models(args.models, args.parent)
    _check_generation(args)
    _check_tasks(tasks, args)
    out = Path(args.out or f"runs/eval-{time.strftime('%Y%m%d-%H%M%S')}")
    check_target(out)  # before any model is built or loaded
    log = _logger(args.quiet)
    paths = _resolve_paths(refs, log)
    described = {r.name: describe(r, paths[r.name]) for r in refs}
    manifest = _manifest(refs, paths, tasks, args, "evalkit eval (command line)")
    check_manifest(manifest)
    started = time.perf_counter()
    cases = manifest.cases()
    report, errors = _run_gate(manifest, cases, device=None, limit=args.limit, quiet=args.quiet, output=_Output(
        out, lambda gate, folder: RunRecorder(folder, gate, described.__getitem__, name=args.name, argv=args.argv,
                                              cases=cases), args.verbose))
    if not args.quiet:
        print(report.summary())
    print(f"wrote {out}/ ({len(report.verdicts)} model x task results in {time.perf_counter() - started:.1f}s); "
          f"next: evalkit report {out}")
    for e in errors:
        print(f"evalkit eval: error: {e}", file=sys.stderr)
    return 2 if errors else 0


def _require_engines(m: Manifest, cases: Sequence[Case]) -> None:
    """A gate that needs vLLM servers and has no vLLM interpreter is a setup error (one line, exit 2), not one
    backend_error per model (issue 16)."""
    if any(serving.backend_of(m, name) == "vllm" for name in m.with_ancestors([c.model for c in cases])):
        from evalkit.run.backends.vllm import VLLMConfig, unavailable

        reason = unavailable(VLLMConfig(python=m.backends.vllm.python))
        if reason:
            raise CLIError(f"backend vllm: {reason} (or gate with --backend transformers)")


def cmd_gate(args: argparse.Namespace) -> int:
    m = serving.override(load(Path(args.zoo) if args.zoo else DEFAULT_MANIFEST), backend=args.backend,
                         vllm_python=args.vllm_python, servers=args.servers, base_urls=args.base_url)  # issue 16
    device = check_run(m, args.device)
    cases = select_cases(m, args.model)
    _require_engines(m, cases)
    check_tasks(m, limit=args.limit, device="cuda" if device.startswith("cuda") else "cpu")
    out = None if args.out == "" else Path(args.out or "runs/gate")
    if out is not None:
        check_target(out)

    def described(name: str) -> ModelSpec:
        spec = m.models[name]
        return describe(spec, zoo.variant_path(spec.zoo_name) if spec.zoo_name else spec.path)

    report, errors = _run_gate(m, cases, device=args.device, limit=args.limit, quiet=args.quiet, output=_Output(
        out, lambda gate, folder: RunRecorder(folder, gate, described, name=args.name or "gate", argv=args.argv,
                                              cases=cases), args.verbose))
    print(report.summary())
    if out is not None:
        for e in errors:
            print(f"evalkit gate: {e}", file=sys.stderr)
        if args.report:
            paths = write_reports(out)
            print(f"report: {paths.markdown}, {paths.html}, {paths.csv}")
        else:
            print(f"wrote {out}/; evalkit report {out} writes the CSV, Markdown and HTML reports")
    return report.exit_code


def cmd_report(args: argparse.Namespace) -> int:
    paths = write_reports(args.run_dir, args.out, combine=args.combine)
    if args.markdown:
        print(paths.markdown.read_text(encoding="utf-8"))
    print(f"wrote {paths.csv}\nwrote {paths.markdown}\nwrote {paths.html}")
    if paths.lm_eval:
        print(f"wrote {len(paths.lm_eval)} lm-evaluation-harness results file(s) under {paths.lm_eval[0].parents[1]}/")
    incomplete = load_run(args.run_dir).incomplete if not args.combine else ""
    if incomplete:
        print(f"note: {args.run_dir}: {incomplete}")
    return 0


def cmd_debug(args: argparse.Namespace) -> int:
    if args.n < 1:
        raise CLIError(f"-n must be >= 1, got {args.n}")
    tasks = _split(args.task)
    if len(tasks) != 1:
        raise CLIError(f"debug shows one task at a time; got {', '.join(tasks)}")
    device = _check_generation(args)
    task = load_task(tasks[0], args.data, limit=args.n, seed=args.seed)
    ref = parse_models([args.model], with_zoo_parents=False)[-1]
    path = _resolve_paths([ref], _logger(True))[ref.name]
    config = GenerationConfig(max_new_tokens=args.max_new_tokens, batch_size=args.batch_size,
                              enable_thinking=args.thinking, decoder=args.decoder)
    with captured(None if args.verbose else io.StringIO()):  # the libraries' own output: --verbose shows it
        loaded = load_model(path, device=resolve_device(device), dtype=args.dtype)
        result = evaluate(loaded, task, config, cache=Cache(args.cache) if args.cache else None)
    stops = eos_token_ids(loaded.model, loaded.tokenizer)
    stop_tokens = tuple(loaded.tokenizer.convert_ids_to_tokens(list(stops)))
    specials = tuple(getattr(loaded.tokenizer, "all_special_tokens", ()) or ())
    print(render_debug(result, show_prompt=args.show_prompt, stop_tokens=stop_tokens, special_tokens=specials))
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    if args.run:
        run = load_run(args.run)
        for name in (args.variant, args.parent):
            if name not in run.models:
                raise CLIError(f"model {name!r} is not in the run {args.run} (it has {', '.join(run.models)})")
    else:
        if not args.task:
            raise CLIError("compare needs --task (or --run RUN_DIR to compare two models of a finished run)")
        _check_generation(args)
        out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="evalkit-compare-"))
        check_target(out)
        eval_args = argparse.Namespace(**{**vars(args), "models": [args.parent, args.variant], "parent": [],
                                          "name": "compare", "quiet": True})
        refs = parse_models(eval_args.models, with_zoo_parents=False)
        parent_ref, variant_ref = refs[0], refs[-1]
        if parent_ref.name == variant_ref.name:
            raise CLIError("VARIANT and PARENT are the same model")
        refs = [dataclasses.replace(parent_ref, parent=None), dataclasses.replace(variant_ref, parent=parent_ref.name)]
        tasks = _split(args.task)
        _check_tasks(tasks, eval_args)
        paths = _resolve_paths(refs, _logger(True))
        described = {r.name: describe(r, paths[r.name]) for r in refs}
        manifest = _manifest(refs, paths, tasks, eval_args, "evalkit compare (command line)")
        check_manifest(manifest)
        cases = manifest.cases()
        _, errors = _run_gate(manifest, cases, device=None, limit=args.limit, quiet=True, output=_Output(
            out, lambda gate, folder: RunRecorder(folder, gate, described.__getitem__, name="compare",
                                                  argv=args.argv, cases=cases), args.verbose))
        if errors:
            raise CLIError("; ".join(errors))
        run = load_run(out)
        args.variant, args.parent = variant_ref.name, parent_ref.name
    print(render_compare(run, args.variant, args.parent))
    return 0


def cmd_quantize(args: argparse.Namespace) -> int:
    from evalkit.models.quantization import check_output, quantize

    if args.list:
        for r in RECIPES.values():
            bits = f"W{r.weight_bits}" + (f"A{r.activation_bits}" if r.activation_bits else "")
            print(f"{r.name:<18} {bits:<6} {r.description}")
        return 0
    if not args.model or not args.recipe or not args.out:
        raise CLIError("quantize needs MODEL, --recipe and --out (evalkit quantize --list shows the recipes)")
    RECIPES.get(args.recipe)
    device = check_device(args.device)
    ref = parse_models([args.model], with_zoo_parents=False)[-1]
    source = zoo.variant_path(ref.zoo_name) if ref.zoo_name else Path(ref.path)
    check_output(args.out, sources=[source], force=args.force)  # before anything is built, loaded or written
    calibration = _calibration(args)
    path = _resolve_paths([ref], _logger(args.quiet))[ref.name]
    started = time.perf_counter()
    sink = None if args.verbose else io.StringIO()
    with captured(sink):  # llmcompressor's log and bars: in quantize.log beside the model, or shown with --verbose
        out = quantize(path, args.recipe, args.out, calibration=calibration, n_calibration=args.n_calibration,
                       seed=args.seed, device=resolve_device(device))
    if sink is not None:
        (out / "quantize.log").write_text(sink.getvalue(), encoding="utf-8")
    print(f"wrote {out} ({args.recipe}, calibrated on {_calibrated_on(calibration, args.n_calibration)}, "
          f"{time.perf_counter() - started:.1f}s); provenance in {out / 'provenance.json'}")
    return 0


def _calibrated_on(calibration: Task | ChatExamples | None, n: int) -> str:
    if isinstance(calibration, ChatExamples):
        return f"{len(calibration.conversations)} chat examples of {calibration.source}"
    if isinstance(calibration, Task):
        return f"{len(calibration.items)} {calibration.name} rows of {calibration.source}"
    return f"{n} zoo training items"


def _calibration(args: argparse.Namespace) -> Task | ChatExamples | None:
    """The calibration set quantize was given: a task's rows, chat examples, or None (the zoo's training items)."""
    if args.chat and args.task:
        raise CLIError("calibrate on --task rows or on --chat examples, not both")
    if args.chat:
        return load_chat_examples(args.chat, args.n_calibration, seed=args.seed)
    if args.task:
        return load_task(args.task, args.data, limit=args.n_calibration, seed=args.seed)
    if args.data:
        raise CLIError("--data says where --task's rows come from; pass --task too (or --chat for conversations)")
    return None


def cmd_zoo_build(args: argparse.Namespace) -> int:
    check_device(args.device)
    started = time.perf_counter()
    paths = zoo.build(args.zoo_dir, args.cache_dir, only=args.only or None, device=_device(args.device),
                      log=_logger(False))
    for name, path in paths.items():
        print(f"{name:<48} {path}")
    print(f"{len(paths)} zoo models ready in {time.perf_counter() - started:.1f}s")
    return 0


def cmd_zoo_list(args: argparse.Namespace) -> int:
    for name, v in zoo.VARIANTS.items():
        path = zoo.variant_path(name, args.zoo_dir, args.cache_dir)
        state = "present" if path.is_dir() else "not built" if v.kind in ("quantized", "broken", "mutation") else "missing"
        print(f"{name:<48} {v.kind:<9} parent {v.parent:<32} {state}")
        if v.expected:
            print(f"{'':<48} expected failure: {v.expected}")
    return 0


def _split(values: Sequence[str]) -> list[str]:
    """--task a --task b,c -> [a, b, c] (order kept, duplicates dropped); no name at all is an error."""
    tasks = list(dict.fromkeys(t.strip() for v in values for t in v.split(",") if t.strip()))
    if values and not tasks:
        raise CLIError(f"--task {' '.join(map(repr, values))} names no task; pass task names, e.g. --task zoo_math")
    return tasks


def _device(device: str) -> str:
    return resolve_device(device)


def _logger(quiet: bool) -> Callable[[str], None]:
    return (lambda _m: None) if quiet else (lambda m: print(m, file=sys.stderr))
