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
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from functools import partial
from typing import ClassVar, Literal

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
from numpyro import handlers
from numpyro.diagnostics import effective_sample_size, split_gelman_rubin
from numpyro.distributions import biject_to
from numpyro.infer import NUTS as _NumPyroNUTS
from numpyro.infer import SVI as _NumPyroSVI
from numpyro.infer import Predictive, Trace_ELBO, init_to_uniform
from numpyro.infer.autoguide import AutoDelta, AutoLowRankMultivariateNormal, AutoNormal
from tqdm.auto import tqdm

from cppjax.errors import CppjaxWarning, did_you_mean
from cppjax.initialization import init_strategy

# XLA options for programs that run once per fit (set-up, drawing from a guide): the least
# optimisation, since their compile time is most of their cost
_RUN_ONCE = {"xla_backend_optimization_level": 0}


def progress_enabled(progress: bool | None) -> bool:
    """Progress bars are on unless ``progress=False`` or the ``CPPJAX_PROGRESS=0`` environment."""
    if progress is not None:
        return progress
    return os.environ.get("CPPJAX_PROGRESS", "1") not in ("0", "false", "no")


# ---------------------------------------------------------------------------------------------
# compiled programs, owned by an inference object
# ---------------------------------------------------------------------------------------------
class ProgramCache:
    """The compiled programs of one inference object, most recently used last (at most
    ``size``): a fit of the same model settings and shapes of inputs reuses them."""

    def __init__(self, size: int = 8):
        self.size = size
        self._programs: OrderedDict = OrderedDict()

    def __len__(self) -> int:
        return len(self._programs)

    def clear(self) -> None:
        """Forget every compiled program."""
        self._programs.clear()

    def get(self, key, build):
        if key is None:
            return build()
        if key in self._programs:
            self._programs.move_to_end(key)
            return self._programs[key]
        progs = self._programs[key] = build()
        while len(self._programs) > self.size:
            self._programs.popitem(last=False)
        return progs


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
    square root of the number of latent values."""

    num_steps: int = 5000
    lr: float = 0.01
    guide: Literal["lowrank", "meanfield"] = "lowrank"
    guide_rank: int | None = None
    num_samples: int = 1000

    name: ClassVar[str] = "svi"

    def _validate(self):
        _positive_int(self, "num_steps", "num_samples")
        _positive(self, "lr")
        if self.guide not in ("lowrank", "meanfield"):
            raise ValueError(f"SVI.guide must be 'lowrank' or 'meanfield'; got {self.guide!r}")
        if self.guide_rank is not None:
            _positive_int(self, "guide_rank")


@dataclass(frozen=True)
class MAP(_Settings):
    """The posterior mode (a point estimate: one draw), found by ``num_steps`` Adam steps."""

    num_steps: int = 5000
    lr: float = 0.01

    name: ClassVar[str] = "map"

    def _validate(self):
        _positive_int(self, "num_steps")
        _positive(self, "lr")


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
    """
    if not isinstance(inference, NUTS | SVI | MAP):
        raise TypeError(f"inference must be NUTS, SVI or MAP; got {inference!r}")
    t0 = time.perf_counter()
    show = progress_enabled(progress)
    kw = {"y": y, **(data or {})}
    progs = inference.programs.get(_program_key(model, args, kw),
                                   lambda: _Programs(model, inference, args, kw))
    if isinstance(inference, NUTS):
        samples, div, steps = progs.run_nuts(rng_key, args, kw, show)
        diag = {"divergences": int(div.sum()),
                "mean_leapfrog_steps": float(steps.mean()),
                "max_tree_depth_hits": float(np.mean(steps >= 2**inference.max_tree_depth - 1))}
        if identified is not None:
            q = np.asarray(identified(samples)).reshape(inference.num_chains,
                                                        inference.num_samples, -1)
            if inference.num_chains > 1:
                diag["max_rhat"] = float(np.nanmax(split_gelman_rubin(q)))
            diag["min_ess"] = float(np.nanmin(effective_sample_size(q)))
        res = InferenceResult(samples, "nuts", inference.num_chains, diag,
                              sample_stats={"diverging": div})
        _warn_nuts(diag)
    else:
        samples, losses = progs.run_svi(rng_key, args, kw, show)
        tail = losses[-max(1, inference.num_steps // 10):]
        diag = {"final_loss": float(np.mean(tail))}
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
    shapes = tuple((np.shape(x), np.dtype(getattr(x, "dtype", type(x))).name) for x in leaves)
    return static, tree, shapes, (jax.local_device_count(), jax.default_backend())


def _chunk(*counts: int, most: int) -> int:
    """The longest run of iterations (at most ``most``) that divides every count: the length of
    one compiled scan, called repeatedly (progress is shown between calls)."""
    return max(d for d in range(1, most + 1) if all(c % d == 0 for c in counts))


def _from_slot(site=None, *, slot):
    if site is None:
        return partial(_from_slot, slot=slot)
    return (slot.fn or init_to_uniform)(site)


class _InitSlot:
    """The initialisation strategy of a NumPyro kernel or guide (:attr:`strategy`, a partial as
    NumPyro expects), set for the duration of one trace only (:meth:`use`): its random numbers
    are that trace's values, so nothing of the trace outlives it. Outside a :meth:`use` block it
    is ``init_to_uniform`` (what a guide re-traced for an update needs: shapes, not values)."""

    def __init__(self):
        self.fn = None
        self.strategy = partial(_from_slot, slot=self)

    @contextmanager
    def use(self, fn):
        self.fn = fn
        try:
            yield
        finally:
            self.fn = None


@contextmanager
def _traced_state_dropped(obj):
    """Restore ``obj``'s attributes when the block ends: a NumPyro guide sets itself up (its
    prototype trace, initial values) inside whichever trace first calls it, and would otherwise
    keep that trace's values."""
    saved = dict(obj.__dict__)
    try:
        yield
    finally:
        obj.__dict__.clear()
        obj.__dict__.update(saved)


class _Programs:
    """The compiled programs of one model, inference settings and shapes of inputs: NUTS
    (initialise the chains, advance them a chunk of iterations, map their draws to the
    constrained sites) or SVI/MAP (set the guide up, a chunk of updates, draws from the guide)."""

    def __init__(self, model, inference, args, kw):
        self.model, self.inf = model, inference
        sites, sizes = _abstract_sites(model, args, kw)
        self.slot = _InitSlot()
        if isinstance(inference, NUTS):
            self._build_nuts(sizes)
        else:
            # draws of the latent sites from the guide and of the deterministic ones (offsets,
            # noise scales...) from the model, in one program: NUTS samples hold both
            self._build_svi(sites, sizes)

    # -- NUTS ----------------------------------------------------------------------------------
    def _build_nuts(self, latent_sizes: dict[str, int]):
        s = self.inf
        self.chunk = _chunk(s.num_warmup, s.num_samples, most=100)

        def kernel():
            # a fresh NumPyro kernel in every traced program: a kernel keeps closures over the
            # model arguments of the trace that set it up, which must not outlive that trace
            return _NumPyroNUTS(self.model, target_accept_prob=s.target_accept,
                                max_tree_depth=s.max_tree_depth, init_strategy=self.slot.strategy)

        def init(key, args, kw):
            k_init, k_kernel = jax.random.split(key)
            # this chain's starting point: a prior median's distribution
            with self.slot.use(init_strategy(k_init, latent_sizes)):
                return kernel().init(k_kernel, s.num_warmup, None, model_args=args,
                                     model_kwargs=kw)

        def advance(state, args, kw):
            k = kernel()
            # sets the kernel's step functions up (at the chain's own position: no search);
            # its initial state is discarded (XLA drops what nothing reads)
            k.init(state.rng_key, s.num_warmup, state.z, model_args=args, model_kwargs=kw)

            def step(st, _):
                st = k.sample(st, args, kw)
                return st, (st.z, st.diverging, st.num_steps)

            return jax.lax.scan(step, state, None, length=self.chunk)

        def post(z, args, kw):
            k = kernel()
            k.init(jax.random.PRNGKey(0), s.num_warmup, jax.tree.map(lambda v: v[0, 0], z),
                   model_args=args, model_kwargs=kw)  # sets the constraining maps up
            return jax.vmap(jax.vmap(k.postprocess_fn(args, kw)))(z)

        # The chains are initialised together on one device, in a program compiled at XLA's
        # lowest optimisation level (it runs once), then advanced one chain per device where
        # there are enough (``numpyro.set_host_device_count`` makes CPU cores devices), all
        # vectorised on one device otherwise.
        n = s.num_chains
        self._init = jax.jit(jax.vmap(init, in_axes=(0, None, None)), compiler_options=_RUN_ONCE)
        if jax.local_device_count() >= n > 1:
            self._advance = jax.pmap(advance, in_axes=(0, None, None))
            # the initial state laid out as the advance's own output, one chain per device: an
            # input laid out otherwise would compile the advance twice
            self._spread = jax.pmap(lambda x: x)
        else:
            self._advance = jax.jit(jax.vmap(advance, in_axes=(0, None, None)))
            self._spread = None
        self._post = jax.jit(post, compiler_options=_RUN_ONCE)

    def run_nuts(self, rng_key, args, kw, show):
        s = self.inf
        state = self._init(jax.random.split(rng_key, s.num_chains), args, kw)
        if self._spread is not None:
            state = self._spread(state)
        n_warm = s.num_warmup // self.chunk
        n_chunks = n_warm + s.num_samples // self.chunk
        zs, divs, steps = [], [], []
        with tqdm(total=n_chunks * self.chunk, disable=not show,
                  desc="warmup" if n_warm else "sample") as bar:
            for i in range(n_chunks):
                state, (z, d, k) = self._advance(state, args, kw)
                if i >= n_warm:
                    zs.append(z)
                    divs.append(d)
                    steps.append(k)
                if i + 1 == n_warm:
                    bar.set_description("sample")
                bar.update(self.chunk)
        z = jax.tree.map(lambda *c: jnp.concatenate(c, axis=1), *zs)
        grouped = self._post(z, args, kw)
        samples = {k: np.asarray(v).reshape((-1,) + v.shape[2:]) for k, v in grouped.items()}
        return samples, np.concatenate(divs, 1), np.concatenate(steps, 1)

    # -- SVI / MAP -----------------------------------------------------------------------------
    def _build_svi(self, sites: list[str], latent_sizes: dict[str, int]):
        s = self.inf
        if isinstance(s, MAP):
            g = AutoDelta(self.model, init_loc_fn=self.slot.strategy)
        elif s.guide == "lowrank":
            g = AutoLowRankMultivariateNormal(self.model, init_loc_fn=self.slot.strategy,
                                              init_scale=0.01, rank=s.guide_rank)
        else:
            g = AutoNormal(self.model, init_loc_fn=self.slot.strategy, init_scale=0.01)
        optim = numpyro.optim.optax_to_numpyro(_adam_schedule(s.lr, s.num_steps))
        svi = _NumPyroSVI(self.model, g, optim, Trace_ELBO())
        self.chunk = _chunk(s.num_steps, most=500)
        n = 1 if isinstance(s, MAP) else s.num_samples

        def init(key, args, kw):
            k_init, k_svi = jax.random.split(key)
            with _traced_state_dropped(g), self.slot.use(init_strategy(k_init, latent_sizes)):
                return svi.init(k_svi, *args, **kw)

        def advance(state, args, kw):
            with _traced_state_dropped(g):
                # the guide set up in this trace, not in the scan's inner one (whose values
                # would outlive it); the set-up's random values are discarded
                handlers.seed(g, 0)(*args, **kw)
                return jax.lax.scan(lambda st, _: svi.stable_update(st, *args, **kw), state,
                                    None, length=self.chunk)

        def draw(key, state, args, kw):
            with _traced_state_dropped(g):
                # set the guide up in this trace (outside Predictive's batching of its draws)
                handlers.seed(g, key)(*args, **kw)
                pred = Predictive(self.model, guide=g, params=svi.get_params(state),
                                  num_samples=n, return_sites=sites)
                return pred(key, *args, **{**kw, "y": None})

        # Set-up and draws run once per fit: compiled at XLA's lowest optimisation level, as
        # their compile time is most of their cost (run eagerly, as ``svi.run`` does, the
        # set-up's hundreds of small operations compile one by one).
        self._init = jax.jit(init, compiler_options=_RUN_ONCE)
        self._advance = jax.jit(advance)
        self._draw = jax.jit(draw, compiler_options=_RUN_ONCE)

    def run_svi(self, rng_key, args, kw, show):
        k_fit, k_draw = jax.random.split(rng_key)
        state = self._init(k_fit, args, kw)
        losses = []
        with tqdm(total=self.inf.num_steps, disable=not show, desc=self.inf.name) as bar:
            for _ in range(self.inf.num_steps // self.chunk):
                state, loss = self._advance(state, args, kw)
                losses.append(loss)
                bar.update(self.chunk)
                if show:
                    bar.set_postfix(loss=f"{float(loss[-1]):.4g}")
        out = self._draw(k_draw, state, args, kw)
        samples = {k: np.asarray(v) for k, v in out.items()}
        return samples, np.asarray(jnp.concatenate(losses))


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
            "(num_warmup), a higher target_accept (e.g. 0.95), a smaller rank, or SVI.",
            CppjaxWarning, stacklevel=4)


def log_likelihood(model, samples: dict, args: tuple, y) -> np.ndarray:
    """Pointwise log-likelihood ``(n_draws, n_cells)`` of ``y`` under each posterior draw."""
    fn = jax.jit(lambda s, yy: numpyro.infer.log_likelihood(model, s, *args, y=yy)["y"])
    return np.asarray(fn(samples, jnp.asarray(y)))


def _abstract_sites(model, args: tuple, kw: dict) -> tuple[list[str], dict[str, int]]:
    """The latent sample sites and the deterministic sites of ``model(*args, **kw)``, and the
    number of unconstrained values of each latent site, found by an abstract trace (nothing is
    compiled or run)."""
    names, sizes = [], {}

    def find(args, kw):
        tr = handlers.trace(handlers.seed(model, 0)).get_trace(*args, **kw)
        for k, site in tr.items():
            latent = site["type"] == "sample" and not site["is_observed"]
            if latent or site["type"] == "deterministic":
                names.append(k)
            if latent and not site["fn"].support.is_discrete:
                shape = biject_to(site["fn"].support).inverse_shape(jnp.shape(site["value"]))
                sizes[k] = int(np.prod(shape, dtype=int))

    jax.eval_shape(find, args, kw)
    return names, sizes


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
