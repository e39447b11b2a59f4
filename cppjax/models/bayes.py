"""Probabilistic matrix factorisation and Bayesian NCF in NumPyro.

Both are plain NumPyro model functions ``model(Xm, Xt, model_idx, task_idx, y=None, **config)``
over normalised scores; inference lives in :mod:`cppjax.inference`. Plates are named after the
matrix axes (``"models"``, ``"tasks"``, ``"cells"``).

**Probabilistic MF** (:class:`PMF`)::

    y_ij ~ StudentT(nu, mu + a_i + b_j + sum_k lam_k u_ik v_jk, sigma_j)   (or Normal)
    a_i = x_i' beta_a + s_fa h_g(i) + s_a e_i                    (x_i: model design factors,
    u_ik = x_i' W_k + s_fu H_g(i)k + e_ik                         g(i): model i's family)
    b_j = t_j' beta_b + s_b f_j      v_jk = t_j' G_k + f_jk      (t_j: task design factors)
    beta, W, G ~ Normal(0, r)        one regression scale r ~ HalfNormal(0.3) per block, learned
    h_g, H_gk ~ Normal(0, 1)         family effects, scales s_fa ~ HalfNormal(0.3) and
                                     s_fu ~ HalfNormal(1) learned (``PMF(family=None)``: none)
    lam_k ~ HalfNormal(0.5)          one shrinkage scale per latent dimension: the effective rank
                                     is learned, unused dimensions shrink to 0
    sigma_j = floor + exp(log sigma_0 + tau z_j)   per-task (heteroscedastic) noise, partially
                                     pooled, with a floor (0.03 by default) that keeps a task's
                                     noise from collapsing onto an exact fit (NUTS diverged there)
    nu - 1 ~ Gamma(2, 0.1)           learned tails; ``likelihood="normal"`` for a Gaussian

How it is sampled matters as much as what it says. The regression coefficients are integrated
out: a column of offsets or latent factors is ``K^(1/2) z`` with ``z ~ Normal(0, I)`` and
``K = s**2 I + r**2 X X'`` (the symmetric square root from one eigendecomposition of ``X X'`` per
fit), so NUTS samples one value per model and task instead of a coefficient per design column
on top (the CPP design has 71 columns for 72 models: the coefficients and the residuals were a
ridge NUTS crawled along). The offsets and the latent columns are centred (their means are
carried by ``mu`` and the offsets), which removes the directions only the prior pinned down.
On the CPP data this halved the leapfrog steps of a rank-0 fit, raised the smallest effective
sample size of the fitted cell means from about 50 to 150-250, and let the regression scales be
learned (a hierarchical scale on explicit coefficients made NUTS diverge in a funnel).

A model or task without scores (cold start) takes its offsets and latent factors from the factor
regressions, with the prior spread around them: its interval widens accordingly. Its rows are
drawn from the regression's conditional given the rows with data (:func:`conditional_basis`),
so the variables behind them are independent of the data a posteriori; with the symmetric
square root SVI's Gaussian guides were overconfident on cold start (90% coverage 0.62-0.68 on
the held-out largest models of the OSL table, 0.87-0.91 conditioned). The offsets and factors
are centred on the rows with data, and a fit's log density is computed from those rows alone
(``data_cells=True``): the rows without data feed only the recorded offsets, and their
conditional draws (a Cholesky factor per scale) drop out of the compiled gradient. With the
cells' means gathered from the fitted matrix at once (rather than four gathers of rows), a
gradient of 4 chains took 65-76 us instead of 96-110 on a random CPP split and 66-74 instead
of 118-143 with 8 new models (2 CPU cores, two back-to-back measurements); NUTS fits went
from 40-57 to 31-39 s on average.

**Bayesian NCF** (:class:`BNCF`): the NCF network of :mod:`cppjax.models.nets` (with design factors)
lifted into NumPyro with ``random_flax_module``, Normal priors on every weight, and the same
per-task noise model with a lower floor, 0.015 (without one, NUTS met 50-320 divergences per
fit on the CPP data where a task's noise collapsed onto the network's near-exact fit; with
0.03 or 0.015, none).
"""

from __future__ import annotations

import json
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pandas as pd
from numpyro import handlers
from numpyro.contrib.module import random_flax_module

from cppjax.data import Normalization, ScoreMatrix
from cppjax.features import category_levels, design_matrix, encode_factors
from cppjax.inference import (
    InferenceResult,
    log_likelihood,
    predict_sites,
    run_inference,
)
from cppjax.models.nets import NCFNet, factor_arrays
from cppjax.predictive import Posterior


