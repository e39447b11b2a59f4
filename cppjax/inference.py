"""Inference apart from the model: small frozen settings objects, and one call that runs them.

A cppjax Bayesian model is a NumPyro model function ``model(*args, y=None, **data)``; how it is
fitted is an inference object, the way NumPyro separates ``NUTS(model)`` from ``MCMC(...)``::

    cppjax.fit(PMF(rank=5), train, rng_key=key, inference=NUTS(num_warmup=500, num_samples=1000))

* :class:`NUTS`, :class:`SVI` and :class:`MAP` fit the Bayesian models (PMF, BNCF, scaling laws);
* :class:`Adam` trains the point models (MF, NCF, factors-only).

Each validates its fields when made. An inference object owns the programs it compiled
(:class:`ProgramCache`, as NumPyro's ``MCMC`` keeps its own): fitting again with the same object,
model settings and shapes of inputs reuses them (compilation is most of a small fit on a CPU);
dropping the object frees them. Nothing is kept at module level.

:func:`run_inference` returns posterior samples of a model's latent and deterministic sites,
flattened to ``(n_draws, ...)``, and the diagnostics a user needs to trust them (r-hat,
effective sample size, divergences, the ELBO trace). Every array a model reads comes in as an
argument of the compiled programs (never a constant folded into them). NUTS runs as our own loop
over NumPyro's kernel (``MCMC`` builds and compiles its multi-chain program anew on every run):
initialise the chains, advance them a chunk of iterations at a time (progress between chunks),
map the draws to the model's sites. See ``docs/decisions/0001-model-apart-from-inference.md``.
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass, field, fields
from functools import partial
from typing import ClassVar, Literal

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
from numpyro.diagnostics import effective_sample_size, split_gelman_rubin
from numpyro.infer import Predictive

from cppjax.errors import CppjaxWarning, did_you_mean
from cppjax.programs import ProgramCache, Programs

# XLA options for programs that run once per fit (set-up, drawing from a guide): the least
# optimisation, since their compile time is most of their cost
_RUN_ONCE = {"xla_backend_optimization_level": 0}


def progress_enabled(progress: bool | None) -> bool:
    """Progress bars are on unless ``progress=False`` or the ``CPPJAX_PROGRESS=0`` environment."""
    if progress is not None:
        return progress
    return os.environ.get("CPPJAX_PROGRESS", "1") not in ("0", "false", "no")


# ---------------------------------------------------------------------------------------------
# settings objects
# ---------------------------------------------------------------------------------------------
def _positive_int(obj, *names):
    for n in names:
        v = getattr(obj, n)
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
            raise ValueError(f"{type(obj).__name__}.{n} must be a positive integer; got {v!r}")


def _positive(obj, *names):
    for n in names:
        v = getattr(obj, n)
        if isinstance(v, bool) or not isinstance(v, int | float) or not v > 0:
            raise ValueError(f"{type(obj).__name__}.{n} must be a positive number; got {v!r}")


class _Settings:
    """Shared behaviour of the inference objects: a program cache per instance (not a field, so
    equal settings compare equal and ``dataclasses.replace`` gives a fresh cache)."""

    name: ClassVar[str] = ""

    def __post_init__(self):
        object.__setattr__(self, "programs", ProgramCache())
        self._validate()

    def _validate(self):  # pragma: no cover - every subclass defines it
        pass

    def settings(self) -> dict:
        """The fields as a dict (what a saved posterior records)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))


@dataclass(frozen=True)
class NUTS(_Settings):
    """The No-U-Turn sampler: ``num_chains`` chains (one per device where there are enough
    devices, vectorised on one otherwise) of ``num_warmup`` adaptation and ``num_samples`` kept
    iterations.

    Example:
        >>> NUTS(num_warmup=200, num_samples=400)
        NUTS(num_warmup=200, num_samples=400, num_chains=4, target_accept=0.9, max_tree_depth=8)
    """

    num_warmup: int = 500
    num_samples: int = 1000
    num_chains: int = 4
    target_accept: float = 0.9
    max_tree_depth: int = 8

    name: ClassVar[str] = "nuts"

    def _validate(self):
        _positive_int(self, "num_warmup", "num_samples", "num_chains", "max_tree_depth")
        if not 0.0 < self.target_accept < 1.0:
            raise ValueError(f"NUTS.target_accept must be in (0, 1); got {self.target_accept}")


