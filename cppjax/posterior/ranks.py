"""Rank uncertainty: the posterior of each model's position on a task.

For a task *j*, each model with an observed score keeps it; each model without one takes a draw
from its posterior predictive. In every draw, a model's rank is 1 + the number of models with a
strictly better score: higher, or lower on a task whose ``task_info`` says lower is better (1 =
best; ties share the better rank). The draws of these ranks give credible
intervals, and the share of draws in which A scores above B gives P(A beats B).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd


def ranks_from_scores(scores: np.ndarray) -> np.ndarray:
    """Ranks (1 = highest) along the last axis; ties share the better (smaller) rank.

    Example:
        >>> ranks_from_scores(np.array([[0.2, 0.9, 0.5, 0.9]])).tolist()
        [[4, 1, 3, 1]]
    """
    from scipy.stats import rankdata

    # "min" ranks of the negated scores: 1 + the number strictly higher, ties sharing the
    # better rank, by sorting (O(n log n) per draw; the pairwise comparison was
    # draws x models x models in memory)
    s = np.asarray(scores, float)
    if s.shape[-1] == 0:
        return np.zeros(s.shape, int)
    return rankdata(-s, method="min", axis=-1).astype(int)


@dataclass(frozen=True, eq=False)
class RankPosterior:
    """Draws of the ranks of ``models`` on ``task``.

    Attributes:
        task: the task name.
        models: the ranked models.
        observed: True where the model's score on the task is observed (fixed in every draw).
        score_draws: ``(n_draws, n_models)`` scores in original units.
        draws: ``(n_draws, n_models)`` integer ranks, 1 = best.
        higher_is_better: the task's direction (False: the lowest score ranks first).
    """

    task: str
    models: tuple[str, ...]
    observed: np.ndarray
    score_draws: np.ndarray
    draws: np.ndarray
    higher_is_better: bool = True

    def _better(self) -> np.ndarray:
        """Scores oriented so that higher is better."""
        return self.score_draws if self.higher_is_better else -self.score_draws

    def interval(self, level: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
        """Central credible interval of each model's rank (integers). Both end ranks are
        included, so at low levels an interval holds more than ``level`` of the draws (on CPP a
        50% interval covered 0.68 of held-out true ranks while the rank probabilities were
        calibrated: ``metrics.rank_calibration``'s randomised PIT, decision 0018)."""
        lo, hi = np.quantile(self.draws, [(1 - level) / 2, (1 + level) / 2], axis=0,
                             method="inverted_cdf")
        return lo.astype(int), hi.astype(int)

    def to_frame(self, level: float = 0.9) -> pd.DataFrame:
        """``model, observed, score_mean, rank_median, rank_mean, rank_lower, rank_upper,
        p_top1``, sorted by posterior mean rank."""
        lo, hi = self.interval(level)
        df = pd.DataFrame({
            "model": list(self.models), "observed": self.observed,
            "score_mean": self.score_draws.mean(axis=0),
            "rank_median": np.median(self.draws, axis=0),
            "rank_mean": self.draws.mean(axis=0),
            "rank_lower": lo, "rank_upper": hi,
            "p_top1": (self.draws == 1).mean(axis=0),
        })
        return df.sort_values(["rank_mean", "model"]).reset_index(drop=True)

    def prob_beats(self, a: str, b: str) -> float:
        """Posterior probability that model ``a`` scores strictly better than ``b`` on the task
        (higher, or lower where lower is better)."""
        ia, ib = self._pos(a), self._pos(b)
        s = self._better()
        return float(np.mean(s[:, ia] > s[:, ib]))

    def win_matrix(self) -> pd.DataFrame:
        """P(row model scores strictly better than column model), for every pair."""
        s = self._better()
        p = (s[:, :, None] > s[:, None, :]).mean(axis=0)
        return pd.DataFrame(p, index=list(self.models), columns=list(self.models))

    def _pos(self, name: str) -> int:
        try:
            return self.models.index(name)
        except ValueError:
            from cppjax.errors import did_you_mean

            raise KeyError(f"model {name!r} is not ranked on {self.task!r}"
                           f"{did_you_mean(name, self.models)}") from None


def rank_posterior(posterior, task: str, *, rng_key=None,
                   models: Sequence[str] | None = None) -> RankPosterior:
    """Rank posterior of ``models`` (default: all models of the training matrix) on ``task``."""
    sm = posterior.matrix
    j = sm.task_index(task)
    names = list(sm.models if models is None else models)
    mi = np.array([sm.model_index(m) for m in names], dtype=np.int32)
    observed = sm.mask[mi, j]
    scores = posterior.joint_draws((mi, np.full(mi.size, j, np.int32)), rng_key=rng_key)
    better = bool(sm.task_info.loc[task, "higher_is_better"])
    ranks = ranks_from_scores(scores if better else -scores)
    return RankPosterior(task, tuple(names), observed, scores, ranks, better)


def task_units(sm, values, task_idx) -> np.ndarray:
    """Scores as shares of their task's observed range, oriented so that higher is better: 0 is
    the task's worst observed score, 1 its best (lower-is-better tasks flipped). The leaderboard
    aggregate and evaluation planning work in these units, whatever the table's normalisation,
    so that tasks of any unit weigh alike. A task whose observed scores do not span a range
    (one score) uses its declared bounds, else a range of 1."""
    lo, hi = _observed_range(sm)
    ti = np.asarray(task_idx)
    x = (np.asarray(values, float) - lo[ti]) / (hi[ti] - lo[ti])
    better = sm.task_info["higher_is_better"].to_numpy(bool)[ti]
    return np.where(better, x, 1.0 - x)


def _observed_range(sm) -> tuple[np.ndarray, np.ndarray]:
    lo = np.min(np.where(sm.mask, sm.scores, np.inf), axis=0)
    hi = np.max(np.where(sm.mask, sm.scores, -np.inf), axis=0)
    flat = ~(hi > lo)
    dlo, dhi = sm.task_info["lower"].to_numpy(float), sm.task_info["upper"].to_numpy(float)
    declared = flat & np.isfinite(dlo) & np.isfinite(dhi) & (dhi > dlo)
    lo, hi = np.where(declared, dlo, lo), np.where(declared, dhi, hi)
    lo = np.where(np.isfinite(lo), lo, 0.0)
    hi = np.where(hi > lo, hi, lo + 1.0)
    return lo, hi


def aggregate_rank_posterior(posterior, tasks: Sequence[str] | None = None, *, rng_key=None,
                             models: Sequence[str] | None = None) -> RankPosterior:
    """Rank posterior of ``models`` (default: all) on the leaderboard aggregate: each model's
    mean over ``tasks`` (default: all) of its scores in :func:`task_units` (0 = the task's
    worst observed score, 1 its best), observed scores fixed and the others drawn jointly from
    the posterior predictive. ``score_draws`` are the aggregates; 1 = the best aggregate."""
    sm = posterior.matrix
    tnames = list(sm.tasks if tasks is None else tasks)
    if not tnames:
        raise ValueError("the aggregate needs at least one task")
    names = list(sm.models if models is None else models)
    if len(set(names)) != len(names) or len(set(tnames)) != len(tnames):
        raise ValueError("models and tasks of the aggregate must be distinct")
    mi = np.array([sm.model_index(m) for m in names], dtype=np.int32)
    tj = np.array([sm.task_index(t) for t in tnames], dtype=np.int32)
    cm, ct = (a.ravel() for a in np.meshgrid(mi, tj, indexing="ij"))
    obs = sm.mask[cm, ct]
    cells = posterior.joint_draws((cm, ct), rng_key=rng_key)
    n_draws = cells.shape[0]
    agg = task_units(sm, cells, ct).reshape(n_draws, mi.size, tj.size).mean(axis=-1)
    label = f"aggregate of {tj.size} task{'s' if tj.size > 1 else ''}"
    return RankPosterior(label, tuple(names), obs.reshape(mi.size, tj.size).all(axis=1), agg,
                         ranks_from_scores(agg), True)
