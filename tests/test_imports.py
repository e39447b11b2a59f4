"""The package's shape: the public names import, the import graph (lazy imports inside functions
included) has no cycle and no arrow up the layers, no module imports another's private name, no
module is over ~500 lines, nothing outside the inference layer runs NumPyro's MCMC/SVI or an
optax update, and the module paths of 0.5 still import (with a DeprecationWarning)."""

import ast
import importlib
import re
import sys
import warnings
from pathlib import Path

import pytest

import cppjax
from cppjax.compat import MOVED

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


#: the layers, lowest first (docs/architecture.md): a module imports only from its own layer or
#: those below it
LAYERS = [("errors", "data", "compat"), ("inference",), ("posterior",), ("models",),
          ("api", "datasets", "splits", "metrics", "backtest", "stacking", "stack_transform"),
          ("evaluation", "plots", "planning", "cod", "cod_laws", "clustering", "importance"),
          ("cli",)]


def _layer(module: str) -> int | None:
    part = module.split(".")[1] if "." in module else None
    return next((i for i, names in enumerate(LAYERS) if part in names), None)


def test_every_module_has_a_layer_and_no_import_goes_up():
    edges, _ = _imports(_modules())
    unplaced = sorted(m for m in edges if _layer(m) is None)
    assert not unplaced, f"modules of no layer (add them to LAYERS and the docs): {unplaced}"
    up = [f"{m} (layer {_layer(m)}) imports {t} (layer {_layer(t)})"
          for m, ts in edges.items() for t in ts if _layer(t) > _layer(m)]
    assert not up, up


def test_importing_cppjax_does_not_depend_on_import_order():
    """Each module imports on its own in a fresh interpreter state (no module relies on another
    having been imported first)."""
    import subprocess

    # (a __main__ module runs its program when imported: not a library module)
    mods = sorted(m for m in _modules() if m != "cppjax" and not m.endswith(".__main__"))
    code = ("import importlib, sys\n"
            "for m in sys.argv[1:]:\n"
            "    for k in [k for k in sys.modules if k.startswith('cppjax')]:\n"
            "        del sys.modules[k]\n"
            "    importlib.import_module(m)\n")
    out = subprocess.run([sys.executable, "-c", code, *mods], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]


# what constructs NumPyro's drivers or writes an optax update step
_DRIVERS = re.compile(r"\bMCMC\(|numpyro\.infer\.(MCMC|SVI)\b|from numpyro\.infer import .*"
                      r"\b(MCMC|SVI)\b|\.update\(\s*g\b|optax\.apply_updates")


def test_no_sampler_or_training_loop_outside_the_inference_layer():
    found = []
    for m, p in _modules().items():
        if m.startswith("cppjax.inference"):
            continue
        for k, line in enumerate(p.read_text().splitlines(), 1):
            code = line.split("#")[0]
            if _DRIVERS.search(code) and not code.lstrip().startswith((">>>", "...")):
                found.append(f"{p.name}:{k}: {line.strip()}")
    assert not found, found


@pytest.mark.parametrize("old", sorted(MOVED))
def test_old_module_paths_import_with_a_deprecation_warning(old):
    sys.modules.pop(old, None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mod = importlib.import_module(old)
    assert mod is importlib.import_module(MOVED[old])
    assert any(issubclass(w.category, DeprecationWarning) and MOVED[old] in str(w.message)
               for w in caught)
