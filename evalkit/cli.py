"""The ``evalkit`` console script: thin subcommands over the library.

    evalkit eval MODEL... --task T [--limit N] --out runs/NAME   evaluate models x tasks into a run folder
    evalkit report runs/NAME                                      metrics_summary.csv, report.md, report.html
    evalkit debug MODEL --task T -n 5                             each response: extraction, diagnosis, score
    evalkit compare VARIANT PARENT --task T                       metrics side by side, drift, paired test
    evalkit gate [--zoo MANIFEST]                                 the gate over a manifest (default: the fixture zoo)
    evalkit quantize MODEL --recipe gptq-w4g64 --out DIR          a named llmcompressor recipe
    evalkit zoo build | zoo list                                  the fixture zoo's variants

A MODEL is a folder, ``NAME=FOLDER``, or ``zoo:NAME`` (a fixture-zoo model, built on first use; ``zoo:all`` is every
zoo model). Errors from the library (a bad model folder, an unknown task, a malformed manifest) print one line on
stderr and exit with status 2; the gate exits 1 when a verdict is not as expected.

`main` sets the process environment before torch is imported (an entry point may; ``import evalkit`` never does):
OpenMP threads wait passively, a deliberate thread count, and Hugging Face offline unless the caller says otherwise.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalkit.manifest import DEFAULT_MANIFEST  # stdlib only: costs the CLI's start-up nothing

__all__ = ["main", "build_parser", "CLIError"]

REPO = Path(__file__).resolve().parents[1]


class CLIError(Exception):
    """A bad command line that argparse cannot see (e.g. a model name used twice); printed as one line."""


# ------------------------------------------------------------------------------------------------ environment


def _prepare_environment(threads: int | None, *, verbose: bool = False) -> int:
    """Environment for torch, set before it is imported. Returns the thread count in force.

    Two cores shared by several processes: OpenMP's busy-waiting slowed torch up to 10x, so threads wait passively.
    The thread count is deliberate: --threads, else $OMP_NUM_THREADS, else every core. Unless --verbose, the
    libraries' own per-module progress bars (weight loading, compression) are off; evalkit shows one bar per run.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if not verbose:
        os.environ.setdefault("TQDM_DISABLE", "1")  # tqdm reads TQDM_* defaults; evalkit's own bar overrides it
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        os.environ.setdefault(var, "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if threads is not None:
        os.environ["OMP_NUM_THREADS"] = str(threads)
    n = int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1)
    os.environ.setdefault("OMP_NUM_THREADS", str(n))
    if threads is not None and "torch" in sys.modules:  # already imported (main called in-process)
        sys.modules["torch"].set_num_threads(threads)
    return n


def _library_errors() -> tuple[type[BaseException], ...]:
    """Exceptions the library raises for bad input: each becomes one line on stderr and exit status 2."""
    from evalkit.drift import DriftError
    from evalkit.loading import ModelLoadError
    from evalkit.manifest import ManifestError
    from evalkit.quantization import QuantizationError
    from evalkit.rundir import RunError
    from evalkit.tasks import TaskError
    from evalkit.zoo import ZooError

    return (CLIError, RunError, ModelLoadError, TaskError, ManifestError, QuantizationError, ZooError, DriftError)


# ------------------------------------------------------------------------------------------------ models


@dataclass(frozen=True)
class ModelRef:
    """A model named on the command line: its name in the run, and a folder or a zoo name."""

    name: str
    path: Path | None
    zoo: str | None = None  # zoo model name (built on demand)
    parent: str | None = None


