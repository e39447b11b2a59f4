"""The published peers of ``benchmarks/beyond.py``, re-implemented on cppjax's splits (point
predictors; scores in original units):

* :func:`pca_sigmoid`: observational scaling laws (Ruan et al., NeurIPS 2024): the first 3
  principal components of the other benchmarks' scores, and a sigmoid link from the task's
  chance level fitted robustly (Huber loss) on the training models. Where a test model has no
  other score (leave-family-out), its components are predicted from log compute with a family
  intercept, as their compute-based scaling law does.
* :func:`compute_sigmoid`: a sigmoid of log compute per task with a family shift per task,
  ridge-penalised (the log-compute + family baseline of Polo et al., *Sloth*, 2025).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import least_squares

from cppjax.models.scaling_mf import compute_axis


def _unit(sm, j):
    """The task's lower/upper bounds and chance floor, as shares of its range."""
    info = sm.task_info.iloc[j]
    lo, hi = float(info["lower"]), float(info["upper"])
    chance = float(info["chance"]) if np.isfinite(info["chance"]) else lo
    return lo, hi, (chance - lo) / (hi - lo)


def _fit_sigmoid(F, y, floor, ridge=0.0, n_free=None):
    """``floor + (1 - floor) * sigmoid(F @ w + b)`` fitted with a Huber loss; ``ridge``
    penalises the weights after the first ``n_free``."""
    n_free = F.shape[1] if n_free is None else n_free

    def resid(p):
        eta = F @ p[:-1] + p[-1]
        r = floor + (1 - floor) / (1 + np.exp(-eta)) - y
        return np.concatenate([r, np.sqrt(ridge) * p[n_free:-1]]) if ridge else r

    p = least_squares(resid, np.zeros(F.shape[1] + 1), loss="huber", f_scale=0.05).x
    return lambda G: floor + (1 - floor) / (1 + np.exp(-(G @ p[:-1] + p[-1])))


def pca_sigmoid(split, n_pc: int = 3):
    """Predictions ``(n_test_cells,)`` for the test cells of ``split`` (row-major order)."""
    sm = split.train
    mi, ti = np.nonzero(split.test.mask)
    out = np.full(mi.size, np.nan)
    z, placed, _ = compute_axis(sm)
    fam = sm.model_factors["family"].astype(str).to_numpy()
    for j in np.unique(ti):
        lo, hi, floor = _unit(sm, j)
        others = [t for t in range(sm.n_tasks) if t != j]
        X = (sm.scores[:, others] - lo) / (hi - lo)
        has = ~np.isnan(X)
        rows = has.mean(axis=1) >= 0.5  # models placed by their other scores
        Xf = np.where(has, X, np.nanmean(X[rows], axis=0))
        mean = Xf[rows].mean(axis=0)
        _, _, vt = np.linalg.svd(Xf[rows] - mean, full_matrices=False)
        pcs = (Xf - mean) @ vt[:n_pc].T
        need = mi[ti == j]
        # test models without other scores: components from log compute + family intercept
        cold = ~rows
        if cold[need].any():
            fams = sorted(set(fam[rows & (placed > 0)]))
            D = np.column_stack([z] + [(fam == f).astype(float) for f in fams])
            ok = rows & (placed > 0)
            coef = np.linalg.lstsq(D[ok], pcs[ok], rcond=None)[0]
            pcs = np.where(cold[:, None], D @ coef, pcs)
        train = rows & ~np.isnan(sm.scores[:, j])
        y = (sm.scores[train, j] - lo) / (hi - lo)
        f = _fit_sigmoid(pcs[train], y, floor)
        out[ti == j] = lo + (hi - lo) * f(pcs[need])
    return out


def compute_sigmoid(split, ridge: float = 1.0):
    """Predictions for the test cells of ``split``: per task, a sigmoid of log compute with a
    family shift (ridge-penalised); models without a compute are left NaN."""
    sm = split.train
    mi, ti = np.nonzero(split.test.mask)
    out = np.full(mi.size, np.nan)
    z, placed, _ = compute_axis(sm)
    fam = sm.model_factors["family"].astype(str).to_numpy()
    fams = sorted(set(fam))
    D = np.column_stack([z] + [(fam == f).astype(float) for f in fams])
    for j in np.unique(ti):
        lo, hi, floor = _unit(sm, j)
        train = (placed > 0) & ~np.isnan(sm.scores[:, j])
        y = (sm.scores[train, j] - lo) / (hi - lo)
        f = _fit_sigmoid(D[train], y, floor, ridge=ridge, n_free=1)
        sel = ti == j
        out[sel] = np.where(placed[mi[sel]] > 0, lo + (hi - lo) * f(D[mi[sel]]), np.nan)
    return out


PEERS = {"pca3_sigmoid": pca_sigmoid, "compute_sigmoid_family": compute_sigmoid}
