"""The ``evalkit`` command line's arguments: one subparser per command, each bound to its handler in
`evalkit.cli.commands`."""

from __future__ import annotations

import argparse

from evalkit.cli.commands import (cmd_compare, cmd_debug, cmd_eval, cmd_gate, cmd_quantize, cmd_report,
                                  cmd_zoo_build, cmd_zoo_list)
from evalkit.core import paths
from evalkit.core.versions import EVALKIT_VERSION as __version__
from evalkit.data.tasks import TASKS
from evalkit.gate.manifest import DEFAULT_MANIFEST
from evalkit.zoo import default_cache_dir, default_zoo_dir

__all__ = ["build_parser"]


def _positive(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {n}")
    return n


def _task_names() -> str:
    """The task names for --help: the zoo's first, then the real datasets, in registry order."""
    zoo_first = sorted(TASKS, key=lambda name: TASKS.get(name).parse is not None)
    return ", ".join(zoo_first)


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
    g.add_argument("--task", "--tasks", "-t", action="append", default=[], required=required, metavar="TASK",
                   dest="task", help=f"task name, repeatable or comma-separated (--tasks, lm-eval's spelling, "
                                     f"is the same): {_task_names()}")
    g.add_argument("--limit", type=_positive, default=None, metavar="N",
                   help="items per task, a seeded stable subset (zoo tasks default to 64)")
    g.add_argument("--data", default=None, metavar="SOURCE",
                   help="where real tasks' rows come from: a data folder (e.g. ../shared/data), a .jsonl/.json/"
                        ".parquet file, or 'hf' (default: $EVALKIT_DATA_DIR, else hf)")
    g.add_argument("--seed", type=int, default=0, help="item sampling seed for --limit (default 0)")


def build_parser() -> argparse.ArgumentParser:
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
    p.add_argument("--combine", action="store_true",
                   help="RUN_DIR holds several runs: report them together (a model name in several runs is "
                        "told apart as RUN/MODEL); without it such a folder is refused")
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
                                   "print metrics side by side, diagnoses, a paired one-sided test of the "
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
                       epilog=f"example: evalkit gate --zoo {paths.doc('examples/seed_models.toml')} --device cuda")
    p.add_argument("--zoo", default=None, metavar="MANIFEST",
                   help=f"gate manifest (TOML; format: {paths.doc('gate.md')}); default: the fixture zoo's, "
                        f"{DEFAULT_MANIFEST}")
    p.add_argument("--device", default=None, help="override the manifest's device (cpu, cuda, auto)")
    p.add_argument("--limit", type=_positive, default=None, metavar="N", help="items per task, overriding the manifest")
    p.add_argument("--model", action="append", default=[], metavar="NAME", help="only this model (repeatable)")
    p.add_argument("--out", "-o", default=None, metavar="DIR",
                   help="run folder for evalkit report (default runs/gate; '' to write none)")
    p.add_argument("--name", default=None, help="run name shown in reports")
    p.add_argument("--report", action="store_true", help="also write the CSV, Markdown and HTML reports")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    # issue 16: the serving backends (docs/gate.md, "Serving backends"); each overrides the manifest
    s = p.add_argument_group("serving backends")
    s.add_argument("--backend", choices=("transformers", "vllm", "openai"), default=None,
                   help="gate every model with this backend (default: the manifest's [gate] and per-model backend)")
    s.add_argument("--vllm-python", default=None, metavar="PYTHON",
                   help="interpreter with vLLM ([backends.vllm] python; default $EVALKIT_VLLM_PYTHON, else "
                        ".evalkit/vllm-venv built by scripts/setup_vllm_venv.sh)")
    s.add_argument("--servers", type=_positive, default=None, metavar="N",
                   help="vLLM servers at once, the models spread over them ([backends.vllm] servers)")
    s.add_argument("--base-url", action="append", default=[], metavar="URL",
                   help="an OpenAI-compatible server for backend openai, repeatable ([backends.openai] base_urls)")
    p.set_defaults(handler=cmd_gate)

    p = sub.add_parser("quantize", help="quantize a model with a named recipe",
                       description="Quantize a model folder with a named llmcompressor recipe, calibrated on your "
                                   "task rows (--task with --data), your chat examples (--chat), or by default the "
                                   "zoo's chat-templated training items; writes a compressed-tensors folder with "
                                   "provenance.json (which records the calibration set).",
                       epilog="examples: evalkit quantize --list\n"
                              "          evalkit quantize models/qwen --recipe gptq-w4g64 --out models/qwen-gptq\n"
                              "          evalkit quantize models/qwen -r gptq-w4g64 -o out --task gsm8k --data "
                              "data/gsm8k_train.jsonl\n"
                              "          evalkit quantize models/qwen -r awq-w4g128 -o out --chat support_chats.jsonl")
    p.add_argument("model", nargs="?", metavar="MODEL", help="the unquantized model (folder or zoo:NAME)")
    p.add_argument("--recipe", "-r", default=None, help="recipe name (see --list)")
    p.add_argument("--out", "-o", default=None, metavar="DIR",
                   help="output folder: new, empty, or (with --force) one evalkit made; written beside it and swapped "
                        "in when done. Never the source, its ancestors or the working directory")
    p.add_argument("--force", action="store_true", help="replace --out when it holds a model evalkit made earlier")
    p.add_argument("--n-calibration", type=_positive, default=64, metavar="N", help="calibration items (default 64)")
    g = p.add_argument_group("calibration data (default: the zoo's training items)")
    g.add_argument("--task", "--tasks", dest="task", default=None, metavar="TASK",
                   help=f"calibrate on this task's rows, rendered as evaluation renders them: {_task_names()}")
    g.add_argument("--data", default=None, metavar="SOURCE",
                   help="where --task's rows come from: a .jsonl/.json/.parquet file, a data folder or 'hf'")
    g.add_argument("--chat", default=None, metavar="JSONL",
                   help="calibrate on chat examples: one {\"messages\": [{role, content}, ...]} per line, "
                        "rendered through the model's own chat template")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
    p.add_argument("--list", action="store_true", help="list the recipes and exit")
    p.add_argument("--quiet", "-q", action="store_true")
    p.set_defaults(handler=cmd_quantize)

    p = sub.add_parser("zoo", help="the fixture zoo: build its variants, list its models",
                       description="The fixture zoo: trained tiny Qwen3 parents (shipped with evalkit) and the quantized and "
                                   "known-broken variants built from them into a cache.")
    zsub = p.add_subparsers(dest="zoo_command", metavar="ZOO_COMMAND", required=True)
    for name, handler, help_text in (("build", cmd_zoo_build, "build the quantized and known-broken variants"),
                                     ("list", cmd_zoo_list, "list the zoo's models and whether they are built")):
        zp = zsub.add_parser(name, help=help_text, description=help_text.capitalize() + ".")
        zp.add_argument("--zoo-dir", default=None, metavar="DIR",
                        help=f"committed parents (default $EVALKIT_ZOO_DIR, else {default_zoo_dir()})")
        zp.add_argument("--cache-dir", default=None, metavar="DIR",
                        help=f"built variants (default $EVALKIT_ZOO_CACHE, else {default_cache_dir()})")
        if name == "build":
            zp.add_argument("--only", nargs="+", default=None, metavar="NAME", help="only these models (and what "
                                                                                   "they are built from)")
            zp.add_argument("--device", default="cpu", help="cpu (default) or cuda")
        zp.set_defaults(handler=handler)
    return parser
