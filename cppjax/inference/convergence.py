"""Convergence diagnostics of NUTS draws: the rank-normalised split r-hat of Vehtari, Gelman,
Simpson, Carpenter and Bürkner (2021), the one ArviZ reports (``az.rhat(method="rank")``), so
that the warning of a fit and ``az.summary(post.to_arviz())`` agree. The classic split r-hat
(NumPyro's ``split_gelman_rubin``) compares chain means and variances of the raw draws: it
misses chains that agree in the bulk and not in the tails, and a few extreme draws move it.
"""

from __future__ import annotations

import numpy as np
from scipy import special


def _split(x: np.ndarray) -> np.ndarray:
    """``(chains, draws, ...)`` -> ``(2 chains, draws // 2, ...)``: each chain's halves (the
    middle draw of an odd count left out, as ArviZ does)."""
    half = x.shape[1] // 2
    return np.concatenate([x[:, :half], x[:, x.shape[1] - half:]], axis=0)


def _average_ranks(a: np.ndarray) -> np.ndarray:
    """Ranks (1-based) along the first axis of ``(n, quantities)``, ties given their average
    rank, as ``scipy.stats.rankdata(a, axis=0)`` (which loops over the columns: 10x slower
    here). Ties matter: a draw repeated where a chain stood still must not rank by its chain."""
    t = np.ascontiguousarray(a.reshape(a.shape[0], -1).T)  # each quantity's draws contiguous
    order = np.argsort(t, axis=1, kind="stable")
    s = np.take_along_axis(t, order, axis=1)
    n = s.shape[1]
    pos = np.broadcast_to(np.arange(n), s.shape)
    differs = s[:, 1:] != s[:, :-1]
    edge = np.ones((s.shape[0], 1), bool)
    start = np.maximum.accumulate(np.where(np.hstack([edge, differs]), pos, 0), axis=1)
    end = np.minimum.accumulate(np.where(np.hstack([differs, edge]), pos, n - 1)[:, ::-1],
                                axis=1)[:, ::-1]
    out = np.empty(t.shape)
    np.put_along_axis(out, order, (start + end) / 2.0 + 1.0, axis=1)
    return out.T.reshape(a.shape)


def _z_scale(x: np.ndarray) -> np.ndarray:
    """Normal scores of the pooled ranks of each quantity (ties averaged)."""
    flat = x.reshape(-1, *x.shape[2:])
    r = _average_ranks(flat)
    return special.ndtri((r - 0.375) / (flat.shape[0] + 0.25)).reshape(x.shape)


def _rhat(x: np.ndarray) -> np.ndarray:
    n = x.shape[1]
    between = n * np.var(x.mean(axis=1), axis=0, ddof=1)
    within = np.mean(np.var(x, axis=1, ddof=1), axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sqrt((between / within + n - 1) / n)


def rank_rhat(x) -> np.ndarray:
    """The rank-normalised split r-hat of each quantity of ``x`` ``(chains, draws, ...)``:
    the larger of the bulk r-hat (of the ranks' normal scores) and the tail r-hat (the same of
    the distances from the median); NaN where a quantity does not vary.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> same = rng.normal(size=(4, 500, 2))
        >>> bool(rank_rhat(same).max() < 1.01)
        True
        >>> apart = same + np.array([0.0, 0.0, 0.0, 1.0])[:, None, None]  # one chain elsewhere
        >>> bool(rank_rhat(apart).min() > 1.05)
        True
    """
    x = np.asarray(x, dtype=float)
    if x.ndim < 2 or x.shape[1] < 4:
        raise ValueError(f"r-hat needs (chains, draws >= 4, ...) draws; got shape {x.shape}")
    pooled = x.reshape(-1, *x.shape[2:])  # every chain's draws of each quantity
    bulk = _rhat(_z_scale(_split(x)))
    tail = _rhat(_z_scale(_split(np.abs(x - np.median(pooled, axis=0)))))
    return np.where(np.ptp(pooled, axis=0) == 0, np.nan, np.maximum(bulk, tail))
