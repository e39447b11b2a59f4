"""What the posteriors made of samples share (Bayesian models, scaling laws): samples,
diagnostics, ArviZ data with the spec's dimensions, save/load of the samples."""

from __future__ import annotations

import copy
import dataclasses
import logging

import numpy as np

from cppjax.inference.run import InferenceResult
from cppjax.posterior.base import MAX_PREDICT_VALUES, MIN_PREDICT_DRAWS, Posterior

log = logging.getLogger(__name__)


class SampledPosterior(Posterior):
    """What the posteriors made of samples share (Bayesian models, scaling laws): samples,
    diagnostics, ArviZ data with the spec's dimensions, save/load of the samples."""

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

    def refit(self, train, *, rng_key, progress: bool | None = None):
        return self._refit_spec(train, rng_key, progress)

    def _thinned(self, n_cells: int, draws: int | None):
        """A shallow copy holding ``draws`` evenly spaced draws (see ``Posterior.predict``)."""
        n = self.n_draws
        if draws is None:
            cap = max(MIN_PREDICT_DRAWS, MAX_PREDICT_VALUES // max(n_cells, 1))
            use = min(n, cap)
            if use < n:
                log.info("%s: predicting %d cells with %d of the %d posterior draws (at most "
                         "%.0e values; draws= to choose)", self.method, n_cells, use, n,
                         MAX_PREDICT_VALUES)
        else:  # (checked by Posterior.predict)
            use = min(n, int(draws))
        if use == n:
            return self
        idx = np.round(np.linspace(0, n - 1, use)).astype(int)
        out = copy.copy(self)
        out.result = dataclasses.replace(
            self.result, samples={k: v[idx] for k, v in self.samples.items()})
        return out

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

    # -- persistence (see cppjax.posterior.files) ---------------------------------------------
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


