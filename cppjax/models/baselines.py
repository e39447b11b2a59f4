"""Closed-form baselines that a stronger predictor has to beat, in the one posterior interface.

* :class:`CopySibling`: a missing score is the score of the same family's largest model with a
  score on the task (largest by training compute, else parameters: the family's own axis); on a
  ladder of checkpoints (a model of the same family and the same number of parameters with a
  score on the task and less compute), the latest such checkpoint instead: the run's own last
  score, not a larger size's. A model with no placed sibling copies the task's frontier (the
  largest-compute model with a score), and with no compute anywhere the task's median. The
  baseline every extrapolation has to beat on a model ladder (copy-the-largest-sibling).
* :class:`PCSigmoid`: observational scaling laws (Ruan et al., NeurIPS 2024) written in this
  framework: the first ``n_pc`` principal components of each model's other benchmarks, a sigmoid
  link from the task's chance level fitted robustly (Huber loss) per task. A model without other
  scores gets its components from log compute and a family intercept (their compute-based law).

Both are point predictors (one draw per cell, no noise): cppjax's stacking
(:class:`cppjax.stacking.Stack`) gives them backtest-calibrated intervals. They fit in well under
a second, need no inference object, and are not saved (refit them instead).
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from typing import ClassVar

import numpy as np
from scipy.optimize import least_squares

from cppjax.data import ScoreMatrix
from cppjax.data.compute import family_scale
from cppjax.models.base import ModelSpec
from cppjax.models.scaling_mf import compute_axis
from cppjax.posterior import NotSaveable, Posterior


class ClosedForm(ModelSpec):
    """A model fitted in closed form or by a deterministic least-squares solve: no inference
    object, no draws but the point prediction."""

    def resolve_inference(self, inference=None, method: str | None = None):
        if inference is not None or method is not None:
            raise TypeError(f"{type(self).__name__} is fitted in closed form; it takes no "
                            f"inference (got {inference or method!r})")
        return None

    def method_name(self, inference) -> str:
        return self.kind

    def fit(self, train: ScoreMatrix, *, rng_key=None, inference=None, method=None,
            progress: bool | None = None) -> BaselinePosterior:
        """Fit on the observed cells of ``train`` (``rng_key`` is accepted and unused: the fit
        is deterministic)."""
        self.resolve_inference(inference, method)
        if not train.mask.any():
            raise ValueError(f"{type(self).__name__}: the training matrix has no observed cell")
        t0 = time.perf_counter()
        values, info = self._fill(train)  # original units, every cell
        values = np.where(train.mask, train.scores, values)
        mi, ti = (a.ravel() for a in np.indices(train.shape))
        pred = train.normalize(values.ravel(), mi, ti).reshape(train.shape)
        return BaselinePosterior(train, self, None, pred[None], time.perf_counter() - t0, info)

    def _fill(self, sm: ScoreMatrix) -> tuple[np.ndarray, dict]:  # pragma: no cover
        raise NotImplementedError


def _task_median(sm: ScoreMatrix) -> np.ndarray:
    with np.errstate(all="ignore"):
        med = np.nanmedian(np.where(sm.mask, sm.scores, np.nan), axis=0)
    return np.where(np.isfinite(med), med, np.nanmedian(sm.scores[sm.mask]))


@dataclasses.dataclass(frozen=True)
class CopySibling(ClosedForm):
    """Copy the largest sibling's score (see the module docstring).

    Args:
        family: the model factor naming each model's family.
        same_size: on a ladder of checkpoints, copy the latest earlier checkpoint of the same
            size (same family and ``parameters``) where there is one (decision 0016).
    """

    family: str = "family"
    same_size: bool = True
    kind: ClassVar[str] = "copy_sibling"

    def _fill(self, sm):
        n_m, n_t = sm.shape
        out = np.full(sm.shape, np.nan)
        source = np.full(sm.shape, "", dtype=object)
        mf = sm.model_factors
        if self.family in mf:
            scale = family_scale(mf, family=self.family)
            fam = scale["family"].astype(str).to_numpy()
            x = np.where(scale["axis"].to_numpy() != "none", scale["x"].to_numpy(float), np.nan)
        else:
            fam, x = np.full(n_m, ""), np.full(n_m, np.nan)
        z, placed, _ = compute_axis(sm, self.family if self.family in mf else None)
        comp = np.where(placed > 0, z, np.nan)
        has_fam = self.family in mf
        n_size = (mf["parameters"].to_numpy(float) if self.same_size and "parameters" in mf
                  else None)
        for j in range(n_t):
            has = sm.mask[:, j]
            if has_fam:  # each family's largest model with a score on the task
                for f in np.unique(fam[~has]):
                    sib = has & (fam == f) & np.isfinite(x)
                    rows = ~has & (fam == f)
                    if f in ("", "nan") or not sib.any():
                        continue
                    k = np.flatnonzero(sib)[np.argmax(x[sib])]
                    out[rows, j], source[rows, j] = sm.scores[k, j], "sibling"
                    if n_size is not None:  # a checkpoint ladder: the run's latest score
                        for i in np.flatnonzero(rows):
                            run = sib & (n_size == n_size[i]) & (x < x[i])
                            if np.isfinite(x[i]) and run.any():
                                k = np.flatnonzero(run)[np.argmax(x[run])]
                                out[i, j], source[i, j] = sm.scores[k, j], "checkpoint"
            c = has & np.isfinite(comp)
            rows = ~has & np.isnan(out[:, j])
            if c.any() and rows.any():  # no placed sibling: the task's frontier
                k = np.flatnonzero(c)[np.argmax(comp[c])]
                out[rows, j], source[rows, j] = sm.scores[k, j], "frontier"
        med = _task_median(sm)
        fill = np.isnan(out) & ~sm.mask
        out = np.where(fill, med[None, :], out)
        source[fill] = "median"
        miss = ~sm.mask
        counts = {s: int((source[miss] == s).sum())
                  for s in ("sibling", "checkpoint", "frontier", "median")}
        return out, {"copied_from": counts}


@dataclasses.dataclass(frozen=True)
class PCSigmoid(ClosedForm):
    """Observational scaling law on principal components (see the module docstring).

    Args:
        n_pc: principal components of the other benchmarks.
        family: the model factor of the compute-based placement of models with no other score.
        huber_scale: the Huber loss's scale, as a share of the task's range.
    """

    n_pc: int = 3
    family: str = "family"
    huber_scale: float = 0.05
    kind: ClassVar[str] = "pc_sigmoid"

    def __post_init__(self):
        if self.n_pc < 1:
            raise ValueError(f"n_pc must be >= 1; got {self.n_pc}")

    def _fill(self, sm):
        n_m, n_t = sm.shape
        info = sm.task_info
        lo = info["lower"].to_numpy(float)
        hi = info["upper"].to_numpy(float)
        obs = np.where(sm.mask, sm.scores, np.nan)
        with np.errstate(all="ignore"):  # unbounded tasks: their observed range
            lo = np.where(np.isfinite(lo), lo, np.nanmin(obs, axis=0))
            hi = np.where(np.isfinite(hi), hi, np.nanmax(obs, axis=0))
        span = np.where(hi > lo, hi - lo, 1.0)
        chance = info["chance"].to_numpy(float)
        floor = np.clip(np.where(np.isfinite(chance), (chance - lo) / span, 0.0), 0.0, 0.95)
        U = (obs - lo) / span
        z, placed, _ = compute_axis(sm, self.family if self.family in sm.model_factors else None)
        fam = (sm.model_factors[self.family].astype(str).to_numpy()
               if self.family in sm.model_factors else np.full(n_m, ""))
        out = np.full(sm.shape, np.nan)
        fitted, fallback = [], []
        for j in range(n_t):
            need = ~sm.mask[:, j]
            if not need.any():
                continue
            others = [t for t in range(n_t) if t != j]
            f = self._task(U[:, others], U[:, j], floor[j], z, placed > 0, fam) if others else None
            if f is None:
                fallback.append(sm.tasks[j])
                continue
            out[need, j] = lo[j] + span[j] * f[need]
            fitted.append(sm.tasks[j])
        med = _task_median(sm)
        out = np.where(np.isnan(out) & ~sm.mask, med[None, :], out)
        return out, {"fitted_tasks": fitted, "median_tasks": fallback}

    def _task(self, X, y, floor, z, placed, fam):
        """Predictions (share of the range) of every model on one task, or None when too few
        models place it."""
        has = ~np.isnan(X)
        rows = has.mean(axis=1) >= 0.5
        train = rows & ~np.isnan(y)
        if train.sum() < max(4, self.n_pc + 2):
            return None
        with warnings.catch_warnings():  # a column no placed model has: filled with 0 below
            warnings.simplefilter("ignore", RuntimeWarning)
            col = np.nanmean(np.where(rows[:, None], X, np.nan), axis=0)
        col = np.where(np.isfinite(col), col, 0.0)
        Xf = np.where(has, X, col)
        mean = Xf[rows].mean(axis=0)
        _, _, vt = np.linalg.svd(Xf[rows] - mean, full_matrices=False)
        k = min(self.n_pc, vt.shape[0])
        pcs = (Xf - mean) @ vt[:k].T
        cold = ~rows
        if cold.any():  # no other scores: components from log compute and a family intercept
            ok = rows & placed
            if ok.sum() >= 3:
                fams = sorted(set(fam[ok]))
                D = np.column_stack([z] + [(fam == f).astype(float) for f in fams]
                                    + [np.ones_like(z)])
                coef = np.linalg.lstsq(D[ok], pcs[ok], rcond=None)[0]
                pcs = np.where((cold & placed)[:, None], D @ coef, pcs)
            pcs = np.where((cold & ~placed)[:, None], pcs[rows].mean(axis=0), pcs)
        F, t = pcs[train], y[train]

        def resid(p):
            return floor + (1 - floor) / (1 + np.exp(-(F @ p[:-1] + p[-1]))) - t

        p = least_squares(resid, np.zeros(k + 1), loss="huber", f_scale=self.huber_scale).x
        return floor + (1 - floor) / (1 + np.exp(-(pcs @ p[:-1] + p[-1])))


class BaselinePosterior(Posterior):
    """A closed-form baseline's fitted matrix: one draw per cell, observed cells at their
    values."""

    def __init__(self, matrix, spec, inference, pred, fit_seconds, info=None):
        super().__init__(matrix, spec, inference, fit_seconds)
        self.pred = np.asarray(pred, float)  # (1, n_models, n_tasks), normalised units
        self.info = info or {}

    @property
    def n_draws(self) -> int:
        return 1

    @property
    def diagnostics(self) -> dict:
        return dict(self.info)

    def _draws(self, model_idx, task_idx, rng_key, noise):
        self._no_noise(noise)
        return self.pred[:, model_idx, task_idx]

    def refit(self, train, *, rng_key=None, progress: bool | None = None):
        return self.spec.fit(train, rng_key=rng_key)

    def to_arviz(self):
        """ArviZ InferenceData with the fitted matrix as ``posterior["scores"]`` (one chain,
        one draw; normalised units)."""
        import arviz as az

        return az.from_dict(posterior={"scores": self.pred[None]},
                            coords=self.spec.coords(self.matrix),
                            dims={"scores": ["models", "tasks"]})

    def save(self, path):
        raise NotSaveable(f"{self.method} is a closed-form baseline fitted in under a second: "
                          f"refit it (cppjax.fit({self.method!r}, train)) instead of saving it")

    def _arrays(self):
        return {"pred": self.pred}

    def _meta(self):
        return dict(self.info)

    @classmethod
    def _restore(cls, matrix, spec, inference, meta, arrays, fit_seconds):
        return cls(matrix, spec, inference, arrays["pred"], fit_seconds, meta)

    def __repr__(self):
        return f"BaselinePosterior({self.method}, fit {self.fit_seconds:.3f}s)"


#: closed-form baselines by name (``cppjax.fit("copy_sibling", train)``)
BASELINES = {"copy_sibling": CopySibling, "pc_sigmoid": PCSigmoid}
