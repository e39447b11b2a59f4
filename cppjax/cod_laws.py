"""The performance-compute laws of clustering on difficulty (:mod:`cppjax.cod`): their NumPyro
models, their fit through the package's inference objects, their draws, and the extrapolation
error that a backtest inside the training models measures.

Every law fit goes through :func:`cppjax.inference.run_inference` with the inference object of
the COD settings (SVI by default), on inputs padded to fixed buckets of observations and
groups: fits of one settings object on tables of nearby sizes (a backtest's smaller training
sets, a benchmark's seeds, a refit with more models) reuse one compiled program instead of
compiling one per shape (``docs/decisions/0017-cod-fast-and-calibrated.md``).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

from cppjax.inference import numpy_rng, run_inference

_EPS = 1e-3
#: observations and groups are padded up to multiples of these (masked out of the likelihood)
OBS_BUCKET, GROUP_BUCKET = 256, 8


def law(x, g, a, b, c):
    """``g + (1 - g) exp(-a x^-b - c)``, ``x = C / C_max`` (floor g, ceiling below 1)."""
    return g + (1 - g) * jnp.exp(-a * jnp.power(x, -b) - c)


def sigmoid_law(x, g, u, k, m):
    """``g + (u - g) sigmoid(k (log10 x - m))``: the task-level sigmoid in log compute."""
    return g + (u - g) * jax.nn.sigmoid(k * (jnp.log10(x) - m))


def law_model(x, group, n_items, floor, y=None, mask=None, *, n_groups: int,
              form: str = "law"):
    """Each group's mean accuracy against compute ``x`` (relative to the largest training
    model), with a per-group scatter on top of the binomial noise of ``n_items`` items.
    ``mask``: which observations count (the rest pad the inputs to a bucket's shape)."""
    with numpyro.plate("groups", n_groups):
        if form == "law":
            a = numpyro.sample("a", dist.LogNormal(0.0, 1.5))
            b = numpyro.sample("b", dist.LogNormal(np.log(0.5), 0.8))
            c = numpyro.sample("c", dist.HalfNormal(1.0))
            params = (a, b, c)
        else:
            # a cluster of items tends to be solvable in the end: a ceiling near 1 a priori
            u = numpyro.sample("u", dist.Beta(5.0, 1.0))
            k = numpyro.sample("k", dist.LogNormal(np.log(2.0), 1.0))
            m = numpyro.sample("m", dist.Normal(0.0, 2.0))
            params = (floor + (1 - floor) * u, k, m)
        s = numpyro.sample("scatter", dist.HalfNormal(0.05))
    fn = law if form == "law" else sigmoid_law
    mu = fn(x, floor[group], *(p[group] for p in params))
    sd = jnp.sqrt(s[group] ** 2 + jnp.clip(mu * (1 - mu), 1e-4) / n_items)
    like = dist.Normal(mu, sd)
    numpyro.sample("y", like if mask is None else like.mask(mask), obs=y)


def mapping_model(sub, task, y=None, *, n_tasks: int):
    """``logit(full) = alpha + beta logit(subset) + noise`` per task."""
    with numpyro.plate("tasks", n_tasks):
        alpha = numpyro.sample("alpha", dist.Normal(0.0, 2.0))
        beta = numpyro.sample("beta", dist.LogNormal(0.0, 0.5))
        tau = numpyro.sample("tau", dist.HalfNormal(0.5))
    mu = alpha[task] + beta[task] * sub
    numpyro.sample("y", dist.Normal(mu, tau[task]), obs=y)


def logit(p, eps: float = _EPS):
    p = np.clip(p, eps, 1 - eps)
    return np.log(p) - np.log1p(-p)


def _bucket(n: int, step: int) -> int:
    return int(step * max(1, np.ceil(n / step)))


def fit_groups(acc, x, counts, floors, key, inference, form, diagnostics, name):
    """The laws of every group (column) of ``acc`` (models x groups, NaN = not run) against
    relative compute ``x``; returns the posterior samples of the real groups."""
    n_groups = acc.shape[1]
    mi, gi = np.indices(acc.shape)
    keep = np.isfinite(acc)
    n_obs, P, G = int(keep.sum()), _bucket(int(keep.sum()), OBS_BUCKET), _bucket(n_groups,
                                                                               GROUP_BUCKET)
    xp, gp, npd, yp = np.ones(P), np.zeros(P, int), np.ones(P), np.full(P, 0.5)
    xp[:n_obs], gp[:n_obs], yp[:n_obs] = x[mi[keep]], gi[keep], acc[keep]
    npd[:n_obs] = counts[gi[keep]]
    fp = np.zeros(G)
    fp[:n_groups] = floors
    args = (jnp.asarray(xp, jnp.float32), jnp.asarray(gp, jnp.int32),
            jnp.asarray(npd, jnp.float32), jnp.asarray(fp, jnp.float32))
    res = run_inference(partial(law_model, n_groups=G, form=form), args,
                        jnp.asarray(yp, jnp.float32), inference=inference, rng_key=key,
                        progress=False, warn=False,
                        data={"mask": jnp.asarray(np.arange(P) < n_obs)})
    diagnostics[name] = {**res.diagnostics, "seconds": res.seconds}
    return {k: np.asarray(v)[:, :n_groups] for k, v in res.samples.items()
            if np.ndim(v) == 2 and np.shape(v)[1] == G}


def law_draws(samples, x, floors, form="law", scatter_key=None):
    """Draws ``(S, n_x, n_groups)`` of each group's accuracy at compute ``x`` (relative)."""
    xx = jnp.asarray(x, jnp.float32)[None, :, None]
    f = jnp.asarray(floors, jnp.float32)[None, None, :]
    if form == "law":
        p = [jnp.asarray(samples[k])[:, None, :] for k in ("a", "b", "c")]
        mu = law(xx, f, *p)
    else:
        u = f + (1 - f) * jnp.asarray(samples["u"])[:, None, :]
        mu = sigmoid_law(xx, f, u, *(jnp.asarray(samples[k])[:, None, :] for k in ("k", "m")))
    mu = np.asarray(mu, float)
    if scatter_key is not None:
        rng = numpy_rng(scatter_key)
        mu = mu + samples["scatter"][:, None, :] * rng.standard_normal(mu.shape)
    return np.clip(mu, 0.0, 1.0)


# -- the extrapolation error, measured by a backtest ------------------------------------------
def fit_extrapolation(resid, var, gap, level: float = 0.9) -> dict:
    """The extrapolation term of a backtest: held-out cells' residuals ``resid`` (logit of the
    truth minus the predictive's mean logit), the predictive's own variance ``var`` (logit) and
    each cell's compute gap ``gap`` (ln of its compute over the largest fitted model's, >= 0).

    The added variance ``s0^2 + (s1 gap)^2`` maximises the Normal likelihood of the residuals
    (a grid); then each side of the predictive is scaled by its own factor so that the
    backtest's residuals fall below and above the ``level`` interval at ``(1 - level) / 2``
    each (a split-conformal step per side: residuals are heavier tailed than a Normal, and
    often on one side, e.g. a model zoo's models that score 0; decision 0017). Returns
    ``{s0, s1, kappa_lo, kappa_hi, n}``; a factor is at least 0.5."""
    r, v, d = (np.asarray(a, float) for a in (resid, var, gap))
    grid0, grid1 = np.linspace(0.05, 2.05, 41), np.linspace(0.0, 2.0, 41)
    tot = v[None, None] + grid0[:, None, None] ** 2 + (grid1[None, :, None] * d) ** 2
    tot = np.maximum(tot, 1e-6)
    ll = -0.5 * (np.log(tot) + r ** 2 / tot).sum(axis=-1)
    i, j = np.unravel_index(np.argmax(ll), ll.shape)
    s0, s1 = float(grid0[i]), float(grid1[j])
    z = r / np.sqrt(np.maximum(v + s0 ** 2 + (s1 * d) ** 2, 1e-6))
    from scipy.stats import norm

    tail, zq = (1 - level) / 2, float(norm.ppf(0.5 + level / 2))
    # the finite-sample conformal quantile of each side
    q = min(1.0, np.ceil((r.size + 1) * (1 - tail)) / r.size)
    hi = float(np.quantile(np.maximum(z, 0), q)) / zq
    lo = float(np.quantile(np.maximum(-z, 0), q)) / zq
    return {"s0": s0, "s1": s1, "kappa_lo": max(0.5, lo), "kappa_hi": max(0.5, hi),
            "n": int(r.size)}


def widen(draws, gap, cal: dict, rng) -> np.ndarray:
    """``draws`` ``(S, n)`` of accuracies widened by the backtest's term ``cal`` at compute
    gaps ``gap`` ``(n,)``, in logit space around each cell's median, each side by its own
    factor (never beyond [0, 1], never of zero width)."""
    z = logit(draws)
    mid = np.median(z, axis=0, keepdims=True)
    sd = np.sqrt(cal["s0"] ** 2 + (cal["s1"] * np.maximum(gap, 0.0)) ** 2)
    dev = (z - mid) + sd * rng.standard_normal(z.shape)
    z = mid + np.where(dev < 0, cal["kappa_lo"], cal["kappa_hi"]) * dev
    return 1.0 / (1.0 + np.exp(-z))
