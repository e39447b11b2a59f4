"""The space where the stack compares and calibrates its candidates' errors across tasks
(:mod:`cppjax.stacking`; decisions 0014 and 0027)."""

from __future__ import annotations

import numpy as np

from cppjax.data import ScoreMatrix
from cppjax.data.normalization import link, unlink

EPS = 0.02  # a bounded share is squeezed into [EPS, 1 - EPS] before the logit (decision 0014)


class Transform:
    """Scores to a space where errors compare across tasks: the normalisation's link with the
    stack's own edge (:func:`cppjax.data.normalization.link`, ``edge=EPS``): the logit of the
    share of a bounded task's range squeezed into [EPS, 1 - EPS] (so that a score at the bound
    does not dominate the residuals); the log of the distance from the one bound of a half-open
    task (a perplexity: its errors are relative), standardised by the task's training spread,
    as an unbounded task's score is (decision 0027)."""

    def __init__(self, sm: ScoreMatrix):
        info = sm.task_info
        self.lo = info["lower"].to_numpy(float)
        self.hi = info["upper"].to_numpy(float)
        self.bounded = np.isfinite(self.lo) & np.isfinite(self.hi) & (self.hi > self.lo)
        # the tasks the link reads: both bounds (the logit), one bound (the log)
        self.linked = self.bounded | (np.isfinite(self.lo) ^ np.isfinite(self.hi))
        cols = np.broadcast_to(np.arange(sm.n_tasks), sm.scores.shape)
        obs = np.where(sm.mask, self._g(np.where(sm.mask, sm.scores, 0.0), cols), np.nan)
        with np.errstate(all="ignore"):
            mu = np.where(np.isfinite(np.nanmean(obs, 0)), np.nanmean(obs, 0), 0.0)
            sd = np.nanstd(obs, 0)
        # a bounded task's logit is used as it is
        self.mu = np.where(self.bounded, 0.0, mu)
        self.sd = np.where(~self.bounded & np.isfinite(sd) & (sd > 0), sd, 1.0)

    def _g(self, y, tj):
        return link(y, self.lo[tj], self.hi[tj], self.linked[tj], edge=EPS)

    def forward(self, y, tj):
        return (self._g(y, tj) - self.mu[tj]) / self.sd[tj]

    def inverse(self, t, tj):
        with np.errstate(all="ignore"):  # the unselected branches' inf - inf
            return unlink(self.mu[tj] + t * self.sd[tj], self.lo[tj], self.hi[tj],
                          self.linked[tj], edge=EPS)

    def moments(self, draws, tj):
        """Mean and spread of ``draws`` (n_draws, n_cells) in the transformed space."""
        t = self.forward(draws, tj[None, :])
        return t.mean(axis=0), (t.std(axis=0) if t.shape[0] > 1 else np.zeros(t.shape[1]))
