"""One evaluation loop for every predictor: fit on each split's train, score its test cells.

Metric names follow ``shared/BENCHMARKS.md``: ``mse``, ``l1`` (normalised units), ``mae``,
``rmse`` (original units), ``rank_acc``, ``mae_at_2`` (percent, our rank rule), ``spearman``, and
for predictors with more than one draw ``coverage_50/80/90/95``, ``width_90`` (normalised),
``crps`` (normalised), ``lpd`` (normalised), plus ``fit_seconds``.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import numpy as np
import pandas as pd

from cppjax import metrics as M
from cppjax.predictive import Posterior, Predictive
from cppjax.splits import Split


def score_predictive(pred: Predictive, split: Split) -> dict[str, float]:
    """All metrics of one predictive on the held-out cells of ``split``."""
    y = split.test.normalize(split.test.scores[pred.model_idx, pred.task_idx], pred.model_idx,
                             pred.task_idx)
    y_raw = split.test.scores[pred.model_idx, pred.task_idx]
    yhat = pred.mean(normalized=True)
    truth = split.full.scores
    out = {
        "mse": M.mse(y, yhat), "l1": M.l1(y, yhat),
        "mae": M.l1(y_raw, pred.mean()), "rmse": M.rmse(y_raw, pred.mean()),
        "rank_acc": M.rank_accuracy(truth, pred.model_idx, pred.task_idx, pred.mean()),
        "mae_at_2": M.mae_at_2(truth, pred.model_idx, pred.task_idx, pred.mean()),
    }
    rho = M.spearman_per_task(pred.task_idx, y, yhat)
    if rho:
        out["spearman"] = float(np.mean(list(rho.values())))
    if pred.n_draws > 1:
        ll = pred.log_lik(y) if pred.log_lik is not None else None
        out.update(M.draw_metrics(pred.draws_normalized, y, ll))
    return out


def evaluate_posterior(post: Posterior, split: Split, rng_key) -> dict[str, float]:
    pred = post.predict(split.test, rng_key=rng_key)
    out = score_predictive(pred, split)
    out["fit_seconds"] = float(post.fit_seconds)
    return out


def fit_splits(method: str, splits: Sequence[Split], *, seed: int = 0,
               settings: dict | None = None, progress: bool | None = False) -> list[Posterior]:
    """Fit ``method`` on every split's train (point predictors in one vmapped call when the
    splits share a shape)."""
    from cppjax.api import fit, make_spec

    spec, inference = make_spec(method, **(settings if method_takes(method, settings) else {}))
    key = jax.random.PRNGKey(seed)
    if inference is None:
        return spec.fit_many([s.train for s in splits], rng_key=key)
    keys = jax.random.split(key, len(splits))
    return [fit(spec, s.train, rng_key=k, method=inference, progress=progress)
            for s, k in zip(splits, keys, strict=True)]


def method_takes(method: str, settings: dict | None) -> bool:
    """Bayesian settings (num_samples, svi_steps...) apply only to Bayesian methods."""
    from cppjax.api import POINT

    return bool(settings) and method not in POINT


def evaluate_methods(methods: Sequence[str], splits: Sequence[Split], *, seed: int = 0,
                     settings: dict | None = None) -> pd.DataFrame:
    """Mean of every metric over the splits, one row per method."""
    rows = {}
    for method in methods:
        posts = fit_splits(method, splits, seed=seed, settings=settings)
        keys = jax.random.split(jax.random.PRNGKey(seed + 1), len(splits))
        per = [evaluate_posterior(p, s, k) for p, s, k in zip(posts, splits, keys, strict=True)]
        rows[method] = pd.DataFrame(per).mean()
    return pd.DataFrame(rows).T
