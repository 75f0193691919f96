"""The package's shape, enforced: the one-way import rule of evalkit/_layers.py, pytest only under evalkit/pytest/,
short modules and short parameter lists, and an `import evalkit` that loads neither torch nor pytest.

Every import counts: module-level, inside functions (lazy imports) and under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from evalkit._layers import ALIASES, LAYERS, MAX_MODULE_LINES, MAX_PARAMETERS, PYTEST_UNIT

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "evalkit"
PYTEST_NAMES = {"pytest", "_pytest", "syrupy", "xdist"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES: dict[str, Path] = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
TREES: dict[str, ast.Module] = {name: ast.parse(path.read_text(encoding="utf-8")) for name, path in MODULES.items()}


def _imports(module: str) -> Iterator[tuple[int, str]]:
    """(line, imported module) for every import of `module`; ``from a import b`` is ``a.b`` when that is a module."""
    package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(TREES[module]):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                yield node.lineno, f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base


def _unit(module: str) -> str:
    """The unit (subpackage or top-level module of `LAYERS`) a module of evalkit belongs to."""
    units = [u for layer in LAYERS for u in layer]
    owner = ALIASES.get(module) or max((u for u in units if module == u or module.startswith(u + ".")), key=len,
                                       default="")
    assert owner, f"{module} is in no layer of evalkit/_layers.py: add its subpackage there"
    return owner


LAYER_OF = {unit: i for i, layer in enumerate(LAYERS) for unit in layer}


def _internal_edges() -> list[tuple[str, int, str]]:
    return [(m, line, target) for m in MODULES for line, target in _imports(m)
            if target == "evalkit" or target.startswith("evalkit.")]


def test_every_evalkit_import_names_a_module_of_this_tree() -> None:
    """A stale import (of a module that moved) would otherwise be found in another checkout by an installed finder."""
    missing = [f"{MODULES[m].relative_to(REPO)}:{line}: {target}" for m, line, target in _internal_edges()
               if target not in MODULES]
    assert not missing, "imports of modules that do not exist:\n" + "\n".join(missing)


def test_imports_only_go_down_the_layers() -> None:
    """Lower layers never import higher ones; a unit never imports another unit of its own layer."""
    bad = []
    for module, line, target in _internal_edges():
        if target not in MODULES:
            continue
        mine, theirs = _unit(module), _unit(target)
        if mine != theirs and LAYER_OF[theirs] >= LAYER_OF[mine]:
            way = "up" if LAYER_OF[theirs] > LAYER_OF[mine] else "sideways"
            bad.append(f"{MODULES[module].relative_to(REPO)}:{line}: {module} imports {target} ({way}: layer "
                       f"{LAYER_OF[mine]} {mine} -> layer {LAYER_OF[theirs]} {theirs})")
    assert not bad, "imports against the one-way rule of evalkit/_layers.py:\n" + "\n".join(bad)


def test_the_module_graph_has_no_cycles() -> None:
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for module, _, target in _internal_edges():
        if target in MODULES and target != module:
            graph[module].add(target)
    cycles = _cycles(graph)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join([*c, c[0]]) for c in cycles)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_detector_sees_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]


def test_only_evalkit_pytest_imports_pytest() -> None:
    bad = [f"{MODULES[m].relative_to(REPO)}:{line}: imports {target}" for m in MODULES for line, target in _imports(m)
           if target.split(".")[0] in PYTEST_NAMES and _unit(m) != PYTEST_UNIT]
    assert not bad, f"pytest, _pytest, syrupy and xdist belong to {PYTEST_UNIT} alone:\n" + "\n".join(bad)


def test_modules_are_short() -> None:
    long = [f"{p.relative_to(REPO)}: {n} lines" for p in MODULES.values()
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES]
    assert not long, f"modules over {MAX_MODULE_LINES} lines (split them by concept):\n" + "\n".join(long)


def _parameter_counts(tree: ast.Module) -> Iterator[tuple[str, int, int]]:
    """(name, line, parameters) of every function: positional and keyword-only, not self/cls/*args/**kwargs. Triton
    kernels (``@triton.jit``) are left out: a kernel's parameters are its launch ABI, one scalar per pointer, stride
    and constant, and cannot be grouped into objects."""
    methods = {id(f) for c in ast.walk(tree) if isinstance(c, ast.ClassDef) for f in c.body
               if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))}
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and any(ast.unparse(d) == "triton.jit" for d in node.decorator_list):
            continue
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            a = node.args
            names = [x.arg for x in (*a.posonlyargs, *a.args)]
            if id(node) in methods and names and names[0] in ("self", "cls"):
                names = names[1:]
            yield getattr(node, "name", "<lambda>"), node.lineno, len(names) + len(a.kwonlyargs)


def test_functions_take_at_most_eight_parameters() -> None:
    bad = [f"{MODULES[m].relative_to(REPO)}:{line}: {name} takes {n}" for m, tree in TREES.items()
           for name, line, n in _parameter_counts(tree) if n > MAX_PARAMETERS]
    assert not bad, f"functions with more than {MAX_PARAMETERS} parameters (group them):\n" + "\n".join(bad)


def test_parameter_counting_skips_self_and_star_args() -> None:
    tree = ast.parse("class C:\n    def m(self, a, *args, b, **kw): pass\ndef f(a, /, b, *, c): pass\n"
                     "@triton.jit\ndef k(a, b, c, d, e, f, g, h, i): pass\n")
    assert sorted(n for _, _, n in _parameter_counts(tree)) == [2, 3]


def test_importing_evalkit_and_the_gate_loads_neither_torch_nor_pytest() -> None:
    code = "import evalkit, evalkit.gate, sys; assert 'torch' not in sys.modules and 'pytest' not in sys.modules"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr
