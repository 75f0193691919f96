"""Building the zoo's quantized and known-broken variants into a cache (deterministic, skipped when up to date).

Parents are committed under `fixtures/zoo/`; variants are built by `build` because committing them would not fit
the repository's size budget.

    python -m evalkit.zoo [--only NAME ...] [--zoo fixtures/zoo] [--cache .evalkit/zoo]
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from evalkit.core import paths
from evalkit.core.lineage import with_ancestors
from evalkit.errors import ZooError
from evalkit.zoo.breakages import BREAKAGES
from evalkit.zoo.variants import PARENTS, QLORA, VARIANTS, Variant, default_cache_dir, default_zoo_dir, source_of, variant

__all__ = ["BUILD_SCHEME", "CALIBRATION_SEED", "N_CALIBRATION", "build", "recorded_build_key"]

N_CALIBRATION = 64
"""Calibration items per variant (16 per family): enough for 4-bit GPTQ/AWQ on the zoo, small enough for CI."""
CALIBRATION_SEED = 0
BUILD_SCHEME = 2
"""Bump when a variant's construction changes, so every cached build is redone."""


def build(zoo_dir: str | os.PathLike[str] | None = None, cache_dir: str | os.PathLike[str] | None = None, *,
          only: Iterable[str] | None = None, device: str = "cpu", n_calibration: int = N_CALIBRATION,
          log: Callable[[str], None] | None = None) -> dict[str, Path]:
    """Build every quantized and broken variant (or `only` those, plus what they are built from) into cache_dir.

    Idempotent: a variant whose folder records the same build key (source fingerprint, recipe, breakage, library
    versions, calibration) is skipped. Safe under pytest-xdist: builds take a lock on the cache folder.
    Returns name -> folder for every model requested, committed parents included.
    """
    from filelock import FileLock

    zoo = Path(zoo_dir) if zoo_dir is not None else default_zoo_dir()
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    names = list(VARIANTS) if only is None else [variant(n).name for n in only]
    missing = [p for p in PARENTS + (QLORA,) if not (zoo / p).is_dir()]
    needed = [p for p in missing if p in _closure(names)]
    if needed:
        raise ZooError(f"zoo parents missing under {zoo}: {needed}; {_where_parents_come_from()}")
    cache.mkdir(parents=True, exist_ok=True)
    ready = _built(names, zoo, cache, n_calibration)
    if ready is not None:  # everything up to date: no lock, so a reader never waits on another process's build
        return ready
    paths: dict[str, Path] = {}
    with FileLock(str(cache / ".build.lock")):
        for name in _closure(names):
            v = VARIANTS.get(name)
            if v.kind in ("parent", "qlora"):
                paths[name] = zoo / name
                continue
            out, source = cache / name, paths[_source(v)]
            key = _build_key(v, source, n_calibration)
            if _up_to_date(out, key):
                paths[name] = out
                continue
            started = time.perf_counter()
            _make(v, source, out, key, device=device, n_calibration=n_calibration)
            paths[name] = out
            if log:
                log(f"built {name} in {time.perf_counter() - started:.1f}s")
    return {name: paths[name] for name in names}


def _built(names: Sequence[str], zoo: Path, cache: Path, n_calibration: int) -> dict[str, Path] | None:
    """name -> folder when every variant `names` needs is already built and up to date, else None. Safe without the
    lock: a folder is complete once its provenance records its build key (the stamp is written last)."""
    paths: dict[str, Path] = {}
    for name in _closure(names):
        v = VARIANTS.get(name)
        if v.kind in ("parent", "qlora"):
            paths[name] = zoo / name
            continue
        out = cache / name
        if not _up_to_date(out, _build_key(v, paths[_source(v)], n_calibration)):
            return None
        paths[name] = out
    return {name: paths[name] for name in names}


def prebuild_order(names: Sequence[str]) -> list[str]:
    """`names` (and what they are built from) in the order a gate's worker builds them: the order given, except
    that the cheap variants (a breakage edit of a built variant, under a second) come right after their source, so a
    gate waiting on a long calibration has them to evaluate meanwhile.

    >>> prebuild_order(["base_gptq_w4g64", "base_awq_w4g128", "base_gptq_w4g64_lost_eos"])[:3]
    ['base_gptq_w4g64', 'base_gptq_w4g64_lost_eos', 'base_awq_w4g128']
    """
    todo = [n for n in with_ancestors(names, source_of) if VARIANTS.get(n).kind not in ("parent", "qlora")]
    out: list[str] = []
    for name in todo:
        if name in out:
            continue
        out.append(name)
        out += [n for n in todo if n not in out and VARIANTS.get(n).recipe is None and source_of(n) == name]
    return out


