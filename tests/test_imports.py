"""The package's shape: the public names import, the import graph (lazy imports inside functions
included) has no cycle, no module imports another's private name, no module is over ~500
lines."""

import ast
from pathlib import Path

import cppjax

PACKAGE = Path(cppjax.__file__).parent


def _modules() -> dict[str, Path]:
    out = {}
    for p in PACKAGE.rglob("*.py"):
        parts = p.relative_to(PACKAGE.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    return out


def _imports(mods):
    edges, private = {m: set() for m in mods}, []
    for m, p in mods.items():
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("cppjax"):
                for a in node.names:
                    target = f"{node.module}.{a.name}"
                    edges[m].add(target if target in mods else node.module)
                    if a.name.startswith("_"):
                        private.append(f"{m} imports {target}")
    # a package's __init__ only re-exports: its edges close no cycle of the modules
    return {m: {t for t in e if t != m and mods[t].name != "__init__.py"}
            for m, e in edges.items() if mods[m].name != "__init__.py"}, private


def test_public_api_imports():
    for name in cppjax.__all__:
        assert getattr(cppjax, name) is not None, name


def test_import_graph_has_no_cycle_and_no_private_import():
    mods = _modules()
    edges, private = _imports(mods)
    assert not private, private
    state, cycles = {}, []

    def visit(u, path):
        state[u] = 1
        for v in edges.get(u, ()):
            if state.get(v) == 1:
                cycles.append(path[path.index(v):] + [v])
            elif v in edges and not state.get(v):
                visit(v, path + [v])
        state[u] = 2

    for m in edges:
        if not state.get(m):
            visit(m, [m])
    assert not cycles, cycles


def test_no_module_is_over_about_500_lines():
    long = {m: n for m, p in _modules().items() if (n := len(p.read_text().splitlines())) > 560}
    assert not long, long
