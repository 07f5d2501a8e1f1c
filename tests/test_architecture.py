"""The harness's shape, read from its source with `ast` (no render, no import): issue 12 item 4.

* no import cycle among bench_harness modules, counting imports inside functions too;
* no upward import across the layers below (a module imports from its own layer or a lower one);
* `bench_harness/__init__.py` (the public API) imports only _core, and _clients lazily by name;
* user-owned files import nothing of the harness but `bench_harness` itself: `copier update`
  never touches them, so an internal module they import could never be renamed.

Each check is a plain function over source text, and a test plants a violation to show it fails.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
from conftest import TEMPLATE

HARNESS = TEMPLATE / "template" / "src" / "bench_harness"
PUBLIC = "bench_harness"
TOP = 6

# Layer of each sub-package (docs/ARCHITECTURE.md): a module may import its own layer or a lower one.
LAYERS = {
    "_core": 0,
    "_storage": 1,
    "_clients": 1,
    "_run": 2,
    "_results": 2,
    "_checks": 3,
    "_report": 4,
    "_versioning": 4,
    "_compare": 4,
    "_cli": 5,
}
# What the public module may import eagerly, and what its _LAZY table may name.
PUBLIC_EAGER = {"_core"}
# Lazily (on first use of the name) it may load any layer: it is the top; the eager part stays light.
PUBLIC_LAZY = {"_core", "_clients", "_results", "_run"}

# Files the user owns once rendered (kinds/<kind>/*.py are included into src/<package>/).
USER_KIND_FILES = ("predict.py", "data.py", "scoring.py", "test_kind.py")


# -- reading imports ---------------------------------------------------------------------------


def module_name(path: Path, root: Path = HARNESS) -> str:
    """bench_harness._run.runner for .../bench_harness/_run/runner.py (a package is its __init__)."""
    parts = [root.name, *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


PACKAGES = {module_name(path) for path in HARNESS.rglob("__init__.py")}


def harness_sources(root: Path = HARNESS) -> dict[str, str]:
    """{module name: source} for every module of the harness under `root`."""
    return {module_name(path, root): path.read_text() for path in sorted(root.rglob("*.py"))}


def imported_modules(module: str, source: str, known: set[str], *, is_package: bool) -> Iterator[tuple[str, int]]:
    """(imported module, line) for every import in `source`, at module level or inside a function.

    Relative imports are resolved against `module`; `from package import name` is the submodule
    `package.name` when that is a module of the harness, else the package itself.
    """
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                yield (candidate if candidate in known else base), node.lineno


def import_graph(sources: dict[str, str]) -> dict[str, set[str]]:
    """module -> the harness modules it imports (anywhere in its body)."""
    known = set(sources)
    packages = {name for name in sources if _is_package(name, known)}
    graph: dict[str, set[str]] = {}
    for module, source in sources.items():
        targets = {target for target, _ in imported_modules(module, source, known, is_package=module in packages)}
        graph[module] = {target for target in targets if target in known and target != module}
    return graph


def _is_package(name: str, known: set[str]) -> bool:
    """A package's __init__ (relative imports resolve against the package itself)."""
    return name in PACKAGES or any(other.startswith(name + ".") for other in known)


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component with more than one module (Tarjan), as sorted lists."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def layer_of(module: str) -> int:
    """The layer of a harness module: its sub-package's, or TOP for bench_harness and __main__."""
    parts = module.split(".")
    if len(parts) == 1 or parts[1] not in LAYERS:
        return TOP
    return LAYERS[parts[1]]


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """'a -> b' for each import of a higher layer (the top package counts as the highest)."""
    found = []
    for module, targets in sorted(graph.items()):
        for target in sorted(targets):
            if layer_of(target) > layer_of(module) or (
                target == PUBLIC and module != PUBLIC and layer_of(module) < TOP
            ):
                found.append(f"{module} (layer {layer_of(module)}) -> {target} (layer {layer_of(target)})")
    return found


def public_module_problems(source: str) -> list[str]:
    """What bench_harness/__init__.py imports beyond _core (eagerly) and _clients (lazily, by name)."""
    problems = []
    tree = ast.parse(source)
    known = set(harness_sources())
    for target, line in imported_modules(PUBLIC, source, known, is_package=True):
        if target.startswith(PUBLIC + "."):
            if target.split(".")[1] not in PUBLIC_EAGER:
                problems.append(f"line {line}: imports {target}")
    for node in ast.walk(tree):
        if isinstance(node, ast.AnnAssign | ast.Assign) and isinstance(node.value, ast.Dict):
            targets = [node.target] if isinstance(node, ast.AnnAssign) else node.targets
            if any(isinstance(t, ast.Name) and t.id == "_LAZY" for t in targets):
                for value in node.value.values:
                    module = ast.literal_eval(value)[0]
                    sub = module.lstrip(".").removeprefix(PUBLIC + ".").split(".")[0]
                    if sub not in PUBLIC_LAZY:
                        problems.append(f"line {node.lineno}: _LAZY loads {module}")
    return problems


# -- user-owned files --------------------------------------------------------------------------

INTERNAL = re.compile(r"\bbench_harness\.\w+")


