"""Inference for NumPyro models behind one call: NUTS, SVI (mean-field / low-rank guides) or MAP.

A cppjax Bayesian model is a NumPyro model function ``model(data, model_idx, task_idx, y=None)``
(``data`` a static :class:`ModelData`); :func:`run_inference` returns posterior samples of its
latent sites, flattened to ``(n_draws, ...)``, and the information a user needs to trust them
(r-hat, effective sample size, divergences, the ELBO trace).
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass, field
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
from numpyro.diagnostics import effective_sample_size, split_gelman_rubin
from numpyro.infer import (
    MCMC,
    NUTS,
    SVI,
    Predictive,
    Trace_ELBO,
    init_to_median,
)
from numpyro.infer.autoguide import AutoDelta, AutoLowRankMultivariateNormal, AutoNormal

from cppjax.errors import CppjaxWarning

Method = Literal["nuts", "svi", "map"]

# XLA options for programs that run once per fit (set-up, drawing from a guide): the least
# optimisation, since their compile time is most of their cost
_RUN_ONCE = {"xla_backend_optimization_level": 0}


def progress_enabled(progress: bool | None) -> bool:
    """Progress bars are on unless ``progress=False`` or the ``CPPJAX_PROGRESS=0`` environment."""
    if progress is not None:
        return progress
    return os.environ.get("CPPJAX_PROGRESS", "1") not in ("0", "false", "no")


@dataclass
class InferenceResult:
    """Posterior samples and diagnostics of one fit.

    Attributes:
        samples: latent sites, each ``(n_draws, ...)`` (chains concatenated for NUTS).
        method: ``"nuts"``, ``"svi"`` or ``"map"``.
        num_chains: chains behind the samples (1 for SVI/MAP).
        diagnostics: ``max_rhat``, ``min_ess``, ``divergences`` (NUTS), ``final_loss`` (SVI/MAP).
        losses: the ELBO (or MAP objective) trace of SVI/MAP.
        seconds: wall-clock time (compilation included).
    """

    samples: dict
    method: str
    num_chains: int = 1
    diagnostics: dict = field(default_factory=dict)
    losses: np.ndarray | None = None
    seconds: float = float("nan")
    sample_stats: dict = field(default_factory=dict)


def run_inference(
    model,
    args: tuple,
    y,
    *,
    rng_key,
    method: Method = "nuts",
    num_warmup: int = 500,
    num_samples: int = 1000,
    num_chains: int = 4,
    target_accept: float = 0.9,
    max_tree_depth: int = 8,
    guide: Literal["lowrank", "meanfield"] = "lowrank",
    guide_rank: int | None = None,
    svi_steps: int = 5000,
    lr: float = 0.01,
    progress: bool | None = None,
    identified: callable | None = None,
) -> InferenceResult:
    """Fit ``model(*args, y=y)``.

    Args:
        rng_key: a ``jax.random`` key (required: results are reproducible from it).
        method: ``"nuts"`` (``num_chains`` chains, vectorised), ``"svi"`` (``guide`` =
            ``"lowrank"`` multivariate normal or ``"meanfield"`` normal, ``num_samples`` draws
            from it afterwards) or ``"map"`` (a point estimate: one draw).
        guide_rank: rank of the low-rank guide's covariance (``None``: NumPyro's default, the
            square root of the number of latent variables).
        identified: a function of the samples dict returning ``(n_draws, n)`` identified
            quantities (e.g. fitted cell means) on which r-hat and ESS are judged; the raw latent
            factors are not identified (rotation and sign), so their r-hats mean nothing.
    """
    t0 = time.perf_counter()
    show = progress_enabled(progress)
    if method == "nuts":
        init = init_to_median(num_samples=15)
        kernel = NUTS(model, target_accept_prob=target_accept, max_tree_depth=max_tree_depth,
                      init_strategy=init)
        # one chain per device where there are enough (``numpyro.set_host_device_count`` makes
        # CPU cores devices); otherwise all chains vectorised on one device
        chain_method = "parallel" if jax.local_device_count() >= num_chains > 1 else "vectorized"
        mcmc = MCMC(kernel, num_warmup=num_warmup, num_samples=num_samples,
                    num_chains=num_chains, chain_method=chain_method, progress_bar=show)
        mcmc.run(rng_key, *args, y=y, extra_fields=("diverging", "num_steps"))
        grouped = mcmc.get_samples(group_by_chain=True)
        samples = {k: np.asarray(v).reshape((-1,) + v.shape[2:]) for k, v in grouped.items()}
        div = np.asarray(mcmc.get_extra_fields(group_by_chain=True)["diverging"])
        steps = np.asarray(mcmc.get_extra_fields(group_by_chain=True)["num_steps"])
        diag = {"divergences": int(div.sum()),
                "mean_leapfrog_steps": float(steps.mean()),
                "max_tree_depth_hits": float(np.mean(steps >= 2**max_tree_depth - 1))}
        if identified is not None:
            q = np.asarray(identified(samples)).reshape(num_chains, num_samples, -1)
            if num_chains > 1:
                diag["max_rhat"] = float(np.nanmax(split_gelman_rubin(q)))
            diag["min_ess"] = float(np.nanmin(effective_sample_size(q)))
        res = InferenceResult(samples, "nuts", num_chains, diag,
                              sample_stats={"diverging": div})
        _warn_nuts(diag)
    elif method in ("svi", "map"):
        if method == "map":
            g = AutoDelta(model, init_loc_fn=init_to_median(num_samples=15))
        elif guide == "lowrank":
            g = AutoLowRankMultivariateNormal(model, init_loc_fn=init_to_median(num_samples=15),
                                              init_scale=0.01, rank=guide_rank)
        elif guide == "meanfield":
            g = AutoNormal(model, init_loc_fn=init_to_median(num_samples=15), init_scale=0.01)
        else:
            raise ValueError(f"guide must be 'lowrank' or 'meanfield'; got {guide!r}")
        optim = numpyro.optim.optax_to_numpyro(_adam_schedule(lr, svi_steps))
        svi = SVI(model, g, optim, Trace_ELBO())
        k_fit, k_draw = jax.random.split(rng_key)
        # Set the guide up (trace the model, find initial values) inside one compiled program at
        # XLA's lowest optimisation level: it runs once. Run eagerly, as ``svi.run`` does, its
        # ~740 small operations compile one by one on the first fit of a process (Bayesian NCF:
        # 28 s of a 45 s fit on 2 CPU cores); compiled whole, 2.5-4 s on every fit.
        init = jax.jit(lambda k: svi.init(k, *args, y=y), compiler_options=_RUN_ONCE)
        state = init(k_fit)
        out = svi.run(k_fit, svi_steps, *args, y=y, progress_bar=show, stable_update=True,
                      init_state=state)
        losses = np.asarray(out.losses)
        n = 1 if method == "map" else num_samples
        # draws of the latent sites from the guide and of the deterministic ones (offsets,
        # noise scales...) from the model, in one program: NUTS samples hold both
        sites = _site_names(model, args, y)

        def draw(k, p):
            pred = Predictive(model, guide=g, params=p, num_samples=n, return_sites=sites)
            return pred(k, *args, y=None)

        out_draws = jax.jit(draw, compiler_options=_RUN_ONCE)(k_draw, out.params)
        samples = {k: np.asarray(v) for k, v in out_draws.items()}
        tail = losses[-max(1, svi_steps // 10):]
        diag = {"final_loss": float(np.mean(tail))}
        if not np.isfinite(tail).all():
            raise FloatingPointError(f"{method}: the objective became non-finite; lower lr "
                                     f"(now {lr}) or check the data")
        res = InferenceResult(samples, method, 1, diag, losses=losses)
    else:
        raise ValueError(f"method must be 'nuts', 'svi' or 'map'; got {method!r}")
    res.seconds = time.perf_counter() - t0
    return res


def _adam_schedule(lr: float, steps: int):
    import optax

    sched = optax.cosine_decay_schedule(lr, max(steps, 1), alpha=0.05)
    return optax.chain(optax.clip_by_global_norm(10.0), optax.adam(sched))


def _warn_nuts(diag: dict) -> None:
    problems = []
    if diag.get("max_rhat", 1.0) > 1.05:
        problems.append(f"r-hat {diag['max_rhat']:.3f} > 1.05 on the fitted cell means")
    if diag.get("divergences", 0) > 0:
        problems.append(f"{diag['divergences']} divergent transitions")
    if problems:
        warnings.warn(
            "NUTS may not have converged: " + "; ".join(problems) + ". Try more warm-up "
            "(num_warmup), a higher target_accept (e.g. 0.95), a smaller rank, or method='svi'.",
            CppjaxWarning, stacklevel=3)


def log_likelihood(model, samples: dict, args: tuple, y) -> np.ndarray:
    """Pointwise log-likelihood ``(n_draws, n_cells)`` of ``y`` under each posterior draw."""
    fn = jax.jit(lambda s, yy: numpyro.infer.log_likelihood(model, s, *args, y=yy)["y"])
    return np.asarray(fn(samples, jnp.asarray(y)))


def _site_names(model, args: tuple, y) -> list[str]:
    """The latent sample sites and the deterministic sites of ``model(*args, y=y)``, found by an
    abstract trace (nothing is compiled or run)."""
    from numpyro import handlers

    names = []

    def find(args, y):
        tr = handlers.trace(handlers.seed(model, 0)).get_trace(*args, y=y)
        names.extend(k for k, s in tr.items()
                     if (s["type"] == "sample" and not s["is_observed"])
                     or s["type"] == "deterministic")

    jax.eval_shape(find, args, y)
    return names


def predict_sites(model, samples: dict, args: tuple, sites, rng_key, batch_ndims: int = 1):
    """``sites`` of ``model(*args, y=None)`` for every posterior draw in ``samples``, in one
    compiled call (NumPyro's ``Predictive`` run eagerly compiles each small operation on its own:
    seconds per new shape of cells). Returns NumPy arrays ``(n_draws, ...)``."""
    sites = list(sites)

    def run(s, k):
        pred = Predictive(model, posterior_samples=s, return_sites=sites, batch_ndims=batch_ndims)
        return pred(k, *args, y=None)

    out = jax.jit(run)(samples, rng_key)
    return {k: np.asarray(v) for k, v in out.items()}
