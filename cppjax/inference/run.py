"""Running an inference object on a model: :func:`run_inference` (posterior samples and
diagnostics), :func:`predict_sites` (the one predictive path: sites of a model for every draw,
compiled once per model settings and shapes), :func:`log_likelihood`.

See ``docs/decisions/0001-model-apart-from-inference.md``.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
from numpyro.diagnostics import effective_sample_size
from numpyro.infer import Predictive

from cppjax.errors import CppjaxWarning
from cppjax.inference.convergence import rank_rhat
from cppjax.inference.objects import MAP, NUTS, SVI, progress_enabled
from cppjax.inference.programs import ProgramCache, Programs


# ---------------------------------------------------------------------------------------------
# running an inference
# ---------------------------------------------------------------------------------------------
@dataclass
class InferenceResult:
    """Posterior samples and diagnostics of one fit.

    Attributes:
        samples: latent sites, each ``(n_draws, ...)`` (chains concatenated for NUTS).
        method: ``"nuts"``, ``"svi"`` or ``"map"``.
        num_chains: chains behind the samples (1 for SVI/MAP).
        diagnostics: ``max_rhat`` (the largest rank-normalised split r-hat, ArviZ's,
            :mod:`cppjax.inference.convergence`), ``min_ess``, ``divergences`` (NUTS),
            ``final_loss`` (SVI/MAP).
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
    #: SVI/MAP: the guide's unconstrained parameters at the end (what a warm refit starts
    #: from; in memory only, not saved)
    params: dict | None = None


