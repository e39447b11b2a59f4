"""Inference apart from the model: small frozen settings objects (NUTS, SVI, MAP, Adam).

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
from dataclasses import dataclass, fields
from typing import ClassVar, Literal

import numpy as np

from cppjax.errors import did_you_mean
from cppjax.inference.cache import ProgramCache


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

    ``init``: where the chains start. ``"prior"`` (the default): each at a random point of
    the prior's centre (the distribution of NumPyro's ``init_to_median``). ``"svi"``: a
    mean-field SVI fit of ``init_steps`` steps first, and chain ``c`` starts at the guide's
    draw ``c``: dispersed over the approximate posterior, so r-hat still compares chains that
    started apart, but none starts in the prior's tails. Measured, it adds a little effective
    sample size and does not make an unconverged fit converge (decision 0015).

    Example:
        >>> NUTS(num_warmup=200, num_samples=400)
        NUTS(num_warmup=200, num_samples=400, num_chains=4, target_accept=0.9, max_tree_depth=8, \
init='prior', init_steps=2000, dense_mass=False)
    """

    num_warmup: int = 500
    num_samples: int = 1000
    num_chains: int = 4
    target_accept: float = 0.9
    max_tree_depth: int = 8
    init: Literal["prior", "svi"] = "prior"
    init_steps: int = 2000
    dense_mass: bool = False

    name: ClassVar[str] = "nuts"

    def _validate(self):
        _positive_int(self, "num_warmup", "num_samples", "num_chains", "max_tree_depth",
                      "init_steps")
        if not 0.0 < self.target_accept < 1.0:
            raise ValueError(f"NUTS.target_accept must be in (0, 1); got {self.target_accept}")
        if self.init not in ("prior", "svi"):
            raise ValueError(f"NUTS.init must be 'prior' or 'svi'; got {self.init!r}"
                             f"{did_you_mean(str(self.init), ('prior', 'svi'))}")


#: ``SVI(guide="auto")``: the mean-field guide above this many latent values (decision 0013)
AUTO_MEANFIELD_ABOVE = 2000


def resolve_guide(guide: str, n_latent: int) -> str:
    """The guide ``SVI(guide=...)`` fits on a model of ``n_latent`` latent values.

    Example:
        >>> resolve_guide("auto", 500), resolve_guide("auto", 50_000), resolve_guide("lowrank", 1)
        ('lowrank', 'meanfield', 'lowrank')
    """
    if guide != "auto":
        return guide
    return "meanfield" if n_latent > AUTO_MEANFIELD_ABOVE else "lowrank"


#: ``SVI(guide_rank=None)``: the low-rank guide's rank is the square root of the latent values
#: (NumPyro's default) up to this cap; above it a step costs 3-4x more for no measured gain in
#: accuracy or coverage on real tables (decision 0020)
GUIDE_RANK_CAP = 8


def resolve_rank(guide_rank: int | None, n_latent: int) -> int:
    """The rank of the low-rank guide on a model of ``n_latent`` latent values.

    Example:
        >>> resolve_rank(None, 30), resolve_rank(None, 1500), resolve_rank(20, 1500)
        (5, 8, 20)
    """
    if guide_rank is not None:
        return guide_rank
    return max(1, min(int(round(n_latent ** 0.5)), GUIDE_RANK_CAP))


@dataclass(frozen=True)
class SVI(_Settings):
    """Stochastic variational inference: ``num_steps`` Adam steps (cosine-decayed from ``lr``)
    on the ELBO of a ``"lowrank"`` multivariate-normal or ``"meanfield"`` guide, then
    ``num_samples`` draws from the guide. ``guide="auto"`` (the default) takes the low-rank
    guide up to :data:`AUTO_MEANFIELD_ABOVE` latent values and the mean-field one above (the
    low-rank guide's cost grows with the latent values times its rank, which grows with their
    square root; decision 0013); the guide used is in the fit's ``diagnostics["guide"]``.
    ``guide_rank=None``: the square root of the number of latent values (NumPyro's default)
    capped at :data:`GUIDE_RANK_CAP` (the rank used is ``diagnostics["guide_rank"]``).
    ``subsample_size``: each step's likelihood on a random minibatch of that many cells, scaled
    up to all of them (for tables whose full-batch steps are slow or beyond memory; ``None``,
    the default, uses every cell). ``devices``: the cells split over the first ``devices``
    devices (:mod:`cppjax.inference.sharding`), the same program partitioned by XLA.
    ``warm_steps``: a posterior's ``refit`` starts from its own fitted guide and runs this
    many steps (where the table's shape is unchanged: evaluation planning adds scores to cells
    of the same table; decision 0015); ``None`` (the default): every refit starts afresh."""

    num_steps: int = 5000
    lr: float = 0.01
    guide: Literal["auto", "lowrank", "meanfield"] = "auto"
    guide_rank: int | None = None
    num_samples: int = 1000
    subsample_size: int | None = None
    devices: int = 1
    warm_steps: int | None = None

    name: ClassVar[str] = "svi"

    def _validate(self):
        _positive_int(self, "num_steps", "num_samples", "devices")
        _positive(self, "lr")
        if self.subsample_size is not None:
            _positive_int(self, "subsample_size")
        if self.guide not in ("auto", "lowrank", "meanfield"):
            raise ValueError(f"SVI.guide must be 'auto', 'lowrank' or 'meanfield'; got "
                             f"{self.guide!r}")
        if self.guide_rank is not None:
            _positive_int(self, "guide_rank")
        if self.warm_steps is not None:
            _positive_int(self, "warm_steps")

    def warm(self) -> SVI:
        """The settings of a warm refit (``warm_steps`` steps), kept with this object's programs
        so that every warm refit reuses one compiled set."""
        return self.programs.get(("warm", self.warm_steps), lambda: SVI(**{
            **self.settings(), "num_steps": self.warm_steps, "warm_steps": None}))


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


