"""One prediction interface for every model: predictive draws of cells, in original units.

A fitted model is a :class:`Posterior`; ``posterior.predict(...)`` returns a :class:`Predictive`
holding draws of the normalised scores of the requested cells (a point predictor gives one draw
per fitted initialisation). Everything users see (means, intervals, tables, ArviZ data, ranks) is
computed from those draws and reported in the user's original units.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from cppjax.data import ScoreMatrix
from cppjax.keys import as_key


@dataclass(frozen=True, eq=False)
class Predictive:
    """Draws of the scores of ``n_cells`` cells.

    Attributes:
        matrix: the training matrix (names, normalisation, observed scores).
        model_idx, task_idx: the cells, ``(n_cells,)``.
        draws_normalized: ``(n_draws, n_cells)`` predictive draws in normalised units.
        log_lik: optional function of normalised values ``(n_cells,)`` returning per-draw
            log-likelihoods ``(n_draws, n_cells)``, for the log predictive density.
        method: the name of the model and inference that produced the draws.
    """

    matrix: ScoreMatrix
    model_idx: np.ndarray
    task_idx: np.ndarray
    draws_normalized: np.ndarray
    log_lik: Callable | None = None
    method: str = ""
    _cache: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        d = np.asarray(self.draws_normalized, dtype=float)
        if d.ndim != 2 or d.shape[1] != len(self.model_idx):
            raise ValueError(f"draws must be (n_draws, {len(self.model_idx)}); got {d.shape}")
        if not np.isfinite(d).all():
            raise FloatingPointError(f"{self.method}: non-finite predictive draws; the fit failed")
        object.__setattr__(self, "draws_normalized", d)
        object.__setattr__(self, "model_idx", np.asarray(self.model_idx, dtype=np.int32))
        object.__setattr__(self, "task_idx", np.asarray(self.task_idx, dtype=np.int32))

    @property
    def n_draws(self) -> int:
        return self.draws_normalized.shape[0]

    @property
    def n_cells(self) -> int:
        return self.draws_normalized.shape[1]

    @property
    def draws(self) -> np.ndarray:
        """``(n_draws, n_cells)`` draws in original units."""
        if "draws" not in self._cache:
            d = self.matrix.denormalize(self.draws_normalized, self.model_idx, self.task_idx)
            # draws were clipped to the scale in normalised units; clip again here so that the
            # round trip's rounding cannot put a score at -1e-15
            info = self.matrix.task_info
            self._cache["draws"] = np.clip(d, info["lower"].to_numpy()[self.task_idx],
                                           info["upper"].to_numpy()[self.task_idx])
        return self._cache["draws"]

    def _pick(self, normalized: bool) -> np.ndarray:
        return self.draws_normalized if normalized else self.draws

    def mean(self, normalized: bool = False) -> np.ndarray:
        return self._pick(normalized).mean(axis=0)

    def median(self, normalized: bool = False) -> np.ndarray:
        return np.median(self._pick(normalized), axis=0)

    def std(self, normalized: bool = False) -> np.ndarray:
        return self._pick(normalized).std(axis=0)

    def interval(self, level: float = 0.9, kind: str = "central", normalized: bool = False):
        """``(lower, upper)`` arrays: equal-tailed (``"central"``) or highest-density (``"hpd"``)
        intervals at ``level``. With a single draw both bounds equal the draw."""
        if not 0.0 < level < 1.0:
            raise ValueError(f"level must be in (0, 1); got {level}")
        x = self._pick(normalized)
        if kind == "central":
            lo, hi = np.quantile(x, [(1 - level) / 2, (1 + level) / 2], axis=0)
            return lo, hi
        if kind == "hpd":
            return hpd_interval(x, level)
        raise ValueError(f"kind must be 'central' or 'hpd'; got {kind!r}")

    def to_frame(self, level: float = 0.9, kind: str = "central") -> pd.DataFrame:
        """Tidy table ``model, task, mean, median, lower, upper, observed`` in original units
        (``observed`` is the training score of the cell, NaN where it was not observed)."""
        lo, hi = self.interval(level, kind)
        obs = self.matrix.scores[self.model_idx, self.task_idx]
        return pd.DataFrame({
            "model": np.asarray(self.matrix.models, dtype=object)[self.model_idx],
            "task": np.asarray(self.matrix.tasks, dtype=object)[self.task_idx],
            "mean": self.mean(), "median": self.median(), "lower": lo, "upper": hi,
            "observed": obs,
        })

    def to_matrix(self, stat: str = "mean") -> pd.DataFrame:
        """Wide models x tasks table of a statistic (``mean``, ``median``, ``std``) of the draws;
        cells not predicted are NaN."""
        out = np.full(self.matrix.shape, np.nan)
        out[self.model_idx, self.task_idx] = getattr(self, stat)()
        return pd.DataFrame(out, index=pd.Index(self.matrix.models, name="model"),
                            columns=pd.Index(self.matrix.tasks, name="task"))

    def to_arviz(self):
        """ArviZ InferenceData: ``posterior_predictive["score"]`` with dims (chain, draw, cell)
        and the cell coordinates ``model`` and ``task``; scores in original units."""
        import arviz as az

        draws = self.draws[None, ...]
        coords = {
            "cell": np.arange(self.n_cells),
            "model": ("cell", np.asarray(self.matrix.models, dtype=object)[self.model_idx]),
            "task": ("cell", np.asarray(self.matrix.tasks, dtype=object)[self.task_idx]),
        }
        return az.from_dict(posterior_predictive={"score": draws}, coords=coords,
                            dims={"score": ["cell"]})


def _clip_to_scale(sm: ScoreMatrix, draws: np.ndarray, mi, ti) -> np.ndarray:
    """Draws beyond their task's bounds (``sm.task_info``) clipped to them; a ``task_logit``
    normalisation keeps its bounded tasks' draws inside by construction."""
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
    return np.clip(draws, lo_n, hi_n)


