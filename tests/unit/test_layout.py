"""Repo check: the layout the README's Architecture section promises. Every family a folder (no family prefixes in
module names), small modules, node families that import only from ``nodes/shared``, and no import cycle among the
plugin's modules (imports inside functions count: a lazy import still ties two modules together)."""

import ast

from paths import ROOT

PREFIXES = ("emoeditor_", "editor_", "eit_", "va_")
MAX_LINES = 400


def modules(top: str):
    for path in sorted((ROOT / top).rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        yield (".".join(parts[:-1]) if parts[-1] == "__init__" else ".".join(parts)), path


def imports(name: str, path) -> set[str]:
    """The plugin modules ``name`` imports: its relative imports, resolved (``from pkg import module`` counts as the
    module when there is one). The host loads the plugin under its folder's name, so the plugin only ever imports
    itself relatively."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    known = {module for top in ("emo_core", "nodes") for module, _ in modules(top)}
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if not node.level:
                continue  # absolute: a library or the host (ComfyUI's own top-level ``nodes``), never the plugin
            base = package.split(".")[: len(package.split(".")) - node.level + 1]
            target = ".".join(base + ([node.module] if node.module else []))
            for alias in node.names:
                full = f"{target}.{alias.name}"
                found.add(full if full in known else target)
    return {module for module in found if module in known and module != name}


def graph() -> dict[str, set[str]]:
    return {name: imports(name, path) for top in ("emo_core", "nodes") for name, path in modules(top)}


def test_no_family_prefixes():
    bad = [str(path.relative_to(ROOT)) for top in ("nodes", "emo_core/training") for _, path in modules(top)
           if path.name.startswith(PREFIXES)]
    assert not bad, f"family prefixes in module names (make a folder instead): {bad}"


def test_modules_are_small():
    big = {str(path.relative_to(ROOT)): n for top in ("emo_core", "nodes") for _, path in modules(top)
           if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not big, f"modules over {MAX_LINES} lines: {big}"


def test_node_families_import_only_shared_code():
    crossing = []
    for name, targets in graph().items():
        parts = name.split(".")
        if parts[0] != "nodes" or len(parts) < 3 or parts[1] == "shared":
            continue
        for target in targets:
            other = target.split(".")
            if other[0] == "nodes" and len(other) >= 3 and other[1] not in ("shared", parts[1]):
                crossing.append(f"{name} -> {target}")
    assert not crossing, crossing


def test_no_import_cycles():
    edges = graph()
    state: dict[str, int] = {}
    cycles = []

    def visit(module: str, stack: list[str]) -> None:
        state[module] = 1
        for target in sorted(edges.get(module, ())):
            if state.get(target) == 1:
                cycles.append(stack[stack.index(target):] + [module, target])
            elif target not in state:
                visit(target, stack + [module] if module not in stack else stack)
        state[module] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module, [])
    assert not cycles, cycles[:5]


def test_the_checks_see_the_tree():
    edges = graph()
    assert len(edges) > 60 and sum(map(len, edges.values())) > 100, "the import graph looks empty"
