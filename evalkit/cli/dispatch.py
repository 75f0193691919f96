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
Every error the library raises on purpose is an `evalkit.errors.EvalkitError`: the one class caught here.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from evalkit.errors import EvalkitError

__all__ = ["main", "prepare_environment"]


def prepare_environment(threads: int | None, *, verbose: bool = False) -> int:
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


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``evalkit`` command line; returns the exit status (0 ok, 1 gate not ok, 2 bad input)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    from evalkit.cli.parser import build_parser  # with the handlers; none of them imports torch at import time

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return 2
    args.argv = argv
    prepare_environment(args.threads, verbose=args.verbose)
    try:
        return int(args.handler(args))
    except EvalkitError as err:
        message = " ".join(str(err).split())
        print(f"evalkit {args.command}: error: {message}", file=sys.stderr)
        return 2
    except OSError as err:  # the file system refused (permissions, a full disk, a name too long): the user's to fix
        where = f"{err.filename}: " if err.filename else ""
        print(f"evalkit {args.command}: error: {where}{err.strerror or err}; check the path and its permissions",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"evalkit {args.command}: interrupted", file=sys.stderr)
        return 130
