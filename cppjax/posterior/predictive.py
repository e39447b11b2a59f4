"""One prediction interface for every model: predictive draws of cells, in original units.

A fitted model is a :class:`Posterior`; ``posterior.predict(...)`` returns a :class:`Predictive`
holding draws of the normalised scores of the requested cells (a point predictor gives one draw
per fitted initialisation). Everything users see (means, intervals, tables, ArviZ data, ranks) is
computed from those draws and reported in the user's original units.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from cppjax.data import ScoreMatrix


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
        d = np.asarray(self.draws_normalized)
        if d.dtype not in (np.float32, np.float64):  # float32 draws are kept: they carry no
            d = d.astype(float)  # more than float32's precision, and 10^8 of them are 0.4 GB
        if d.ndim != 2 or d.shape[1] != len(self.model_idx):
            raise ValueError(f"draws must be (n_draws, {len(self.model_idx)}); got {d.shape}")
        # float32: one float64 sum is non-finite exactly when a value is (it cannot overflow)
        if not (np.isfinite(d.sum(dtype=np.float64)) if d.dtype == np.float32
                else np.isfinite(d).all()):
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
            lo, hi = (info[c].to_numpy()[self.task_idx].astype(d.dtype) for c in ("lower", "upper"))
            self._cache["draws"] = np.clip(d, lo, hi, out=d if d is not self.draws_normalized
                                           else None)
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
