"""A posterior fitted through another normalisation than the table's, presented in the table's.

When cppjax chose a table's normalisation (``ScoreMatrix(normalization="auto")``, the default),
a model that reads bounded tasks better through another one under its inference
(``ModelSpec.normalization_for``: PMF's SVI and MAP through the logit) is fitted on
``train.renormalized(kind)`` and wrapped here, so that the user's table is what
:attr:`~RenormalizedPosterior.matrix` holds and every normalised value
(``Predictive.draws_normalized``, the log density of a held-out score) is in its units, as for
any other posterior; original units are the same either way. Decisions 0024, 0025.

Example:
    >>> from cppjax import fit
    >>> from cppjax.datasets import load_cpp_crowdsource
    >>> from cppjax.inference import SVI
    >>> sm = load_cpp_crowdsource()  # percent, min-max chosen by cppjax
    >>> post = fit("pmf_svi", sm, rng_key=0, inference=SVI(num_steps=200), rank=2)
    >>> post.matrix is sm, post.diagnostics["normalization"]
    (True, 'task_logit')
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from cppjax.data import Normalization, ScoreMatrix
from cppjax.data.normalization import EDGE
from cppjax.posterior.base import Posterior
from cppjax.posterior.files import WRAPPER_CLASSES

#: the array names of the fit's own normalisation in a save file
_NORM_ARRAYS = ("loc", "scale", "lower", "upper", "logit")


class RenormalizedPosterior(Posterior):
    """``inner`` (fitted on ``inner.matrix``, the same scores through another normalisation)
    presented on ``matrix``, the table the user gave (see the module docstring)."""

    _owns_draws = True  # every draw is converted into a fresh array

    def __init__(self, inner: Posterior, matrix: ScoreMatrix):
        super().__init__(matrix, inner.spec, inner.inference, inner.fit_seconds, inner.method)
        self.inner = inner

    def __getattr__(self, name):
        # the fit's own attributes (samples, result, cell_means...), in its normalisation (the
        # diagnostics name it); only what this class does not define reaches here
        if name == "inner" or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.inner, name)

    def __repr__(self):
        return f"{self.inner!r} (through {self.inner.matrix.normalization.kind})"

    @property
    def n_draws(self) -> int:
        return self.inner.n_draws

    @property
    def diagnostics(self) -> dict:
        return {**self.inner.diagnostics, "normalization": self.inner.matrix.normalization.kind}

    @property
    def unplaced_models(self) -> list[str]:
        return self.inner.unplaced_models

    def _draws(self, model_idx, task_idx, rng_key, noise):
        raw = np.asarray(self.inner._draws(model_idx, task_idx, rng_key, noise))
        inner, outer = self.inner.matrix.normalization, self.matrix.normalization
        if (outer.logit is not None or outer.loc.shape[0] != 1 or inner.loc.shape[0] != 1
                or inner.one_sided):
            x = inner.inverse(raw, model_idx, task_idx)  # not what renormalized() makes
            return np.asarray(outer.transform(x, model_idx, task_idx), raw.dtype)
        # min-max outside, logit (or min-max) inside: y = b + a unsqueeze(1 / (1 + exp(-(raw
        # s_i + l_i))))
        # on a logit task, y = raw c + d on another; in the draws' dtype, in place, a block of
        # draws at a time (800,000 cells x 200 draws: GBs of float64 temporaries otherwise)
        dt = raw.dtype if raw.dtype == np.float32 else np.float64
        ti = np.asarray(task_idx)
        l_i, s_i, l_o, s_o = (a[0, ti] for a in (inner.loc, inner.scale, outer.loc, outer.scale))
        lg = np.zeros(ti.shape, bool) if inner.logit is None else inner.logit[0, ti]
        if lg.any():
            lo, hi = inner.lower[0, ti], inner.upper[0, ti]
            a = np.where(lg, (hi - lo) / s_o, 0.0).astype(dt)
            b = np.where(lg, (lo - l_o) / s_o, 0.0).astype(dt)
        c, d = (s_i / s_o).astype(dt), ((l_i - l_o) / s_o).astype(dt)
        s_i, l_i = s_i.astype(dt), l_i.astype(dt)
        # in place where the fit's draws are a fresh writeable array of that dtype (640 MB of
        # page faults saved at 800,000 cells x 200 draws)
        own = raw.dtype == dt and raw.flags.writeable and self.inner._owns_draws
        out = raw if own else np.empty(raw.shape, dt)
        step = max(1, 1_000_000 // max(1, raw.shape[-1]))
        for r in range(0, raw.shape[0], step):
            y, blk = out[r:r + step], raw[r:r + step]
            if not lg.any():
                np.multiply(blk, c, out=y)
                y += d
                continue
            other = None if lg.all() else blk[:, ~lg].copy()  # before y overwrites blk
            np.multiply(blk, -s_i, out=y)
            y -= l_i
            with np.errstate(over="ignore"):
                np.exp(y, out=y)
            y += 1
            np.divide(1.0, y, out=y)  # the place in the squeezed range; unsqueezed onto the
            y -= EDGE  # bounds (normalization.unlink; decision 0028)
            y *= 1.0 / (1.0 - 2.0 * EDGE)
            np.clip(y, 0.0, 1.0, out=y)
            y *= a
            y += b
            if other is not None:  # the other tasks of a mixed table: affine
                y[:, ~lg] = other * c[~lg] + d[~lg]
        return out

    def _thinned(self, n_cells: int, draws: int | None) -> Posterior:
        inner = self.inner._thinned(n_cells, draws)
        return self if inner is self.inner else RenormalizedPosterior(inner, self.matrix)

    def _log_lik(self, model_idx, task_idx):
        ll = self.inner._log_lik(model_idx, task_idx)
        if ll is None:
            return None
        outer, inner = self.matrix.normalization, self.inner.matrix.normalization

        def log_lik(y):
            """The inner density at the same score, times |d inner / d outer| (change of
            variables; a score on a bound is read ``EDGE`` inside it, as the fit read it)."""
            x = outer.inverse(y, model_idx, task_idx)
            z = inner.transform(x, model_idx, task_idx)
            dz = outer.cell_scale(model_idx, task_idx) / inner.cell_scale(model_idx, task_idx)
            dz = dz * inner.link_slope(x, task_idx) / outer.link_slope(x, task_idx)
            return np.asarray(ll(z)) + np.log(np.abs(dz))

        return log_lik

    def refit(self, train, *, rng_key, progress: bool | None = None) -> Posterior:
        """The inner fit refitted on ``train`` read through the same normalisation, presented
        on ``train``."""
        kind = self.inner.matrix.normalization.kind
        inner = self.inner.refit(train.renormalized(kind), rng_key=rng_key, progress=progress)
        return RenormalizedPosterior(inner, train)

    def to_arviz(self):
        return self.inner.to_arviz()

    def _arrays(self) -> dict[str, np.ndarray]:
        norm = self.inner.matrix.normalization
        own = {f"fit_norm_{k}": getattr(norm, k) for k in _NORM_ARRAYS
               if getattr(norm, k) is not None}
        return {**self.inner._arrays(), **own}

    def _meta(self) -> dict:
        return {**self.inner._meta(),
                "fit_normalization": self.inner.matrix.normalization.kind}

    @classmethod
    def _restore(cls, matrix, spec, inference, meta, arrays, fit_seconds):
        """``matrix``: the user's table; the inner posterior is restored on the same scores
        through the saved normalisation (``cppjax.posterior.files.load`` calls this for a file
        whose meta names a ``fit_normalization``)."""
        meta = dict(meta)
        kind = meta.pop("fit_normalization")
        parts = {k: arrays.pop(f"fit_norm_{k}") for k in _NORM_ARRAYS
                 if f"fit_norm_{k}" in arrays}
        norm = Normalization(kind, parts["loc"], parts["scale"], parts.get("lower"),
                             parts.get("upper"), parts.get("logit"))
        inner_sm = replace(matrix, normalization=norm, _index=None)
        inner = spec.posterior_class()._restore(inner_sm, spec, inference, meta, arrays,
                                                fit_seconds)
        return cls(inner, matrix)


WRAPPER_CLASSES["fit_normalization"] = RenormalizedPosterior