def hpd_interval(x: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Narrowest interval containing ``level`` of the draws of each column of ``x``."""
    x = np.sort(np.asarray(x, float), axis=0)
    n = x.shape[0]
    k = max(1, int(np.ceil(level * n)))
    if k >= n:
        return x[0], x[-1]
    widths = x[k - 1:] - x[: n - k + 1]
    start = np.argmin(widths, axis=0)
    cols = np.arange(x.shape[1])
    return x[start, cols], x[start + k - 1, cols]


class Posterior:
    """Base class of a fitted model. Subclasses implement :meth:`_draws`.

    Attributes:
        matrix: the training :class:`ScoreMatrix`.
        method: a short name, e.g. ``"mf"`` or ``"pmf_nuts"``.
        fit_seconds: wall-clock time of the fit (compilation included).
    """

    matrix: ScoreMatrix
    method: str = ""
    fit_seconds: float = float("nan")
    spec = None  # the model specification
    inference = None  # the inference object that fitted it

    def __init__(self, matrix: ScoreMatrix, spec, inference, fit_seconds: float):
        self.matrix = matrix
        self.spec = spec
        self.inference = inference
        self.method = spec.method_name(inference)
        self.fit_seconds = fit_seconds

    def _draws(self, model_idx, task_idx, rng_key) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def _log_lik(self, model_idx, task_idx) -> Callable | None:
        return None

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

    def predict(
        self,
        cells: str | tuple | ScoreMatrix = "missing",
        *,
        rng_key=None,
        noise: bool | None = None,
    ) -> Predictive:
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
        """
        if noise is not None and not getattr(self, "takes_noise", False):
            raise TypeError(f"{self.method} has no observation noise to add or leave out "
                            f"(noise= applies to the Bayesian models)")
        mi, ti = self._cells(cells)
        key = None if rng_key is None else as_key(rng_key)
        if mi.size == 0:  # nothing to predict (e.g. a complete table): no draws to make
            draws = np.zeros((getattr(self, "n_draws", 1), 0))
        else:
            raw = (self._draws(mi, ti, key) if noise is None
                   else self._draws(mi, ti, key, noise=noise))
            draws = _clip_to_scale(self.matrix, np.asarray(raw), mi, ti)
        return Predictive(self.matrix, mi, ti, draws, self._log_lik(mi, ti), self.method)

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

    # -- refits, files, ArviZ ----------------------------------------------------------------
    def refit(self, train: ScoreMatrix, *, rng_key, progress: bool | None = None) -> Posterior:
        """The same model and inference fitted on ``train`` (e.g. with newly observed scores):
        where the shapes allow, the compiled programs of this fit are reused."""
        return self.spec.fit(train, rng_key=rng_key, inference=self.inference,
                             progress=progress)

    def save(self, path) -> Path:
        """Save to ``path`` (see :mod:`cppjax.io`); :func:`cppjax.load` reads it back."""
        from cppjax.io import save

        return save(self, path)

    @classmethod
    def load(cls, path) -> Posterior:
        """Load a posterior saved with :meth:`save` (:func:`cppjax.load`)."""
        from cppjax.io import load

        post = load(path)
        if not isinstance(post, cls):
            raise TypeError(f"{path} holds a {type(post).__name__}, not a {cls.__name__}")
        return post

    def _arrays(self) -> dict:  # pragma: no cover - every posterior defines it
        raise NotImplementedError

    def _meta(self) -> dict:  # pragma: no cover - every posterior defines it
        raise NotImplementedError

    # -- ranks -------------------------------------------------------------------------------
    def rank(self, task: str, *, rng_key=None, models: Sequence[str] | None = None):
        """Posterior of each model's rank on ``task`` (1 = best); see :class:`RankPosterior`."""
        from cppjax.ranks import rank_posterior

        return rank_posterior(self, task, rng_key=rng_key, models=models)

    def aggregate_rank(self, tasks: Sequence[str] | None = None, *, rng_key=None,
                       models: Sequence[str] | None = None):
        """Posterior of each model's rank on the leaderboard aggregate (its mean score over
        ``tasks``, each task's scores as shares of its observed range; 1 = best); see
        :func:`cppjax.ranks.aggregate_rank_posterior`."""
        from cppjax.ranks import aggregate_rank_posterior

        return aggregate_rank_posterior(self, tasks, rng_key=rng_key, models=models)
