"""One evaluation loop for every predictor: fit on each split's train, score its test cells.

Metric names follow ``shared/BENCHMARKS.md``: ``mse``, ``l1`` (normalised units), ``mae``,
``rmse`` (original units), ``rank_acc``, ``mae_at_2`` (percent, our rank rule), ``spearman``, and
for predictors with more than one draw ``coverage_50/80/90/95``, ``width_90`` (normalised),
``crps`` (normalised), ``lpd`` (normalised), plus ``fit_seconds``. The protocols and metrics are
described in ``docs/protocols.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields

import jax
import numpy as np
import pandas as pd

from cppjax import metrics as M
from cppjax.inference import INFERENCES, LEGACY_NAMES
from cppjax.inference.keys import as_key
from cppjax.models.registry import METHODS, make_spec
from cppjax.posterior import Posterior, Predictive
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
        out.update(M.rank_calibration(truth, pred.model_idx, pred.task_idx, pred.draws,
                                      split.full.task_info["higher_is_better"].to_numpy()))
    return out


def evaluate_posterior(post: Posterior, split: Split, rng_key) -> dict[str, float]:
    pred = post.predict(split.test, rng_key=rng_key)
    out = score_predictive(pred, split)
    out["fit_seconds"] = float(post.fit_seconds)
    return out


def settings_for(method: str, settings: dict | None) -> dict:
    """The part of ``settings`` (settings shared by a list of methods, e.g. the CLI's
    ``--samples``) that ``method``'s model or inference takes."""
    if not settings:
        return {}
    cls, _, inf, _ = METHODS[method]
    takes = set(INFERENCES[inf].field_names()) | {f.name for f in fields(cls)}
    return {k: v for k, v in settings.items() if LEGACY_NAMES.get(k, k) in takes}


def check_settings(methods: Sequence[str], settings: dict | None) -> None:
    """Every method name is known, and every shared setting applies to at least one method
    (a setting none of them takes is an error naming it, not a silent no-op)."""
    for m in methods:
        make_spec(m)  # an unknown name fails here, before any fit
    for k in settings or {}:
        if not any(k in settings_for(m, {k: 0}) for m in methods):
            raise ValueError(f"setting {k!r} applies to none of the methods {list(methods)}")


def fit_splits(method: str, splits: Sequence[Split], *, rng_key,
               settings: dict | None = None, progress: bool | None = False) -> list[Posterior]:
    """Fit ``method`` on every split's train with one inference object, so that the splits
    share its compiled programs (point predictors in one vmapped call when the splits share a
    shape). ``settings`` are shared inference settings; those ``method`` does not take are not
    passed to it (:func:`check_settings` rejects one that no method takes)."""
    spec, inference = make_spec(method, **settings_for(method, settings))
    key = as_key(rng_key)
    return spec.fit_many([s.train for s in splits], rng_key=key, inference=inference,
                         progress=progress)


def evaluate_methods(methods: Sequence[str], splits: Sequence[Split], *, rng_key,
                     settings: dict | None = None, progress: bool = False) -> pd.DataFrame:
    """Mean of every metric over the splits, one row per method. Each method gets its own
    key, split into a fitting key and a prediction key (``rng_key``: a key or an int seed)."""
    check_settings(methods, settings)
    rows = {}
    for method, key in zip(methods, jax.random.split(as_key(rng_key), len(methods)),
                           strict=True):
        if progress:
            print(f"  {method}: fitting {len(splits)} split(s) ...", flush=True)
        k_fit, k_pred = jax.random.split(key)
        posts = fit_splits(method, splits, rng_key=k_fit, settings=settings)
        keys = jax.random.split(k_pred, len(splits))
        per = [evaluate_posterior(p, s, k) for p, s, k in zip(posts, splits, keys, strict=True)]
        rows[method] = pd.DataFrame(per).mean()
    return pd.DataFrame(rows).T
