"""``python -m evalkit.zoo``: build the zoo's variants (docs/zoo.md)."""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

from evalkit.zoo.build import build
from evalkit.zoo.variants import default_cache_dir, default_zoo_dir


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evalkit.zoo", description="Build the zoo's variants.")
    parser.add_argument("--zoo", type=Path, default=None, help=f"committed parents (default {default_zoo_dir()})")
    parser.add_argument("--cache", type=Path, default=None, help=f"output folder (default {default_cache_dir()})")
    parser.add_argument("--only", nargs="*", default=None, help="variant names (default: all)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    paths = build(args.zoo, args.cache, only=args.only, device=args.device, log=print)
    for name, path in paths.items():
        print(f"{name:45s} {path}")
    print(f"{len(paths)} models ready in {time.perf_counter() - started:.1f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