def parse_models(specs: Sequence[str], parents: Sequence[str] = (), *, with_zoo_parents: bool = True) -> list[ModelRef]:
    """MODEL arguments -> ModelRefs; a zoo variant brings its parent (so drift and recovery have a reference).

    >>> [(m.name, m.parent) for m in parse_models(["zoo:base_gptq_w4g64"])]
    [('base', None), ('base_gptq_w4g64', 'base')]
    >>> [(m.name, str(m.path)) for m in parse_models(["a=/m/x", "/m/y"])]
    [('a', '/m/x'), ('y', '/m/y')]
    """
    from evalkit import zoo
    from evalkit.manifest import ZOO_SCHEME

    refs: dict[str, ModelRef] = {}

    def add(ref: ModelRef) -> None:
        if ref.name in refs and refs[ref.name] != ref:
            raise CLIError(f"model name {ref.name!r} is used twice; name them apart with NAME=FOLDER")
        refs[ref.name] = ref

    for spec in specs:
        if spec.startswith(ZOO_SCHEME):
            wanted = spec[len(ZOO_SCHEME):]
            names = list(zoo.VARIANTS) if wanted == "all" else [zoo.variant(wanted).name]
            for name in names:
                chain = [name]
                while with_zoo_parents and zoo.variant(chain[-1]).parent != chain[-1]:
                    chain.append(zoo.variant(chain[-1]).parent)
                for n in reversed(chain):
                    p = zoo.variant(n).parent
                    add(ModelRef(n, None, zoo=n, parent=None if p == n else p))
            continue
        name, sep, path = spec.partition("=")
        if not sep:
            name, path = Path(spec).name or spec, spec
        if not name or not path:
            raise CLIError(f"model {spec!r}: expected FOLDER, NAME=FOLDER or zoo:NAME")
        add(ModelRef(name, Path(path)))
    out = list(refs.values())
    for item in parents:
        variant, sep, parent = item.partition("=")
        if not sep or variant not in refs or parent not in refs:
            raise CLIError(f"--parent {item!r}: expected VARIANT=PARENT with both names among the models "
                           f"({', '.join(refs)})")
        out = [ModelRef(m.name, m.path, m.zoo, parent) if m.name == variant else m for m in out]
    return out


def _resolve_paths(refs: Sequence[ModelRef], log: Callable[[str], None]) -> dict[str, Path]:
    """Folder of every model: zoo models are built (or found up to date) first; folders are checked, not loaded."""
    from evalkit import zoo
    from evalkit.loading import detect_format

    zoo_names = [r.zoo for r in refs if r.zoo]
    built = zoo.build(only=zoo_names, log=log) if zoo_names else {}
    paths = {}
    for r in refs:
        path = built[r.zoo] if r.zoo else r.path
        assert path is not None
        detect_format(path)  # raises ModelLoadError naming the folder and the fix
        paths[r.name] = path
    return paths


# ------------------------------------------------------------------------------------------------ the gate engine


def _settings(args: argparse.Namespace) -> Any:
    from evalkit.manifest import GateSettings

    return GateSettings(device=args.device, dtype=args.dtype, max_new_tokens=args.max_new_tokens,
                        batch_size=args.batch_size, enable_thinking=args.thinking, decoder=args.decoder,
                        cache=Path(args.cache), seed=args.seed)


def _manifest(refs: Sequence[ModelRef], paths: dict[str, Path], tasks: Sequence[str], args: argparse.Namespace,
              source: str) -> Any:
    """A gate manifest built from the command line (default thresholds), so eval and compare reuse the gate's run."""
    from evalkit.manifest import Manifest, ModelSpec, TaskEntry

    task_entries = {t: TaskEntry(t, source=args.data, limit=args.limit) for t in tasks}
    models = {r.name: ModelSpec(r.name, paths[r.name], parent=r.parent) for r in refs}
    return Manifest(source=source, gate=_settings(args), tasks=task_entries, models=models)


def _check_tasks(tasks: Sequence[str], args: argparse.Namespace) -> None:
    """Load each task once before any model is loaded, so an unknown task or a bad data file fails fast."""
    from evalkit.tasks import load_task

    for t in tasks:
        load_task(t, args.data, limit=args.limit, seed=args.seed)


def _run_gate(manifest: Any, cases: Sequence[Any], *, device: str | None, limit: int | None, quiet: bool) -> Any:
    """Evaluate every case through `evalkit.gate.Gate` with a progress bar; returns (gate, report)."""
    from tqdm import tqdm

    from evalkit.gate import Gate

    bar = tqdm(total=len({(c.model, c.task) for c in cases}), unit="eval", desc="evaluating", file=sys.stderr,
               disable=True if quiet else not sys.stderr.isatty(), dynamic_ncols=True)

    def log(message: str) -> None:  # not a terminal (CI logs): one line per step instead of a bar
        if bar.disable and not quiet:
            print(message, file=sys.stderr, flush=True)

    def progress(model: str, task: str) -> None:
        bar.update(1)
        bar.set_postfix_str(f"{model} on {task}", refresh=True)

    gate = Gate(manifest, device=device, limit=limit, log=log, progress=progress)
    try:
        report = gate.report(cases)
    finally:
        bar.close()
    return gate, report