def run_inference(
    model,
    args: tuple,
    y,
    *,
    inference: NUTS | SVI | MAP,
    rng_key,
    progress: bool | None = None,
    identified=None,
    data: dict | None = None,
    monitor=None,
    max_chunks: int | None = None,
    chains_are_modes: bool = False,
    warn: bool = True,
    start: dict | None = None,
) -> InferenceResult:
    """Fit ``model(*args, y=y, **data)`` with ``inference``.

    Args:
        inference: a :class:`NUTS`, :class:`SVI` or :class:`MAP` object; its programs are
            compiled once per model settings and shapes of inputs and kept on it.
        rng_key: a ``jax.random`` key (required: results are reproducible from it).
        identified: a function of the samples dict returning ``(n_draws, n)`` identified
            quantities (e.g. fitted cell means) on which r-hat and ESS are judged; the raw latent
            factors are not identified (rotation and sign), so their r-hats mean nothing.
        data: more keyword arguments of the model (arrays, or pytrees of arrays), passed to the
            compiled programs as arguments like ``args`` and ``y``. The model must be a pure
            function of its inputs (a ``functools.partial`` of a function with hashable
            keywords to be cached): arrays it reads from anywhere else are frozen into the
            first compilation, as with ``jax.jit``.
        monitor, max_chunks: SVI/MAP only: a score of the guide's draws after each chunk of
            updates (the best state is kept; the scores are ``diagnostics["monitor"]``), and
            a number of chunks to stop after (:meth:`cppjax.inference.programs.Programs.run_svi`).
        chains_are_modes: NUTS only: the model's posterior has symmetric modes that chains
            cannot cross (a network's weight permutations), so its chains are an ensemble of
            modes: r-hat is judged within each chain (``max_rhat``: the largest rank-normalised
            r-hat of a chain on its own), the r-hat across chains is reported as
            ``between_chain_rhat`` and not warned about (decision 0012).
        warn: NUTS only: warn (:class:`~cppjax.CppjaxWarning`) when r-hat or divergences say
            the chains may not have converged; ``False`` where the caller reports the
            diagnostics itself (COD's posterior carries them in ``diagnostics``).
        start: SVI only: an earlier fit's unconstrained guide parameters
            (``InferenceResult.params``) to start from, where their shapes are this fit's
            (``diagnostics["warm_start"]`` says whether they were).
    """
    if not isinstance(inference, NUTS | SVI | MAP):
        raise TypeError(f"inference must be NUTS, SVI or MAP; got {inference!r}")
    t0 = time.perf_counter()
    show = progress_enabled(progress)
    kw = {"y": y, **(data or {})}
    progs = inference.programs.get(_program_key(model, args, kw),
                                   lambda: Programs(model, inference, args, kw))
    if isinstance(inference, NUTS):
        start, init_diag = None, {}
        if inference.init == "svi":
            rng_key, k_start = jax.random.split(rng_key)
            start, init_diag = _svi_start(model, args, y, inference, k_start, data)
        samples, div, steps = progs.run_nuts(rng_key, args, kw, show, start)
        diag = {**init_diag, "divergences": int(div.sum()),
                "mean_leapfrog_steps": float(steps.mean()),
                "max_tree_depth_hits": float(np.mean(steps >= 2**inference.max_tree_depth - 1))}
        if identified is not None:
            q = np.asarray(identified(samples)).reshape(inference.num_chains,
                                                        inference.num_samples, -1)
            if chains_are_modes:
                diag["max_rhat"] = float(max(np.nanmax(rank_rhat(c[None])) for c in q))
                diag["min_ess"] = float(min(np.nanmin(effective_sample_size(c[None]))
                                            for c in q))
                if inference.num_chains > 1:
                    diag["between_chain_rhat"] = float(np.nanmax(rank_rhat(q)))
            else:
                if inference.num_chains > 1:
                    diag["max_rhat"] = float(np.nanmax(rank_rhat(q)))
                diag["min_ess"] = float(np.nanmin(effective_sample_size(q)))
        res = InferenceResult(samples, "nuts", inference.num_chains, diag,
                              sample_stats={"diverging": div})
        if warn:
            _warn_nuts(diag, chains_are_modes)
    else:
        samples, losses, per_step, scores, params, warm = progs.run_svi(
            rng_key, args, kw, show, monitor, max_chunks, start)
        tail = losses[-max(1, len(losses) // 10):]
        diag = {"final_loss": float(np.mean(tail))}
        if start is not None:
            diag["warm_start"] = warm
        if progs.guide is not None:
            diag["guide"] = progs.guide
        if progs.rank is not None:
            diag["guide_rank"] = progs.rank
        if scores:
            diag["monitor"] = scores
            diag["chunk_steps"] = progs.chunk
        if per_step is not None:  # measured on the compiled steps (cppjax.inference.programs)
            diag["seconds_per_step"] = per_step
        if not np.isfinite(tail).all():
            raise FloatingPointError(f"{inference.name}: the objective became non-finite; lower "
                                     f"lr (now {inference.lr}) or check the data")
        res = InferenceResult(samples, inference.name, 1, diag, losses=losses, params=params)
    res.seconds = time.perf_counter() - t0
    return res


def _svi_start(model, args, y, inference: NUTS, rng_key, data):
    """Each chain's starting point for ``NUTS(init="svi")``: one draw each of a mean-field SVI
    fit (its inference object kept with the NUTS one's programs, so a refit reuses it)."""
    svi = inference.programs.get(
        ("init-svi", inference.init_steps, inference.num_chains),
        lambda: SVI(num_steps=inference.init_steps, num_samples=inference.num_chains,
                    guide="meanfield"))
    fit = run_inference(model, args, y, inference=svi, rng_key=rng_key, progress=False,
                        data=data)
    return fit.samples, {"init": "svi", "init_seconds": fit.seconds}


def _program_key(model, args, kw):
    """What the compiled programs depend on besides the inference settings: the model function
    and its static keywords, the tree and shapes of the inputs, the devices. ``None`` (no reuse)
    where the model is not a partial of a plain function with hashable keywords."""
    if not isinstance(model, partial):
        return None
    try:
        static = (model.func, model.args, tuple(sorted(model.keywords.items())))
        hash(static)
    except TypeError:
        return None
    leaves, tree = jax.tree.flatten((args, kw))
    shapes = tuple((np.shape(x), np.dtype(getattr(x, "dtype", type(x))).name,
                    getattr(x, "sharding", None)) for x in leaves)
    return static, tree, shapes, (jax.local_device_count(), jax.default_backend())


def _warn_nuts(diag: dict, chains_are_modes: bool = False) -> None:
    problems = []
    if diag.get("max_rhat", 1.0) > 1.05:
        within = " within a chain (each chain an ensemble member)" if chains_are_modes else ""
        problems.append(f"r-hat {diag['max_rhat']:.3f} > 1.05 on the fitted cell means"
                        f"{within}")
    if diag.get("divergences", 0) > 0:
        problems.append(f"{diag['divergences']} divergent transitions")
    if diag.get("max_tree_depth_hits", 0.0) > 0.10:
        problems.append(f"{diag['max_tree_depth_hits']:.0%} of the steps hit the maximum tree "
                        f"depth (the sampler is taking the longest trajectories it may: raise "
                        f"max_tree_depth, reparameterise, or use SVI)")
    if problems:
        warnings.warn(
            "NUTS may not have converged: " + "; ".join(problems) + ". Try more warm-up "
            "(num_warmup), a higher target_accept (e.g. 0.95), a smaller rank, or SVI.",
            CppjaxWarning, stacklevel=4)


def log_likelihood(model, samples: dict, args: tuple, y) -> np.ndarray:
    """Pointwise log-likelihood ``(n_draws, n_cells)`` of ``y`` under each posterior draw."""
    fn = jax.jit(lambda s, yy: numpyro.infer.log_likelihood(model, s, *args, y=yy)["y"])
    return np.asarray(fn(samples, jnp.asarray(y)))


def _predict_program(model, sites: tuple, batch_ndims: int, cache: ProgramCache | None):
    """The jitted predictive of ``model`` (a partial of static settings; arrays come as the
    ``data`` argument), kept in ``cache`` (the fitting inference object's programs) by static
    key, so that a posterior predicting again, or a refit's posterior with the same shapes,
    reuses the compiled program rather than tracing and compiling afresh (0.8 s per call on
    the CPP table; decision 0010)."""

    def run(s, k, args, data):
        pred = Predictive(partial(model, **data) if data else model, posterior_samples=s,
                          return_sites=list(sites), batch_ndims=batch_ndims)
        return pred(k, *args, y=None)

    key = _program_key(model, (), {})
    if key is None or cache is None:
        return jax.jit(run)
    return cache.get(("predict", key[0], sites, batch_ndims), lambda: jax.jit(run))


def predict_sites(model, samples: dict, args: tuple, sites, rng_key, batch_ndims: int = 1,
                  max_values: int = 2**25, data: dict | None = None,
                  cache: ProgramCache | None = None):
    """``sites`` of ``model(*args, y=None, **data)`` for every posterior draw in ``samples``,
    compiled once per model and shapes (NumPyro's ``Predictive`` run eagerly compiles each
    small operation on its own: seconds per new shape of cells) and run on chunks of draws of
    at most ``max_values`` values of the largest site (the last chunk padded), so that memory
    stays bounded on large tables. ``cache``: where the compiled program is kept (an inference
    object's ``programs``). Returns NumPy arrays ``(n_draws, ...)``."""
    sites = tuple(sites)
    data = data or {}
    n = jax.tree.leaves(samples)[0].shape[0]
    fn = _predict_program(model, sites, batch_ndims, cache)

    def run(s, k):
        return fn(s, k, args, data)

    one = jax.eval_shape(run, jax.tree.map(lambda v: v[:1], samples), rng_key)
    per_draw = max(int(np.prod(v.shape[1:], dtype=np.int64)) for v in one.values())
    chunk = int(min(n, max(1, max_values // max(per_draw, 1))))
    keys = jax.random.split(rng_key, -(-n // chunk))
    if chunk >= n:
        return {k: np.asarray(v) for k, v in run(samples, keys[0]).items()}
    result = {}  # each chunk copied into one array (no list of parts joined at the end)
    for i, lo in enumerate(range(0, n, chunk)):
        idx = np.minimum(np.arange(lo, lo + chunk), n - 1)  # the last chunk padded
        out = run(jax.tree.map(lambda v, idx=idx: v[idx], samples), keys[i])
        for k, v in out.items():
            if k not in result:
                result[k] = np.empty((n, *v.shape[1:]), v.dtype)
            result[k][lo:lo + chunk] = np.asarray(v)[: min(chunk, n - lo)]
    return result
