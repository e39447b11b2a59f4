"""The posterior of a Bayesian collaborative model (PMF, BNCF): its samples, the posterior
predictive of any cells, ArviZ data labelled by the model's own dimensions."""

from __future__ import annotations

from functools import partial

import jax.numpy as jnp
import numpy as np

from cppjax.data import ScoreMatrix
from cppjax.inference import InferenceResult, as_key, log_likelihood, predict_sites
from cppjax.models.likelihood import padded_size, predictive_noise
from cppjax.posterior.sampled import SampledPosterior


class BayesPosterior(SampledPosterior):
    """A fitted Bayesian collaborative model: posterior samples and the posterior predictive of
    any cells.

    Attributes:
        spec: the model specification (:class:`~cppjax.PMF` or :class:`~cppjax.BNCF`).
        inference: the inference object that fitted it (its compiled programs serve refits).
        result: samples and diagnostics (:class:`cppjax.inference.InferenceResult`).
    """

    #: _draws computes every array it returns (predictive_noise, predict_sites)
    _owns_draws = True

    def __init__(self, matrix: ScoreMatrix, spec, inference, result: InferenceResult,
                 fit_seconds: float):
        super().__init__(matrix, spec, inference, fit_seconds)
        self.result = result
        Xm, Xt = spec.design(matrix)
        self._X = (jnp.asarray(Xm), jnp.asarray(Xt))
        # the model's static settings apart from its arrays: predictions of any posterior of
        # the same settings and shapes share one compiled program (inference.predict_sites)
        self._static_model, self._data = spec.model_parts(matrix)
        self._model = partial(self._static_model, **self._data)

    def __repr__(self):
        return (f"BayesPosterior({self.method}, {self.n_draws} draws, fit "
                f"{self.fit_seconds:.1f}s, diagnostics={self.diagnostics})")

    def refit(self, train, *, rng_key, progress: bool | None = None) -> BayesPosterior:
        """Fit again on ``train`` with the same settings and compiled programs; an SVI fit with
        ``warm_steps`` starts from this fit's guide (where the table's shape is unchanged)."""
        start = self.result.params
        if start is not None and train.shape == self.matrix.shape:
            same = all(np.shape(a) == np.shape(b) for a, b in zip(
                self.spec.design(train), self._X, strict=True))
            start = start if same else None
        else:
            start = None  # another shape: the guide's parameters do not fit it
        return self.spec.fit(train, rng_key=rng_key, inference=self.inference,
                             progress=progress, start=start)

    def _args(self, mi, ti):
        return (*self._X, jnp.asarray(mi), jnp.asarray(ti))

    def _draws(self, model_idx, task_idx, rng_key, noise: bool | None):
        if noise is None:  # a MAP fit predicts its mode (one noisy draw is not an estimate)
            noise = self.result.method != "map"
        if not noise:
            return self.cell_means(model_idx, task_idx)
        if rng_key is None:
            raise ValueError("predictive draws of a Bayesian model need an rng_key (or int seed)")
        return predictive_noise(self.cell_means(model_idx, task_idx), self.samples,
                                np.asarray(task_idx), self.spec.likelihood, rng_key)

    def cell_means(self, model_idx, task_idx, max_values: int = 2**25) -> np.ndarray:
        """Posterior draws of the noise-free cell means ``(n_draws, n_cells)`` (normalised),
        computed on chunks of draws of at most ``max_values`` values."""
        # deterministic given the draws: the key only satisfies Predictive's signature. The
        # cells padded to a shared size (likelihood.padded_size) so that another number of
        # cells reuses the compiled program
        n = len(model_idx)
        pad = padded_size(n) - n
        mi = np.concatenate([np.asarray(model_idx, np.int32), np.zeros(pad, np.int32)])
        ti = np.concatenate([np.asarray(task_idx, np.int32), np.zeros(pad, np.int32)])
        out = predict_sites(self._static_model, self.samples, self._args(mi, ti),
                            ("cell_mean",), as_key(0), max_values=max_values, data=self._data,
                            cache=self.inference.programs)
        return out["cell_mean"][:, :n]

    def _log_lik(self, model_idx, task_idx):
        def fn(y_norm):
            return log_likelihood(self._model, self.samples, self._args(model_idx, task_idx),
                                  np.asarray(y_norm, np.float32))

        return fn

    @classmethod
    def _restore(cls, matrix, spec, inference, meta, arrays, fit_seconds):
        return cls(matrix, spec, inference, cls._result(meta, arrays), fit_seconds)


def __getattr__(name: str):
    """``from cppjax.models.bayes import PMF`` (where PMF and BNCF lived before they had modules
    of their own) still works for one release, with a DeprecationWarning."""
    if name in ("PMF", "pmf_model", "BNCF", "bncf_model"):
        from cppjax.compat import moved

        module = "cppjax.models.pmf" if name.startswith(("PMF", "pmf")) else "cppjax.models.bncf"
        return moved(f"cppjax.models.bayes.{name}", module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