def _write_run(out: Path, gate: Any, report: Any, infos: dict[str, Any], *, name: str | None,
               argv: Sequence[str]) -> list[str]:
    """Write the run folder from the gate's evidence; returns the errors met (models that could not be evaluated)."""
    import dataclasses

    from evalkit.rundir import RunWriter

    g = gate.manifest.gate
    settings = {"device": gate.device, "limit": gate.limit, "max_new_tokens": g.max_new_tokens,
                "batch_size": g.batch_size, "enable_thinking": g.enable_thinking, "decoder": g.decoder, "seed": g.seed,
                "tasks": {t: dataclasses.asdict(e) for t, e in gate.manifest.tasks.items()},
                "manifest": gate.manifest.source}
    writer = RunWriter(out, name=name or out.name, settings=settings, command=["evalkit", *argv])
    for info in infos.values():
        writer.add_model(info)
    errors: list[str] = []
    reported = [(v.model, v.task) for v in report.verdicts]
    parents: list[tuple[str, str]] = []  # parents outside the reported cases: their results, for the comparisons
    for model, task in reported:
        for name in _with_ancestors(gate.manifest, [model]):
            if (name, task) not in reported and (name, task) not in parents:
                parents.append((name, task))
    for model, task in parents + reported:
        ev = gate.evidence(model, task)
        if ev.result is None:
            errors.append(f"{model} on {task}: {ev.error}")
            continue
        writer.add_result(model, ev.result)
        if ev.drift is not None:
            writer.add_drift(model, task, ev.parent_name, ev.drift)
        elif ev.drift_error:
            writer.add_drift(model, task, ev.parent_name, {"error": ev.drift_error})
    writer.add_verdicts([v.to_dict() for v in report.verdicts])
    return list(dict.fromkeys(errors))


# ------------------------------------------------------------------------------------------------ commands


def cmd_eval(args: argparse.Namespace) -> int:
    from evalkit.rundir import describe_model

    tasks = _split(args.task)
    refs = parse_models(args.models, args.parent)
    _check_tasks(tasks, args)
    log = _logger(args.quiet)
    paths = _resolve_paths(refs, log)
    infos = {r.name: describe_model(paths[r.name], name=r.name, parent=r.parent) for r in refs}
    out = Path(args.out or f"runs/eval-{time.strftime('%Y%m%d-%H%M%S')}")
    manifest = _manifest(refs, paths, tasks, args, "evalkit eval (command line)")
    started = time.perf_counter()
    gate, report = _run_gate(manifest, manifest.cases(), device=None, limit=args.limit, quiet=args.quiet)
    errors = _write_run(out, gate, report, infos, name=args.name, argv=args.argv)
    if not args.quiet:
        print(report.summary())
    print(f"wrote {out}/ ({len(report.verdicts)} model x task results in {time.perf_counter() - started:.1f}s); "
          f"next: evalkit report {out}")
    for e in errors:
        print(f"evalkit eval: error: {e}", file=sys.stderr)
    return 2 if errors else 0


def cmd_gate(args: argparse.Namespace) -> int:
    from evalkit import zoo
    from evalkit.gate import select_cases
    from evalkit.manifest import load
    from evalkit.rundir import describe_model

    m = load(Path(args.zoo) if args.zoo else DEFAULT_MANIFEST)
    cases = select_cases(m, args.model)
    gate, report = _run_gate(m, cases, device=args.device, limit=args.limit, quiet=args.quiet)
    print(report.summary())
    if args.out != "":
        out = Path(args.out or "runs/gate")
        infos = {}
        for name in _with_ancestors(m, [c.model for c in cases]):
            spec = m.models[name]
            path = zoo.variant_path(spec.zoo_name) if spec.is_zoo else Path(spec.path)
            info = describe_model(path, name=name, parent=spec.parent)
            infos[name] = info if not spec.note else _with_note(info, spec.note)
        errors = _write_run(out, gate, report, infos, name=args.name or "gate", argv=args.argv)
        for e in errors:
            print(f"evalkit gate: {e}", file=sys.stderr)
        if args.report:
            from evalkit.reports import write_reports

            paths = write_reports(out)
            print(f"report: {paths.markdown}, {paths.html}, {paths.csv}")
        else:
            print(f"wrote {out}/; evalkit report {out} writes the CSV, Markdown and HTML reports")
    return report.exit_code