@dataclass(frozen=True)
class SVI(_Settings):
    """Stochastic variational inference: ``num_steps`` Adam steps (cosine-decayed from ``lr``)
    on the ELBO of a ``"lowrank"`` multivariate-normal or ``"meanfield"`` guide, then
    ``num_samples`` draws from the guide. ``guide_rank=None``: NumPyro's default rank, the
    square root of the number of latent values. ``subsample_size``: each step's likelihood on a
    random minibatch of that many cells, scaled up to all of them (for tables whose full-batch
    steps are slow or beyond memory; ``None``, the default, uses every cell). ``devices``: the
    cells split over the first ``devices`` devices (:mod:`cppjax.sharding`), the same program
    partitioned by XLA."""

    num_steps: int = 5000
    lr: float = 0.01
    guide: Literal["lowrank", "meanfield"] = "lowrank"
    guide_rank: int | None = None
    num_samples: int = 1000
    subsample_size: int | None = None
    devices: int = 1

    name: ClassVar[str] = "svi"

    def _validate(self):
        _positive_int(self, "num_steps", "num_samples", "devices")
        _positive(self, "lr")
        if self.subsample_size is not None:
            _positive_int(self, "subsample_size")
        if self.guide not in ("lowrank", "meanfield"):
            raise ValueError(f"SVI.guide must be 'lowrank' or 'meanfield'; got {self.guide!r}")
        if self.guide_rank is not None:
            _positive_int(self, "guide_rank")


@dataclass(frozen=True)
class MAP(_Settings):
    """The posterior mode (a point estimate: one draw), found by ``num_steps`` Adam steps
    (``subsample_size``, ``devices``: minibatches and devices, as :class:`SVI`), stopped
    early: a random ``val_frac`` of the training cells is left out of a first run, whose
    state with the lowest squared error on them after each chunk of steps gives the number of
    steps of the fit on every cell (``val_frac=0``: all ``num_steps``). Without it the mode
    runs away on sparse tables (``docs/decisions/0012-beyond-the-table.md``)."""

    num_steps: int = 5000
    lr: float = 0.01
    subsample_size: int | None = None
    devices: int = 1
    val_frac: float = 0.1

    name: ClassVar[str] = "map"

    def _validate(self):
        _positive_int(self, "num_steps", "devices")
        _positive(self, "lr")
        if self.subsample_size is not None:
            _positive_int(self, "subsample_size")
        if not 0.0 <= self.val_frac < 1.0:
            raise ValueError(f"MAP.val_frac must be in [0, 1); got {self.val_frac}")


@dataclass(frozen=True)
class Adam(_Settings):
    """Training of the point models (MF, NCF, factors-only): full-batch AdamW for ``steps``
    steps with early stopping on a random ``val_frac`` of the training cells, then (``refit``)
    a refit on all of them for the best number of steps; ``n_inits`` initialisations run in one
    vectorised call and each gives one predictive draw."""

    steps: int = 2000
    lr: float = 0.01
    weight_decay: float = 0.0
    val_frac: float = 0.1
    refit: bool = True
    n_inits: int = 1

    name: ClassVar[str] = "adam"

    def _validate(self):
        _positive_int(self, "steps", "n_inits")
        _positive(self, "lr")
        if not 0.0 <= self.val_frac < 1.0:
            raise ValueError(f"Adam.val_frac must be in [0, 1); got {self.val_frac}")
        if self.weight_decay < 0:
            raise ValueError(f"Adam.weight_decay must be >= 0; got {self.weight_decay}")


INFERENCES = {c.name: c for c in (NUTS, SVI, MAP, Adam)}
Inference = NUTS | SVI | MAP | Adam

#: Settings of the first forms of cppjax (set on a model spec, or as ``fit(name, **settings)``)
#: and the field of the inference object each now sets.
LEGACY_NAMES = {"svi_steps": "num_steps"}


