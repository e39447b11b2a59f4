"""Per-family power-law scaling laws in NumPyro, answering through the common prediction interface.

The traditional baseline the CPP paper compares against fits, for each model family ``f`` and
task ``j`` separately, a power law of a task's error in the family's training compute::

    log(err_mj) = w_fj * log10(C_m) + b_fj + noise

``err_mj``: the score's distance from the task's best bound (``sm.task_info``), as a share of
the range where both bounds are finite: ``1 - score / 100`` on a percent task, a perplexity's
excess over its floor (decision 0027).

``C_m`` is placed by :func:`cppjax.data.compute.family_scale`: reported training FLOPs, else
6 x parameters x tokens, else (for a family where some member lacks both) the parameter count;
models with none of these cannot be placed on a curve and are reported in
:attr:`ScalingLawPosterior.unplaced_models`, never guessed. Errors are clipped below at
``min_error`` (a score of 100% would otherwise give ``log 0``). ``target="logit"`` fits
``logit(score)`` instead (a symmetric alternative that cannot exceed the scale either way).

Two variants (:class:`ScalingLaw`):

* ``pooling="unpooled"`` — the paper's baseline: every (family, task) slope and intercept on its
  own with weak priors (``w ~ N(0, 1)`` per decade, ``b ~ N(-1, 1.5)``). A family with one member
  on a task has its slope from the prior, so its extrapolation is as uncertain as it should be.
* ``pooling="hierarchical"`` — slopes and intercepts partially pooled::

      w_fj = w0[axis_f] + w_task_j + w_fam_f + s_w * eps_fj
      b_fj = b_task_j + c_fam_f + s_b * eta_fj

  so a family with one or two members borrows the slope that other families show on that task.

Noise: one scale ``sigma`` on the transformed score, shared by every family and task
(``noise_tau=0``, the default). Two or three points per (family, task) cannot identify a noise
of their own, and even per-task noise partially pooled (``noise_tau > 0``, ``log sigma_j ~
N(log sigma_0, noise_tau)``) let NUTS collapse a task's noise onto lines that fit two points
exactly: r-hat 1.3-1.6 on the CPP data, against 1.05 with the shared scale. All scale parameters
of the hierarchical variant are non-centred.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial
from typing import ClassVar, Literal

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pandas as pd
from numpyro.infer import Predictive as NPredictive

from cppjax.data import ScoreMatrix
from cppjax.data.compute import family_scale
from cppjax.errors import did_you_mean
from cppjax.inference import InferenceResult, run_inference
from cppjax.inference.keys import as_key
from cppjax.models.base import ModelSpec, require_cells
from cppjax.models.legacy import accepts_legacy_settings
from cppjax.models.likelihood import task_noise
from cppjax.posterior.sampled import SampledPosterior

AXES = ("compute", "parameters")


def scaling_law_model(fam_idx, task_idx, x, y=None, *, n_families, n_tasks, family_axis,
                      pooling="hierarchical", noise_tau=0.5, noise_floor=0.0):
    """NumPyro model of transformed scores ``y`` of cells ``(fam_idx, task_idx)`` at log10 size
    ``x`` (centred per axis). ``family_axis``: ``(n_families,)`` 0 for compute, 1 for parameters."""
    F, J = n_families, n_tasks
    if pooling == "unpooled":
        with numpyro.plate("tasks_w", J, dim=-1), numpyro.plate("families_w", F, dim=-2):
            w = numpyro.sample("slope", dist.Normal(0.0, 1.0))
            b = numpyro.sample("intercept", dist.Normal(-1.0, 1.5))
    elif pooling == "hierarchical":
        w0 = numpyro.sample("slope_axis", dist.Normal(-0.1, 0.5).expand([2]).to_event(1))
        s_wt = numpyro.sample("s_slope_task", dist.HalfNormal(0.3))
        s_wf = numpyro.sample("s_slope_family", dist.HalfNormal(0.3))
        s_w = numpyro.sample("s_slope", dist.HalfNormal(0.2))
        s_c = numpyro.sample("s_intercept_family", dist.HalfNormal(1.0))
        s_b = numpyro.sample("s_intercept", dist.HalfNormal(0.5))
        with numpyro.plate("tasks", J):
            wt_z = numpyro.sample("slope_task_z", dist.Normal(0.0, 1.0))
            b_task = numpyro.sample("intercept_task", dist.Normal(-1.0, 1.5))
        with numpyro.plate("families", F):
            wf_z = numpyro.sample("slope_family_z", dist.Normal(0.0, 1.0))
            c_z = numpyro.sample("intercept_family_z", dist.Normal(0.0, 1.0))
        with numpyro.plate("tasks_w", J, dim=-1), numpyro.plate("families_w", F, dim=-2):
            eps = numpyro.sample("slope_z", dist.Normal(0.0, 1.0))
            eta = numpyro.sample("intercept_z", dist.Normal(0.0, 1.0))
        w = numpyro.deterministic(
            "slope", w0[family_axis][:, None] + s_wt * wt_z[None, :] + s_wf * wf_z[:, None]
            + s_w * eps)
        b = numpyro.deterministic(
            "intercept", b_task[None, :] + s_c * c_z[:, None] + s_b * eta)
    else:
        raise ValueError(f"pooling must be 'unpooled' or 'hierarchical'; got {pooling!r}")
    mean = b[fam_idx, task_idx] + w[fam_idx, task_idx] * x
    sigma = task_noise(J, noise_tau, -1.5, noise_floor)
    with numpyro.plate("cells", x.shape[0]):
        numpyro.deterministic("cell_mean", mean)
        numpyro.sample("y", dist.Normal(mean, sigma[task_idx]), obs=y)


@accepts_legacy_settings
@dataclass(frozen=True)
class ScalingLaw(ModelSpec):
    """Per-family power law of a task's error in training compute (see the module docstring).

    Args:
        pooling: ``"unpooled"`` (the paper's baseline) or ``"hierarchical"``.
        target: ``"log_error"`` (``log(1 - score/max)``, the paper's form) or ``"logit"``.
        family: the model-factor column naming each model's family.
        min_error: errors (and, for ``logit``, scores) are clipped to ``[min_error, 1 -
            min_error]`` before the transform.

    Example:
        >>> from cppjax.datasets import load_obsscaling
        >>> from cppjax.inference import SVI
        >>> post = ScalingLaw(pooling="unpooled").fit(
        ...     load_obsscaling(), rng_key=0, inference=SVI(num_steps=300, num_samples=50),
        ...     progress=False)
        >>> post.slopes().columns.tolist()
        ['family', 'task', 'axis', 'n_points', 'mean', 'lower', 'upper']
    """

    pooling: Literal["unpooled", "hierarchical"] = "hierarchical"
    target: Literal["log_error", "logit"] = "log_error"
    family: str = "family"
    min_error: float = 1e-3
    noise_tau: float = 0.0
    noise_floor: float = 0.0

    kind: ClassVar[str] = "scaling_law"
    inference_defaults: ClassVar[dict[str, dict]] = {
        "nuts": {"num_samples": 500, "max_tree_depth": 7}, "svi": {"num_samples": 500}, "map": {},
    }
    dims: ClassVar[dict] = {
        "slope": ["families", "tasks"], "intercept": ["families", "tasks"],
        "slope_z": ["families", "tasks"], "intercept_z": ["families", "tasks"],
        "slope_task_z": ["tasks"], "intercept_task": ["tasks"], "slope_axis": ["axes"],
        "slope_family_z": ["families"], "intercept_family_z": ["families"], "sigma": ["tasks"],
        "sigma_z": ["tasks"],
    }

    @classmethod
    def posterior_class(cls) -> type:
        return ScalingLawPosterior

    def coords(self, sm: ScoreMatrix) -> dict:
        return {"families": list(self.layout(sm)["families"]), "tasks": list(sm.tasks),
                "axes": list(AXES)}

    def method_name(self, inference) -> str:
        suffix = "" if inference.name == "nuts" else f"_{inference.name}"
        return f"scaling_law_{self.pooling}{suffix}"

    def __post_init__(self):
        if self.pooling not in ("unpooled", "hierarchical"):
            raise ValueError(f"pooling must be 'unpooled' or 'hierarchical'; got {self.pooling!r}")
        if self.target not in ("log_error", "logit"):
            raise ValueError(f"target must be 'log_error' or 'logit'; got {self.target!r}")

    # -- transforms ---------------------------------------------------------------------------
    def bounds(self, sm: ScoreMatrix) -> np.ndarray:
        """Each task's ``(lower, upper, higher_is_better)`` from ``sm.task_info``, ``(3,
        n_tasks)``: the error of a score is its distance from the task's best bound (a
        percent task's ``1 - score / 100``; a loss or perplexity's excess over its floor), so
        a table of mixed kinds fits each task on its own terms (was one scale for the table:
        a perplexity task in a mixed table gave non-finite draws)."""
        info = sm.task_info
        lo, hi = info["lower"].to_numpy(float), info["upper"].to_numpy(float)
        up = info["higher_is_better"].to_numpy(bool)
        best = np.where(up, hi, lo)
        need = np.isfinite(lo) & np.isfinite(hi) if self.target == "logit" else np.isfinite(best)
        if not need.all():
            bad = [t for t, ok in zip(sm.tasks, need, strict=True) if not ok]
            what = ("a lower and an upper bound" if self.target == "logit" else
                    "a ceiling where higher is better, a floor where lower is better")
            raise ValueError(
                f"a scaling law of the {'logit' if self.target == 'logit' else 'error'} needs "
                f"each task on a bounded scale ({what}); {len(bad)} task(s) have none: "
                f"{', '.join(map(repr, bad[:8]))}; set their bounds with task_info=, or use "
                f"a method without a law (e.g. pmf_svi)")
        return np.stack([lo, hi, up.astype(float)])

    def transform(self, scores, bounds, task_idx):
        """Scores of tasks ``task_idx`` to the law's scale: the log of the error (a share of
        the range where both bounds are finite), or the logit of the share."""
        lo, hi, up = (b[task_idx] for b in bounds)
        y = np.asarray(scores, float)
        both = np.isfinite(lo) & np.isfinite(hi)
        width = np.where(both, hi - lo, 1.0)
        if self.target == "log_error":
            err = np.where(up > 0, hi - y, y - lo) / width
            return np.log(np.clip(err, self.min_error, np.where(both, 1.0, np.inf)))
        p = np.clip(np.where(up > 0, y - lo, hi - y) / width, self.min_error, 1 - self.min_error)
        return np.log(p) - np.log1p(-p)

    def inverse(self, t, bounds, task_idx):
        lo, hi, up = (b[task_idx] for b in bounds)
        t = np.asarray(t, float)
        width = np.where(np.isfinite(lo) & np.isfinite(hi), hi - lo, 1.0)
        if self.target == "log_error":
            err = width * np.exp(t)
            return np.where(up > 0, hi - err, lo + err)
        share = width / (1.0 + np.exp(-t))
        return np.where(up > 0, lo + share, hi - share)

    # -- layout --------------------------------------------------------------------------------
    def layout(self, sm: ScoreMatrix) -> dict:
        """Families, axes and centred log10 sizes of every model of ``sm``."""
        scale = family_scale(sm.model_factors, family=self.family)
        placed = scale["axis"] != "none"
        families = sorted({str(f) for f in scale.loc[placed, "family"]})
        fam_of = {f: i for i, f in enumerate(families)}
        family_axis = np.zeros(len(families), np.int32)
        for f in families:
            axis = scale.loc[placed & (scale["family"] == f), "axis"].iloc[0]
            family_axis[fam_of[f]] = AXES.index(axis)
        logx = np.log10(scale["x"].to_numpy(float))
        centre = {}
        for a in AXES:
            sel = placed.to_numpy() & (scale["axis"] == a).to_numpy()
            centre[a] = float(np.median(logx[sel])) if sel.any() else 0.0
        xc = np.array([logx[i] - centre[a] if a != "none" else np.nan
                       for i, a in enumerate(scale["axis"])])
        model_family = np.array([fam_of.get(str(f), -1) if p else -1
                                 for f, p in zip(scale["family"], placed, strict=True)], np.int32)
        return {
            "scale": scale, "families": families, "family_axis": family_axis, "centre": centre,
            "x": xc, "model_family": model_family,
            "unplaced": [m for m, p in zip(sm.models, placed, strict=True) if not p],
        }

    def model_fn(self, sm: ScoreMatrix, lay: dict | None = None):
        lay = lay or self.layout(sm)
        return partial(scaling_law_model, n_families=len(lay["families"]), n_tasks=sm.n_tasks,
                       family_axis=jnp.asarray(lay["family_axis"]), pooling=self.pooling,
                       noise_tau=self.noise_tau, noise_floor=self.noise_floor)

    def fit(self, train: ScoreMatrix, *, rng_key, inference=None, method: str | None = None,
            progress: bool | None = None) -> ScalingLawPosterior:
        """Fit on the observed cells of ``train`` whose model can be placed on a size axis
        (``inference``: a NUTS, SVI or MAP object or name; default NUTS)."""
        inference = self.resolve_inference(inference, method)
        require_cells(train)
        key = as_key(rng_key)
        bounds = self.bounds(train)
        lay = self.layout(train)
        if not lay["families"]:
            raise ValueError(f"no model can be placed on a compute or parameter axis: the model "
                             f"factors need {self.family!r} and flops, or parameters (and tokens)")
        obs = train.observed()
        keep = lay["model_family"][obs.model_idx] >= 0
        mi, ti = obs.model_idx[keep], obs.task_idx[keep]
        raw = train.scores[mi, ti]
        args = (jnp.asarray(lay["model_family"][mi]), jnp.asarray(ti),
                jnp.asarray(lay["x"][mi], jnp.float32))
        y = jnp.asarray(self.transform(raw, bounds, ti), jnp.float32)
        t0 = time.perf_counter()
        res = run_inference(self.model_fn(train, lay), args, y, inference=inference, rng_key=key,
                            progress=progress, identified=lambda s: s["cell_mean"])
        res.samples = {k: v for k, v in res.samples.items() if k not in ("cell_mean", "y")}
        n_points = np.zeros((len(lay["families"]), train.n_tasks), np.int32)
        np.add.at(n_points, (lay["model_family"][mi], ti), 1)
        return ScalingLawPosterior(train, self, inference, res, time.perf_counter() - t0, lay,
                                   n_points)


class ScalingLawPosterior(SampledPosterior):
    """A fitted scaling law. Besides the common interface (:meth:`predict`, :meth:`rank`):

    * :meth:`curve` — predictive draws along a size grid for a family and task (the bands of
      :func:`cppjax.plots.scaling_curve`);
    * :meth:`slopes` — each (family, task) slope with its credible interval and data count;
    * :attr:`unplaced_models` — models with no FLOPs, parameters or tokens: no prediction.
    """

    def __init__(self, matrix, spec: ScalingLaw, inference, result: InferenceResult,
                 fit_seconds: float, layout: dict, n_points: np.ndarray):
        super().__init__(matrix, spec, inference, fit_seconds)
        self.result = result
        self.layout = layout
        self.n_points = n_points
        self._bounds = spec.bounds(matrix)

    def coords(self) -> dict:
        return {"families": self.families, "tasks": list(self.matrix.tasks), "axes": list(AXES)}

    def _arrays(self) -> dict[str, np.ndarray]:
        return {**super()._arrays(), "n_points": self.n_points}

    @classmethod
    def _restore(cls, matrix, spec, inference, meta, arrays, fit_seconds):
        return cls(matrix, spec, inference, cls._result(meta, arrays), fit_seconds,
                   spec.layout(matrix), arrays["n_points"])

    @property
    def unplaced_models(self) -> list[str]:
        return list(self.layout["unplaced"])

    @property
    def families(self) -> list[str]:
        return list(self.layout["families"])

    def __repr__(self):
        return (f"ScalingLawPosterior({self.method}, {len(self.families)} families, "
                f"fit {self.fit_seconds:.1f}s, diagnostics={self.diagnostics})")

    def _params(self):
        """Slopes, intercepts ``(n_draws, F, J)`` and noise ``(n_draws, J)``."""
        s = self.samples
        if "slope" in s and "sigma" in s:
            return s["slope"], s["intercept"], s["sigma"]
        # SVI/MAP draws hold the latent sites only: rebuild the deterministic ones
        pred = NPredictive(self.spec.model_fn(self.matrix, self.layout), posterior_samples=s,
                           return_sites=["slope", "intercept", "sigma"], batch_ndims=1)
        # slopes, intercepts and noise are deterministic given the draws: the key seeds only
        # the one dummy cell's observation, which is not returned
        out = pred(as_key(0), jnp.zeros(1, jnp.int32), jnp.zeros(1, jnp.int32),
                   jnp.zeros(1, jnp.float32))
        s.update({k: np.asarray(v) for k, v in out.items()})
        return s["slope"], s["intercept"], s["sigma"]

    def _transformed_draws(self, fam, task, x, rng_key, noise=True, shared_noise=False):
        w, b, sigma = self._params()
        mean = b[:, fam, task] + w[:, fam, task] * x
        if not noise:
            return mean
        # shared_noise: one noise draw per posterior draw along a curve, so that bands are smooth
        shape = (mean.shape[0], 1) if shared_noise else mean.shape
        eps = np.asarray(jax.random.normal(rng_key, shape))
        return mean + sigma[:, task] * eps

    def _draws(self, model_idx, task_idx, rng_key, noise: bool | None):
        if noise is None:  # a MAP fit predicts its mode, as every Bayesian model's MAP
            noise = self.result.method != "map"
        if rng_key is None and noise:
            raise ValueError("predictive draws of a scaling law need an rng_key (or int seed)")
        fam = self.layout["model_family"][model_idx]
        if (fam < 0).any():
            bad = sorted({self.matrix.models[i] for i in np.asarray(model_idx)[fam < 0]})
            raise ValueError(
                f"the scaling law cannot place {len(bad)} model(s) on a size axis (no FLOPs, "
                f"parameters or tokens, or no family): {', '.join(map(repr, bad))}; predict "
                f"cells of placed models only, e.g. post.predict(post.placed_cells('missing'))")
        t = self._transformed_draws(fam, task_idx, self.layout["x"][model_idx], rng_key, noise)
        scores = self.inverse(t, task_idx)
        return self.matrix.normalize(scores, model_idx, task_idx)

    def inverse(self, t, task_idx):
        """Draws on the law's scale back to the scores of tasks ``task_idx``, within their
        bounds."""
        lo, hi = self._bounds[0][task_idx], self._bounds[1][task_idx]
        return np.clip(self.spec.inverse(t, self._bounds, task_idx), lo, hi)

    def curve(self, family: str, task: str, sizes, *, rng_key, noise: bool = True) -> np.ndarray:
        """Predictive draws ``(n_draws, len(sizes))`` of the score of ``family`` on ``task`` at
        the given sizes (on the family's axis: FLOPs or parameters), in original units."""
        if family not in self.families:
            raise KeyError(f"family {family!r} has no placed model"
                           f"{did_you_mean(family, self.families)}")
        f = self.families.index(family)
        j = self.matrix.task_index(task)
        axis = AXES[self.layout["family_axis"][f]]
        x = np.log10(np.asarray(sizes, float)) - self.layout["centre"][axis]
        key = as_key(rng_key)
        t = self._transformed_draws(np.full(x.shape, f), np.full(x.shape, j), x[None, :], key,
                                    noise, shared_noise=True)
        return self.inverse(t, np.full(x.shape, j))

    def family_axis(self, family: str) -> str:
        return AXES[self.layout["family_axis"][self.families.index(family)]]

    def slopes(self, level: float = 0.9) -> pd.DataFrame:
        """Slope of the transformed score per decade of size, per (family, task): posterior mean,
        central ``level`` interval, and the number of training points behind it."""
        w = self._params()[0]
        lo, hi = np.quantile(w, [(1 - level) / 2, (1 + level) / 2], axis=0)
        F, J = w.shape[1:]
        fams = np.repeat(self.families, J)
        return pd.DataFrame({
            "family": fams,
            "task": np.tile(np.asarray(self.matrix.tasks, dtype=object), F),
            "axis": [self.family_axis(f) for f in fams],
            "n_points": self.n_points.ravel(),
            "mean": w.mean(axis=0).ravel(), "lower": lo.ravel(), "upper": hi.ravel(),
        })