def _with_ancestors(manifest: Any, models: Sequence[str]) -> list[str]:
    """`models` and their parent chains, parents first."""
    out: list[str] = []
    for name in models:
        chain = [name]
        while (parent := manifest.models[chain[-1]].parent) is not None:
            chain.append(parent)
        out += [n for n in reversed(chain) if n not in out]
    return out


def _with_note(info: Any, note: str) -> Any:
    import dataclasses

    return dataclasses.replace(info, note="; ".join(x for x in (note, info.note) if x))


def cmd_report(args: argparse.Namespace) -> int:
    from evalkit.reports import write_reports

    paths = write_reports(args.run_dir, args.out)
    if args.markdown:
        print(paths.markdown.read_text(encoding="utf-8"))
    print(f"wrote {paths.csv}\nwrote {paths.markdown}\nwrote {paths.html}")
    return 0


def cmd_debug(args: argparse.Namespace) -> int:
    from evalkit.cache import Cache
    from evalkit.engine import evaluate
    from evalkit.generation import GenerationConfig, eos_token_ids
    from evalkit.loading import load_model
    from evalkit.tasks import load_task

    if args.n < 1:
        raise CLIError(f"-n must be >= 1, got {args.n}")
    tasks = _split(args.task)
    if len(tasks) != 1:
        raise CLIError(f"debug shows one task at a time; got {', '.join(tasks)}")
    task = load_task(tasks[0], args.data, limit=args.n, seed=args.seed)
    ref = parse_models([args.model], with_zoo_parents=False)[-1]
    path = _resolve_paths([ref], _logger(True))[ref.name]
    loaded = load_model(path, device=_device(args.device), dtype=args.dtype)
    config = GenerationConfig(max_new_tokens=args.max_new_tokens, batch_size=args.batch_size,
                              enable_thinking=args.thinking, decoder=args.decoder)
    result = evaluate(loaded, task, config, cache=Cache(args.cache) if args.cache else None)
    stops = eos_token_ids(loaded.model, loaded.tokenizer)
    stop_tokens = tuple(loaded.tokenizer.convert_ids_to_tokens(list(stops)))
    specials = tuple(getattr(loaded.tokenizer, "all_special_tokens", ()) or ())
    from evalkit.report_text import render_debug

    print(render_debug(result, show_prompt=args.show_prompt, stop_tokens=stop_tokens, special_tokens=specials))
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    import tempfile

    from evalkit.rundir import load_run

    if args.run:
        run = load_run(args.run)
        for name in (args.variant, args.parent):
            if name not in run.models:
                raise CLIError(f"model {name!r} is not in the run {args.run} (it has {', '.join(run.models)})")
    else:
        if not args.task:
            raise CLIError("compare needs --task (or --run RUN_DIR to compare two models of a finished run)")
        out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="evalkit-compare-"))
        eval_args = argparse.Namespace(**{**vars(args), "models": [args.parent, args.variant], "parent": [],
                                          "name": "compare", "quiet": True})
        refs = parse_models(eval_args.models, with_zoo_parents=False)
        parent_ref, variant_ref = refs[0], refs[-1]
        if parent_ref.name == variant_ref.name:
            raise CLIError("VARIANT and PARENT are the same model")
        refs = [ModelRef(parent_ref.name, parent_ref.path, parent_ref.zoo),
                ModelRef(variant_ref.name, variant_ref.path, variant_ref.zoo, parent=parent_ref.name)]
        tasks = _split(args.task)
        _check_tasks(tasks, eval_args)
        paths = _resolve_paths(refs, _logger(True))
        from evalkit.rundir import describe_model

        infos = {r.name: describe_model(paths[r.name], name=r.name, parent=r.parent) for r in refs}
        manifest = _manifest(refs, paths, tasks, eval_args, "evalkit compare (command line)")
        gate, report = _run_gate(manifest, manifest.cases(), device=None, limit=args.limit, quiet=True)
        errors = _write_run(out, gate, report, infos, name="compare", argv=args.argv)
        if errors:
            raise CLIError("; ".join(errors))
        run = load_run(out)
        args.variant, args.parent = variant_ref.name, parent_ref.name
    from evalkit.report_text import render_compare

    print(render_compare(run, args.variant, args.parent))
    return 0


