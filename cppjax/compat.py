"""The one place old import paths live on, for one release (0.6), each with a DeprecationWarning:
the flat modules of cppjax 0.5 that moved into the layer subpackages (``cppjax.predictive`` is
now ``cppjax.posterior``, ``cppjax.keys`` ``cppjax.inference.keys`` ...). ``import cppjax``
installs :class:`_MovedFinder`, which answers ``import cppjax.<old>`` with the new module.
Listed in CHANGELOG 0.6.0; removed in 0.7."""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

#: old module -> where it lives now
MOVED = {
    "cppjax.tables": "cppjax.data.tables",
    "cppjax.taskinfo": "cppjax.data.taskinfo",
    "cppjax.factors": "cppjax.data.factors",
    "cppjax.features": "cppjax.data.features",
    "cppjax.normalization": "cppjax.data.normalization",
    "cppjax.compute": "cppjax.data.compute",
    "cppjax.items": "cppjax.data.items",
    "cppjax.programs": "cppjax.inference.programs",
    "cppjax.sharding": "cppjax.inference.sharding",
    "cppjax.keys": "cppjax.inference.keys",
    "cppjax.initialization": "cppjax.inference.initialization",
    "cppjax.predictive": "cppjax.posterior",
    "cppjax.ranks": "cppjax.posterior.ranks",
    "cppjax.io": "cppjax.posterior.files",
    "cppjax.registry": "cppjax.models.registry",
    "cppjax.cli_cod": "cppjax.cli.cod",
    "cppjax.cli_common": "cppjax.cli.common",
}


def _warn(old: str, new: str) -> None:
    warnings.warn(f"{old} moved to {new} in cppjax 0.6; the old path goes in 0.7",
                  DeprecationWarning, stacklevel=3)


class _Alias(importlib.abc.Loader):
    def __init__(self, new: str):
        self.new = new

    def create_module(self, spec):
        _warn(spec.name, self.new)
        return importlib.import_module(self.new)

    def exec_module(self, module):  # the new module is already executed
        pass


class _MovedFinder(importlib.abc.MetaPathFinder):
    """Finds the old module names of :data:`MOVED` and loads their new modules."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname in MOVED:
            return importlib.util.spec_from_loader(fullname, _Alias(MOVED[fullname]))
        return None


def install() -> None:
    """Put the finder on ``sys.meta_path`` (once)."""
    if not any(isinstance(f, _MovedFinder) for f in sys.meta_path):
        sys.meta_path.append(_MovedFinder())


def moved(old: str, module: str, name: str):
    """``name`` of ``module``, read through its old path ``old`` (warns)."""
    _warn(old, f"{module}.{name}")
    return getattr(importlib.import_module(module), name)
