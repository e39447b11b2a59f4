"""The observation model every Bayesian collaborative model shares: per-task noise, partially
pooled, with a floor; a Normal or Student-t likelihood; padding of the cells to shared sizes."""

from __future__ import annotations

import os
from contextlib import nullcontext

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro import handlers


def task_noise(n_tasks, tau_scale: float = 0.5, log_s0_loc: float = -2.5, floor: float = 0.0):
    """Per-task noise, partially pooled; ``tau_scale=0`` shares one noise scale by all tasks;
    ``floor`` is added to every scale."""
    log_s0 = numpyro.sample("log_sigma0", dist.Normal(log_s0_loc, 1.0))
    if tau_scale == 0:
        return numpyro.deterministic("sigma", floor + jnp.exp(log_s0) * jnp.ones(n_tasks))
    tau = numpyro.sample("sigma_tau", dist.HalfNormal(tau_scale))
    with numpyro.plate("tasks", n_tasks):
        z = numpyro.sample("sigma_z", dist.Normal(0.0, 1.0))
    return numpyro.deterministic("sigma", floor + jnp.exp(log_s0 + tau * z))


def observe(mean, sigma, task_idx, y, likelihood: str, mask=None,
            subsample_size: int | None = None, censor=None):
    """The observation model of every cell: Normal, or Student-t with learned degrees of freedom
    (heavier tails: a few cells far off the low-rank structure do not inflate every interval).
    ``mean``: the cells' means, or a function of cell indices returning theirs (so that a
    minibatch computes only its own). ``mask`` (one bool per cell) leaves the cells where it is
    False out of the likelihood: the padding that rounds the number of cells up
    (:func:`pad_cells`). ``subsample_size``: a minibatch of that many cells per evaluation,
    drawn with replacement, their log-likelihood scaled by ``n_cells / subsample_size`` (an
    unbiased estimate of the whole; for SVI). ``censor`` (one value per cell, or None): +1
    where the cell's score sits on the bound at the top of its normalised range, -1 at the
    bottom, 0 inside (:func:`bound_sides`): such a score says only that the cell's value is at
    or beyond its bound (a 100% may be a model that would score 120% on a harder scale), so
    its likelihood is the predictive's mass beyond the bound rather than its density there
    (decision 0031)."""
    if likelihood == "student_t":
        nu = numpyro.sample("nu", dist.Gamma(2.0, 0.1))
    elif likelihood != "normal":  # the specs check this at construction; the model functions
        raise ValueError(f"likelihood must be 'normal' or 'student_t', got {likelihood!r}")
    n = task_idx.shape[0]
    if subsample_size is not None and subsample_size >= n:
        subsample_size = None
    if subsample_size is None:
        m = mean(None) if callable(mean) else mean
        t, yy, mk, size, weight = task_idx, y, mask, n, nullcontext()
    else:
        # a minibatch drawn with replacement (unbiased for the sum over cells); NumPyro's plate
        # subsampling draws without replacement, a loop over the batch on CPU (minutes per
        # thousand steps at 10^5 cells: docs/decisions/0008-...)
        idx = jax.random.randint(numpyro.prng_key(), (subsample_size,), 0, n)
        m = mean(idx) if callable(mean) else mean[idx]
        t = task_idx[idx]
        yy = None if y is None else y[idx]
        mk = None if mask is None else mask[idx]
        censor = None if censor is None else censor[idx]
        size, weight = subsample_size, handlers.scale(scale=n / subsample_size)
    with numpyro.plate("cells", size), weight:
        numpyro.deterministic("cell_mean", m)
        if likelihood == "student_t":  # nu + 1 > 1: the mean exists
            obs = dist.StudentT(nu + 1.0, m, sigma[t])
        else:
            obs = dist.Normal(m, sigma[t])
        if censor is None or yy is None:
            with handlers.mask(mask=mk) if mk is not None else nullcontext():
                numpyro.sample("y", obs, obs=yy)
        else:  # the cells on a bound: their mass beyond it (a factor), not their density
            inside = censor == 0
            with handlers.mask(mask=inside if mk is None else mk & inside):
                numpyro.sample("y", obs, obs=yy)
            beyond = ~inside if mk is None else mk & ~inside
            tail = log_tail(yy, m, sigma[t], censor, None if likelihood == "normal" else nu + 1.0)
            numpyro.factor("y_on_bound", jnp.where(beyond, tail, 0.0))


def log_tail(y, loc, scale, side, df=None):
    """``log P(Y >= y)`` where ``side`` is +1, ``log P(Y <= y)`` elsewhere, of a Normal
    (``df=None``) or Student-t of ``loc`` and ``scale``. The t's CDF is the regularised
    incomplete beta function, whose gradient JAX gives in ``x`` only: ``df`` is held fixed
    here (the cells inside the bounds learn it). Both tails computed where they are accurate
    (the near one through ``log1p``), no ``-inf``: a tiny mass is floored, not zero."""
    z = jnp.where(side > 0, -1.0, 1.0) * (y - loc) / scale  # log P(Z <= z)
    if df is None:
        return jax.scipy.special.log_ndtr(z)
    df = jax.lax.stop_gradient(df)
    # the beta function's gradient in x is infinite at x = 1 (z = 0): near the centre the
    # CDF's first-order expansion, 1/2 + z t(0), with t(0) the density at 0
    small = jnp.abs(z) < 1e-2
    zs = jnp.where(small, 1e-2, z)
    x = df / (df + zs * zs)
    half = 0.5 * jax.scipy.special.betainc(0.5 * df, 0.5, x)  # P(T <= -|z|)
    far = jnp.log(jnp.maximum(half, jnp.finfo(jnp.float32).tiny))
    dens0 = jnp.exp(jax.scipy.special.gammaln(0.5 * df + 0.5) - jax.scipy.special.gammaln(
        0.5 * df) - 0.5 * jnp.log(df * jnp.pi))
    centre = jnp.log(0.5 + z * dens0)
    return jnp.where(small, centre, jnp.where(z < 0, far, jnp.log1p(-half)))


