"""The CPP paper's four point predictors, trained with optax in one compiled loop.

* :class:`MF`: matrix factorisation (with or without biases);
* :class:`NCF`: neural collaborative filtering; ``NCF(use_factors=True)`` adds the model and task
  design factors (the paper's "NCF + design factors");
* :class:`FactorsOnly`: no model or task IDs, only their factors: predicts unseen models and tasks.

Training (the same for all): full-batch AdamW on the mean squared error of observed normalised
scores (a cost per step that grows with the observed cells), compiled as one ``lax.scan``. Early
stopping: a random ``val_frac`` of the training cells is held aside, the step with the lowest
validation error is found, and the model is refitted on all training cells for that many steps
(``refit=True``). Several initialisations (``n_inits``), and in :meth:`fit_many` several
training matrices (seeds, folds), run in one ``vmap``-ed call.

A fitted point predictor is a :class:`PointPosterior`: one predictive draw per initialisation.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial
from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from cppjax.data import ScoreMatrix
from cppjax.data.features import encode_factors
from cppjax.inference import Adam
from cppjax.inference.keys import as_key
from cppjax.inference.train import run_sgd
from cppjax.models.base import ModelSpec, require_cells
from cppjax.models.legacy import accepts_legacy_settings
from cppjax.models.likelihood import padded_size
from cppjax.models.nets import MFNet, NCFNet, factor_arrays
from cppjax.posterior.base import Posterior


@dataclass(frozen=True)
class PointModel(ModelSpec):
    """Base of the point predictors: a network of :mod:`cppjax.models.nets` and an ``l2``
    penalty per training cell; trained by an :class:`~cppjax.inference.Adam` object."""

    l2: float = 0.0

    inference_defaults: ClassVar[dict[str, dict]] = {"adam": {}}
    dims: ClassVar[dict] = {"scores": ["models", "tasks"]}

    def __post_init__(self):
        if self.l2 < 0:
            raise ValueError(f"{type(self).__name__}.l2 must be >= 0; got {self.l2}")

    @classmethod
    def posterior_class(cls) -> type:
        return PointPosterior

    def net(self, sm: ScoreMatrix) -> nn.Module:  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    def inputs(self, sm: ScoreMatrix) -> tuple:
        return ()

    def method_name(self, inference) -> str:
        return self.kind

    # -- fitting -----------------------------------------------------------------------------
    def fit(self, train: ScoreMatrix, *, rng_key, inference=None, method: str | None = None,
            progress: bool | None = None) -> PointPosterior:
        """Fit on the observed cells of ``train`` (``rng_key``: a jax key or int seed;
        ``inference``: an :class:`~cppjax.inference.Adam` object, default this model's)."""
        inference = self.resolve_inference(inference, method)
        require_cells(train)
        key = as_key(rng_key)
        t0 = time.perf_counter()
        keys = jax.random.split(key, inference.n_inits)
        pred, info = self._run(train, inference, keys, [train] * inference.n_inits)
        return PointPosterior(train, self, inference, np.asarray(pred),
                              time.perf_counter() - t0, info)

    def fit_many(self, trains: list[ScoreMatrix], *, rng_key, inference=None,
                 progress: bool | None = None) -> list[PointPosterior]:
        """Fit several training matrices of one shape (seeds, folds) in one compiled call."""
        inference = self.resolve_inference(inference)
        key = as_key(rng_key)
        ref = trains[0]
        for t in trains:
            require_cells(t)
            if t.models != ref.models or t.tasks != ref.tasks:
                raise ValueError("fit_many needs training matrices with the same names")
        t0 = time.perf_counter()
        n = inference.n_inits
        keys = jax.random.split(key, len(trains) * n)
        pred, info = self._run(ref, inference, keys, [t for t in trains for _ in range(n)])
        pred = np.asarray(pred).reshape(len(trains), n, *ref.shape)
        seconds = (time.perf_counter() - t0) / len(trains)
        best = np.asarray(info["best_step"]).reshape(len(trains), n)
        return [PointPosterior(t, self, inference, p, seconds, {"best_step": b})
                for t, p, b in zip(trains, pred, best, strict=True)]

    def _run(self, sm: ScoreMatrix, inf: Adam, keys, trains: list[ScoreMatrix]):
        """Train one network per key, the i-th on the observed cells of ``trains[i]``, in one
        compiled call; returns each one's fitted matrix."""
        net = self.net(sm)
        inputs = self.inputs(sm)
        # the observed cells of each run, padded to a shared size (weight 0): the loss costs
        # O(observed cells), not O(models x tasks) (docs/decisions/0008-...)
        # fit() passes one matrix n_inits times: each matrix's cells are read once
        once = {id(t): t for t in trains}
        observed = {k: t.observed() for k, t in once.items()}
        cells = [observed[id(t)] for t in trains]
        size = padded_size(max(len(c.values) for c in cells))
        cmi, cti, cy, cw = (np.zeros((len(cells), size), d)
                            for d in (np.int32, np.int32, np.float32, bool))
        for r, c in enumerate(cells):
            k = len(c.values)
            cmi[r, :k], cti[r, :k], cy[r, :k], cw[r, :k] = c.model_idx, c.task_idx, c.values, True
        # the compiled training loop belongs to the inference object (dropped with it), keyed
        # by what is static in it; see docs/decisions/0005-compiled-programs-reused.md
        static = (net, inf.steps, inf.lr, inf.weight_decay, self.l2, inf.val_frac, inf.refit,
                  sm.shape)
        train = inf.programs.get(("point", *static),
                                 lambda: jax.jit(partial(_train_batch, *static)))
        pred, best_step = train(keys, *map(jnp.asarray, (cy, cw, cmi, cti)), inputs)
        if not np.isfinite(np.asarray(pred)).all():
            raise FloatingPointError(f"{self.kind}: training diverged (non-finite predictions); "
                                     f"lower lr (now {inf.lr})")
        return pred, {"best_step": np.asarray(best_step)}


def _train_batch(net, steps, lr, wd, l2, val_frac, refit, shape, keys, y, mask, mi, ti, inputs):
    """AdamW on each run's cells ``(mi, ti)`` (``mask``: the real ones), the fitted matrix of
    every model and task at the end."""
    opt = optax.adamw(lr, weight_decay=wd)
    grid = [a.ravel() for a in jnp.indices(shape)]

    def sq_err(params, yy, w, mi, ti):
        r = net.apply(params, mi, ti, *inputs) - yy
        return jnp.sum(w * r * r) / jnp.maximum(jnp.sum(w), 1.0)

    def loss(params, yy, w, mi, ti):  # squared error + l2 * sum(theta^2), both per train cell
        penalty = sum(jnp.sum(p * p) for path, p in jax.tree_util.tree_leaves_with_path(params)
                      if "bias" not in jax.tree_util.keystr(path))
        return sq_err(params, yy, w, mi, ti) + l2 * penalty / jnp.maximum(jnp.sum(w), 1.0)

    def one(key, yy, m, mi, ti):
        k_init, k_val = jax.random.split(key)
        params0 = net.init(k_init, mi[:1], ti[:1], *inputs)
        m = m.astype(jnp.float32)
        # the validation cells: one uniform per cell of the matrix where it is small (the
        # split of cppjax 0.2, whose figures stay), else per observed cell
        if shape[0] * shape[1] <= 2**24:
            u = jax.random.uniform(k_val, shape)[mi, ti]
        else:
            u = jax.random.uniform(k_val, mi.shape)
        val = m * (u < val_frac)
        fit_w = m - val if val_frac > 0 else m
        # early stopping: the state of lowest validation error (none held out: the last)
        first = run_sgd(lambda p: loss(p, yy, fit_w, mi, ti), params0, opt, steps,
                        track=(lambda p, t: sq_err(p, yy, val, mi, ti)) if val_frac > 0
                        else None)
        best_t = first.best_step
        if not (refit and val_frac > 0):
            return net.apply(first.best_params, *grid, *inputs).reshape(shape), best_t
        # the refit on every cell, its state taken after the best number of steps
        second = run_sgd(lambda p: loss(p, yy, m, mi, ti), params0, opt, steps,
                         track=lambda p, t: jnp.where(t == best_t, -1.0, 0.0))
        return net.apply(second.best_params, *grid, *inputs).reshape(shape), best_t

    return jax.vmap(one)(keys, y, mask, mi, ti)


@accepts_legacy_settings
@dataclass(frozen=True)
class MF(PointModel):
    """Matrix factorisation of normalised scores: ``s_ij ~ u_i . v_j (+ b + b_i + b_j)``.

    Defaults: rank 5, ``l2=0.1``, an ensemble of 5 initialisations whose mean is the prediction
    (chosen on tuning splits: ``docs/decisions/0007-small-measured-choices.md``). The ensemble's
    spread is a crude interval, not a posterior; use :class:`cppjax.models.PMF` for calibrated
    intervals.

    Example:
        >>> from cppjax.datasets import load_cpp_crowdsource
        >>> from cppjax.inference import Adam
        >>> post = MF(rank=4).fit(load_cpp_crowdsource(), rng_key=0,
        ...                       inference=Adam(steps=200, lr=0.02, n_inits=5))
        >>> post.predict("missing").n_cells
        1210
    """

    rank: int = 5
    biases: bool = True
    l2: float = 0.1

    kind: ClassVar[str] = "mf"
    inference_defaults: ClassVar[dict[str, dict]] = {"adam": {"lr": 0.02, "n_inits": 5}}

    def net(self, sm):
        return MFNet(sm.n_models, sm.n_tasks, self.rank, self.biases)


@accepts_legacy_settings
@dataclass(frozen=True)
class NCF(PointModel):
    """Neural collaborative filtering; ``use_factors=True`` adds the design factors (the paper's
    "NCF + design factors"). See :class:`cppjax.models.nets.NCFNet`."""

    dim: int = 10
    hidden: tuple[int, ...] = (32, 16)
    use_factors: bool = False
    l2: float = 0.3

    kind: ClassVar[str] = "ncf"
    inference_defaults: ClassVar[dict[str, dict]] = {"adam": {"lr": 0.005}}

    def method_name(self, inference) -> str:
        return "ncf_factors" if self.use_factors else "ncf"

    def net(self, sm):
        mf, tf = _encoded(sm)
        return NCFNet(sm.n_models, sm.n_tasks, self.dim, tuple(self.hidden), use_ids=True,
                      use_factors=self.use_factors, model_cards=mf.cardinalities,
                      task_cards=tf.cardinalities)

    def inputs(self, sm):
        return factor_arrays(*_encoded(sm))


@accepts_legacy_settings
@dataclass(frozen=True)
class FactorsOnly(NCF):
    """The design-factors-only predictor: no model or task IDs, so it predicts unseen models and
    tasks from their factors alone."""

    use_factors: bool = True

    kind: ClassVar[str] = "factors_only"
    inference_defaults: ClassVar[dict[str, dict]] = {"adam": {"lr": 0.01, "steps": 1500}}

    def method_name(self, inference) -> str:
        return self.kind

    def net(self, sm):
        mf, tf = _encoded(sm)
        return NCFNet(sm.n_models, sm.n_tasks, self.dim, tuple(self.hidden), use_ids=False,
                      use_factors=True, model_cards=mf.cardinalities,
                      task_cards=tf.cardinalities)


def _encoded(sm: ScoreMatrix):
    return encode_factors(sm.model_factors), encode_factors(sm.task_factors)


class PointPosterior(Posterior):
    """A fitted point predictor: one predictive draw per initialisation."""

    def __init__(self, matrix: ScoreMatrix, spec: PointModel, inference: Adam, pred: np.ndarray,
                 fit_seconds: float, info: dict | None = None):
        super().__init__(matrix, spec, inference, fit_seconds)
        self.pred = np.asarray(pred, dtype=float)  # (n_inits, n_models, n_tasks), normalised
        self.info = info or {}

    @property
    def n_draws(self) -> int:
        return self.pred.shape[0]

    @property
    def diagnostics(self) -> dict:
        """``best_step``: each initialisation's early-stopping step."""
        return {k: np.asarray(v).tolist() for k, v in self.info.items()}

    def _draws(self, model_idx, task_idx, rng_key, noise):
        self._no_noise(noise)
        return self.pred[:, model_idx, task_idx]

    def refit(self, train, *, rng_key, progress: bool | None = None):
        return self._refit_spec(train, rng_key, progress)

    def __repr__(self):
        return (f"PointPosterior({self.method}, {self.pred.shape[0]} draw(s), "
                f"fit {self.fit_seconds:.2f}s)")

    def to_arviz(self):
        """ArviZ InferenceData: the fitted matrix of each initialisation as ``posterior
        ["scores"]`` (dims chain, draw, models, tasks; normalised units)."""
        import arviz as az

        return az.from_dict(posterior={"scores": self.pred[None]},
                            coords=self.spec.coords(self.matrix), dims=self.spec.dims)

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"pred": self.pred, "best_step": np.asarray(self.info.get("best_step", []))}

    def _meta(self) -> dict:
        return {}

    @classmethod
    def _restore(cls, matrix, spec, inference, meta, arrays, fit_seconds):
        return cls(matrix, spec, inference, arrays["pred"], fit_seconds,
                   {"best_step": arrays["best_step"]})
