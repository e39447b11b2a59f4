"""The space where the stack compares and calibrates its candidates' errors across tasks
(:mod:`cppjax.stacking`; decisions 0014 and 0027)."""

from __future__ import annotations

import numpy as np
from scipy import special

from cppjax.data import ScoreMatrix
from cppjax.data.normalization import link, unlink

EPS = 0.02  # a bounded share is squeezed into [EPS, 1 - EPS] before the logit (decision 0014)


class Transform:
    """Scores to a space where errors compare across tasks: the logit of the share of a bounded
    task's range squeezed into [EPS, 1 - EPS] (so that a score at the bound does not dominate
    the residuals); the log of the distance from the one bound of a half-open task (a
    perplexity: its errors are relative); standardised by the task's training spread
    otherwise (decision 0027)."""

    def __init__(self, sm: ScoreMatrix):
        info = sm.task_info
        self.lo = info["lower"].to_numpy(float)
        self.hi = info["upper"].to_numpy(float)
        self.bounded = np.isfinite(self.lo) & np.isfinite(self.hi) & (self.hi > self.lo)
        # a half-open task (a perplexity) through the normalisation's log of the distance
        # from its bound; a task with both bounds or none as the score itself here
        self.half = np.isfinite(self.lo) ^ np.isfinite(self.hi)
        cols = np.broadcast_to(np.arange(sm.n_tasks), sm.scores.shape)
        obs = np.where(sm.mask, self._g(np.where(sm.mask, sm.scores, 0.0), cols), np.nan)
        with np.errstate(all="ignore"):
            self.mu = np.where(np.isfinite(np.nanmean(obs, 0)), np.nanmean(obs, 0), 0.0)
            sd = np.nanstd(obs, 0)
        self.sd = np.where(np.isfinite(sd) & (sd > 0), sd, 1.0)

    def _g(self, y, tj):
        return link(y, self.lo[tj], self.hi[tj], self.half[tj])

    def _g_inv(self, g, tj):
        return unlink(g, self.lo[tj], self.hi[tj], self.half[tj])

    def forward(self, y, tj):
        b = self.bounded[tj]
        u = (y - self.lo[tj]) / np.where(b, self.hi[tj] - self.lo[tj], 1.0)
        u = EPS + (1 - 2 * EPS) * np.clip(u, 0.0, 1.0)
        return np.where(b, special.logit(u), (self._g(y, tj) - self.mu[tj]) / self.sd[tj])

    def inverse(self, t, tj):
        b = self.bounded[tj]
        with np.errstate(all="ignore"):  # the unbounded tasks' inf - inf, not selected
            u = np.clip((special.expit(t) - EPS) / (1 - 2 * EPS), 0.0, 1.0)
            return np.where(b, self.lo[tj] + u * (self.hi[tj] - self.lo[tj]),
                            self._g_inv(self.mu[tj] + t * self.sd[tj], tj))

    def moments(self, draws, tj):
        """Mean and spread of ``draws`` (n_draws, n_cells) in the transformed space."""
        t = self.forward(draws, tj[None, :])
        return t.mean(axis=0), (t.std(axis=0) if t.shape[0] > 1 else np.zeros(t.shape[1]))