def bound_sides(sm) -> np.ndarray:
    """Per observed cell of ``sm`` (the order of ``sm.observed()``): +1 where the score is on
    a bound of its task (``sm.task_info``'s ``lower``/``upper``) that is the top of the
    task's normalised range, -1 on one that is its bottom, 0 elsewhere (for
    :func:`observe`'s ``censor``). A lower-is-better task's best score is on the bottom
    of its range or the top, whichever its normalisation makes it."""
    mi, ti = np.nonzero(sm.mask)
    out = np.zeros(len(mi), np.int32)
    info = sm.task_info
    if info is None or not {"lower", "upper"} <= set(info.columns) or not len(mi):
        return out
    lo = info["lower"].to_numpy(float)[ti]
    hi = info["upper"].to_numpy(float)[ti]
    v = sm.scores[mi, ti].astype(float)
    step = np.where(np.isfinite(lo) & np.isfinite(hi), (hi - lo) * 1e-3, 1e-3)
    for bound, inward, reached in ((lo, step, v <= lo), (hi, -step, v >= hi)):
        on = np.isfinite(bound) & reached
        if not on.any():
            continue
        at = sm.normalize(bound[on], mi[on], ti[on])
        near = sm.normalize(bound[on] + inward[on], mi[on], ti[on])
        out[np.flatnonzero(on)] = np.where(at > near, 1, -1)
    return out


#: draws per block of :func:`predictive_noise`: each block has its own generator, so that the
#: draws do not depend on how many threads share the blocks
NOISE_BLOCK = 8


def predictive_noise(mean, samples: dict, task_idx, likelihood: str, rng_key) -> np.ndarray:
    """Draws of ``y`` given the draws of its cell means ``mean`` ``(n_draws, n_cells)``: the
    observation model of :func:`observe` (``sigma``, and ``nu`` for Student-t, from
    ``samples``), with the noise drawn by NumPy, seeded from ``rng_key``. JAX's gamma sampler
    (behind Student-t draws) is a rejection loop, far slower on CPU than NumPy's
    (docs/decisions/0008-pmf-cost-grows-with-the-cells.md). Blocks of
    :data:`NOISE_BLOCK` draws, each with a generator spawned from the key's, run on a thread
    per core (NumPy's samplers and ufuncs release the GIL), one draw row at a time into reused
    float32 buffers: the same draws on any machine and thread count, and the noise of a large
    prediction is no longer its slowest part (decision 0013). ``mean`` is
    overwritten where NumPy may write to it."""
    from concurrent.futures import ThreadPoolExecutor

    from cppjax.inference.keys import numpy_rng

    out = np.asarray(mean, np.float32)
    if not out.flags.writeable:  # an array JAX handed over
        out = out.copy()
    sigma = np.asarray(samples["sigma"], np.float32)
    df = (np.asarray(samples["nu"], np.float64) + 1.0 if likelihood == "student_t" else None)
    task_idx = np.asarray(task_idx)
    starts = range(0, out.shape[0], NOISE_BLOCK)
    rngs = numpy_rng(rng_key).spawn(len(starts))

    def block(b: int) -> None:
        rng, lo = rngs[b], starts[b]
        eps = np.empty(out.shape[1], np.float32)
        chi = np.empty(out.shape[1], np.float32) if df is not None else None
        for r in range(lo, min(lo + NOISE_BLOCK, out.shape[0])):
            rng.standard_normal(dtype=np.float32, out=eps)
            if df is not None:  # t = z / sqrt(chi2_df / df)
                rng.standard_gamma(df[r] / 2.0, dtype=np.float32, out=chi)
                np.multiply(chi, np.float32(2.0 / df[r]), out=chi)
                np.sqrt(chi, out=chi)
                np.divide(eps, chi, out=eps)
            eps *= sigma[r][task_idx]
            out[r] += eps

    workers = min(len(starts), os.cpu_count() or 1)
    if workers <= 1 or out.size < 2**20:  # small: threads cost more than they save
        for b in range(len(starts)):
            block(b)
    else:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(block, range(len(starts))))
    return out


def padded_size(n: int) -> int:
    """``n`` cells rounded up to a size shared by many numbers of cells (at most 1/4 more)."""
    step = 2 ** max(0, int(np.log2(max(n, 1))) - 2)
    return -(-n // step) * step


def pad_cells(model_idx, task_idx, y):
    """The cells rounded up to a size shared by many numbers of cells (at most 1/4 more), with
    the mask of the real ones: a fit on a few more or fewer cells than the last (another split,
    a newly revealed score, a new model's scores held out) reuses the last fit's compiled
    programs. The padding cells repeat the first cell (a model and a task with data) with score
    0 and are masked out of the likelihood. Why 1/4:
    ``docs/decisions/0007-small-measured-choices.md``."""
    n = len(model_idx)
    pad = padded_size(n) - n

    def ext(a, dtype, fill):
        return np.concatenate([np.asarray(a, dtype), np.full(pad, fill, dtype)])

    def first(a):
        return a[0] if n else 0

    return (ext(model_idx, np.int32, first(model_idx)), ext(task_idx, np.int32, first(task_idx)),
            ext(y, np.float32, 0.0), np.arange(n + pad) < n)
