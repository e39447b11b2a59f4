"""Exceptions and warnings raised by cppjax."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class CppjaxWarning(UserWarning):
    """A warning raised by cppjax itself (a fit that did not converge, a reconciled input...)."""


class DataError(ValueError):
    """Bad input data: the message names the file, row and column at fault and what to do."""


class FactorMismatchError(DataError):
    """Names of a factor table and of the score matrix do not match."""


def closest(name: str, candidates: Iterable[str], n: int = 3) -> list[str]:
    """The names in ``candidates`` closest to ``name`` (case-insensitive), best first."""
    candidates = list(candidates)
    lower = {c.lower(): c for c in candidates}
    hits = difflib.get_close_matches(name.lower(), list(lower), n=n, cutoff=0.5)
    if not hits:  # prefix / substring matches catch "Luminous Base" vs "Luminous Base-13B"
        hits = [c for c in lower if c.startswith(name.lower()) or name.lower().startswith(c)][:n]
    return [lower[h] for h in hits]


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    hits = closest(name, candidates)
    return f" (closest: {', '.join(repr(h) for h in hits)})" if hits else ""
