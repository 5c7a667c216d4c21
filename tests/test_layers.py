"""The library's layers (docs/design.md, "Layers"): imports run down, never up,
never in a circle, and no module is over 700 lines.

Every module under aesthal/ is parsed with `ast` (nothing is imported); every
`import` and `from ... import` counts, at the top or inside a function. A
`from package import name` depends on `package.name` when that is a module,
else on the package itself. As in import-linter, a parent package's
`__init__` that Python runs first is not counted as an import of it (else
every module would import its own package, which imports the module).
"""

from __future__ import annotations

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "aesthal"
MAX_LINES = 700

#: Layer of each module, by its longest matching prefix; lowest first. A
#: module imports only from its own layer (without a circle) or below.
LAYERS: dict[str, int] = {
    "aesthal.config": 1,
    "aesthal.stats": 2,
    "aesthal.drawing": 2,
    "aesthal.image_io": 2,
    "aesthal.fixations": 2,
    "aesthal.losses": 2,
    "aesthal.metrics": 3,
    "aesthal.trunks": 4,
    "aesthal.models": 5,
    "aesthal.crop": 6,
    "aesthal.data": 6,
    "aesthal.datasets": 6,
    "aesthal.export": 6,
    "aesthal.tflite": 6,
    "aesthal.inference": 6,
    "aesthal.released": 6,
    "aesthal.training": 7,
    "aesthal.evaluation": 8,
    "aesthal.predict": 9,
    "aesthal.serve": 9,
    "aesthal.cli": 10,  # the installed command: the only layer above the commands
    "aesthal": 11,  # the package itself: the public API's re-exports
}
LAYER_NAMES = {
    1: "config",
    2: "foundations",
    3: "metrics",
    4: "trunks",
    5: "models",
    6: "data and inference",
    7: "training",
    8: "evaluation",
    9: "commands",
    10: "the aesthal command",
    11: "public API",
}


def _module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, pathlib.Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


MODULES = _modules()


def layer_of(module: str) -> int:
    """The layer of `module`: that of its longest prefix in `LAYERS`."""
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        prefix = ".".join(parts[:end])
        if prefix in LAYERS:
            return LAYERS[prefix]
    raise KeyError(f"{module} is in no layer: add it to tests/test_layers.py LAYERS")


def imports_of(module: str) -> list[tuple[str, int]]:
    """`[(imported aesthal module, line)]` of every import statement in `module`."""
    path = MODULES[module]
    is_package = path.name == "__init__.py"
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's own package
                anchor = module.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                child = f"{base}.{alias.name}"
                found.append((child if child in MODULES else base, node.lineno))
    return [(name, line) for name, line in found if name.split(".")[0] == "aesthal"]


def _graph() -> dict[str, dict[str, int]]:
    """`{module: {imported module: first line}}`, aesthal modules only."""
    graph = {}
    for module in MODULES:
        edges = {}
        for target, line in imports_of(module):
            if target not in MODULES:
                raise AssertionError(
                    f"{module}:{line} imports {target}: no such module"
                )
            if target != module:
                edges.setdefault(target, line)
        graph[module] = edges
    return graph


GRAPH = _graph()


def test_every_module_is_in_a_layer():
    missing = []
    for module in MODULES:
        try:
            layer_of(module)
        except KeyError as error:
            missing.append(str(error))
    assert not missing, "\n".join(missing)


def test_no_import_runs_up_a_layer():
    upward = [
        f"{MODULES[module].relative_to(ROOT)}:{line}: {module} (layer "
        f"{layer_of(module)}, {LAYER_NAMES[layer_of(module)]}) imports {target} "
        f"(layer {layer_of(target)}, {LAYER_NAMES[layer_of(target)]})"
        for module, edges in GRAPH.items()
        for target, line in edges.items()
        if layer_of(target) > layer_of(module)
    ]
    assert not upward, "imports that run up a layer:\n" + "\n".join(upward)


def _cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
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
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _describe_cycle(component: list[str]) -> str:
    """One circle through `component` (the shortest back to its first module),
    with the line of each import."""
    members, start = set(component), component[0]
    previous = {start: None}
    queue = [start]
    while queue:
        here = queue.pop(0)
        for target in sorted(GRAPH[here]):
            if target == start:
                path = [here]
                while previous[path[-1]] is not None:
                    path.append(previous[path[-1]])
                path = [*reversed(path), start]
                return (
                    " -> ".join(
                        f"{a} (line {GRAPH[a][b]})"
                        for a, b in zip(path, path[1:], strict=False)
                    )
                    + f" -> {start}"
                )
            if target in members and target not in previous:
                previous[target] = here
                queue.append(target)
    return " <-> ".join(component)


def test_no_import_circle():
    cycles = _cycles(GRAPH)
    assert not cycles, "import circles:\n" + "\n".join(
        _describe_cycle(c) for c in cycles
    )


def test_the_checks_find_a_circle_and_an_upward_import():
    """The checks themselves, on a made-up graph."""
    graph = {"a": {"b": 1}, "b": {"c": 2}, "c": {"a": 3}, "d": {"a": 4}}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert _cycles({"a": {"b": 1}, "b": {}}) == []
    assert layer_of("aesthal.training.trainer") > layer_of("aesthal.models.loading")
    assert layer_of("aesthal.metrics.saliency") == LAYERS["aesthal.metrics"]


def test_no_library_module_is_over_700_lines():
    long = [
        f"{path.relative_to(ROOT)}: {lines} lines"
        for path in MODULES.values()
        if (lines := len(path.read_text().splitlines())) > MAX_LINES
    ]
    assert not long, (
        f"library modules over {MAX_LINES} lines (split each where its jobs "
        "part):\n" + "\n".join(long)
    )


def _imports_absl_flags(path: pathlib.Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            if any(a.name.startswith("absl.flags") for a in node.names):
                return True
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module.startswith("absl.flags"):
                return True
            if node.module == "absl" and any(a.name == "flags" for a in node.names):
                return True
    return False


def test_only_the_commands_import_absl_flags():
    """Library modules never read flags: absl.flags is imported only by the
    `aesthal` command (aesthal.cli) and `python -m aesthal.serve`'s module."""
    readers = sorted(m for m, path in MODULES.items() if _imports_absl_flags(path))
    allowed = [m for m in readers if m.startswith("aesthal.cli.")]
    assert set(readers) - set(allowed) == {
        "aesthal.serve.cli",
        "aesthal.serve.__main__",
    }
    assert {"aesthal.cli.train", "aesthal.cli.config_flags"} <= set(allowed)