def make_inference(name: str, defaults: Inference | None = None, **settings) -> Inference:
    """The inference object ``name`` (``"nuts"``, ``"svi"``, ``"map"``, ``"adam"``) with
    ``settings`` over ``defaults`` (an object of that kind); a setting it does not take is an
    error naming it and the settings it does take."""
    if name not in INFERENCES:
        raise ValueError(f"unknown inference {name!r}{did_you_mean(name, INFERENCES)}; choose "
                         f"from {', '.join(INFERENCES)}")
    cls = INFERENCES[name]
    base = defaults.settings() if defaults is not None else {}
    fixed = {LEGACY_NAMES.get(k, k): v for k, v in settings.items()}
    unknown = [k for k in settings if LEGACY_NAMES.get(k, k) not in cls.field_names()]
    if unknown:
        raise TypeError(f"{', '.join(map(repr, unknown))} do(es) not apply to {cls.__name__}; "
                        f"its settings are {', '.join(cls.field_names())}")
    return cls(**{**base, **fixed})


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
    inference: NUTS | SVI | MAP,
    rng_key,
    progress: bool | None = None,
    identified=None,
    data: dict | None = None,
    monitor=None,
    max_chunks: int | None = None,
    chains_are_modes: bool = False,
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
            a number of chunks to stop after (:meth:`cppjax.programs.Programs.run_svi`).
        chains_are_modes: NUTS only: the model's posterior has symmetric modes that chains
            cannot cross (a network's weight permutations), so its chains are an ensemble of
            modes: r-hat is judged within each chain (``max_rhat``: the largest split r-hat of
            a chain on its own), the r-hat across chains is reported as
            ``between_chain_rhat`` and not warned about (decision 0012).
    """
    if not isinstance(inference, NUTS | SVI | MAP):
        raise TypeError(f"inference must be NUTS, SVI or MAP; got {inference!r}")
    t0 = time.perf_counter()
    show = progress_enabled(progress)
    kw = {"y": y, **(data or {})}
    progs = inference.programs.get(_program_key(model, args, kw),
                                   lambda: Programs(model, inference, args, kw))
    if isinstance(inference, NUTS):
        samples, div, steps = progs.run_nuts(rng_key, args, kw, show)
        diag = {"divergences": int(div.sum()),
                "mean_leapfrog_steps": float(steps.mean()),
                "max_tree_depth_hits": float(np.mean(steps >= 2**inference.max_tree_depth - 1))}
        if identified is not None:
            q = np.asarray(identified(samples)).reshape(inference.num_chains,
                                                        inference.num_samples, -1)
            if chains_are_modes:
                diag["max_rhat"] = float(max(np.nanmax(split_gelman_rubin(c[None]))
                                             for c in q))
                diag["min_ess"] = float(min(np.nanmin(effective_sample_size(c[None]))
                                            for c in q))
                if inference.num_chains > 1:
                    diag["between_chain_rhat"] = float(np.nanmax(split_gelman_rubin(q)))
            else:
                if inference.num_chains > 1:
                    diag["max_rhat"] = float(np.nanmax(split_gelman_rubin(q)))
                diag["min_ess"] = float(np.nanmin(effective_sample_size(q)))
        res = InferenceResult(samples, "nuts", inference.num_chains, diag,
                              sample_stats={"diverging": div})
        _warn_nuts(diag, chains_are_modes)
    else:
        samples, losses, per_step, scores = progs.run_svi(rng_key, args, kw, show, monitor,
                                                          max_chunks)
        tail = losses[-max(1, len(losses) // 10):]
        diag = {"final_loss": float(np.mean(tail))}
        if scores:
            diag["monitor"] = scores
            diag["chunk_steps"] = progs.chunk
        if per_step is not None:  # measured on the compiled steps (cppjax.programs)
            diag["seconds_per_step"] = per_step
        if not np.isfinite(tail).all():
            raise FloatingPointError(f"{inference.name}: the objective became non-finite; lower "
                                     f"lr (now {inference.lr}) or check the data")
        res = InferenceResult(samples, inference.name, 1, diag, losses=losses)
    res.seconds = time.perf_counter() - t0
    return res


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
    parts = []
    for i, lo in enumerate(range(0, n, chunk)):
        idx = np.minimum(np.arange(lo, lo + chunk), n - 1)  # the last chunk padded
        out = run(jax.tree.map(lambda v, idx=idx: v[idx], samples), keys[i])
        parts.append({k: np.asarray(v)[: min(chunk, n - lo)] for k, v in out.items()})
    if len(parts) == 1:
        return parts[0]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
