"""What every model specification shares: a name in the registry, its default inferences, the
settings of the first forms of cppjax, and ``fit``.

A specification is a frozen dataclass of *model* settings only (rank, priors, likelihood...);
how it is fitted is an inference object of :mod:`cppjax.inference`. Each specification class
declares

* ``kind``: its name in :mod:`cppjax.models.registry` (saved files record it);
* ``inference_defaults``: for each inference it accepts, the settings that differ from the
  inference object's own defaults (e.g. Bayesian NCF's SVI takes 3,000 steps);
* ``dims`` and :meth:`coords`: the posterior's named dimensions, read by ``to_arviz``;
* :meth:`fit`: ``spec.fit(train, rng_key=key, inference=NUTS(...))``.

Settings that belonged to the model in earlier versions (``PMF(svi_steps=300)``,
``MF(steps=200)``) are still accepted by the constructor and become the defaults of the
inferences that take them (see ``docs/decisions/0001-model-apart-from-inference.md``).
"""

from __future__ import annotations

import dataclasses
import time
from functools import partial
from typing import ClassVar, Literal

import jax
import jax.numpy as jnp
import numpy as np

from cppjax.data import ScoreMatrix
from cppjax.data.features import design_matrix, encode_factors
from cppjax.errors import DataError
from cppjax.inference import INFERENCES, LEGACY_NAMES, make_inference, run_inference
from cppjax.inference.keys import as_key
from cppjax.inference.sharding import cell_mesh, pad_to_multiple, shard_cells
from cppjax.models.bayes import BayesPosterior
from cppjax.models.legacy import LegacyAttributes, legacy_method
from cppjax.models.likelihood import bound_sides, pad_cells
from cppjax.posterior.files import SPEC_CLASSES


