"""Clustering on difficulty (COD; Xu et al., arXiv:2502.17262): predict a large model's
benchmark accuracy from small models' per-item results, with a posterior predictive.

For each task:

1. each item is described by its pass rates across the training (small) models ordered by
   compute (:func:`difficulty_features`);
2. the items are clustered (:mod:`cppjax.clustering`: improved MeanShift, k-means, or 2PL
   difficulty groups);
3. each cluster's mean accuracy gets a performance-compute law with a floor ``g`` (chance) and
   a ceiling below 1, ``acc(C) = g + (1 - g) exp(-a (C / C_max)^-b - c)`` (the paper's form as
   we read it), fitted through the settings' inference object (SVI by default), all clusters
   of all tasks in one model;
4. a cluster is *predictable* when its law, fitted without the training models of the
   ``holdout`` largest compute values, predicts them within ``tolerance`` (and some of its
   items are ever solved); the kept clusters form the subset;
5. the subset's accuracy maps to the full task's by ``logit(full) = alpha + beta logit(subset)
   + noise``, fitted on the training models.

The predictive of a task's accuracy at compute ``C`` is, per posterior draw, the item-weighted
mean of the kept clusters' laws (each with its model-to-model scatter) mapped through the
mapping. The task-level baselines (the same law, or a sigmoid in log compute, fitted to the
task accuracy) answer through the same :class:`CODPosterior`.

Example:
    >>> from cppjax import cod
    >>> from cppjax.datasets import load_pythia_arithmetic
    >>> data = load_pythia_arithmetic()
    >>> targets = ["pythia-12b-deduped-v0@step143000"]                     # doctest: +SKIP
    >>> post = cod.fit(data, targets=targets, rng_key=0)                  # doctest: +SKIP
    >>> post.predict("missing", rng_key=1).to_frame()                     # doctest: +SKIP
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from cppjax import clustering
from cppjax.cod_laws import (
    fit_extrapolation,
    fit_groups,
    law,
    law_draws,
    law_model,
    logit,
    mapping_model,
    sigmoid_law,
    widen,
)
from cppjax.data import ScoreMatrix
from cppjax.data.items import ItemResponses
from cppjax.errors import DataError, did_you_mean
from cppjax.inference import NUTS, SVI, as_key, numpy_rng, run_inference
from cppjax.posterior.base import NotSaveable, Posterior

CHOICES = ("cod", "task_law", "task_sigmoid")
METHODS = CHOICES + ("auto",)
CLUSTERINGS = ("meanshift", "kmeans", "irt")
__all__ = ["COD", "CODPosterior", "METHODS", "difficulty_features", "fit", "law", "law_model",
           "mapping_model", "sigmoid_law"]


@dataclass(frozen=True)
class COD:
    """Settings of a COD fit (see the module docstring)."""

    clustering: str = "meanshift"
    bandwidth: float = 0.08
    max_distance: float = 0.2
    min_cluster: int | None = None
    k: int = 6  # clusters of k-means and of the 2PL groups
    bins: int | None = 16  # features: pass rates of this many compute groups of a model zoo
    law: str = "sigmoid"  # "cod": the paper's form; "sigmoid": a sigmoid in log compute
    mapping: str = "parts"  # "parts": subset + a law for the rest; "logit": the paper's map
    holdout: int = 1  # compute levels held out by the predictability check
    tolerance: float = 0.02
    max_scatter: float = 0.04
    #: how the laws are fitted: ``"svi"`` (the default: ``num_steps`` steps of a low-rank
    #: guide, ``num_samples`` draws), ``"nuts"`` (``num_warmup``, ``num_samples``,
    #: ``num_chains``), or an inference object. The object keeps the compiled programs, so
    #: fits with one settings object compile once (``docs/decisions/0017``).
    inference: str | NUTS | SVI = field(default="svi", compare=False)
    num_steps: int = 1500
    num_warmup: int = 500
    num_samples: int = 500
    num_chains: int = 2
    #: widen the predictive by the extrapolation error of a backtest inside the training
    #: models: the models above ``C_max / r`` predicted from the rest, for each ``r`` of
    #: ``backtests`` (:func:`cppjax.cod_laws.fit_extrapolation`)
    calibrate: bool = True
    backtests: tuple = (2.0, 4.0, 8.0)

    def __post_init__(self):
        if self.inference in ("svi", None):
            object.__setattr__(self, "inference", SVI(
                num_steps=self.num_steps, lr=0.02, guide="lowrank",
                num_samples=self.num_samples))
        elif self.inference == "nuts":
            object.__setattr__(self, "inference", NUTS(
                num_warmup=self.num_warmup, num_samples=self.num_samples,
                num_chains=self.num_chains, target_accept=0.9, max_tree_depth=10))
        elif not isinstance(self.inference, NUTS | SVI):
            raise ValueError(f"inference must be 'svi', 'nuts', or an SVI or NUTS object; got "
                             f"{self.inference!r}")
        if any(not (isinstance(r, int | float) and r > 1) for r in self.backtests):
            raise ValueError(f"backtests must be compute ratios > 1; got {self.backtests!r}")
        if self.clustering not in CLUSTERINGS:
            raise ValueError(f"clustering must be one of {CLUSTERINGS}; got {self.clustering!r}")
        if self.mapping not in ("parts", "logit"):
            raise ValueError(f"mapping must be 'parts' or 'logit'; got {self.mapping!r}")
        if self.law not in ("cod", "sigmoid"):
            raise ValueError(f"law must be 'cod' or 'sigmoid'; got {self.law!r}")
        if self.holdout < 1:
            raise ValueError(f"holdout must be >= 1 (the largest training models that test "
                             f"each cluster's law); got {self.holdout}")



# -- features and the fit --------------------------------------------------------------------
def difficulty_features(data, task: str, train: list[str], bins: int | None = None
                        ) -> np.ndarray:
    """Items of ``task`` x training models (ordered by compute): pass rates (NaN as 0.5 is
    refused: every training model must have run every item of the task). With ``bins`` and
    more training models than that (a model zoo: many models of each size), the pass rates of
    ``bins`` groups of equal count along compute instead: a series of sizes, as the method
    reads it, whose distances do not grow with the number of models (decision 0017)."""
    comp = data.compute().loc[train].sort_values(kind="stable")
    rows = [data.models.index(m) for m in comp.index]
    X = data.results[np.ix_(rows, data.task_items(task))].T
    if not np.isfinite(X).all():
        j, i = np.argwhere(~np.isfinite(X))[0]
        raise DataError(f"{data.source}: model {comp.index[i]!r} has no result on item "
                        f"{data.items[data.task_items(task)[j]]!r} of task {task!r}; COD "
                        f"needs every training model on every item")
    if bins is not None and X.shape[1] > bins:
        X = np.stack([g.mean(axis=1) for g in np.array_split(X, bins, axis=1)], axis=1)
    return X


@dataclass
class _TaskFit:
    labels: np.ndarray  # per item of the task: cluster, -1 = left out
    kept: np.ndarray  # per cluster: predictable
    counts: np.ndarray  # items per cluster
    holdout_error: np.ndarray  # per cluster: |error| on the held-out largest models
    group_offset: int  # first column of this task's clusters in the joint fit
    scatter: np.ndarray = None  # per cluster: the law's misfit (posterior mean) in the fit
    kept_share: float = 0.0  # share of the task's items in kept clusters ("parts")
    rest_col: int = -1  # the group of the other items ("parts"; -1: none)


class CODPosterior(Posterior):
    """Draws of task accuracies at any compute, answering through :meth:`predict` on the
    task-accuracy matrix (training models observed, ``targets`` blank). It implements the
    :class:`~cppjax.posterior.Posterior` protocol: :meth:`refit` fits the same method and
    settings on new item data; :meth:`save` raises :class:`~cppjax.posterior.NotSaveable`
    (refit from the item data: seconds).

    Attributes:
        clusters: one row per item: ``task, item, cluster, kept`` (COD only).
        summary: one row per task: clusters, kept clusters, items kept, mapping.
        targets: the models hidden from the fit; ``target_compute``: the placed new rows.
    """

    def __init__(self, matrix, method, settings, compute, c_max, pieces, fit_seconds,
                 targets=(), target_compute=None, diagnostics=None):
        super().__init__(matrix, settings, settings.inference, fit_seconds, method=method)
        self._compute, self._c_max, self._pieces = compute, c_max, pieces
        self._n_draws = pieces["n_draws"]
        self._diagnostics = dict(diagnostics or {})
        self.clusters = pieces.get("clusters")
        self.summary = pieces.get("summary")
        self.targets = tuple(targets)
        self.target_compute = dict(target_compute or {})

    def __repr__(self):
        return f"CODPosterior({self.method}, {self.matrix.n_tasks} tasks, {self.n_draws} draws)"

    @property
    def n_draws(self) -> int:
        return self._n_draws

    @property
    def diagnostics(self) -> dict:
        """The inference diagnostics of each fit behind the posterior (``law``; COD also
        ``validation``, the laws without the largest training models, and ``mapping``), the
        backtest's ``calibration`` and, with ``method="auto"``, the choice (``auto``)."""
        return self._diagnostics

    def refit(self, train, *, rng_key, progress: bool | None = None) -> CODPosterior:
        """The same method and settings on ``train`` (an :class:`ItemResponses`, e.g. with
        more models), the same targets hidden; the compiled programs are reused where the
        shapes allow."""
        if not isinstance(train, ItemResponses):
            raise TypeError(f"a COD posterior is refitted on per-item results (ItemResponses); "
                            f"got {type(train).__name__}")
        return fit(train, rng_key=rng_key, targets=list(self.targets),
                   target_compute=self.target_compute, method=self.method, settings=self.spec)

    def to_arviz(self):
        """ArviZ InferenceData of the laws' posterior (dims chain, draw, group)."""
        import arviz as az

        n_chains = getattr(self.spec.inference, "num_chains", 1)
        s = self._pieces["samples"]
        post = {k: v.reshape((n_chains, v.shape[0] // n_chains) + v.shape[1:])
                for k, v in s.items() if k != "y"}
        return az.from_dict(posterior=post, dims={k: ["group"] for k in post})

    def _arrays(self):
        raise NotSaveable("a COD posterior is not saved: refit it from the item data "
                          "(post.refit(items, rng_key=...); seconds)")

    def _meta(self):
        raise NotSaveable("a COD posterior is not saved")

    @classmethod
    def _restore(cls, matrix, spec, inference, meta, arrays, fit_seconds):
        raise NotSaveable("a COD posterior is not saved")

    def accuracy_draws(self, compute, task: str, rng_key) -> np.ndarray:
        """Draws ``(n_draws, len(compute))`` of ``task``'s accuracy at ``compute`` (FLOPs),
        widened by the backtest's extrapolation term where the fit measured one."""
        x = np.atleast_1d(np.asarray(compute, float)) / self._c_max
        rng_key, k_cal = jax.random.split(as_key(rng_key))
        raw = self._raw_draws(x, self.matrix.task_index(task), rng_key)
        cal = self._diagnostics.get("calibration", {})
        if "s0" not in cal:  # not calibrated, or no backtest had enough models
            return raw
        return widen(raw, np.log(x), cal, numpy_rng(k_cal))

    def _raw_draws(self, x, t, rng_key):
        p, task = self._pieces, self.matrix.tasks[t]
        if self.method != "cod":
            g = law_draws(p["samples"], x, p["floors"], p["form"], rng_key)
            return g[:, :, t]
        tf = p["tasks"][t]
        cols = tf.group_offset + np.flatnonzero(tf.kept)
        k1, k3 = jax.random.split(rng_key)
        g = law_draws(p["samples"], x, p["floors"], p["form"], k1)
        sub = 0.0
        if cols.size:
            w = tf.counts[tf.kept] / tf.counts[tf.kept].sum()
            sub = g[:, :, cols] @ w
        if p["mapping"] is None:  # "parts": the kept subset and a law for the other items
            rest = g[:, :, tf.rest_col] if tf.rest_col >= 0 else 0.0
            return tf.kept_share * sub + (1 - tf.kept_share) * rest
        if cols.size == 0:
            raise DataError(f"no predictable cluster on task {task!r}: COD with the logit "
                            f"mapping cannot predict it (see posterior.summary)")
        m = p["mapping"]
        z = (m["alpha"][:, None, t] + m["beta"][:, None, t] * logit(sub)
             + m["tau"][:, None, t] * numpy_rng(k3).standard_normal(sub.shape))
        return 1.0 / (1.0 + np.exp(-z))

    def group_draws(self, compute, task: str, rng_key=None):
        """Each group's accuracy draws at ``compute`` ``(n_draws, n, groups)`` (COD: the
        task's clusters; a baseline: the task), ``kept`` per group, and the groups' accuracy
        on the data's models ``(n_models, groups)``."""
        p, t = self._pieces, self.matrix.task_index(task)
        x = np.atleast_1d(np.asarray(compute, float)) / self._c_max
        key = None if rng_key is None else as_key(rng_key)
        g = law_draws(p["samples"], x, p["floors"], p.get("form", "law"), key)
        if self.method != "cod":
            return g[:, :, [t]], np.ones(1, bool), self.matrix.scores[:, [t]]
        tf = p["tasks"][t]
        cols = tf.group_offset + np.arange(len(tf.counts))
        return g[:, :, cols], tf.kept, p["group_accuracy"][:, cols]

    def _draws(self, mi, ti, key, noise):
        self._no_noise(noise)
        if key is None:
            raise ValueError("predictive draws of COD need an rng_key (or int seed)")
        out = np.zeros((self.n_draws, len(mi)))
        keys = jax.random.split(as_key(key), self.matrix.n_tasks)
        for t in np.unique(ti):
            sel = np.flatnonzero(ti == t)
            c = self._compute[np.asarray(mi)[sel]]
            d = self.accuracy_draws(c, self.matrix.tasks[t], keys[t])
            out[:, sel] = d
        return self.matrix.normalize(out, np.asarray(mi), np.asarray(ti))


def fit(data, *, rng_key, targets=None, target_compute: dict | None = None,
        method: str = "cod", settings: COD | None = None
        ) -> CODPosterior:
    """Fit COD (or a task-level baseline: ``method="task_law"``, ``"task_sigmoid"``; or
    ``"auto"``: the one of the three with the least backtest error, the posterior then being
    that method's) on the results of every model of ``data`` except ``targets`` (model names,
    hidden from the fit), and place ``target_compute`` (name -> FLOPs; new rows) too. The
    posterior's matrix holds the task accuracies: training rows observed, target rows blank
    (``predict("missing")``).

    With ``settings.calibrate`` (the default) the same method is fitted again inside the
    training models, the models above ``C_max / r`` held out for each ``r`` of
    ``settings.backtests``, and its errors on them set the extrapolation term that widens the
    predictive (``diagnostics["calibration"]``; where no backtest has enough models, the fit
    says so there and the predictive is the raw one)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}")
    settings = settings or COD()
    if method == "auto":
        return _auto(data, rng_key, targets, target_compute, settings)
    t0 = time.perf_counter()
    k_fit, k_bt = jax.random.split(as_key(rng_key))
    post = _fit_raw(data, k_fit, targets, target_compute, method, settings)
    if settings.calibrate:
        train = [m for m in data.models if m not in post.targets]
        cal = _backtest(data, train, method, settings, k_bt)
        post._diagnostics["calibration"] = cal
    post.fit_seconds = time.perf_counter() - t0
    return post


def _auto(data, rng_key, targets, target_compute, settings) -> CODPosterior:
    """``method="auto"``: COD and the task-level laws each fitted and backtested; the one of
    least backtest error (accuracy points over the backtests' cells) answers, its choice and
    every candidate's error in ``diagnostics["auto"]`` (decision 0017)."""
    if not settings.calibrate:
        raise ValueError('method="auto" chooses by the backtest: it needs calibrate=True')
    t0, posts, scores = time.perf_counter(), {}, {}
    for m, k in zip(CHOICES, jax.random.split(as_key(rng_key), len(CHOICES)), strict=True):
        try:
            posts[m] = fit(data, rng_key=k, targets=targets, target_compute=target_compute,
                           method=m, settings=settings)
            scores[m] = posts[m].diagnostics["calibration"].get("mae", np.inf)
        except DataError as e:  # e.g. COD with the logit mapping and no predictable cluster
            scores[m] = str(e)
    if not posts:
        raise DataError(f"no method could be fitted: {scores}")
    best = min(posts, key=lambda m: scores[m])  # ties (no backtest at all): COD, then the laws
    post = posts[best]
    post._diagnostics["auto"] = {"chosen": best, "backtest_mae": scores}
    post.fit_seconds = time.perf_counter() - t0
    return post


def _backtest(data, train, method, settings, key) -> dict:
    """The raw predictive's errors on the training set's own frontier: for each ratio ``r``
    of ``settings.backtests``, the training models above ``C_max / r`` predicted from the
    others (clustered and fitted afresh), pooled over tasks and ratios
    (:func:`cppjax.cod_laws.fit_extrapolation`)."""
    comp = data.compute().loc[train]
    acc = data.task_accuracy()
    c_max = float(comp.max())
    resid, var, gap, used, err = [], [], [], [], []
    for r, k in zip(settings.backtests, jax.random.split(key, len(settings.backtests)),
                    strict=True):
        held = [m for m in train if comp[m] > c_max / r]
        rest = [m for m in train if comp[m] <= c_max / r]
        if len(rest) < settings.holdout + 3 or not held:
            continue
        k1, k2 = jax.random.split(k)
        try:
            post = _fit_raw(data.subset(rest + held), k1, held, None, method, settings)
        except DataError:  # e.g. no predictable cluster with the logit mapping: no backtest
            continue
        x = comp[held].to_numpy() / post._c_max
        for t, task in enumerate(data.tasks):
            d = post._raw_draws(x, t, jax.random.fold_in(k2, t))
            z, y = logit(d), acc.loc[held, task].to_numpy()
            resid.append(logit(y) - z.mean(axis=0))
            err.append(100 * np.abs(y - d.mean(axis=0)))
            var.append(z.var(axis=0))
            gap.append(np.log(x))
        used.append(r)
    if not used:
        return {"message": f"no backtest: fewer than {settings.holdout + 3} training models "
                f"at or below C_max / r for r in {settings.backtests}; the predictive is "
                f"not widened"}
    cal = fit_extrapolation(np.concatenate(resid), np.concatenate(var), np.concatenate(gap))
    return {**cal, "backtests": tuple(used), "mae": float(np.concatenate(err).mean())}


def _fit_raw(data, rng_key, targets, target_compute, method, settings) -> CODPosterior:
    t0 = time.perf_counter()
    targets = list(targets or [])
    for m in targets:
        if m not in data.models:
            raise KeyError(f"unknown target model {m!r}{did_you_mean(m, data.models)}")
    compute = data.compute()
    train = [m for m in data.models if m not in targets]
    if len(train) < settings.holdout + 3:
        raise DataError(f"COD needs at least {settings.holdout + 3} training models; got "
                        f"{len(train)}")
    c_max = float(compute.loc[train].max())
    extra = dict(target_compute or {})
    for name, c in extra.items():
        if not (np.isfinite(c) and c > 0):
            raise ValueError(f"target compute of {name!r} must be positive FLOPs; got {c}")
    acc = data.task_accuracy()
    scores = acc.to_numpy().copy()
    scores[[data.models.index(m) for m in targets]] = np.nan
    names = list(data.models) + list(extra)
    scores = np.vstack([scores, np.full((len(extra), scores.shape[1]), np.nan)])
    mf = data.model_factors.copy()
    for name, c in extra.items():
        mf.loc[name, "flops"] = c
    all_compute = np.concatenate([compute.to_numpy(), np.array(list(extra.values()), float)])
    sm = ScoreMatrix(scores, names, acc.columns, scale="fraction", model_factors=mf.loc[names],
                     normalization="none", source=data.source)
    floors_task = np.array([data.chance.get(t, 0.0) for t in data.tasks])
    x_train = compute.loc[train].to_numpy() / c_max
    # one key per random step: clustering, the validation laws, their draws, the laws, the map
    keys = dict(zip(("cluster", "validation", "check", "law", "mapping"),
                    jax.random.split(as_key(rng_key), 5), strict=True))
    diagnostics: dict = {}
    placed = {"targets": targets, "target_compute": extra, "diagnostics": diagnostics}
    if method != "cod":
        form = "law" if method == "task_law" else "sigmoid"
        y = acc.loc[train].to_numpy()
        counts = np.array([len(data.task_items(t)) for t in data.tasks], float)
        samples = fit_groups(y, x_train, counts, floors_task, keys["law"], settings.inference,
                             form, diagnostics, "law")
        pieces = {"samples": samples, "floors": floors_task, "form": form,
                  "n_draws": len(samples["scatter"])}
        return CODPosterior(sm, method, settings, all_compute, c_max, pieces,
                            time.perf_counter() - t0, **placed)
    return _fit_cod(data, sm, train, compute, c_max, floors_task, keys, settings, all_compute,
                    t0, placed)


def _fit_logit_mapping(data, task_fits, G, rows, key, settings, diagnostics):
    """The paper's step 5: ``logit(full) = alpha + beta logit(subset)`` on the training
    models, per task."""
    subs, fulls, tix = [], [], []
    acc = data.task_accuracy().to_numpy()
    for t, tf in enumerate(task_fits):
        if tf.kept.any():
            kc = tf.group_offset + np.flatnonzero(tf.kept)
            w = tf.counts[tf.kept] / tf.counts[tf.kept].sum()
            subs.append(logit(G[rows][:, kc] @ w))
            fulls.append(logit(acc[rows, t]))
            tix.append(np.full(len(rows), t))
    if not subs:
        raise DataError("no predictable cluster on any task: every cluster's law missed the "
                        "held-out largest training models (or fits them poorly)")
    args = (jnp.asarray(np.concatenate(subs), jnp.float32),
            jnp.asarray(np.concatenate(tix), jnp.int32))
    res = run_inference(partial(mapping_model, n_tasks=len(data.tasks)), args,
                        jnp.asarray(np.concatenate(fulls), jnp.float32),
                        inference=settings.inference, rng_key=key, progress=False, warn=False)
    diagnostics["mapping"] = res.diagnostics
    return res.samples


def _cluster(data, task, train, settings, key):
    X = difficulty_features(data, task, train, settings.bins)
    if settings.clustering == "meanshift":
        return clustering.meanshift(X, bandwidth=settings.bandwidth,
                                    max_distance=settings.max_distance,
                                    min_size=settings.min_cluster)
    k = min(settings.k, len(X))
    if settings.clustering == "kmeans":
        return clustering.kmeans(X, k, rng_key=key)
    return clustering.irt_groups(X, k)


def _fit_cod(data, sm, train, compute, c_max, floors_task, keys, settings, all_compute, t0,
             placed):
    res = data.results
    rows = [data.models.index(m) for m in train]
    # the held-out check: every training model at the ``holdout`` largest compute levels (a
    # zoo holds several models of one size; holding out one of them extrapolates nothing)
    c_train = compute.loc[train].to_numpy()
    levels = np.unique(c_train)
    if len(levels) <= settings.holdout + 1:
        raise DataError(f"COD needs more than {settings.holdout + 1} distinct training compute "
                        f"values; got {len(levels)}: add smaller models or lower "
                        f"COD(holdout=...)")
    is_held = c_train >= levels[-settings.holdout]
    fit_rows = [r for r, h in zip(rows, is_held, strict=True) if not h]
    held = [r for r, h in zip(rows, is_held, strict=True) if h]
    cols, floors, counts, task_fits, rows_cl = [], [], [], [], []
    ck = jax.random.split(keys["cluster"], len(data.tasks))
    for t, task in enumerate(data.tasks):
        items = data.task_items(task)
        labels = _cluster(data, task, train, settings, ck[t])
        n_cl = labels.max() + 1
        tf = _TaskFit(labels, np.zeros(n_cl, bool), np.array(
            [(labels == c).sum() for c in range(n_cl)], float), np.full(n_cl, np.nan),
            len(cols))
        for c in range(n_cl):
            cols.append(np.nanmean(res[:, items[labels == c]], axis=1))
            floors.append(floors_task[t])
            counts.append(tf.counts[c])
        task_fits.append(tf)
        rows_cl += [(task, data.items[i], int(lab)) for i, lab in zip(items, labels,
                                                                     strict=True)]
    if not cols:
        raise DataError("no cluster of items was formed (every cluster smaller than "
                        "min_cluster); lower min_cluster or raise the bandwidth")
    G = np.stack(cols, axis=1)  # models x clusters
    floors, counts = np.array(floors), np.array(counts)
    x_all = compute.to_numpy() / c_max
    # 4. predictability: the law without the largest training models, tested on them
    form = "law" if settings.law == "cod" else "sigmoid"
    diagnostics = placed["diagnostics"]
    val = fit_groups(G[fit_rows], x_all[fit_rows], counts, floors, keys["validation"],
                     settings.inference, form, diagnostics, "validation")
    draws = law_draws(val, x_all[held], floors, form, keys["check"])  # (S, holdout, clusters)
    err = np.abs(draws.mean(axis=0) - G[held]).mean(axis=0)
    lo, hi = np.quantile(draws, [0.005, 0.995], axis=0)
    inside = ((G[held] >= lo - settings.tolerance) & (G[held] <= hi + settings.tolerance)).all(
        axis=0)
    scatter = val["scatter"].mean(axis=0)  # the law's misfit on the models it was fitted to
    ever = G[rows].max(axis=0) > 0.02
    for tf in task_fits:
        sl = slice(tf.group_offset, tf.group_offset + len(tf.counts))
        tf.holdout_error = err[sl]
        tf.scatter = scatter[sl]
        tf.kept = inside[sl] & (scatter[sl] <= settings.max_scatter) & ever[sl]
    # 3. the laws on every training model (with "parts", one more group per task: the items
    # outside the kept clusters); 5. the mapping
    if settings.mapping == "parts":
        rest_cols = []
        for t, (task, tf) in enumerate(zip(data.tasks, task_fits, strict=True)):
            items = data.task_items(task)
            rest = items[~np.isin(tf.labels, np.flatnonzero(tf.kept))]
            tf.kept_share = 1.0 - len(rest) / len(items)
            tf.rest_col = G.shape[1] + len(rest_cols) if len(rest) else -1
            if len(rest):
                rest_cols.append((np.nanmean(res[:, rest], axis=1), len(rest), floors_task[t]))
        if rest_cols:
            G = np.column_stack([G] + [c[0] for c in rest_cols])
            counts = np.concatenate([counts, [c[1] for c in rest_cols]])
            floors = np.concatenate([floors, [c[2] for c in rest_cols]])
    samples = fit_groups(G[rows], x_all[rows], counts, floors, keys["law"], settings.inference,
                         form, diagnostics, "law")
    mapping = None
    if settings.mapping == "logit":
        mapping = _fit_logit_mapping(data, task_fits, G, rows, keys["mapping"], settings,
                                     diagnostics)
    clusters = pd.DataFrame(rows_cl, columns=["task", "item", "cluster"])
    clusters["kept"] = [c >= 0 and task_fits[data.tasks.index(t)].kept[c]
                        for t, c in zip(clusters["task"], clusters["cluster"], strict=True)]
    summary = pd.DataFrame([{
        "task": task, "clusters": len(tf.counts), "kept_clusters": int(tf.kept.sum()),
        "items_kept": int(tf.counts[tf.kept].sum()), "items_left_out": int((tf.labels < 0).sum()),
        "holdout_error_kept": float(np.mean(tf.holdout_error[tf.kept])) if tf.kept.any()
        else np.nan} for task, tf in zip(data.tasks, task_fits, strict=True)]).set_index("task")
    pieces = {"samples": samples, "floors": floors, "form": form, "tasks": task_fits,
              "mapping": mapping,
              "n_draws": len(samples["scatter"]), "clusters": clusters, "summary": summary,
              "group_accuracy": G, "validation": val}
    return CODPosterior(sm, "cod", settings, all_compute, c_max, pieces,
                        time.perf_counter() - t0, **placed)
