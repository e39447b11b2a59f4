"""The invertible per-cell map between a table's original units and the units the models fit.

Kinds:

* ``"task_minmax"`` (the CPP paper): per task, the min and max of the observed cells map to 0 and
  1 (an affine map). A task whose observed scores are all equal gets the width of its bounds (100
  for percent, 1 for fraction) so that nothing is divided by zero.
* ``"task_logit"``: for every task with a lower and an upper bound, the scores are first mapped
  to the logit of their place between the bounds, the place squeezed into ``[EDGE, 1 - EDGE]``
  so that a score on a bound has a finite logit, then min-max'ed as above; a task bounded on
  one side only (a perplexity or loss: ``[0, inf)``) through the log of its distance from that
  bound (decision 0027), a score on it taken ``TINY`` inside; unbounded tasks as
  ``task_minmax``. Every prediction mapped back lies within its task's bounds by construction,
  not by clipping onto the bound the models' own values (which piled draws of a perplexity on
  0: 0 [0, 0]); a draw of a two-bounded task beyond the squeeze's edge is a score on the bound
  (a model can score 100%, and a held-out 100% must be reachable: decision 0028). The default
  of tables whose bounds differ by task (``scale="mixed"``).
* ``"model_max"`` (the official CPP code on its crowdsource data): each model's row is divided by
  that model's maximum observed score.
* ``"none"``: identity.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np

from cppjax.errors import DataError

NormKind = Literal["task_minmax", "task_logit", "model_max", "none"]
#: the place of a two-bounded task's score in its range is squeezed into [EDGE, 1 - EDGE]
#: before the logit, and a score on a bound sits there (decision 0028)
EDGE = 0.01
#: where a score on the one bound of a half-open task sits for the log: this far inside it
TINY = 1e-6


@dataclass(frozen=True, eq=False)
class Normalization:
    """``normalised = (g(score) - loc) / scale``, ``g`` the identity or (``task_logit``, tasks
    with ``logit`` True: the linked tasks) the logit of the score's place between ``lower`` and
    ``upper``, or where one of them is infinite the log of the distance from the other
    (``log(score - lower)``, ``-log(upper - score)``: increasing in the score either way).

    ``loc`` and ``scale`` have shape ``(1, n_tasks)`` for per-task normalisation and
    ``(n_models, 1)`` for per-model normalisation; they broadcast to the score matrix.
    ``lower``, ``upper``, ``logit``: ``(1, n_tasks)`` or None (no task uses the logit).
    ``auto``: the kind was chosen by cppjax (``ScoreMatrix(normalization="auto")``), not by
    the user, so that a model may fit through the one it reads best (decision 0024).
    """

    kind: NormKind
    loc: np.ndarray
    scale: np.ndarray
    lower: np.ndarray | None = None
    upper: np.ndarray | None = None
    logit: np.ndarray | None = None
    auto: bool = False
    _borrowed: np.ndarray | None = None
    #: per task without scores, the ranges of the tasks it borrowed from (loc, scale arrays)
    _donors: dict | None = None

    @classmethod
    def fit(cls, scores: np.ndarray, kind: NormKind, unit: str, names=None, lower=None,
            upper=None, like=None) -> Normalization:
        """Fit ``kind`` on the observed cells of ``scores``; ``lower``/``upper``: each task's
        bounds (``unit``'s, the table's scale, where not given); ``like``: the tasks a task
        without scores borrows its range from (:func:`_borrowed`)."""
        scores = np.asarray(scores, dtype=float)
        n_models, n_tasks = scores.shape
        obs = ~np.isnan(scores)
        if kind == "none":
            return cls(kind, np.zeros((1, n_tasks)), np.ones((1, n_tasks)))
        if kind not in ("task_minmax", "task_logit", "model_max"):
            raise ValueError(f"unknown normalisation {kind!r}; use 'task_minmax', 'task_logit', "
                             f"'model_max', 'none'")
        axis = 1 if kind == "model_max" else 0
        empty = ~obs.any(axis=axis)
        if empty.any() and kind == "model_max":
            bad = [names[i] if names is not None else i for i in np.flatnonzero(empty)]
            raise DataError(f"cannot normalise: model(s) with no observed score: {bad}")
        if kind == "model_max":
            hi = np.nanmax(scores, axis=1, keepdims=True)
            if (hi <= 0).any():
                bad = [names[i] if names is not None else i for i in np.flatnonzero(hi[:, 0] <= 0)]
                raise DataError(f"model_max normalisation needs a positive maximum; models: {bad}")
            return cls(kind, np.zeros((n_models, 1)), hi)
        from cppjax.data.tables import SCALE_RANGE

        lo_u, hi_u = SCALE_RANGE.get(unit, (-math.inf, math.inf))
        lower = np.full((1, n_tasks), lo_u) if lower is None else np.reshape(lower, (1, -1))
        upper = np.full((1, n_tasks), hi_u) if upper is None else np.reshape(upper, (1, -1))
        bounded = np.isfinite(lower) & np.isfinite(upper)
        logit = (np.isfinite(lower) | np.isfinite(upper)) if kind == "task_logit" else None
        g = link(scores, lower, upper, logit)
        with warnings.catch_warnings():  # a task without scores: all-NaN, borrowed below
            warnings.simplefilter("ignore", RuntimeWarning)
            lo = np.nanmin(g, axis=0, keepdims=True)
            width = np.nanmax(g, axis=0, keepdims=True) - lo
        # a task with one distinct score: the width of its bounds (1 where unbounded)
        fallback = np.where(bounded, upper - lower, 1.0)
        if logit is not None:
            fallback = np.where(logit, 1.0, fallback)
        width = np.where(width > 0, width, fallback)
        if empty.any():
            lo, width, donors = _borrowed(lo, width, empty, bounded, logit, lower, upper, names,
                                          like)
        kept, donors = (empty, donors) if empty.any() else (None, None)
        if logit is None:
            return cls(kind, lo, width, _borrowed=kept, _donors=donors)
        return cls(kind, lo, width, lower.astype(float), upper.astype(float), logit,
                   _borrowed=kept, _donors=donors)

    @property
    def borrowed(self) -> np.ndarray:
        """Per task: its range was borrowed from the other tasks (it had no observed score
        when the normalisation was fitted: a brand-new task, predicted from its factors)."""
        return np.zeros(self.loc.shape[1], bool) if self._borrowed is None else self._borrowed

    def ranges_from(self, old: Normalization) -> Normalization:
        """This (a ``task_logit`` refit of a ``task_minmax`` table) with each task that has no
        score and a range in ``old`` not borrowed (a split's held-out task keeps its parent's
        range: ``cppjax.splits``) given that range through its link: the range a user or a
        protocol gave is kept, not replaced by a borrowed one (decision 0029)."""
        take = self.borrowed & ~old.borrowed
        if self.logit is None or old.loc.shape != self.loc.shape or not take.any():
            return self
        lo_u, hi_u = old.loc[0], old.loc[0] + old.scale[0]
        g_lo, g_hi = (link(v, self.lower[0], self.upper[0], self.logit[0]) for v in (lo_u, hi_u))
        take &= np.isfinite(g_lo) & np.isfinite(g_hi) & (g_hi > g_lo)
        loc, scale = self.loc.copy(), self.scale.copy()
        loc[0, take], scale[0, take] = g_lo[take], (g_hi - g_lo)[take]
        donors = {j: r for j, r in (self._donors or {}).items() if not take[j]}
        return dataclasses.replace(self, loc=loc, scale=scale, _borrowed=self.borrowed & ~take,
                                   _donors=donors)

    def mix_borrowed(self, z, task_idx):
        """Normalised draws ``(n_draws, n_cells)`` with each cell of a task without scores
        re-read through the range of one of the tasks it borrowed from, draw ``s`` through
        donor ``s mod n_donors`` (every cell of a draw the same donor, so the models' order on
        the task is kept): the level of a new task is as uncertain as its donors' ranges are
        apart, not known at their median (decision 0029). ``z`` itself where no cell is on
        such a task or there is one draw."""
        z = np.asarray(z)
        if not self._donors or z.ndim != 2 or z.shape[0] < 2:
            return z
        ti = np.broadcast_to(np.asarray(task_idx), z.shape[-1:])
        hit = [j for j in self._donors if (ti == j).any()]
        if not hit:
            return z
        z = np.array(z, dtype=np.result_type(z.dtype, np.float32))
        for j in hit:
            locs, scales = self._donors[j]
            d = np.arange(z.shape[0]) % locs.size
            cols = ti == j
            z[:, cols] = ((locs[d, None] - self.loc[0, j] + z[:, cols] * scales[d, None])
                          / self.scale[0, j]).astype(z.dtype)
        return z

    def _at(self, model_idx, task_idx):
        model_idx = np.asarray(model_idx)
        task_idx = np.asarray(task_idx)
        mi = model_idx if self.loc.shape[0] > 1 else np.zeros_like(model_idx)
        ti = task_idx if self.loc.shape[1] > 1 else np.zeros_like(task_idx)
        return self.loc[mi, ti], self.scale[mi, ti]

    def _bounds_at(self, task_idx):
        t = np.asarray(task_idx)
        return self.lower[0, t], self.upper[0, t], self.logit[0, t]

    def transform(self, values, model_idx, task_idx):
        """Original units -> normalised, for cells ``(model_idx, task_idx)`` (broadcasts on the
        trailing axis, so ``values`` may be ``(n_draws, n_cells)``)."""
        loc, scale = self._at(model_idx, task_idx)
        v = np.asarray(values, dtype=float)
        if self.logit is not None:
            v = link(v, *self._bounds_at(np.broadcast_to(task_idx, np.shape(v)[-1:])))
        return (v - loc) / scale

    def inverse(self, values, model_idx, task_idx):
        """Normalised -> original units, for cells ``(model_idx, task_idx)``."""
        loc, scale = self._at(model_idx, task_idx)
        values = np.asarray(values)
        if values.dtype == np.float32 and self.logit is None:  # float32 draws stay float32:
            scale, loc = scale.astype(np.float32), loc.astype(np.float32)  # half the memory
            u = np.multiply(values, scale)
            u += loc
            return u
        u = values * scale + loc
        if self.logit is None:
            return u
        lo, hi, lg = self._bounds_at(np.broadcast_to(task_idx, np.shape(u)[-1:]))
        return unlink(u, lo, hi, lg)

    def link_slope(self, values, task_idx):
        """``|d g / d score|`` of each cell's link ``g`` at ``values`` (original units; 1 off
        the linked tasks): the change of variables between this normalisation and another."""
        v = np.asarray(values, dtype=float)
        if self.logit is None:
            return np.ones(np.shape(v))
        lo, hi, lg = self._bounds_at(np.broadcast_to(task_idx, np.shape(v)[-1:]))
        both, below, above, span, p, d_lo, d_hi = _parts(v, lo, hi, lg)
        return np.where(both, (1.0 - 2.0 * EDGE) / (p * (1.0 - p) * span),
                        np.where(below, 1.0 / d_lo, np.where(above, 1.0 / d_hi, 1.0)))

    @property
    def one_sided(self) -> bool:
        """Whether a linked task is bounded on one side only (through the log)."""
        if self.logit is None:
            return False
        return bool(np.any(self.logit & ~(np.isfinite(self.lower) & np.isfinite(self.upper))))

    def cell_scale(self, model_idx, task_idx):
        """Multiplier from normalised to original units of each cell (for errors and widths;
        on a logit task, of the logit scale)."""
        return self._at(model_idx, task_idx)[1]


def _sides(lower, upper, logit):
    """Which linked tasks have both bounds, only a lower one, only an upper one."""
    lo_ok, hi_ok = np.isfinite(lower), np.isfinite(upper)
    return logit & lo_ok & hi_ok, logit & lo_ok & ~hi_ok, logit & ~lo_ok & hi_ok


def _parts(v, lower, upper, logit, edge=EDGE):
    """What the link and its slope read: which linked tasks have both bounds, only a lower one,
    only an upper one; the range of the first, the place in it squeezed into ``[edge, 1 -
    edge]``, and the distances from a lone bound (at least ``TINY``)."""
    both, below, above = _sides(lower, upper, logit)
    span = np.where(both, upper - lower, 1.0)
    p = edge + (1.0 - 2.0 * edge) * np.clip((v - np.where(both, lower, 0.0)) / span, 0.0, 1.0)
    d_lo = np.maximum(v - np.where(below, lower, 0.0), TINY)
    d_hi = np.maximum(np.where(above, upper, 0.0) - v, TINY)
    return both, below, above, span, p, d_lo, d_hi


def _borrowed(lo, width, empty, bounded, logit, lower, upper, names, like=None):
    """A task without an observed score (a new benchmark, asked from its factors) borrows its
    range from the tasks with scores: the median of their ranges as shares of their bounds (in
    the logit where the task is read through it), placed between its own bounds (its whole
    range where no task has both bounds). ``like``: per task, the tasks it is most like (the
    most task-factor values shared: :func:`cppjax.data.extend.similar_tasks`), the donors where
    any of them has scores. A task with no score and without both bounds has nothing to be
    placed by: an error naming it."""
    lo, width, ranges = lo.copy(), width.copy(), {}
    bad = empty & ~bounded[0]
    if bad.any():
        who = [names[i] if names is not None else i for i in np.flatnonzero(bad)]
        raise DataError(f"cannot normalise: task(s) with no observed score and no lower and "
                        f"upper bound to place them by: {who}; give their bounds "
                        f"(task_info={{task: {{'lower': ..., 'upper': ...}}}}) or one score each")
    span = np.where(bounded, upper - lower, 1.0)
    read = np.zeros_like(bounded) if logit is None else (logit & bounded)
    edge = 2 * np.log(1 / EDGE - 1)
    for j in np.flatnonzero(empty):
        through = read[0, j]  # tasks read through the logit borrow from such tasks
        donors = ~empty & bounded[0] & (read[0] == through)
        if like is not None and (donors & like[j]).any():
            donors = donors & like[j]
        if not donors.any():  # no donor: the whole range
            lo[0, j], width[0, j] = (-edge / 2, edge) if through else (lower[0, j], span[0, j])
            continue
        if through:  # logit units: no unit of the task's own
            locs, scales = lo[0, donors], width[0, donors]
        else:
            locs = lower[0, j] + (lo[0, donors] - lower[0, donors]) / span[0, donors] * span[0, j]
            scales = width[0, donors] / span[0, donors] * span[0, j]
        lo[0, j], width[0, j] = np.median(locs), np.median(scales)
        ranges[int(j)] = (locs.astype(float), scales.astype(float))
    return lo, width, ranges


def link(v, lower, upper, logit, edge=EDGE):
    """``v`` where ``logit`` is False (or None), else the logit of ``v``'s place between
    ``lower`` and ``upper`` (that place squeezed into ``[edge, 1 - edge]``), or where
    one bound is infinite the log of the distance from the other (at least ``TINY``)."""
    v = np.asarray(v, dtype=float)
    if logit is None or not np.any(logit):
        return v
    both, below, above, _, p, d_lo, d_hi = _parts(v, lower, upper, logit, edge)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(both, np.log(p) - np.log1p(-p),
                        np.where(below, np.log(d_lo), np.where(above, -np.log(d_hi), v)))


def unlink(u, lower, upper, logit, edge=EDGE):
    """The inverse of :func:`link` (of the same ``edge``), within the bounds: a two-bounded
    task's value beyond the squeeze's edge is a score on the bound (decision 0028); a
    one-bounded task's strictly off its bound."""
    both, below, above = _sides(lower, upper, logit)
    span = np.where(both, upper - lower, 1.0)
    with np.errstate(over="ignore"):
        p = 1.0 / (1.0 + np.exp(-np.where(both, u, 0.0)))
        inside = np.where(both, lower, 0.0) + span * np.clip(
            (p - edge) / (1.0 - 2.0 * edge), 0.0, 1.0)
        up = np.where(below, lower, 0.0) + np.exp(np.where(below, u, 0.0))
        down = np.where(above, upper, 0.0) - np.exp(-np.where(above, u, 0.0))
    return np.where(both, inside, np.where(below, up, np.where(above, down, u)))