# ---------------------------------------------------------------------------------------------
# model functions
# ---------------------------------------------------------------------------------------------
def _task_noise(n_tasks, tau_scale: float = 0.5, log_s0_loc: float = -2.5, floor: float = 0.0):
    """Per-task noise, partially pooled; ``tau_scale=0`` shares one noise scale by all tasks;
    ``floor`` is added to every scale."""
    log_s0 = numpyro.sample("log_sigma0", dist.Normal(log_s0_loc, 1.0))
    if tau_scale == 0:
        return numpyro.deterministic("sigma", floor + jnp.exp(log_s0) * jnp.ones(n_tasks))
    tau = numpyro.sample("sigma_tau", dist.HalfNormal(tau_scale))
    with numpyro.plate("tasks", n_tasks):
        z = numpyro.sample("sigma_z", dist.Normal(0.0, 1.0))
    return numpyro.deterministic("sigma", floor + jnp.exp(log_s0 + tau * z))


def _observe(mean, sigma, task_idx, y, likelihood: str, mask=None):
    """The observation model of every cell: Normal, or Student-t with learned degrees of freedom
    (heavier tails: a few cells far off the low-rank structure do not inflate every interval).
    ``mask`` (one bool per cell) leaves the cells where it is False out of the likelihood: the
    padding that rounds the number of cells up (:func:`pad_cells`)."""
    if likelihood == "student_t":
        nu = numpyro.sample("nu", dist.Gamma(2.0, 0.1))
        obs = dist.StudentT(nu + 1.0, mean, sigma[task_idx])  # nu + 1 > 1: the mean exists
    elif likelihood == "normal":
        obs = dist.Normal(mean, sigma[task_idx])
    else:  # the specs check this at construction; the model functions can be used alone
        raise ValueError(f"likelihood must be 'normal' or 'student_t', got {likelihood!r}")
    with numpyro.plate("cells", mean.shape[0]):
        numpyro.deterministic("cell_mean", mean)
        with handlers.mask(mask=mask) if mask is not None else nullcontext():
            numpyro.sample("y", obs, obs=y)


