"""The observation model every Bayesian collaborative model shares: per-task noise, partially
pooled, with a floor; a Normal or Student-t likelihood; padding of the cells to shared sizes."""

from __future__ import annotations

from contextlib import nullcontext

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


def observe(mean, sigma, task_idx, y, likelihood: str, mask=None):
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
    0 and are masked out of the likelihood. Why 1/4:
    ``docs/decisions/0007-small-measured-choices.md``."""
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
