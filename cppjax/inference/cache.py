"""Compiled programs kept: in memory per inference object (:class:`ProgramCache`), and on disk
across sessions through JAX's persistent compilation cache, on by default for the command line
and one call away in the library: a second ``cppjax predict`` on the same table loads its
programs from disk instead of compiling them again (compilation is most of a small fit on a
CPU; decision 0013).

The folder: ``$CPPJAX_CACHE_DIR``, else ``$XDG_CACHE_HOME/cppjax/jax``, else
``~/.cache/cppjax/jax``. ``CPPJAX_COMPILATION_CACHE=0`` switches it off.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path

import jax

OFF = ("0", "false", "no", "off")


class ProgramCache:
    """The compiled programs of one inference object, most recently used last (at most
    ``size``): a fit of the same model settings and shapes of inputs reuses them."""

    def __init__(self, size: int = 8):
        self.size = size
        self._programs: OrderedDict = OrderedDict()

    def __len__(self) -> int:
        return len(self._programs)

    def clear(self) -> None:
        """Forget every compiled program."""
        self._programs.clear()

    def get(self, key, build):
        if key is None:
            return build()
        if key in self._programs:
            self._programs.move_to_end(key)
            return self._programs[key]
        progs = self._programs[key] = build()
        while len(self._programs) > self.size:
            self._programs.popitem(last=False)
        return progs


def default_cache_dir() -> Path:
    """Where the compiled programs go unless told (see the module docstring)."""
    if os.environ.get("CPPJAX_CACHE_DIR"):
        return Path(os.environ["CPPJAX_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "cppjax" / "jax"


def enable_compilation_cache(path=None, *, min_compile_seconds: float = 0.2) -> Path | None:
    """Turn on JAX's persistent compilation cache in ``path`` (default
    :func:`default_cache_dir`) for programs that took at least ``min_compile_seconds`` to
    compile; returns the folder, or ``None`` when ``CPPJAX_COMPILATION_CACHE=0`` (or a folder
    that cannot be made) leaves it off. Call it before the first fit of a session::

        import cppjax
        cppjax.enable_compilation_cache()
    """
    if os.environ.get("CPPJAX_COMPILATION_CACHE", "1").strip().lower() in OFF:
        return None
    folder = Path(path).expanduser() if path is not None else default_cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", float(min_compile_seconds))
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return folder