class ModelSpec(LegacyAttributes):
    """Base of every model specification (see the module docstring)."""

    kind: ClassVar[str] = ""
    #: inference name -> settings over that inference object's defaults; the first is the default
    inference_defaults: ClassVar[dict[str, dict]] = {}
    #: posterior site -> its named dimensions (for ArviZ)
    dims: ClassVar[dict[str, list[str]]] = {}
    #: the normalisation this model fits a percent or fraction table's bounded tasks best
    #: through (``None``: the table's own); what the stack's candidates and the command line use
    #: (``ScoreMatrix.renormalized``; decision 0023)
    preferred_normalization: ClassVar[str | None] = None
    #: the inferences (by name) that read a table through :attr:`preferred_normalization`;
    #: the others fit the table's own (PMF: SVI and MAP; its NUTS mixes worse through the
    #: logit, decision 0025)
    preferred_under: ClassVar[tuple[str, ...]] = ("nuts", "svi", "map", "adam")

    def normalization_for(self, inference) -> str | None:
        """The normalisation this model reads a table cppjax normalised through under
        ``inference`` (an inference object, or its name); ``None``: the table's own.

        Example:
            >>> from cppjax.models import PMF
            >>> PMF().normalization_for("svi"), PMF().normalization_for("nuts")
            ('task_logit', None)
        """
        name = inference if isinstance(inference, str) else getattr(inference, "name", None)
        return self.preferred_normalization if name in self.preferred_under else None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("kind"):  # a concrete model: saved files name it by its kind
            SPEC_CLASSES.setdefault(cls.kind, cls)

    @classmethod
    def posterior_class(cls) -> type:  # pragma: no cover - every family of models defines it
        """The class of this model's fitted posterior (what :func:`cppjax.posterior.files.load`
        builds)."""
        raise NotImplementedError

    def model_settings(self) -> dict:
        """The model's own fields (what a saved posterior records)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def coords(self, sm) -> dict:
        """Coordinates of the named dimensions for the training matrix ``sm``."""
        return {"models": list(sm.models), "tasks": list(sm.tasks)}

    def default_inference(self, name: str | None = None):
        """The inference object ``name`` with this model's defaults (and the settings given to
        its constructor in the first form), made once per spec instance so that repeated fits
        of one spec reuse their compiled programs."""
        name = name or next(iter(self.inference_defaults))
        if name not in self.inference_defaults:
            raise ValueError(f"{type(self).__name__} is fitted by "
                             f"{', '.join(self.inference_defaults)}, not {name!r}")
        made = self.__dict__.setdefault("_inferences", {})
        if name not in made:
            cls = INFERENCES[name]
            legacy = {k: v for k, v in getattr(self, "legacy_settings", {}).items()
                      if LEGACY_NAMES.get(k, k) in cls.field_names()}
            made[name] = make_inference(name, **{**self.inference_defaults[name], **legacy})
        return made[name]

    def resolve_inference(self, inference=None, method: str | None = None):
        """An inference object from what ``fit`` was given: an object (checked to apply), a
        name, or nothing (this model's default)."""
        inference = legacy_method(inference, method)
        if inference is None or isinstance(inference, str):
            return self.default_inference(inference)
        if inference.name not in self.inference_defaults:
            takes = ", ".join(INFERENCES[n].__name__ for n in self.inference_defaults)
            raise TypeError(f"{type(self).__name__} is fitted by {takes}, not "
                            f"{type(inference).__name__}")
        return inference

    def fit(self, train: ScoreMatrix, *, rng_key, inference=None,
            progress: bool | None = None):  # pragma: no cover - every model defines it
        """Fit on the observed cells of ``train`` -> a :class:`~cppjax.posterior.Posterior`."""
        raise NotImplementedError

    def fit_many(self, trains: list[ScoreMatrix], *, rng_key, inference=None,
                 progress: bool | None = None) -> list:
        """One fit per training matrix with one inference object (its compiled programs shared),
        each with its own key split from ``rng_key``; the point models override it with one
        vectorised call."""
        inference = self.resolve_inference(inference)
        keys = jax.random.split(as_key(rng_key), len(trains))
        return [self.fit(t, rng_key=k, inference=inference, progress=progress)
                for t, k in zip(trains, keys, strict=True)]

    def method_name(self, inference) -> str:
        """The short name of this model fitted by ``inference`` (e.g. ``pmf_nuts``)."""
        return f"{self.kind}_{inference.name}"


@dataclasses.dataclass(frozen=True)
class BayesSpec(ModelSpec):
    """Base of the Bayesian collaborative models (PMF, BNCF): design factors on or off, the
    per-task noise model and the likelihood; :meth:`fit` runs NUTS, SVI or MAP on the observed
    cells of a training matrix."""

    use_factors: bool = True
    noise_tau: float = 0.5
    noise_floor: float = 0.03
    likelihood: Literal["normal", "student_t"] = "normal"
    #: True: a score on its task's bound is read as "at or beyond the bound" (its likelihood
    #: the predictive's mass there, not its density). Off by default: pooled over the suite it
    #: helped PMF on saturated tasks and cost it elsewhere (decision 0031)
    censored: bool = False

    inference_defaults: ClassVar[dict[str, dict]] = {"nuts": {}, "svi": {}, "map": {}}
    #: NUTS chains are an ensemble of modes the posterior cannot cross (BNCF)
    chains_are_modes: ClassVar[bool] = False

    @classmethod
    def posterior_class(cls) -> type:
        return BayesPosterior

    def __post_init__(self):
        if self.likelihood not in ("normal", "student_t"):
            raise ValueError(f"likelihood must be 'normal' or 'student_t', got {self.likelihood!r}")
        if self.noise_floor < 0:
            raise ValueError(f"noise_floor must be >= 0 (normalised units), got {self.noise_floor}")
        if self.noise_tau < 0:
            raise ValueError(f"noise_tau must be >= 0, got {self.noise_tau}")

    def design(self, sm: ScoreMatrix) -> tuple[np.ndarray, np.ndarray]:
        """The model and task design matrices (no columns with ``use_factors=False``)."""
        if not self.use_factors:
            return (np.zeros((sm.n_models, 0), np.float32), np.zeros((sm.n_tasks, 0), np.float32))
        return (design_matrix(encode_factors(sm.model_factors)),
                design_matrix(encode_factors(sm.task_factors)))

    def model_parts(self, sm: ScoreMatrix, data_cells: bool = False
                    ) -> tuple[partial, dict]:  # pragma: no cover - every subclass defines it
        """The model function of ``sm`` as a partial with the static configuration only, and
        the arrays it takes besides the cells (bases, factor arrays) as keyword arguments.
        ``data_cells=True``: a fit's model, whose cells are all on models and tasks with data
        (PMF then leaves the rows without data out of its log density)."""
        raise NotImplementedError

    def model_fn(self, sm: ScoreMatrix):
        """The model function of ``sm``: ``model(Xm, Xt, model_idx, task_idx, y=None)``."""
        model, data = self.model_parts(sm)
        return partial(model, **data)

    def fit(self, train: ScoreMatrix, *, rng_key, inference=None, method: str | None = None,
            progress: bool | None = None, start: dict | None = None) -> BayesPosterior:
        """Fit on the observed cells of ``train``.

        Args:
            rng_key: a ``jax.random`` key or an int seed (required).
            inference: a :class:`~cppjax.inference.NUTS`, ``SVI`` or ``MAP`` object, or one of
                their names (this model's defaults); default NUTS. ``method=`` is the same.
            start: an SVI fit's guide parameters to start from, with ``inference.warm_steps``
                steps (what :meth:`BayesPosterior.refit` passes; decision 0015).

        A table whose normalisation cppjax chose (``normalization="auto"``) is read through
        :meth:`normalization_for` the inference where this model has one, the posterior
        presented on ``train`` (:class:`~cppjax.posterior.renormalized.RenormalizedPosterior`;
        decisions 0024, 0025); a normalisation the user named is the one fitted.
        """
        inference = self.resolve_inference(inference, method)
        if train.normalization.auto:
            through = train.renormalized(self.normalization_for(inference))
            if through is not train:
                from cppjax.posterior.renormalized import RenormalizedPosterior

                inner = self.fit(through, rng_key=rng_key, inference=inference,
                                 progress=progress, start=start)
                return RenormalizedPosterior(inner, train)
        can_warm = bool(getattr(inference, "warm_steps", None))
        start = start if can_warm else None
        fitting = inference.warm() if start is not None else inference  # fewer steps
        key = as_key(rng_key)
        require_cells(train)
        t0 = time.perf_counter()
        Xm, Xt = self.design(train)
        obs = train.observed()
        n = len(obs.values)
        mi, ti, y, mask = pad_cells(obs.model_idx, obs.task_idx, obs.values)
        cells = [mi, ti, y]
        sides = bound_sides(train) if self.censored else None
        if sides is not None and sides.any():  # scores on a bound (decision 0031)
            cells.append(np.concatenate([sides, np.zeros(len(mi) - n, np.int32)]))
        model, data = self.model_parts(train, data_cells=True)
        if getattr(inference, "subsample_size", None) is not None:
            model = partial(model, subsample_size=inference.subsample_size)
        # the cells split over devices where the inference asks for several
        # (cppjax.inference.sharding)
        mesh = cell_mesh(getattr(inference, "devices", 1))
        if mesh is not None:
            cells, mask = pad_to_multiple(cells, mask, mesh.size)
        (mi, ti, y, *censor, mask), (X, data) = shard_cells(
            mesh, [jnp.asarray(a) for a in (*cells, mask)],
            ((jnp.asarray(Xm), jnp.asarray(Xt)), data))
        if censor:
            data = {**data, "censor": censor[0]}
        run = partial(run_inference, model, (*X, mi, ti), y, inference=fitting, rng_key=key,
                      progress=progress, identified=lambda s: s["cell_mean"][:, :n],
                      chains_are_modes=self.chains_are_modes,
                      **({"start": start} if start is not None else {}))
        stop = None
        if inference.name == "map" and inference.val_frac > 0 and n >= 20:
            # early stopping: the steps that predicted a random share of the cells best when
            # left out (decision 0012); then a fit on every cell for that many steps
            val = np.zeros(len(mask), bool)
            perm = np.asarray(jax.random.permutation(jax.random.fold_in(key, 1), n))
            val[perm[:max(1, int(inference.val_frac * n))]] = True
            y_np = np.asarray(y)

            def monitor(s):
                return np.mean((np.asarray(s["cell_mean"])[0][val] - y_np[val]) ** 2)

            first = run(data={**data, "mask": mask & jnp.asarray(~val)}, monitor=monitor)
            stop = int(np.argmin(first.diagnostics["monitor"])) + 1
        res = run(data={**data, "mask": mask}, max_chunks=stop)
        if can_warm:  # a fresh fit of an inference that refits warm says it was fresh
            res.diagnostics.setdefault("warm_start", False)
        if stop is not None:
            res.diagnostics["early_stop_steps"] = stop * first.diagnostics["chunk_steps"]
            res.seconds += first.seconds
        res.samples = {k: v for k, v in res.samples.items() if k not in ("cell_mean", "y")}
        return BayesPosterior(train, self, inference, res, time.perf_counter() - t0)


def require_cells(train) -> None:
    """A fit needs a :class:`ScoreMatrix` with at least one observed score."""
    if not isinstance(train, ScoreMatrix):
        raise TypeError(f"train must be a cppjax.ScoreMatrix (build one with "
                        f"ScoreMatrix.from_wide / from_long); got {type(train).__name__}")
    if train.n_observed == 0:
        raise DataError(f"{train.source}: no observed score to fit")