def cmd_quantize(args: argparse.Namespace) -> int:
    from evalkit.quantization import RECIPES, quantize

    if args.list:
        for r in RECIPES.values():
            bits = f"W{r.weight_bits}" + (f"A{r.activation_bits}" if r.activation_bits else "")
            print(f"{r.name:<18} {bits:<6} {r.description}")
        return 0
    if not args.model or not args.recipe or not args.out:
        raise CLIError("quantize needs MODEL, --recipe and --out (evalkit quantize --list shows the recipes)")
    ref = parse_models([args.model], with_zoo_parents=False)[-1]
    path = _resolve_paths([ref], _logger(args.quiet))[ref.name]
    started = time.perf_counter()
    out = quantize(path, args.recipe, args.out, n_calibration=args.n_calibration, seed=args.seed,
                   device=_device(args.device))
    print(f"wrote {out} ({args.recipe}, {args.n_calibration} calibration items, "
          f"{time.perf_counter() - started:.1f}s); provenance in {out / 'provenance.json'}")
    return 0


def cmd_zoo_build(args: argparse.Namespace) -> int:
    from evalkit import zoo

    started = time.perf_counter()
    paths = zoo.build(args.zoo_dir, args.cache_dir, only=args.only or None, device=_device(args.device),
                      log=_logger(False))
    for name, path in paths.items():
        print(f"{name:<48} {path}")
    print(f"{len(paths)} zoo models ready in {time.perf_counter() - started:.1f}s")
    return 0


def cmd_zoo_list(args: argparse.Namespace) -> int:
    from evalkit import zoo

    for name, v in zoo.VARIANTS.items():
        path = zoo.variant_path(name, args.zoo_dir, args.cache_dir)
        state = "present" if path.is_dir() else "not built" if v.kind in ("quantized", "broken") else "missing"
        print(f"{name:<48} {v.kind:<9} parent {v.parent:<32} {state}")
        if v.expected:
            print(f"{'':<48} expected failure: {v.expected}")
    return 0


# ------------------------------------------------------------------------------------------------ helpers


def _split(values: Sequence[str]) -> list[str]:
    """--task a --task b,c -> [a, b, c] (order kept, duplicates dropped)."""
    return list(dict.fromkeys(t.strip() for v in values for t in v.split(",") if t.strip()))


def _device(device: str) -> str:
    from evalkit.gate import resolve_device

    return resolve_device(device)


def _logger(quiet: bool) -> Callable[[str], None]:
    return (lambda _m: None) if quiet else (lambda m: print(m, file=sys.stderr))