def pad_cells(model_idx, task_idx, y):
    """The cells rounded up to a size shared by many numbers of cells (at most 1/4 more), with
    the mask of the real ones: a fit on a few more or fewer cells than the last (another split,
    a newly revealed score, a new model's scores held out) reuses the last fit's compiled
    programs. The padding cells repeat the first cell (a model and a task with data) with score
    0 and are masked out of the likelihood. (At most 1/8 more, the three CPP-0 groups of 8 new
    models, 690, 732 and 759 cells, took two sizes, and PMF's NUTS compiled for 14 s of a 63 s
    fit on 2 CPU cores.)"""
    n = len(model_idx)
    step = 2 ** max(0, int(np.log2(max(n, 1))) - 2)
    size = -(-n // step) * step
    pad = size - n

    def ext(a, dtype, fill):
        return np.concatenate([np.asarray(a, dtype), np.full(pad, fill, dtype)])

    def first(a):
        return a[0] if n else 0

    return (ext(model_idx, np.int32, first(model_idx)), ext(task_idx, np.int32, first(task_idx)),
            ext(y, np.float32, 0.0), np.arange(size) < n)


def prior_basis(X) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvectors and eigenvalues of ``X X'`` (float32), computed once per fit: the covariance
    ``s0**2 I + s1**2 X X'`` of a factor regression with its coefficients integrated out has the
    symmetric square root ``Q diag(sqrt(s0**2 + s1**2 ev)) Q'`` for any ``s0, s1``."""
    X = np.asarray(X, np.float64)
    if X.shape[1] == 0:
        return np.eye(X.shape[0], dtype=np.float32), np.zeros(X.shape[0], np.float32)
    ev, Q = np.linalg.eigh(X @ X.T)
    return Q.astype(np.float32), np.clip(ev, 0.0, None).astype(np.float32)


class ConditionalBasis(NamedTuple):
    """What :func:`_regressed` needs to draw the rows without data (cold-start models or tasks)
    from the factor regression *given* the rows with data; see :func:`conditional_basis`."""

    observed: np.ndarray  # indices of the rows with data
    new: np.ndarray  # indices of the rows without
    observed_basis: tuple  # prior_basis(X[observed])
    XoP: jnp.ndarray  # X[observed] @ P, with X[observed]' X[observed] = P diag(M) P'
    XnP: jnp.ndarray  # X[new] @ P
    M: jnp.ndarray
    keep: jnp.ndarray  # M clearly above 0 (directions the observed rows determine)
    inverse: np.ndarray  # rows of concatenate([observed, new]) back in the original order


def conditional_basis(X, observed) -> tuple | ConditionalBasis:
    """Like :func:`prior_basis`, for a matrix where some rows (``observed`` False: models or tasks
    without a score) have no data. Their offsets and factors are drawn from the regression's
    conditional given the observed rows' (a Gaussian conditional in weight space), so the
    variables behind them carry no information from the data: their posterior is their prior,
    which SVI's guides get right (with the symmetric square root, a cold row is a mix of every
    row's variables, which the posterior correlates and a low-rank guide misses: SVI was
    overconfident on cold start). The joint prior is the same. Without cold rows this is
    :func:`prior_basis`; without design factors (no columns) the new rows are ``s0`` times their
    own variables, as there, but kept apart from the rows with data (which a fit's density
    then leaves out: ``pmf_model(..., data_cells=True)``)."""
    X = np.asarray(X, np.float64)
    observed = np.asarray(observed, bool)
    o, n = np.flatnonzero(observed), np.flatnonzero(~observed)
    if n.size == 0 or o.size == 0:
        return prior_basis(X)
    M, P = np.linalg.eigh(X[o].T @ X[o])
    M = np.clip(M, 0.0, None)
    keep = M > 1e-6 * max(float(M.max(initial=0.0)), 1e-12)

    def f32(a):
        return jnp.asarray(a, jnp.float32)

    return ConditionalBasis(o, n, prior_basis(X[o]), f32(X[o] @ P), f32(X[n] @ P), f32(M),
                            jnp.asarray(keep), np.argsort(np.concatenate([o, n])))


def _regressed(z, basis, s0, s1):
    """Rows of ``z`` (one per model or task, standard normal) mapped to draws of the factor
    regression ``X B + s0 e``, ``B ~ Normal(0, s1)``, without sampling ``B``: covariance
    ``K = s0**2 I + s1**2 X X'``.

    With a :func:`prior_basis` this is ``K^(1/2) z``, the symmetric square root: unique, so the
    map does not depend on how the eigenvectors of a repeated eigenvalue were chosen. With a
    :class:`ConditionalBasis` the observed rows are ``K_oo^(1/2) z_o`` and the new rows their
    conditional mean given those plus the Cholesky factor of the conditional covariance times
    ``z_n``, computed in weight space (``Sigma_B = (I / s1**2 + X_o' X_o / s0**2)^-1``), which
    stays positive definite in float32."""
    return _all_rows(_data_rows(z, basis, s0, s1), z, basis, s0, s1)


def _per_row(w, z):
    """``w`` (one weight per row) shaped to broadcast against ``z`` (a vector or a matrix)."""
    return w.reshape(w.shape + (1,) * (z.ndim - 1))


def _data_rows(z, basis, s0, s1):
    """The rows with data of ``_regressed(z, basis, s0, s1)`` (every row for a
    :func:`prior_basis`), computed without the rows without data."""
    if isinstance(basis, ConditionalBasis):
        return _data_rows(z[basis.observed], basis.observed_basis, s0, s1)
    Q, ev = basis
    d = jnp.sqrt(s0**2 + s1**2 * ev)
    return Q @ (_per_row(d, z) * (Q.T @ z))


def _all_rows(a_o, z, basis, s0, s1):
    """Every row of ``_regressed(z, basis, s0, s1)`` from its rows with data ``a_o``
    (:func:`_data_rows`): with a :class:`ConditionalBasis`, the new rows drawn from their
    conditional given ``a_o``; with a :func:`prior_basis`, ``a_o`` itself."""
    if not isinstance(basis, ConditionalBasis):
        return a_o
    s0sq, s1sq = s0**2, s1**2
    gain = jnp.where(basis.keep, 1.0 / (s0sq / s1sq + basis.M), 0.0)  # E[B | a_o] in P
    mean_n = basis.XnP @ (_per_row(gain, a_o) * (basis.XoP.T @ a_o))
    cov_b = s0sq * s1sq / (s0sq + s1sq * basis.M)  # Sigma_B in P
    cov_n = s0sq * jnp.eye(basis.new.size) + (basis.XnP * cov_b) @ basis.XnP.T
    a_n = mean_n + jnp.linalg.cholesky(cov_n) @ z[basis.new]
    # back to the row order with one gather (rather than scattering into a zero array)
    return jnp.concatenate([a_o, a_n])[basis.inverse]


def _data_row_position(basis, idx):
    """Each row of ``idx``'s position among the rows with data (rows without data: beyond)."""
    if isinstance(basis, ConditionalBasis):
        return jnp.asarray(basis.inverse)[idx]
    return idx


def _row_positions(basis, n_rows):
    """The rows with data in the order :func:`_data_rows` returns them."""
    return basis.observed if isinstance(basis, ConditionalBasis) else np.arange(n_rows)


def pmf_model(Xm, Xt, model_idx, task_idx, y=None, mask=None, *, rank: int = 5,
              noise_tau: float = 0.5, noise_floor: float = 0.0, likelihood: str = "normal",
              reg_scale: float | None = None, bases=None, data_cells: bool = False,
              families=None):
    """Probabilistic MF with per-dimension shrinkage, factor regressions (coefficients integrated
    out) and per-task noise; ``bases``: the :func:`prior_basis` or :func:`conditional_basis` of
    ``Xm`` and of ``Xt`` (prior bases computed here when not given); ``reg_scale=None`` learns
    the four regression scales.

    The offsets and latent factors are centred on the rows with data. ``data_cells=True`` says
    that every cell is on a model and a task with data (a fit's training cells): their means are
    then computed from those rows alone, so that the rows without data (cold start), which feed
    only the deterministic offsets, drop out of the compiled log density and its gradient. A
    cell on a row without data gives a wrong mean there: leave it False for predictions (as
    :meth:`_Bayes.fit` does: it passes True to the fit only).

    ``families``: a one-hot ``(n_models, n_families)`` matrix (a row of zeros: no family) or
    None. Each family then shifts its models' offsets and latent factors by a family effect,
    ``s_fa h_g`` and ``s_fu H_g``, ``h, H ~ Normal(0, 1)``, with their own learned scales, on
    top of the factor regressions (whose design then leaves the family columns out): a new
    family's effect is a draw from the prior of scale ``s_fa``, learned from how far the
    training families sit from what their design factors predict."""
    if reg_scale is None:
        r_a = numpyro.sample("reg_model_offset", dist.HalfNormal(0.3))
        r_b = numpyro.sample("reg_task_offset", dist.HalfNormal(0.3))
        r_u = numpyro.sample("reg_model_latent", dist.HalfNormal(0.3))
        r_v = numpyro.sample("reg_task_latent", dist.HalfNormal(0.3))
    else:
        r_a = r_b = r_u = r_v = reg_scale
    n_models, n_tasks = Xm.shape[0], Xt.shape[0]
    bm, bt = bases if bases is not None else (prior_basis(Xm), prior_basis(Xt))
    mu = numpyro.sample("mu", dist.Normal(0.5, 0.5))
    s_a = numpyro.sample("s_model", dist.HalfNormal(0.5))
    s_b = numpyro.sample("s_task", dist.HalfNormal(0.5))
    with numpyro.plate("models", n_models):
        a_z = numpyro.sample("a_z", dist.Normal(0.0, 1.0))
    with numpyro.plate("tasks", n_tasks):
        b_z = numpyro.sample("b_z", dist.Normal(0.0, 1.0))

    def centred(z, basis, s0, s1, shift=None):
        """Every row and the rows with data, centred on the mean of the rows with data;
        ``shift``: a per-row term (the family effects) added to the regression's rows."""
        data = _data_rows(z, basis, s0, s1)
        rows = _all_rows(data, z, basis, s0, s1)
        if shift is not None:
            data = data + shift[_row_positions(basis, z.shape[0])]
            rows = rows + shift
        centre = data.mean(0)
        return rows - centre, data - centre

    fam_a = fam_u = None
    has_families = families is not None and families.shape[1] > 0
    if has_families:
        s_fa = numpyro.sample("s_family_offset", dist.HalfNormal(0.3))
        with numpyro.plate("families", families.shape[1]):
            f_z = numpyro.sample("family_offset_z", dist.Normal(0.0, 1.0))
        fam_a = families @ (s_fa * f_z)
    a, a_data = centred(a_z, bm, s_a, r_a, fam_a)
    b, b_data = centred(b_z, bt, s_b, r_b)
    a = numpyro.deterministic("model_offset", a)
    b = numpyro.deterministic("task_offset", b)
    if data_cells:  # the matrix of the rows with data, and the cells' positions in it
        rows, cols = _data_row_position(bm, model_idx), _data_row_position(bt, task_idx)
        a, b = a_data, b_data
    else:
        rows, cols = model_idx, task_idx
    full = mu + a[:, None] + b[None, :]
    if rank:
        lam = numpyro.sample("lam", dist.HalfNormal(0.5).expand([rank]).to_event(1))
        with numpyro.plate("models", n_models):
            u_e = numpyro.sample("U_z", dist.Normal(0.0, 1.0).expand([rank]).to_event(1))
        with numpyro.plate("tasks", n_tasks):
            v_e = numpyro.sample("V_z", dist.Normal(0.0, 1.0).expand([rank]).to_event(1))
        if has_families:
            s_fu = numpyro.sample("s_family_latent", dist.HalfNormal(1.0))
            with numpyro.plate("families", families.shape[1]):
                fu_z = numpyro.sample("family_latent_z",
                                      dist.Normal(0.0, 1.0).expand([rank]).to_event(1))
            fam_u = families @ (s_fu * fu_z)
        U, U_data = centred(u_e, bm, 1.0, r_u, fam_u)
        V, V_data = centred(v_e, bt, 1.0, r_v)
        if data_cells:
            U, V = U_data, V_data
        full = full + (U * lam) @ V.T  # sum_k lam_k u_ik v_jk
    # the cells' means gathered from the matrix in one gather (four gathers of rows, and their
    # gradients' scatters, cost a third of PMF's gradient on 2 CPU cores)
    mean = full.reshape(-1)[rows * full.shape[1] + cols]
    sigma = _task_noise(n_tasks, noise_tau, floor=noise_floor)
    _observe(mean, sigma, task_idx, y, likelihood, mask)


def bncf_model(
    Xm, Xt, model_idx, task_idx, y=None, mask=None, *, net: NCFNet, factors: tuple,
    prior_scale: float = 0.3, noise_tau: float = 0.5, noise_floor: float = 0.0,
    likelihood: str = "normal",
):
    """Bayesian NCF: Normal(0, prior_scale) priors on all weights, per-task noise."""
    nn = random_flax_module(
        "ncf", net, dist.Normal(0.0, prior_scale), model_idx[:1], task_idx[:1], *factors
    )
    mean = nn(model_idx, task_idx, *factors)
    sigma = _task_noise(Xt.shape[0], noise_tau, floor=noise_floor)
    _observe(mean, sigma, task_idx, y, likelihood, mask)


# ---------------------------------------------------------------------------------------------
# specs
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Bayes:
    use_factors: bool = True
    num_warmup: int = 500
    num_samples: int = 1000
    num_chains: int = 4
    target_accept: float = 0.9
    max_tree_depth: int = 8
    guide: Literal["lowrank", "meanfield"] = "lowrank"
    guide_rank: int | None = None
    svi_steps: int = 5000
    lr: float = 0.01
    noise_tau: float = 0.5
    noise_floor: float = 0.03
    likelihood: Literal["normal", "student_t"] = "normal"

    kind = "bayes"

    def __post_init__(self):
        if self.likelihood not in ("normal", "student_t"):
            raise ValueError(f"likelihood must be 'normal' or 'student_t', got {self.likelihood!r}")
        if self.guide_rank is not None and self.guide_rank < 1:
            raise ValueError(f"guide_rank must be a positive integer or None: {self.guide_rank}")
        if self.noise_floor < 0:
            raise ValueError(f"noise_floor must be >= 0 (normalised units), got {self.noise_floor}")

    def _design(self, sm: ScoreMatrix):
        if not self.use_factors:
            return (np.zeros((sm.n_models, 0), np.float32), np.zeros((sm.n_tasks, 0), np.float32))
        return (
            design_matrix(encode_factors(sm.model_factors)),
            design_matrix(encode_factors(sm.task_factors)),
        )

    def model_parts(self, sm: ScoreMatrix, data_cells: bool = False
                    ) -> tuple[partial, dict]:  # pragma: no cover
        """The model function of ``sm`` as a partial with the static configuration only, and
        the arrays it takes besides the cells (bases, factor arrays) as keyword arguments.
        ``data_cells=True``: a fit's model, whose cells are all on models and tasks with data
        (PMF then leaves the rows without data out of its log density)."""
        raise NotImplementedError

    def model_fn(self, sm: ScoreMatrix):
        """The model function of ``sm``: ``model(Xm, Xt, model_idx, task_idx, y=None)``."""
        model, data = self.model_parts(sm)
        return partial(model, **data)

    def fit(
        self, train: ScoreMatrix, *, rng_key, method: str = "nuts", progress: bool | None = None
    ) -> BayesPosterior:
        """Fit on the observed cells of ``train`` with ``method`` = ``"nuts"``, ``"svi"`` or
        ``"map"``; ``rng_key`` is a ``jax.random`` key or an int seed."""
        key = jax.random.PRNGKey(rng_key) if isinstance(rng_key, int) else rng_key
        t0 = time.perf_counter()
        Xm, Xt = self._design(train)
        obs = train.observed()
        n = len(obs.values)
        mi, ti, y, mask = pad_cells(obs.model_idx, obs.task_idx, obs.values)
        args = (jnp.asarray(Xm), jnp.asarray(Xt), jnp.asarray(mi), jnp.asarray(ti))
        model, data = self.model_parts(train, data_cells=True)

        def identified(samples):
            return samples["cell_mean"][:, :n]

        res = run_inference(
            model,
            args,
            jnp.asarray(y),
            data={**data, "mask": jnp.asarray(mask)},
            cache=True,
            rng_key=key,
            method=method,
            num_warmup=self.num_warmup,
            num_samples=self.num_samples,
            num_chains=self.num_chains,
            target_accept=self.target_accept,
            max_tree_depth=self.max_tree_depth,
            guide=self.guide,
            guide_rank=self.guide_rank,
            svi_steps=self.svi_steps,
            lr=self.lr,
            progress=progress,
            identified=identified,
        )
        res.samples = {k: v for k, v in res.samples.items() if k not in ("cell_mean", "y")}
        return BayesPosterior(train, self, res, method, time.perf_counter() - t0)


@dataclass(frozen=True)
class PMF(_Bayes):
    """Probabilistic matrix factorisation (see the module docstring); ``rank`` is the maximum
    rank: per-dimension shrinkage switches unused dimensions off. ``reg_scale`` fixes the prior
    scale of the factor-regression coefficients (``None``, the default: four scales are learned).
    ``family``: the model factor naming each model's family, whose effects on the offsets and
    latent factors get scales of their own (see :func:`pmf_model`); ignored where the factor
    table has no such column, ``None`` for none (the family then, if present, is one more
    categorical factor of the regression).

    Example:
        >>> from cppjax.datasets import load_cpp_crowdsource
        >>> post = PMF(rank=2, svi_steps=300, num_samples=50).fit(
        ...     load_cpp_crowdsource(), rng_key=0, method="svi", progress=False)
        >>> post.predict("missing", rng_key=1).draws.shape
        (50, 1210)
    """

    rank: int = 5
    reg_scale: float | None = None
    likelihood: Literal["normal", "student_t"] = "student_t"
    family: str | None = "family"

    kind = "pmf"

    def _family_column(self, sm: ScoreMatrix) -> str | None:
        """The model factor that names a model's family, if the fit uses one."""
        if self.use_factors and self.family is not None and self.family in sm.model_factors:
            return self.family
        return None

    def _design(self, sm: ScoreMatrix):
        fam = self._family_column(sm)
        if fam is None:
            return super()._design(sm)
        return (design_matrix(encode_factors(sm.model_factors, exclude=(fam,))),
                design_matrix(encode_factors(sm.task_factors)))

    def families(self, sm: ScoreMatrix) -> np.ndarray | None:
        """One-hot family membership ``(n_models, n_families)`` (a model without a family: a
        row of zeros), or None without a family column."""
        fam = self._family_column(sm)
        if fam is None:
            return None
        enc = encode_factors(sm.model_factors[[fam]], categorical=[fam])
        return np.eye(enc.cardinalities[0], dtype=np.float32)[enc.categorical[:, 0]][:, 1:]

    def family_names(self, sm: ScoreMatrix) -> list[str]:
        """The families in the order of the columns of :meth:`families`."""
        fam = self._family_column(sm)
        return [] if fam is None else category_levels(sm.model_factors[fam])[1]

    def model_parts(self, sm, data_cells=False):
        Xm, Xt = self._design(sm)
        bases = (conditional_basis(Xm, sm.mask.any(axis=1)),
                 conditional_basis(Xt, sm.mask.any(axis=0)))
        model = partial(pmf_model, rank=self.rank, noise_tau=self.noise_tau,
                        noise_floor=self.noise_floor, likelihood=self.likelihood,
                        reg_scale=self.reg_scale, data_cells=data_cells)
        fam = self.families(sm)
        return model, {"bases": bases,
                       "families": None if fam is None else jnp.asarray(fam)}


@dataclass(frozen=True)
class BNCF(_Bayes):
    """Bayesian neural collaborative filtering with design factors.

    Its SVI defaults differ from PMF's: a rank-20 low-rank guide (NumPyro's default, the square
    root of the 1,576 latent variables, is 40: a step cost 1.26 ms instead of 0.60 on 2 CPU
    cores) and 3,000 steps (on the 5 random CPP splits, with a rank-10 guide, 5,000 steps gave a
    worse held-out MSE than 3,000, 0.0141 against 0.0124, with the same 90% coverage, 0.95).

    NUTS trajectories stop at 127 leapfrog steps (``max_tree_depth=7``; PMF's is 8): every
    draw hits the limit either way (the weights' posterior is curved and its chains settle in
    different modes), and on the 5 random CPP splits depth 8 cost 49 s per fit against 26 s
    for held-out MSE 0.0070 against 0.0076 and the same coverage (0.67 / 0.91 / 0.95 / 0.96
    against 0.69 / 0.90 / 0.94 / 0.96 at 50 / 80 / 90 / 95%; 2 CPU cores, 4 chains x 1,000
    draws after 500 warm-up). ``prior_scale`` 0.2 or 0.15 instead of 0.3 did not narrow the
    held-out intervals and cost accuracy (tuning splits 100-104, depth 7: MSE 0.0147, 0.0157,
    0.0213).

    Its noise floor is 0.015 (PMF's 0.03): on the tuning splits 100-104 (NUTS, depth 7) a
    floor of 0.03 / 0.015 / 0.0075 gave MSE 0.0147 / 0.0147 / 0.0155, coverage 0.60 / 0.56 /
    0.55 at 50% and 0.94 / 0.92 / 0.94 at 95%, log predictive density 0.66 / 0.82 / 0.63 and
    0 / 0 / 7 divergent transitions over 5 fits (the 0.0075 run with the prior-median starting
    points of :func:`cppjax.inference.init_to_prior_median`, the others with NumPyro's
    ``init_to_median``, same distribution): the network fits many cells closer than 0.03, so
    that floor widened every interval (the centre covered too much); without a floor a task's
    noise collapses onto the fit and NUTS diverges. The depth figures above are at floor
    0.03."""

    dim: int = 4
    hidden: tuple[int, ...] = (16,)
    prior_scale: float = 0.3
    max_tree_depth: int = 7
    noise_floor: float = 0.015
    lr: float = 0.005
    guide_rank: int | None = 20
    svi_steps: int = 3000

    kind = "bncf"

    def model_parts(self, sm, data_cells=False):
        # (each cell's mean comes from its own model's and task's inputs: nothing to leave out)
        mf, tf = encode_factors(sm.model_factors), encode_factors(sm.task_factors)
        if not self.use_factors:
            mf = mf._replace(
                numeric=mf.numeric[:, :0],
                missing=mf.missing[:, :0],
                categorical=mf.categorical[:, :0],
                cardinalities=(),
            )
            tf = tf._replace(
                numeric=tf.numeric[:, :0],
                missing=tf.missing[:, :0],
                categorical=tf.categorical[:, :0],
                cardinalities=(),
            )
        net = NCFNet(
            sm.n_models,
            sm.n_tasks,
            self.dim,
            tuple(self.hidden),
            use_ids=True,
            use_factors=self.use_factors,
            model_cards=mf.cardinalities,
            task_cards=tf.cardinalities,
        )
        model = partial(bncf_model, net=net, prior_scale=self.prior_scale,
                        noise_tau=self.noise_tau, noise_floor=self.noise_floor,
                        likelihood=self.likelihood)
        return model, {"factors": factor_arrays(mf, tf)}


SPECS = {"pmf": PMF, "bncf": BNCF}


# ---------------------------------------------------------------------------------------------
# posterior
# ---------------------------------------------------------------------------------------------
class BayesPosterior(Posterior):
    """A fitted Bayesian model: posterior samples and the posterior predictive of any cells.

    Attributes:
        spec: the model specification (:class:`PMF` or :class:`BNCF`).
        result: samples and diagnostics (:class:`cppjax.inference.InferenceResult`).
    """

    def __init__(
        self,
        matrix: ScoreMatrix,
        spec: _Bayes,
        result: InferenceResult,
        method: str,
        fit_seconds: float,
    ):
        self.matrix = matrix
        self.spec = spec
        self.result = result
        self.method = f"{spec.kind}_{method}"
        self.fit_seconds = fit_seconds
        Xm, Xt = spec._design(matrix)
        self._X = (jnp.asarray(Xm), jnp.asarray(Xt))
        self._model = spec.model_fn(matrix)

    @property
    def samples(self) -> dict:
        return self.result.samples

    @property
    def diagnostics(self) -> dict:
        return self.result.diagnostics

    @property
    def n_draws(self) -> int:
        return next(iter(self.samples.values())).shape[0]

    def __repr__(self):
        return (
            f"BayesPosterior({self.method}, {self.n_draws} draws, fit {self.fit_seconds:.1f}s, "
            f"diagnostics={self.diagnostics})"
        )

    def _args(self, mi, ti):
        return (*self._X, jnp.asarray(mi), jnp.asarray(ti))

    def _draws(self, model_idx, task_idx, rng_key, sites=("y",)):
        if rng_key is None:
            raise ValueError("predictive draws of a Bayesian model need an rng_key (or int seed)")
        out = predict_sites(self._model, self.samples, self._args(model_idx, task_idx), sites,
                            rng_key)
        return out[sites[0]]

    def cell_means(self, model_idx, task_idx) -> np.ndarray:
        """Posterior draws of the noise-free cell means ``(n_draws, n_cells)`` (normalised)."""
        return self._draws(model_idx, task_idx, jax.random.PRNGKey(0), sites=("cell_mean",))

    def _log_lik(self, model_idx, task_idx):
        def fn(y_norm):
            return log_likelihood(
                self._model,
                self.samples,
                self._args(model_idx, task_idx),
                np.asarray(y_norm, np.float32),
            )

        return fn

    def to_arviz(self):
        """ArviZ InferenceData of the posterior with named dimensions (``models``, ``tasks``,
        ``latent``); offsets and noise are labelled by model and task name."""
        import arviz as az

        n_chains = self.result.num_chains
        coords = {"models": list(self.matrix.models), "tasks": list(self.matrix.tasks)}
        if isinstance(self.spec, PMF) and (names := self.spec.family_names(self.matrix)):
            coords["families"] = names
        dims = {
            "family_offset_z": ["families"],
            "family_latent_z": ["families", "latent"],
            "model_offset": ["models"],
            "task_offset": ["tasks"],
            "sigma": ["tasks"],
            "a_z": ["models"],
            "b_z": ["tasks"],
            "sigma_z": ["tasks"],
            "U_z": ["models", "latent"],
            "V_z": ["tasks", "latent"],
            "lam": ["latent"],
        }
        post = {
            k: v.reshape((n_chains, -1) + v.shape[1:])
            for k, v in self.samples.items()
            if k.split("$")[0] == k
        }
        return az.from_dict(
            posterior=post,
            sample_stats=self.result.sample_stats or None,
            coords=coords,
            dims={k: d for k, d in dims.items() if k in post},
        )

    # -- persistence -------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Save the training matrix, the spec and the samples to one ``.npz`` file."""
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_suffix(".npz")
        meta = {
            "spec_kind": self.spec.kind,
            "spec": asdict(self.spec),
            "method": self.method,
            "models": list(self.matrix.models),
            "tasks": list(self.matrix.tasks),
            "scale": self.matrix.scale,
            "norm_kind": self.matrix.normalization.kind,
            "model_factors": self.matrix.model_factors.to_json(orient="split"),
            "task_factors": self.matrix.task_factors.to_json(orient="split"),
            "model_factor_dtypes": {c: str(t) for c, t in self.matrix.model_factors.dtypes.items()},
            "task_factor_dtypes": {c: str(t) for c, t in self.matrix.task_factors.dtypes.items()},
            "diagnostics": self.diagnostics,
            "num_chains": self.result.num_chains,
            "fit_seconds": self.fit_seconds,
            "source": self.matrix.source,
        }
        arrays = {f"sample::{k}": v for k, v in self.samples.items()}
        np.savez(
            path,
            meta=np.array(json.dumps(meta)),
            scores=self.matrix.scores,
            norm_loc=self.matrix.normalization.loc,
            norm_scale=self.matrix.normalization.scale,
            **arrays,
        )
        return path

    @classmethod
    def load(cls, path: str | Path) -> BayesPosterior:
        """Load a posterior saved with :meth:`save`; predictions are identical."""
        with np.load(Path(path), allow_pickle=False) as f:
            meta = json.loads(str(f["meta"]))
            samples = {k.split("::", 1)[1]: f[k] for k in f.files if k.startswith("sample::")}
            scores, loc, scale = f["scores"], f["norm_loc"], f["norm_scale"]
        spec_cls = SPECS[meta["spec_kind"]]
        spec_args = meta["spec"]
        if "hidden" in spec_args:
            spec_args["hidden"] = tuple(spec_args["hidden"])
        if meta["spec_kind"] == "pmf":  # saved before PMF had family effects: none
            spec_args.setdefault("family", None)
        spec = spec_cls(**spec_args)

        def frame(js, dtypes):
            df = pd.read_json(__import__("io").StringIO(js), orient="split")
            for c, t in dtypes.items():
                df[c] = (
                    df[c].astype(float)
                    if t.startswith("float")
                    else df[c].astype(object).where(df[c].notna(), None)
                )
            return df

        mf = frame(meta["model_factors"], meta["model_factor_dtypes"])
        tf = frame(meta["task_factors"], meta["task_factor_dtypes"])
        mf.index = list(meta["models"])
        tf.index = list(meta["tasks"])
        norm = Normalization(meta["norm_kind"], loc, scale)
        sm = ScoreMatrix(
            scores,
            meta["models"],
            meta["tasks"],
            mf,
            tf,
            scale=meta["scale"],
            normalization=norm,
            source=meta["source"],
        )
        res = InferenceResult(
            samples, meta["method"].split("_")[-1], meta["num_chains"], meta["diagnostics"]
        )
        return cls(sm, spec, res, meta["method"].split("_")[-1], meta["fit_seconds"])
