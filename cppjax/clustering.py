"""Clustering items by difficulty (:mod:`cppjax.cod`): each item described by its pass rates
across a series of small models ordered by compute.

* :func:`meanshift`: the improved MeanShift of Xu et al. (arXiv:2502.17262) as we read it: a
  Gaussian-kernel mean shift whose modes become clusters; a cluster whose members lie farther
  than ``max_distance`` from its centre is clustered again with half the bandwidth (tight
  clusters), and clusters smaller than ``min_size`` are left out (label -1);
* :func:`kmeans`: Lloyd's k-means with k-means++ seeding (a baseline);
* :func:`irt_groups`: a 2PL item response model fitted by maximum likelihood (JAX + optax); its
  item difficulties cut into ``k`` quantile groups (a baseline).

Distances are root-mean-square over the models (an accuracy scale: 0.1 = ten points apart on
average), so the bandwidth does not depend on how many small models there are.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax

from cppjax.inference.keys import numpy_rng
from cppjax.inference.objects import Adam
from cppjax.inference.train import run_sgd


def _rms(a, b):
    return np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).mean(axis=-1))


@jax.jit
def _shift(modes, X, h):
    d2 = jnp.mean((modes[:, None, :] - X[None, :, :]) ** 2, axis=-1)
    w = jnp.exp(-0.5 * d2 / h**2)
    return (w @ X) / w.sum(axis=1, keepdims=True)


def _modes(X, h, iters=100):
    m = jnp.asarray(X, jnp.float32)
    Xj = jnp.asarray(X, jnp.float32)
    for _ in range(iters):
        new = _shift(m, Xj, h)
        if float(jnp.max(jnp.abs(new - m))) < 1e-5:
            m = new
            break
        m = new
    m = np.asarray(m, float)
    labels = np.full(len(m), -1)
    centres = []
    for i in np.argsort(-np.linalg.norm(m, axis=1), kind="stable"):
        for c, ctr in enumerate(centres):
            if np.sqrt(((m[i] - ctr) ** 2).mean()) < h / 2:
                labels[i] = c
                break
        else:
            centres.append(m[i])
            labels[i] = len(centres) - 1
    return labels


def meanshift(X, *, bandwidth: float = 0.08, max_distance: float = 0.2,
              min_size: int | None = None, depth: int = 4) -> np.ndarray:
    """Cluster labels of the rows of ``X`` (items x models, pass rates), -1 for the items left
    out (their cluster has fewer than ``min_size`` items: default 2% of the items, at least 3).
    Clusters are numbered by mean pass rate (0 = hardest)."""
    X = np.asarray(X, float)
    if X.ndim != 2 or len(X) == 0:
        raise ValueError(f"X must be items x models with at least one item; got {X.shape}")
    if bandwidth <= 0 or max_distance <= 0:
        raise ValueError("bandwidth and max_distance must be positive")
    min_size = max(3, int(0.02 * len(X))) if min_size is None else int(min_size)
    labels = np.full(len(X), -1)
    todo = [(np.arange(len(X)), bandwidth, 0)]
    groups = []
    while todo:
        idx, h, d = todo.pop()
        sub = _modes(X[idx], h)
        for c in np.unique(sub):
            members = idx[sub == c]
            centre = X[members].mean(axis=0)
            far = np.sqrt(((X[members] - centre) ** 2).mean(axis=1)).max() > max_distance
            if far and d < depth and len(members) > 1:
                todo.append((members, h / 2, d + 1))
            else:
                groups.append(members)
    groups = [g for g in groups if len(g) >= min_size]
    groups.sort(key=lambda g: X[g].mean())
    for c, g in enumerate(groups):
        labels[g] = c
    return labels


def kmeans(X, k: int, *, rng_key, iters: int = 100) -> np.ndarray:
    """Lloyd's k-means (k-means++ seeding from ``rng_key``); clusters numbered by mean pass
    rate (0 = hardest)."""
    X = np.asarray(X, float)
    if not 1 <= k <= len(X):
        raise ValueError(f"k must be in [1, {len(X)}]; got {k}")
    rng = numpy_rng(rng_key)
    centres = [X[rng.integers(len(X))]]
    for _ in range(1, k):
        d = _rms(X, np.array(centres)).min(axis=1) ** 2
        centres.append(X[rng.choice(len(X), p=d / d.sum()) if d.sum() > 0 else
                         rng.integers(len(X))])
    C = np.array(centres)
    labels = np.zeros(len(X), int)
    for it in range(iters):
        new = _rms(X, C).argmin(axis=1)
        if it > 0 and (new == labels).all():
            break
        labels = new
        C = np.array([X[labels == c].mean(axis=0) if (labels == c).any() else C[c]
                      for c in range(k)])
    return _by_difficulty(X, labels)


def _by_difficulty(X, labels):
    used = [c for c in np.unique(labels) if c >= 0]
    order = sorted(used, key=lambda c: X[labels == c].mean())
    out = np.full(len(labels), -1)
    for new, c in enumerate(order):
        out[labels == c] = new
    return out


def irt_difficulty(X, *, inference: Adam | None = None, steps: int = 2000,
                   lr: float = 0.05) -> np.ndarray:
    """Item difficulties of a 2PL item response model ``P = sigmoid(a_i (theta_m - b_i))``
    fitted by maximum likelihood (weak Normal priors keep it finite) to the pass rates
    ``X`` (items x models), by ``inference`` (an :class:`~cppjax.inference.Adam` object: its
    ``steps`` and ``lr``; default ``Adam(steps=steps, lr=lr)``), whose programs keep the
    compiled fit for tables of the same shape."""
    inference = inference or Adam(steps=steps, lr=lr, val_frac=0.0)
    X = jnp.asarray(np.clip(np.asarray(X, float), 0.0, 1.0), jnp.float32)
    n_items, n_models = X.shape
    params = {"theta": jnp.linspace(-1.0, 1.0, n_models), "b": jnp.zeros(n_items),
              "log_a": jnp.zeros(n_items)}

    def loss(p, X):
        logits = jnp.exp(p["log_a"])[:, None] * (p["theta"][None, :] - p["b"][:, None])
        nll = -jnp.mean(X * jax.nn.log_sigmoid(logits) + (1 - X) * jax.nn.log_sigmoid(-logits))
        prior = (jnp.sum(p["theta"] ** 2) + jnp.sum(p["b"] ** 2) / 9
                 + jnp.sum(p["log_a"] ** 2) / 0.25) / X.size
        return nll + prior

    def fit(p, X):
        return run_sgd(partial(loss, X=X), p, optax.adam(inference.lr), inference.steps).params

    run = inference.programs.get(("irt", X.shape), lambda: jax.jit(fit))
    return np.asarray(run(params, X)["b"], float)


def irt_groups(X, k: int, **kw) -> np.ndarray:
    """``k`` groups of items by 2PL difficulty quantiles (0 = hardest)."""
    b = irt_difficulty(X, **kw)
    edges = np.quantile(b, np.linspace(0, 1, k + 1)[1:-1])
    return (k - 1) - np.searchsorted(edges, b, side="right")