def _positive(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {n}")
    return n


# ------------------------------------------------------------------------------------------------ parser

_MODEL_HELP = "a model folder, NAME=FOLDER, or zoo:NAME (a fixture-zoo model; zoo:all for all of them)"


def _add_generation(p: argparse.ArgumentParser, *, batch: int = 32) -> None:
    g = p.add_argument_group("generation")
    g.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (cuda when available; default)")
    g.add_argument("--dtype", default=None, help="load dtype, e.g. float32 (default: the checkpoint's own)")
    g.add_argument("--max-new-tokens", type=_positive, default=256, metavar="N",
                   help="reply length limit; a reply cut here is diagnosed 'truncated' (default 256)")
    g.add_argument("--batch-size", type=_positive, default=batch, metavar="N", help=f"rows per batch (default {batch})")
    g.add_argument("--thinking", action="store_true", help="enable_thinking=True in the chat template (Qwen3)")
    g.add_argument("--decoder", choices=("eager", "static", "compiled"), default="eager",
                   help="generation loop (default eager; compiled is the fast path on CUDA)")


def _add_tasks(p: argparse.ArgumentParser, *, required: bool) -> None:
    g = p.add_argument_group("tasks")
    g.add_argument("--task", "-t", action="append", default=[], required=required, metavar="TASK",
                   help="task name, repeatable or comma-separated: zoo_math, zoo_multiple_choice, zoo_yes_no, "
                        "zoo_span, arc_challenge, arc_easy, boolq, squad_v2, gsm8k, math, openmath")
    g.add_argument("--limit", type=_positive, default=None, metavar="N",
                   help="items per task, a seeded stable subset (zoo tasks default to 64)")
    g.add_argument("--data", default=None, metavar="SOURCE",
                   help="where real tasks' rows come from: a data folder (e.g. ../shared/data), a .jsonl/.json/"
                        ".parquet file, or 'hf' (default: $EVALKIT_DATA_DIR, else hf)")
    g.add_argument("--seed", type=int, default=0, help="item sampling seed for --limit (default 0)")


def build_parser() -> argparse.ArgumentParser:
    from evalkit import __version__

    parser = argparse.ArgumentParser(
        prog="evalkit",
        description="Evaluate quantized LLMs against their parents: format compliance, metrics, logit drift and a "
                    "named diagnosis for every failure.",
        epilog="Start here: evalkit eval zoo:base_gptq_w4g64 --task zoo_math --limit 32 --out runs/demo, then "
               "evalkit report runs/demo. Run 'evalkit COMMAND --help' for each command's options.",
    )
    parser.add_argument("--version", action="version", version=f"evalkit {__version__}")
    parser.add_argument("--verbose", "-v", action="store_true",
                        help="keep the libraries' own progress bars and log every model load")
    parser.add_argument("--threads", type=_positive, default=None,
                        help="torch CPU threads (default: $OMP_NUM_THREADS, else every core)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("eval", help="evaluate models x tasks into a run folder",
                       description="Evaluate every model on every task (batched greedy generation, extraction, "
                                   "diagnosis, scores), drift of each variant against its parent, and the gate's "
                                   "verdicts with default thresholds. Writes a run folder for `evalkit report`.",
                       epilog="example: evalkit eval base=models/qwen base_gptq=models/qwen-gptq --parent "
                              "base_gptq=base --task boolq,squad_v2 --data ../shared/data --limit 100 --out runs/pr42")
    p.add_argument("models", nargs="+", metavar="MODEL", help=_MODEL_HELP)
    p.add_argument("--parent", action="append", default=[], metavar="VARIANT=PARENT",
                   help="compare VARIANT with PARENT (both among the models; zoo variants know their parent)")
    p.add_argument("--out", "-o", default=None, metavar="DIR", help="run folder (default runs/eval-<time>)")
    p.add_argument("--name", default=None, help="run name shown in reports (default: the folder name)")
    p.add_argument("--cache", default=".evalkit/cache", metavar="DIR",
                   help="generation cache; a rerun of the same model, items and settings is read from it")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar and no summary table")
    _add_tasks(p, required=True)
    _add_generation(p)
    p.set_defaults(handler=cmd_eval)

    p = sub.add_parser("report", help="CSV, Markdown and HTML reports of a run folder",
                       description="Write metrics_summary.csv (one row per model x task), report.md (for a pull "
                                   "request: the method comparison table, results, drift, why each failure failed) "
                                   "and report.html (self-contained, with plots) from a run folder.",
                       epilog="example: evalkit report runs/pr42 --markdown")
    p.add_argument("run_dir", metavar="RUN_DIR", help="the --out folder of evalkit eval or evalkit gate")
    p.add_argument("--out", "-o", default=None, metavar="DIR", help="where to write the reports (default RUN_DIR)")
    p.add_argument("--markdown", action="store_true", help="also print the Markdown report")
    p.set_defaults(handler=cmd_report)

    p = sub.add_parser("debug", help="show each response with its extraction, diagnosis and score",
                       description="Generate a few responses and show, for each, the raw text (special tokens "
                                   "included), what was extracted, the diagnosis and its explanation, and the score.",
                       epilog="example: evalkit debug zoo:base_gptq_w4g64_eos_flood --task zoo_math -n 5")
    p.add_argument("model", metavar="MODEL", help=_MODEL_HELP.replace("; zoo:all for all of them", ""))
    p.add_argument("-n", type=int, default=5, help="number of items (default 5)")
    p.add_argument("--show-prompt", action="store_true", help="print the full rendered prompt of each item")
    p.add_argument("--cache", default=None, metavar="DIR", help="read/write the generation cache (default: none)")
    _add_tasks(p, required=True)
    _add_generation(p)
    p.set_defaults(handler=cmd_debug)

    p = sub.add_parser("compare", help="a variant against its parent: metrics, drift, significance",
                       description="Evaluate VARIANT and PARENT on the same items (or read them from --run) and "
                                   "print metrics side by side, diagnoses, the gate's paired one-sided test of the "
                                   "drop, and teacher-forced drift.",
                       epilog="examples: evalkit compare zoo:base_gptq_w4g64 zoo:base --task zoo_math --limit 64\n"
                              "          evalkit compare base_gptq_w4g64 base --run runs/zoo")
    p.add_argument("variant", metavar="VARIANT", help=_MODEL_HELP.replace("; zoo:all for all of them", "")
                   + "; with --run, a model name of the run")
    p.add_argument("parent", metavar="PARENT", help="the reference model, same forms as VARIANT")
    p.add_argument("--run", default=None, metavar="RUN_DIR", help="compare two models of a finished run (no "
                                                                   "evaluation)")
    p.add_argument("--out", "-o", default=None, metavar="DIR", help="keep the run folder here (default: a temp dir)")
    p.add_argument("--cache", default=".evalkit/cache", metavar="DIR", help="generation cache")
    _add_tasks(p, required=False)
    _add_generation(p)
    p.set_defaults(handler=cmd_compare)

    p = sub.add_parser("gate", help="run the gate over a manifest (default: the fixture zoo)",
                       description="Run every check (compliance, floors, paired recovery, drift, trivial baseline, "
                                   "speed) over the models of a gate manifest and print the verdicts. Exit status 0 "
                                   "when healthy models pass and known-broken ones are caught, else 1.",
                       epilog="example: evalkit gate --zoo docs/examples/seed_models.toml --device cuda")
    p.add_argument("--zoo", default=None, metavar="MANIFEST",
                   help=f"gate manifest (TOML; docs/gate.md); default {DEFAULT_MANIFEST.relative_to(REPO)}")
    p.add_argument("--device", default=None, help="override the manifest's device (cpu, cuda, auto)")
    p.add_argument("--limit", type=_positive, default=None, metavar="N", help="items per task, overriding the manifest")
    p.add_argument("--model", action="append", default=[], metavar="NAME", help="only this model (repeatable)")
    p.add_argument("--out", "-o", default=None, metavar="DIR",
                   help="run folder for evalkit report (default runs/gate; '' to write none)")
    p.add_argument("--name", default=None, help="run name shown in reports")
    p.add_argument("--report", action="store_true", help="also write the CSV, Markdown and HTML reports")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(handler=cmd_gate)

    p = sub.add_parser("quantize", help="quantize a model with a named recipe",
                       description="Quantize a model folder with a named llmcompressor recipe, calibrated on the "
                                   "zoo's chat-templated training items; writes a compressed-tensors folder with "
                                   "provenance.json.",
                       epilog="examples: evalkit quantize --list\n"
                              "          evalkit quantize models/qwen --recipe gptq-w4g64 --out models/qwen-gptq")
    p.add_argument("model", nargs="?", metavar="MODEL", help="the unquantized model (folder or zoo:NAME)")
    p.add_argument("--recipe", "-r", default=None, help="recipe name (see --list)")
    p.add_argument("--out", "-o", default=None, metavar="DIR", help="output folder (replaced when done)")
    p.add_argument("--n-calibration", type=_positive, default=64, metavar="N", help="calibration items (default 64)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
    p.add_argument("--list", action="store_true", help="list the recipes and exit")
    p.add_argument("--quiet", "-q", action="store_true")
    p.set_defaults(handler=cmd_quantize)

    p = sub.add_parser("zoo", help="the fixture zoo: build its variants, list its models",
                       description="The fixture zoo: trained tiny Qwen3 parents (fixtures/zoo) and the quantized and "
                                   "known-broken variants built from them into a cache.")
    zsub = p.add_subparsers(dest="zoo_command", metavar="ZOO_COMMAND", required=True)
    for name, handler, help_text in (("build", cmd_zoo_build, "build the quantized and known-broken variants"),
                                     ("list", cmd_zoo_list, "list the zoo's models and whether they are built")):
        zp = zsub.add_parser(name, help=help_text, description=help_text.capitalize() + ".")
        zp.add_argument("--zoo-dir", default=None, metavar="DIR", help="committed parents (default fixtures/zoo or "
                                                                       "$EVALKIT_ZOO_DIR)")
        zp.add_argument("--cache-dir", default=None, metavar="DIR", help="built variants (default .evalkit/zoo or "
                                                                         "$EVALKIT_ZOO_CACHE)")
        if name == "build":
            zp.add_argument("--only", nargs="+", default=None, metavar="NAME", help="only these models (and what "
                                                                                   "they are built from)")
            zp.add_argument("--device", default="cpu", help="cpu (default) or cuda")
        zp.set_defaults(handler=handler)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``evalkit`` command line; returns the exit status (0 ok, 1 gate not ok, 2 bad input)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return 2
    args.argv = argv
    _prepare_environment(args.threads, verbose=args.verbose)
    errors = _library_errors()
    try:
        return int(args.handler(args))
    except errors as err:
        message = str(err).strip().replace("\n", " ")
        print(f"evalkit {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"evalkit {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