def looks_built(name: str, cache_dir: str | os.PathLike[str] | None = None) -> bool:
    """Whether `name` is a committed model or has a finished build in the cache (its stamp; cheap, not checked
    against the current build key, which `build` does)."""
    v = VARIANTS.get(name)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return v.kind in ("parent", "qlora") or recorded_build_key(cache / name) is not None


def prebuild(names: Sequence[str], *, quiet: bool = True, stop: Callable[[], bool] = lambda: False) -> None:
    """Build `names` one at a time, in order, each under the cache lock: what a gate's second process does first
    while the gate evaluates (`evalkit.gate.runner.Gate`, ``helper=True``). A variant the gate needs before it is built here
    it builds or waits for itself; one that fails here is left to the gate, which reports it. quiet: this process's
    output (the quantizers' logs and progress bars) goes nowhere, so that it does not mix with the gate's; stop:
    asked before each build."""
    import sys

    if quiet:
        sys.stdout = sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - for the life of this worker process
    for name in names:
        if stop():
            return
        try:
            build(only=[name])
        except Exception:  # noqa: BLE001 - the gate builds it again and reports the error
            continue
def _where_parents_come_from() -> str:
    """How to get the parents back, naming what exists here: a checkout's training script, or the installed wheel."""
    root = paths.checkout()
    if root is not None:
        return (f"they are committed under {root / 'fixtures' / 'zoo'} (retrain them with "
                f"{root / 'scripts' / 'train_zoo.py'}), or point EVALKIT_ZOO_DIR at them")
    return ("the evalkit wheel ships them (pip install --force-reinstall evalkit restores them), or point "
            "EVALKIT_ZOO_DIR at them")


def _source(v: Variant) -> str:
    if v.source is None:
        raise ZooError(f"zoo model {v.name!r} is built but names no source to build it from")
    return v.source


def _closure(names: Sequence[str]) -> list[str]:
    """`names` and everything they are built from, sources first, in VARIANTS order."""
    wanted = set(with_ancestors(names, source_of))
    return [n for n in VARIANTS if n in wanted]


def _build_key(v: Variant, source: Path, n_calibration: int) -> str:
    from evalkit.models.fingerprint import fingerprint
    from evalkit.models.quantization import provenance_versions

    # A built source is named by its own build key, not its bytes: GPTQ and AWQ bytes differ between CPU kinds, and
    # the key must say what a variant is made of (committed files, recipes, versions) wherever it was built.
    built = v.source is not None and source_of(v.source) is not None
    origin = recorded_build_key(source) if built else fingerprint(source)
    spec = {"scheme": BUILD_SCHEME, "source": origin, "recipe": v.recipe, "breakage": v.breakage,
            "calibration": [n_calibration, CALIBRATION_SEED], "versions": provenance_versions()}
    if v.breakage:
        spec["breakage_params"] = dict(BREAKAGES.get(v.breakage).params)
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def recorded_build_key(folder: str | os.PathLike[str]) -> str | None:
    """The build key a zoo variant's folder records (None for a committed parent or any other folder)."""
    try:
        key = json.loads((Path(folder) / "provenance.json").read_text())["build_key"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return key if isinstance(key, str) else None


def _up_to_date(out: Path, key: str) -> bool:
    return recorded_build_key(out) == key


def _make(v: Variant, source: Path, out: Path, key: str, *, device: str, n_calibration: int) -> None:
    from evalkit.models.quantization import quantize

    if v.recipe is not None:
        quantize(source, v.recipe, out, n_calibration=n_calibration, seed=CALIBRATION_SEED, device=device)
        _stamp(out, key, v)
        return
    from evalkit.models.quantization import atomic_folder, deterministic

    breakage = BREAKAGES.get(str(v.breakage))  # a built variant without a recipe is a breakage
    with atomic_folder(out) as staging:
        shutil.copytree(source, staging, dirs_exist_ok=True)
        with deterministic(CALIBRATION_SEED):
            detail = breakage.apply(staging)
        _stamp(staging, key, v, breakage_detail=detail)


def _stamp(folder: Path, key: str, v: Variant, breakage_detail: str | None = None) -> None:
    """Add the zoo's record to the folder's provenance.json (which the fingerprint ignores)."""
    file = folder / "provenance.json"
    record = json.loads(file.read_text()) if file.exists() else {}
    record["zoo"] = {"name": v.name, "kind": v.kind, "parent": v.parent, "source": v.source}
    if v.breakage:
        record["zoo"].update(breakage=v.breakage, breakage_detail=breakage_detail, expected_failure=v.expected)
    record["build_key"] = key
    file.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
