"""The compiled programs behind an inference: NUTS (initialise the chains, advance them a
chunk of iterations, map their draws to the model's sites) and SVI/MAP (set the guide up, a chunk
of updates, draws from the guide), kept per inference object in a :class:`ProgramCache`.

No traced value outlives its trace: NumPyro's HMC kernel and autoguides keep closures over the
arguments of the trace that set them up, so each compiled program sets up its own (see
``docs/decisions/0001-model-apart-from-inference.md``).
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
from numpyro import handlers
from numpyro.distributions import biject_to
from numpyro.infer import NUTS as _NumPyroNUTS
from numpyro.infer import SVI as _NumPyroSVI
from numpyro.infer import Predictive, Trace_ELBO, init_to_uniform, init_to_value
from numpyro.infer.autoguide import AutoDelta, AutoLowRankMultivariateNormal, AutoNormal
from numpyro.infer.elbo import check_model_guide_match
from numpyro.infer.util import compute_log_probs
from tqdm.auto import tqdm

from cppjax.inference.cache import ProgramCache  # noqa: F401 (its home before 0.6)
from cppjax.inference.initialization import init_strategy
from cppjax.inference.objects import resolve_guide, resolve_rank

# XLA options for programs that run once per fit (set-up, drawing from a guide): the least
# optimisation, since their compile time is most of their cost
_RUN_ONCE = {"xla_backend_optimization_level": 0}
#: cells x draws above which the draws are compiled with XLA's optimisations (see _build_svi)
DRAW_OPTIMISED_ABOVE = 10_000_000


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


class Programs:
    """The compiled programs of one model, inference settings and shapes of inputs: NUTS
    (initialise the chains, advance them a chunk of iterations, map their draws to the
    constrained sites) or SVI/MAP (set the guide up, a chunk of updates, draws from the guide)."""

    def __init__(self, model, inference, args, kw):
        self.model, self.inf = model, inference
        sites, sizes, cells = _trace_sites(model, args, kw)
        self.slot = _InitSlot()
        self.guide = self.rank = None
        if inference.name == "nuts":
            self._build_nuts(sizes)
        else:
            # draws of the latent sites from the guide and of the deterministic ones (offsets,
            # noise scales...) from the model, in one program: NUTS samples hold both
            y = kw.get("y")
            self._build_svi(sites, sizes, cells, 0 if y is None else int(np.shape(y)[0]))

    # -- NUTS ----------------------------------------------------------------------------------
    def _build_nuts(self, latent_sizes: dict[str, int]):
        s = self.inf
        self.chunk = _chunk(s.num_warmup, s.num_samples, most=100)

        def kernel():
            # a fresh NumPyro kernel in every traced program: a kernel keeps closures over the
            # model arguments of the trace that set it up, which must not outlive that trace
            return _NumPyroNUTS(self.model, target_accept_prob=s.target_accept,
                                max_tree_depth=s.max_tree_depth, init_strategy=self.slot.strategy,
                                dense_mass=s.dense_mass)

        def init(key, args, kw, start):
            k_init, k_kernel = jax.random.split(key)
            # this chain's starting point: a prior median's distribution, or its own draw of
            # an approximate posterior (NUTS(init="svi"))
            strategy = (init_strategy(k_init, latent_sizes) if start is None
                        else init_to_value(values=start))
            with self.slot.use(strategy):
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
        self._init = jax.jit(jax.vmap(init, in_axes=(0, None, None, 0)),
                             compiler_options=_RUN_ONCE)
        self.latent_sites = tuple(latent_sizes)
        if jax.local_device_count() >= n > 1:
            self._advance = jax.pmap(advance, in_axes=(0, None, None))
            # the initial state laid out as the advance's own output, one chain per device: an
            # input laid out otherwise would compile the advance twice
            self._spread = jax.pmap(lambda x: x)
        else:
            self._advance = jax.jit(jax.vmap(advance, in_axes=(0, None, None)))
            self._spread = None
        self._post = jax.jit(post, compiler_options=_RUN_ONCE)

    def run_nuts(self, rng_key, args, kw, show, start=None):
        """``start``: each chain's starting values of the latent sites, ``(num_chains, ...)``
        per site, or ``None`` (the prior's centre)."""
        s = self.inf
        if start is not None:
            start = {k: jnp.asarray(start[k]) for k in self.latent_sites if k in start}
        state = self._init(jax.random.split(rng_key, s.num_chains), args, kw, start)
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
        if show:  # the constraining pass compiles once per shape: say so rather than go quiet
            print("NUTS: sampling done; mapping the draws to the model's sites ...",
                  file=sys.stderr, flush=True)
        grouped = self._post(z, args, kw)
        # (the draws' count spelled out: a site of size 0, e.g. no task factors, has no -1)
        samples = {k: np.asarray(v).reshape((v.shape[0] * v.shape[1],) + v.shape[2:])
                   for k, v in grouped.items()}
        return samples, np.concatenate(divs, 1), np.concatenate(steps, 1)

    # -- SVI / MAP -----------------------------------------------------------------------------
    def _build_svi(self, sites: list[str], latent_sizes: dict[str, int], cell_sites: set[str],
                   n_cells: int = 0):
        """``cell_sites``: the deterministic sites of the ``cells`` plate (a value per observed
        cell), which SVI's draws leave out; ``n_cells``: the observed cells."""
        s = self.inf
        #: the guide fitted (SVI(guide="auto") resolved by the model's size); None for MAP
        n_latent = sum(latent_sizes.values())
        self.guide = None if s.name == "map" else resolve_guide(s.guide, n_latent)
        #: the low-rank guide's rank (None for the other guides)
        self.rank = resolve_rank(s.guide_rank, n_latent) if self.guide == "lowrank" else None
        if s.name == "map":
            g = AutoDelta(self.model, init_loc_fn=self.slot.strategy)
        elif self.guide == "lowrank":
            g = AutoLowRankMultivariateNormal(self.model, init_loc_fn=self.slot.strategy,
                                              init_scale=0.01, rank=self.rank)
        else:
            g = AutoNormal(self.model, init_loc_fn=self.slot.strategy, init_scale=0.01)
        optim = numpyro.optim.optax_to_numpyro(_adam_schedule(s.lr, s.num_steps))
        svi = _NumPyroSVI(self.model, g, optim, SiteOrderedELBO())
        # MAP watches its validation error after each chunk: finer chunks (decision 0012)
        self.chunk = _chunk(s.num_steps, most=100 if s.name == "map" else 500)
        n = 1 if s.name == "map" else s.num_samples
        if s.name != "map":  # a value per observed cell and draw: 0.9 GB and 5 s at 2e5 cells
            # x 1,000 draws that no SVI fit reads (MAP's one draw feeds its monitor; NUTS's
            # r-hats read them); predictions recompute cell means (decision 0013)
            sites = [k for k in sites if k not in cell_sites]

        def init(key, args, kw):
            k_init, k_svi = jax.random.split(key)
            with _traced_state_dropped(g), self.slot.use(init_strategy(k_init, latent_sizes)):
                return svi.init(k_svi, *args, **kw)

        def warm_init(key, params, args, kw):
            # a refit from an earlier fit's guide (unconstrained parameters): the set-up as
            # above for the state's layout, its parameters and Adam's moments replaced
            state = init(key, args, kw)
            return state._replace(optim_state=svi.optim.init(params))

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
        # set-up's hundreds of small operations compile one by one). Not the draws of a large
        # table, whose running time outgrows their compile time: at 2e5 cells x 1,000 draws
        # a fresh process's fit + predict (warm cache) took 32.2-32.5 s with them unoptimised,
        # 25.1-26.5 s optimised (decision 0013)
        big = n_cells * n > DRAW_OPTIMISED_ABOVE
        #: whether the draws are compiled with XLA's optimisations
        self.draws_optimised = big
        self._init = jax.jit(init, compiler_options=_RUN_ONCE)
        self._warm_init = jax.jit(warm_init, compiler_options=_RUN_ONCE)
        self._svi, self._layout = svi, None
        self._advance = jax.jit(advance)
        self._draw = jax.jit(draw, compiler_options=None if big else _RUN_ONCE)

    def run_svi(self, rng_key, args, kw, show, monitor=None, max_chunks=None, start=None):
        """``monitor``: a function of the guide's draws scored after every chunk of updates
        (lower is better; MAP's validation error), whose best state is kept; its scores come
        back as the fourth value. ``max_chunks``: stop after that many chunks. ``start``: the
        unconstrained guide parameters of an earlier fit to start from (used only where their
        shapes are this fit's). The fifth value: this fit's unconstrained guide parameters,
        the sixth whether it started from ``start``."""
        k_fit, k_draw = jax.random.split(rng_key)
        warm = False
        if start is not None:
            if self._layout is None:  # the guide's parameters of this model and shapes
                shapes = jax.eval_shape(self._init, k_fit, args, kw)
                self._layout = self._svi.optim.get_params(shapes.optim_state)
            warm = _same_layout(start, self._layout)
        state = (self._warm_init(k_fit, start, args, kw) if warm
                 else self._init(k_fit, args, kw))
        losses, times, scores = [], [], []
        best = (np.inf, state)
        n_chunks = self.inf.num_steps // self.chunk
        if max_chunks is not None:
            n_chunks = max(1, min(n_chunks, max_chunks))
        with tqdm(total=n_chunks * self.chunk, disable=not show, desc=self.inf.name) as bar:
            for _ in range(n_chunks):
                t0 = time.perf_counter()
                state, loss = self._advance(state, args, kw)
                loss.block_until_ready()
                times.append(time.perf_counter() - t0)
                losses.append(loss)
                bar.update(self.chunk)
                if show:
                    bar.set_postfix(loss=f"{float(loss[-1]):.4g}")
                if monitor is not None:
                    scores.append(float(monitor(self._draw(k_draw, state, args, kw))))
                    if scores[-1] < best[0]:
                        best = (scores[-1], state)
        if monitor is not None:
            state = best[1]
        out = self._draw(k_draw, state, args, kw)
        samples = {k: np.asarray(v) for k, v in out.items()}
        # seconds per step: the median chunk after the first (which may include compiling);
        # None with a single chunk
        per_step = float(np.median(times[1:])) / self.chunk if len(times) > 1 else None
        params = self._svi.optim.get_params(state.optim_state)
        return samples, np.asarray(jnp.concatenate(losses)), per_step, scores, params, warm


def _same_layout(a, b) -> bool:
    """Whether two parameter trees have the same structure and shapes (a warm start fits)."""
    la, ta = jax.tree.flatten(a)
    lb, tb = jax.tree.flatten(b)
    return ta == tb and all(np.shape(x) == np.shape(y) for x, y in zip(la, lb, strict=True))


class SiteOrderedELBO(Trace_ELBO):
    """NumPyro's ``Trace_ELBO`` (one particle) with its sum over sites in the traces' order.
    Upstream sums ``log p - log q`` over a Python ``set`` of site names, whose order changes
    with the interpreter's hash seed: the compiled program, and so the key of JAX's persistent
    compilation cache, differed from one process to the next and a second run compiled again
    (decision 0013). The value is the same sum."""

    def loss_with_mutable_state(self, rng_key, param_map, model, guide, *args, **kwargs):
        if self.num_particles != 1 or self.multi_sample_guide or not self.sum_sites:
            return super().loss_with_mutable_state(rng_key, param_map, model, guide, *args,
                                                   **kwargs)
        model_seed, guide_seed = jax.random.split(rng_key)
        guide_lp, guide_trace = compute_log_probs(handlers.seed(guide, guide_seed), args,
                                                  kwargs, param_map)
        model_lp, model_trace = compute_log_probs(
            handlers.replay(handlers.seed(model, model_seed), guide_trace), args, kwargs,
            param_map)
        check_model_guide_match(model_trace, guide_trace)
        zero = jnp.array(0.0)
        elbo = zero
        for name in dict.fromkeys([*model_lp, *guide_lp]):  # ordered, no duplicates
            elbo = elbo + (model_lp.get(name, zero) - guide_lp.get(name, zero))
        return {"loss": -elbo, "mutable_state": None}


def _adam_schedule(lr: float, steps: int):
    import optax

    sched = optax.cosine_decay_schedule(lr, max(steps, 1), alpha=0.05)
    return optax.chain(optax.clip_by_global_norm(10.0), optax.adam(sched))


def abstract_sites(model, args: tuple, kw: dict) -> tuple[list[str], dict[str, int]]:
    """The latent sample sites and the deterministic sites of ``model(*args, **kw)``, and the
    number of unconstrained values of each latent site, found by an abstract trace (nothing is
    compiled or run)."""
    return _trace_sites(model, args, kw)[:2]


def _trace_sites(model, args: tuple, kw: dict):
    """:func:`abstract_sites` and, third, the deterministic sites inside a plate named
    ``cells`` (the observation plate of :func:`cppjax.models.likelihood.observe`)."""
    names, sizes, cells = [], {}, set()

    def find(args, kw):
        tr = handlers.trace(handlers.seed(model, 0)).get_trace(*args, **kw)
        for k, site in tr.items():
            latent = site["type"] == "sample" and not site["is_observed"]
            if latent or site["type"] == "deterministic":
                names.append(k)
            if site["type"] == "deterministic" and any(
                    f.name == "cells" for f in site.get("cond_indep_stack", ())):
                cells.add(k)
            if latent and not site["fn"].support.is_discrete:
                shape = biject_to(site["fn"].support).inverse_shape(jnp.shape(site["value"]))
                sizes[k] = int(np.prod(shape, dtype=int))

    jax.eval_shape(find, args, kw)
    return names, sizes, cells