def private_harness_imports(source: str) -> list[str]:
    """Harness imports other than `bench_harness` itself, as 'line N: what'.

    Parsed when it is Python; Jinja sources (not Python until rendered) are read line by line.
    A string naming a harness module (importlib.import_module("bench_harness._x")) counts too.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return [f"line {n}: {line.strip()}" for n, line in enumerate(source.splitlines(), 1) if INTERNAL.search(line)]
    found = []
    for node in ast.walk(tree):
        names: Iterable[str] = ()
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level:
            names = [node.module or ""]
            if node.module == PUBLIC:  # from bench_harness import _report: a private sub-package
                names = [f"{PUBLIC}.{alias.name}" for alias in node.names if alias.name.startswith("_")]
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == PUBLIC:
            names = [f"{PUBLIC}.{node.attr}"] if node.attr.startswith("_") else []
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and re.fullmatch(r"bench_harness\.\w+.*", node.value)
        ):
            names = [node.value]
        found += [f"line {node.lineno}: {name}" for name in names if name.startswith(PUBLIC + ".")]
    return found


def user_owned_sources() -> dict[str, str]:
    """{path: source} of every user-owned file in the template repository."""
    paths = [path for name in USER_KIND_FILES for path in sorted((TEMPLATE / "kinds").glob(f"*/{name}"))]
    paths += sorted((TEMPLATE / "template" / "src" / "{{ package_name }}").glob("*.jinja"))
    paths.append(TEMPLATE / "template" / "tests" / "test_predict_contract.py.jinja")
    return {str(path.relative_to(TEMPLATE)): path.read_text() for path in paths}


# -- the checks on the real source -------------------------------------------------------------


def test_the_harness_modules_import_no_cycle() -> None:
    assert find_cycles(import_graph(harness_sources())) == []


def test_no_module_imports_a_higher_layer() -> None:
    assert upward_imports(import_graph(harness_sources())) == []


def test_every_sub_package_has_a_layer() -> None:
    found = {path.name for path in HARNESS.iterdir() if path.is_dir() and (path / "__init__.py").exists()}
    assert found == set(LAYERS), "add the new sub-package to LAYERS here and to docs/ARCHITECTURE.md"


def test_the_public_module_imports_only_core_eagerly_and_the_rest_lazily() -> None:
    assert public_module_problems((HARNESS / "__init__.py").read_text()) == []


def test_user_owned_files_import_only_the_public_module() -> None:
    sources = user_owned_sources()
    assert len(sources) >= 15, sorted(sources)
    problems = {path: found for path, source in sources.items() if (found := private_harness_imports(source))}
    assert problems == {}


def test_a_rendered_projects_user_files_import_only_the_public_module(static_project: Path) -> None:
    """The same on what copier writes (the includes resolved): src/<package>/ and the contract test."""
    package = next(p for p in (static_project / "src").iterdir() if p.is_dir() and p.name != PUBLIC)
    paths = [*sorted(package.glob("*.py")), static_project / "tests" / "test_predict_contract.py"]
    assert len(paths) >= 5
    problems = {str(p.relative_to(static_project)): f for p in paths if (f := private_harness_imports(p.read_text()))}
    assert problems == {}


@pytest.fixture(scope="module")
def static_project(rendered_static) -> Path:
    return rendered_static({})


# -- each check fails on a planted violation ---------------------------------------------------


def planted(edits: dict[str, str]) -> dict[str, str]:
    """The harness's sources with extra lines appended to some modules."""
    sources = harness_sources()
    for module, extra in edits.items():
        sources[module] = sources.get(module, "") + "\n" + extra + "\n"
    return sources


def test_a_planted_cycle_is_found_even_inside_a_function() -> None:
    sources = planted(
        {
            "bench_harness._core.config": "def late():\n    from . import errors",
            "bench_harness._core.errors": "from .config import load_config",
        }
    )
    assert ["bench_harness._core.config", "bench_harness._core.errors"] in find_cycles(import_graph(sources))


def test_a_planted_upward_import_is_found() -> None:
    sources = planted({"bench_harness._storage.store": "def late():\n    from .._run import runner"})
    assert upward_imports(import_graph(sources)) == [
        "bench_harness._storage.store (layer 1) -> bench_harness._run.runner (layer 2)"
    ]
    sources = planted({"bench_harness._core.errors": "import bench_harness"})
    assert upward_imports(import_graph(sources)) == [f"bench_harness._core.errors (layer 0) -> {PUBLIC} (layer {TOP})"]


def test_the_public_module_importing_a_layer_above_core_is_found() -> None:
    source = (HARNESS / "__init__.py").read_text()
    assert public_module_problems(source + "\nfrom ._run import runner\n") == [
        f"line {source.count(chr(10)) + 2}: imports bench_harness._run.runner"
    ]
    lazy = source.replace(
        "_LAZY: dict[str, tuple[str, str]] = {", '_LAZY: dict[str, tuple[str, str]] = {"x": ("._cli.main", "main"),', 1
    )
    assert lazy != source
    assert [p.split(": ")[1] for p in public_module_problems(lazy)] == ["_LAZY loads ._cli.main"]


@pytest.mark.parametrize(
    ("line", "found"),
    [
        ("from bench_harness._core.errors import INVALID_VALUE", "bench_harness._core.errors"),
        ("import bench_harness._core.errors", "bench_harness._core.errors"),
        ("errors = __import__('importlib').import_module('bench_harness._core.errors')", "bench_harness._core.errors"),
        ("from bench_harness import _core as errors", "bench_harness._core"),
        ("errors = bench_harness._core.errors", "bench_harness._core"),
    ],
)
def test_a_user_file_importing_an_internal_module_is_found(line: str, found: str) -> None:
    source = f"import bench_harness\nfrom bench_harness import dataset\n{line}\n"
    assert private_harness_imports(source) == [f"line 3: {found}"]


def test_a_jinja_user_file_importing_an_internal_module_is_found() -> None:
    source = "{% if x %}\nfrom bench_harness._core.errors import X\n{% endif %}\nfrom bench_harness import Y\n"
    assert private_harness_imports(source) == ["line 2: from bench_harness._core.errors import X"]
