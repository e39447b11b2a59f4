"""The posterior of a Bayesian collaborative model (PMF, BNCF): its samples, the posterior
predictive of any cells, ArviZ data labelled by the model's own dimensions."""

from __future__ import annotations

from functools import partial

import jax.numpy as jnp
import numpy as np

from cppjax.data import ScoreMatrix
from cppjax.inference import InferenceResult, log_likelihood, predict_sites
from cppjax.keys import as_key
from cppjax.models.likelihood import padded_size, predictive_noise
from cppjax.predictive import Posterior


class SampledPosterior(Posterior):
    """What the posteriors made of samples share (Bayesian models, scaling laws): samples,
    diagnostics, ArviZ data with the spec's dimensions, save/load of the samples."""

    spec = None
    inference = None
    result: InferenceResult

    @property
    def samples(self) -> dict:
        return self.result.samples

    @property
    def diagnostics(self) -> dict:
        return self.result.diagnostics

    @property
    def n_draws(self) -> int:
        return next(iter(self.samples.values())).shape[0]

    def coords(self) -> dict:
        return self.spec.coords(self.matrix)

    def to_arviz(self):
        """ArviZ InferenceData of the posterior, with the dimensions the model declares
        (``spec.dims``: e.g. ``models``, ``tasks``, ``latent``) labelled by name."""
        import arviz as az

        n_chains = self.result.num_chains
        # (a site of size 0, e.g. regression weights of no task factors, has nothing to show)
        post = {k: v.reshape((n_chains, v.shape[0] // n_chains) + v.shape[1:])
                for k, v in self.samples.items() if "$" not in k and v.size}
        coords = self.coords()
        dims = {k: d for k, d in self.spec.dims.items()
                if k in post and all(x in coords or x == "latent" for x in d)}
        return az.from_dict(posterior=post, sample_stats=self.result.sample_stats or None,
                            coords=coords, dims=dims)

    # -- persistence (see cppjax.io) -----------------------------------------------------------
    def _arrays(self) -> dict[str, np.ndarray]:
        return {f"sample::{k}": np.asarray(v) for k, v in self.samples.items()}

    def _meta(self) -> dict:
        return {"num_chains": self.result.num_chains, "diagnostics": self.diagnostics,
                "result_method": self.result.method}

    @staticmethod
    def _result(meta: dict, arrays: dict) -> InferenceResult:
        samples = {k.split("::", 1)[1]: v for k, v in arrays.items() if k.startswith("sample::")}
        return InferenceResult(samples, meta["result_method"], meta["num_chains"],
                               meta["diagnostics"])


class BayesPosterior(SampledPosterior):
    """A fitted Bayesian collaborative model: posterior samples and the posterior predictive of
    any cells.

    Attributes:
        spec: the model specification (:class:`~cppjax.PMF` or :class:`~cppjax.BNCF`).
        inference: the inference object that fitted it (its compiled programs serve refits).
        result: samples and diagnostics (:class:`cppjax.inference.InferenceResult`).
    """

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

    def _args(self, mi, ti):
        return (*self._X, jnp.asarray(mi), jnp.asarray(ti))

    takes_noise = True

    def _draws(self, model_idx, task_idx, rng_key, noise: bool | None = None):
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
                            cache=getattr(self.inference, "programs", None))
        return out["cell_mean"][:, :n]

    def _log_lik(self, model_idx, task_idx):
        def fn(y_norm):
            return log_likelihood(self._model, self.samples, self._args(model_idx, task_idx),
                                  np.asarray(y_norm, np.float32))

        return fn

    @classmethod
    def _restore(cls, matrix, spec, inference, meta, arrays, fit_seconds):
        return cls(matrix, spec, inference, cls._result(meta, arrays), fit_seconds)
