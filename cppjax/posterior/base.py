"""The one contract of every fitted model: the :class:`Posterior` abstract base class.

A fitted model, whatever its kind (PMF, BNCF, ScalingMF, the scaling laws, the point models,
COD and its task-level baselines), is a :class:`Posterior`. Its abstract methods are what a new
kind must implement (a class that skips one cannot be instantiated); everything else is built
on them once, here:

* :meth:`predict` -> :class:`~cppjax.posterior.Predictive` (draws of any cells, original units);
* :meth:`joint_draws` -> observed cells at their values, missing cells drawn jointly: the one
  implementation ranks and planning read;
* :meth:`refit` (the same model and inference on new data, compiled programs reused),
  :meth:`save` / :meth:`load` (checked files; a kind that cannot be saved raises
  :class:`NotSaveable`), :meth:`to_arviz`, :attr:`diagnostics`;
* :meth:`rank`, :meth:`aggregate_rank`.

See ``docs/architecture.md``.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from cppjax.data import ScoreMatrix
from cppjax.inference.keys import as_key
from cppjax.posterior.predictive import Predictive

#: the most predictive values (cells x draws) :meth:`Posterior.predict` makes unless told
#: (``draws=``): 0.4 GB of float32 (decision 0015: 800,000 cells x 200 draws took 14.8 s on 2
#: CPU cores, all 1,000 draws 76.8 s)
MAX_PREDICT_VALUES = 10**8
#: the fewest draws a default prediction keeps (its 90% intervals from 200 draws)
MIN_PREDICT_DRAWS = 200


class NotSaveable(TypeError):
    """This kind of posterior cannot be written to a file (the protocol's typed refusal):
    refit it from its data instead."""


class Posterior(abc.ABC):
    """A fitted model (see the module docstring).

    Attributes:
        matrix: the training :class:`ScoreMatrix` (what :meth:`predict`'s cells index).
        spec: the model specification.
        inference: the inference object that fitted it (its compiled programs serve refits and
            predictions).
        method: a short name, e.g. ``"mf"`` or ``"pmf_nuts"``.
        fit_seconds: wall-clock time of the fit (compilation included).
    """

    #: whether ``_draws`` returns a fresh array that predict may clip in place
    _owns_draws = False
    #: re-read a task without scores through its donors' ranges (Normalization.mix_borrowed);
    #: False where the draws are made of other posteriors' predictions, which did (the stack)
    _mixes_borrowed = True

    def __init__(self, matrix: ScoreMatrix, spec, inference, fit_seconds: float,
                 method: str | None = None):
        self.matrix = matrix
        self.spec = spec
        self.inference = inference
        self.method = method if method is not None else spec.method_name(inference)
        self.fit_seconds = fit_seconds

    # -- what every kind implements ----------------------------------------------------------
    @property
    @abc.abstractmethod
    def n_draws(self) -> int:
        """Predictive draws per cell (posterior draws; a point model's initialisations)."""

    @property
    @abc.abstractmethod
    def diagnostics(self) -> dict:
        """What a user needs to trust the fit (r-hat, ESS, divergences, losses...)."""

    @abc.abstractmethod
    def _draws(self, model_idx: np.ndarray, task_idx: np.ndarray, rng_key,
               noise: bool | None) -> np.ndarray:
        """``(n_draws, n_cells)`` draws of the cells in normalised units. ``noise``: with the
        observation noise or without (``None``: the kind's default); a kind with no noise
        raises ``TypeError`` for anything but ``None`` (:meth:`_no_noise`)."""

    @abc.abstractmethod
    def refit(self, train, *, rng_key, progress: bool | None = None) -> Posterior:
        """The same model and inference fitted on ``train`` (e.g. with newly observed scores);
        where the shapes allow, the compiled programs of this fit are reused."""

    @abc.abstractmethod
    def to_arviz(self):
        """ArviZ ``InferenceData`` of the posterior."""

    @abc.abstractmethod
    def _arrays(self) -> dict[str, np.ndarray]:
        """The arrays a save file holds (:mod:`cppjax.posterior.files`)."""

    @abc.abstractmethod
    def _meta(self) -> dict:
        """The JSON-able metadata a save file holds."""

    @classmethod
    @abc.abstractmethod
    def _restore(cls, matrix, spec, inference, meta: dict, arrays: dict,
                 fit_seconds: float) -> Posterior:
        """The posterior back from a save file's pieces."""

    # -- built on them -----------------------------------------------------------------------
    def _refit_spec(self, train, rng_key, progress) -> Posterior:
        """:meth:`refit` of a kind fitted by ``spec.fit`` with an inference object."""
        return self.spec.fit(train, rng_key=rng_key, inference=self.inference,
                             progress=progress)

    def _log_lik(self, model_idx, task_idx) -> Callable | None:
        return None

    def _no_noise(self, noise) -> None:
        if noise is not None:
            raise TypeError(f"{self.method} has no observation noise to add or leave out "
                            f"(noise= applies to the Bayesian models)")

    @property
    def unplaced_models(self) -> list[str]:
        """Models this posterior cannot predict (a scaling law's models with no size or family);
        empty for the collaborative models, which predict every model."""
        return []

    def placed_cells(self, cells="missing") -> tuple[np.ndarray, np.ndarray]:
        """``(model_idx, task_idx)`` of ``cells`` (as in :meth:`predict`) less the cells of
        :attr:`unplaced_models`: what this posterior can predict."""
        mi, ti = self._cells(cells)
        unplaced = [self.matrix.model_index(m) for m in self.unplaced_models]
        keep = ~np.isin(mi, unplaced)
        return mi[keep], ti[keep]

    def predict(self, cells: str | tuple | ScoreMatrix = "missing", *, rng_key=None,
                noise: bool | None = None, draws: int | None = None) -> Predictive:
        """Predictive draws for a set of cells.

        Args:
            cells: ``"missing"`` (every unobserved cell of the training matrix), ``"all"``,
                ``"observed"``, a :class:`ScoreMatrix` with the same names (its observed cells,
                e.g. a split's ``test``), or index arrays ``(model_idx, task_idx)``.
            rng_key: a ``jax.random`` key (or int seed) for models whose predictive needs one
                (observation noise); point predictors ignore it.
            noise: whether the draws include the observation noise of a Bayesian model (the
                scores a new evaluation would give) or are its noise-free cell means. Default:
                with noise, except for a MAP fit, whose one draw is then the fitted mode.
            draws: how many of the posterior's draws to use (evenly spaced). Default: every
                draw, but at most :data:`MAX_PREDICT_VALUES` values in all (never under
                :data:`MIN_PREDICT_DRAWS` draws), so that predicting every cell of a large
                table takes seconds, not minutes; the number used is the result's ``n_draws``
                (and logged where it is fewer). Kinds whose draws are not posterior samples
                (point ensembles, stacks) use all of theirs.
        """
        if draws is not None and (isinstance(draws, bool) or
                                  not isinstance(draws, int | np.integer) or draws < 1):
            raise ValueError(f"draws must be a positive integer; got {draws!r}")
        mi, ti = self._cells(cells)
        key = None if rng_key is None else as_key(rng_key)
        post = self._thinned(mi.size, draws)
        if mi.size == 0:  # nothing to predict (e.g. a complete table): no draws to make
            out = np.zeros((post.n_draws, 0))
        else:
            raw = np.asarray(post._draws(mi, ti, key, noise))
            if self._mixes_borrowed:  # a task without scores: its donors' ranges (0029)
                mixed = self.matrix.normalization.mix_borrowed(raw, ti)
                raw, owns = mixed, post._owns_draws or mixed is not raw
            else:
                owns = post._owns_draws
            out = _clip_to_scale(self.matrix, raw, mi, ti, in_place=owns)
        return Predictive(self.matrix, mi, ti, out, post._log_lik(mi, ti), self.method)

    def _thinned(self, n_cells: int, draws: int | None) -> Posterior:
        """This posterior with ``draws`` of its draws (see :meth:`predict`); itself for kinds
        whose draws cannot be thinned (the default)."""
        return self

    def joint_draws(self, cells: str | tuple | ScoreMatrix = "all", *, rng_key) -> np.ndarray:
        """Draws ``(n_draws, n_cells)`` of ``cells`` in original units, observed cells at their
        training score in every draw and the others drawn jointly (one predictive call, so
        that draw ``s`` of every cell comes from posterior draw ``s``); a cell listed twice
        gets the same values. What rank posteriors and evaluation planning read."""
        mi, ti = self._cells(cells)
        sm = self.matrix
        obs = sm.mask[mi, ti]
        flat = mi.astype(np.int64) * sm.n_tasks + ti
        todo = np.unique(flat[~obs])
        if todo.size == 0:
            return np.broadcast_to(sm.scores[mi, ti], (self.n_draws, mi.size)).copy()
        pred = self.predict(((todo // sm.n_tasks).astype(np.int32),
                             (todo % sm.n_tasks).astype(np.int32)), rng_key=rng_key)
        x = np.broadcast_to(sm.scores[mi, ti], (pred.n_draws, mi.size)).copy()
        x[:, ~obs] = pred.draws[:, np.searchsorted(todo, flat[~obs])]
        return x

    def _cells(self, cells):
        sm = self.matrix
        if isinstance(cells, str):
            if cells == "missing":
                return sm.missing()
            if cells == "all":
                mi, ti = np.indices(sm.shape)
                return mi.ravel().astype(np.int32), ti.ravel().astype(np.int32)
            if cells == "observed":
                obs = sm.observed()
                return obs.model_idx, obs.task_idx
            raise ValueError(f"cells must be 'missing', 'all', 'observed', a ScoreMatrix or "
                             f"index arrays; got {cells!r}")
        if isinstance(cells, ScoreMatrix):
            if cells.models != sm.models or cells.tasks != sm.tasks:
                raise ValueError("the ScoreMatrix of cells must have the training matrix's names")
            obs = cells.observed()
            return obs.model_idx, obs.task_idx
        mi, ti = cells
        mi, ti = np.asarray(mi, np.int32), np.asarray(ti, np.int32)
        if mi.shape != ti.shape or mi.ndim != 1:
            raise ValueError("model_idx and task_idx must be 1-D arrays of equal length")
        if mi.size and (mi.min() < 0 or mi.max() >= sm.n_models or ti.min() < 0
                        or ti.max() >= sm.n_tasks):
            raise IndexError("cell index out of range")
        return mi, ti

    # -- files -------------------------------------------------------------------------------
    def save(self, path) -> Path:
        """Save to ``path`` (see :mod:`cppjax.posterior.files`); :func:`cppjax.load` reads it
        back. A kind that cannot be saved raises :class:`NotSaveable`."""
        from cppjax.posterior.files import save

        return save(self, path)

    @classmethod
    def load(cls, path) -> Posterior:
        """Load a posterior saved with :meth:`save` (:func:`cppjax.load`)."""
        from cppjax.posterior.files import load

        post = load(path)
        if not isinstance(post, cls) and not isinstance(getattr(post, "inner", None), cls):
            raise TypeError(f"{path} holds a {type(post).__name__}, not a {cls.__name__}")
        return post

    # -- ranks -------------------------------------------------------------------------------
    def rank(self, task: str, *, rng_key=None, models: Sequence[str] | None = None):
        """Posterior of each model's rank on ``task`` (1 = best); see :class:`RankPosterior`."""
        from cppjax.posterior.ranks import rank_posterior

        return rank_posterior(self, task, rng_key=rng_key, models=models)

    def aggregate_rank(self, tasks: Sequence[str] | None = None, *, rng_key=None,
                       models: Sequence[str] | None = None):
        """Posterior of each model's rank on the leaderboard aggregate (its mean score over
        ``tasks``, each task's scores as shares of its observed range; 1 = best); see
        :func:`cppjax.posterior.ranks.aggregate_rank_posterior`."""
        from cppjax.posterior.ranks import aggregate_rank_posterior

        return aggregate_rank_posterior(self, tasks, rng_key=rng_key, models=models)


def _clip_to_scale(sm: ScoreMatrix, draws: np.ndarray, mi, ti,
                   in_place: bool = False) -> np.ndarray:
    """Draws beyond their task's bounds (``sm.task_info``) clipped to them; a ``task_logit``
    normalisation keeps its bounded tasks' draws inside by construction. ``in_place``: the
    caller owns ``draws`` (a fresh array), so a writeable float32 one is clipped where it is
    (10^8 draws: a second array of 0.4 GB and seconds of page faults saved)."""
    lo = sm.task_info["lower"].to_numpy()[ti]
    hi = sm.task_info["upper"].to_numpy()[ti]
    if not (np.isfinite(lo).any() or np.isfinite(hi).any()):
        return draws
    norm = sm.normalization
    if norm.logit is not None:  # the bounded tasks already are (and +-inf has no logit)
        lo, hi = np.where(norm.logit[0, ti], -np.inf, lo), np.where(norm.logit[0, ti], np.inf, hi)
    with np.errstate(invalid="ignore"):
        lo_n = np.where(np.isfinite(lo), sm.normalize(np.where(np.isfinite(lo), lo, 0.0), mi, ti),
                        -np.inf)
        hi_n = np.where(np.isfinite(hi), sm.normalize(np.where(np.isfinite(hi), hi, 0.0), mi, ti),
                        np.inf)
    if draws.dtype == np.float32:  # float32 draws (the Bayesian models') stay float32: half
        lo_n, hi_n = lo_n.astype(np.float32), hi_n.astype(np.float32)  # the memory and time
        if in_place and draws.flags.writeable:
            return np.clip(draws, lo_n, hi_n, out=draws)
    return np.clip(draws, lo_n, hi_n)
