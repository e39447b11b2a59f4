"""Which design factors matter: Shapley values of groups of factors for the prediction error.

The CPP paper asks which model and task factors carry the prediction. Here a *game* gives
every subset ``S`` of factor groups a value ``v(S)``: the held-out squared error (normalised
units) of a small matrix model that sees only the factors of ``S`` (besides the model and task
IDs), on splits where the factors are what there is to go on: new models (folds of models held
out entirely) and new tasks (folds of tasks). A group's Shapley value is its mean reduction of
that error over all orders in which the groups could be added:

    phi_g = sum over S not containing g of |S|! (G - |S| - 1)! / G! * (v(S) - v(S + g))

so the values sum to ``v({}) - v(all)``. Every subset is one fit; all of them (and the folds and
seeds) run as one ``jax.vmap`` of one compiled training loop, each fit masking the design
columns of the groups it leaves out. Exact over all ``2^G`` subsets up to ``exact_max`` groups,
else estimated from random orders (the same fits, fewer subsets).

The model, for the design rows ``x_i``, ``t_j`` with the left-out columns zeroed::

    y_ij = mu + b_j + c_i + x_i' beta + t_j' gamma + (x_i' A + P_i) . (Q_j + t_j' C)

trained by AdamW for a fixed number of steps from one initialisation per seed shared by every
subset (so that subsets differ by their factors, not by their starting point).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from itertools import combinations
from math import factorial

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd

from cppjax.data import ScoreMatrix
from cppjax.data.features import design_matrix, encode_factors
from cppjax.inference.keys import as_key, numpy_rng
from cppjax.inference.objects import Adam
from cppjax.inference.train import run_sgd

#: factor columns grouped as the CPP paper's factors (a column of no group: a group of its own)
GROUPS = {
    "family": ("family",),
    "size": ("parameters",),
    "tokens": ("tokens",),
    "compute": ("flops", "gpu_hours", "carbon_tco2eq"),
    "context window": ("context_window",),
    "architecture": ("layers", "heads", "kv_size", "bottleneck_size", "batch_size_tokens"),
    "fine-tuned": ("finetuned",),
    "task ability": ("ability",),
    "task family": ("task_family",),
    "output format": ("output_format",),
    "shots": ("few_shot",),
}


@dataclass(frozen=True)
class Importance:
    """Shapley values of factor groups (error reduction, normalised squared error units).

    Attributes:
        table: one row per group: ``group``, ``side`` (model or task), ``columns``,
            ``shapley`` (mean over seeds), ``shapley_sd`` (over seeds), ``share`` (of the
            total reduction), sorted by ``shapley``.
        v_empty, v_full: the held-out error with no factor and with every factor.
        exact: whether every subset was fitted (else random orders).
        n_fits: fits run (subsets x folds x seeds).
    """

    table: pd.DataFrame
    v_empty: float
    v_full: float
    exact: bool
    n_fits: int

    def plot(self, ax=None, title: str | None = None):
        """A bar per group (:func:`cppjax.plots.factor_importance`)."""
        from cppjax.plots import factor_importance

        return factor_importance(self, ax=ax, title=title)


def factor_groups(sm: ScoreMatrix, groups: dict | None = None) -> list[tuple[str, str, list]]:
    """``(name, side, columns)`` of every group present in ``sm``'s factors."""
    groups = GROUPS if groups is None else groups
    out = []
    for side, frame in (("model", sm.model_factors), ("task", sm.task_factors)):
        seen = set()
        for name, cols in groups.items():
            present = [c for c in cols if c in frame.columns]
            if present:
                out.append((name, side, present))
                seen |= set(present)
        out += [(c, side, [c]) for c in frame.columns if c not in seen]
    return out


def _design(frame: pd.DataFrame, groups) -> tuple[np.ndarray, np.ndarray]:
    """The design of each group side by side, and each column's group number."""
    blocks, owner = [], []
    for g, cols in groups:
        X = design_matrix(encode_factors(frame[cols]))
        blocks.append(X)
        owner += [g] * X.shape[1]
    if not blocks:
        return np.zeros((len(frame), 0), np.float32), np.zeros(0, int)
    return np.concatenate(blocks, axis=1).astype(np.float32), np.asarray(owner, int)


def _folds(sm: ScoreMatrix, n_folds: int, protocol: str, key):
    """Test masks ``(n_splits, n_models, n_tasks)`` (folds of models, then folds of tasks)
    and whether each is a fold of models."""
    k_m, k_t = jax.random.split(key)
    masks, kinds = [], []
    if protocol in ("both", "models"):
        order = np.asarray(jax.random.permutation(k_m, sm.n_models))
        for f in np.array_split(order, n_folds):
            m = np.zeros(sm.shape, bool)
            m[f] = True
            masks.append(m & sm.mask)
            kinds.append(True)
    if protocol in ("both", "tasks"):
        order = np.asarray(jax.random.permutation(k_t, sm.n_tasks))
        for f in np.array_split(order, min(n_folds, sm.n_tasks)):
            m = np.zeros(sm.shape, bool)
            m[:, f] = True
            masks.append(m & sm.mask)
            kinds.append(False)
    keep = [i for i, m in enumerate(masks) if m.any()]
    return np.stack([masks[i] for i in keep]), np.asarray([kinds[i] for i in keep])


def _subsets(n_groups: int, exact_max: int, n_orders: int, rng) -> tuple[np.ndarray, list]:
    """The subsets to fit (boolean rows) and, when sampling, the random orders."""
    if n_groups <= exact_max:
        rows = [[(s >> g) & 1 for g in range(n_groups)] for s in range(2**n_groups)]
        return np.asarray(rows, bool), []
    orders = [rng.permutation(n_groups) for _ in range(n_orders)]
    seen = {tuple([False] * n_groups)}
    for o in orders:
        cur = [False] * n_groups
        for g in o:
            cur[g] = True
            seen.add(tuple(cur))
    return np.asarray(sorted(seen), bool), orders


def shapley(sm: ScoreMatrix, *, rng_key, groups: dict | None = None, protocol: str = "both",
            n_folds: int = 5, rank: int = 4, steps: int = 400, lr: float = 0.03,
            weight_decay: float = 1e-3, ridge: float = 1e-2, n_seeds: int = 3, exact_max: int = 12,
            n_orders: int = 200, batch: int = 256, inference: Adam | None = None) -> Importance:
    """Shapley values of ``sm``'s factor groups (see the module docstring).

    Args:
        rng_key: a ``jax.random`` key or an int seed (folds, initialisations, orders).
        groups: ``{name: columns}`` (default :data:`GROUPS`; other columns: their own group).
        protocol: ``"both"`` (folds of models and folds of tasks, equally weighted),
            ``"models"`` or ``"tasks"``.
        steps, lr, weight_decay, rank: the training of each fit; ``ridge``: the L2 penalty
            of the factor weights (added to the mean squared error).
        n_seeds: initialisations, each a full game (the spread of the values over them is
            ``shapley_sd``).
        batch: fits per vmapped call (memory).
        inference: the :class:`~cppjax.inference.Adam` object that trains every fit (its
            ``steps``, ``lr``, ``weight_decay``; default made from the three arguments); its
            programs keep the compiled game, so a second call with it (another table of the
            same shapes, more seeds) does not compile again.
    """
    inference = inference or Adam(steps=steps, lr=lr, weight_decay=weight_decay, val_frac=0.0)
    if protocol not in ("both", "models", "tasks"):
        raise ValueError(f"protocol must be 'both', 'models' or 'tasks'; got {protocol!r}")
    found = factor_groups(sm, groups)
    if not found:
        raise ValueError(f"{sm.source}: no model or task factors to weigh")
    names = [g[0] for g in found]
    model_groups = [(i, g[2]) for i, g in enumerate(found) if g[1] == "model"]
    task_groups = [(i, g[2]) for i, g in enumerate(found) if g[1] == "task"]
    Xm, own_m = _design(sm.model_factors, model_groups)
    Xt, own_t = _design(sm.task_factors, task_groups)
    key = as_key(rng_key)
    k_fold, k_init, k_order = jax.random.split(key, 3)
    tests, kinds = _folds(sm, n_folds, protocol, k_fold)
    rng = numpy_rng(k_order)
    subsets, orders = _subsets(len(found), exact_max, n_orders, rng)
    y = np.nan_to_num(np.asarray(sm.normalized, np.float32))
    obs = sm.mask
    trains = (~tests & obs[None]).astype(np.float32)
    tests_f = tests.astype(np.float32)
    n_m, n_t = sm.shape

    def init(k):
        ks = jax.random.split(k, 4)
        return {"mu": jnp.float32(0.5), "b": jnp.zeros(n_t), "c": jnp.zeros(n_m),
                "beta": jnp.zeros(Xm.shape[1]), "gamma": jnp.zeros(Xt.shape[1]),
                "A": 0.1 * jax.random.normal(ks[0], (Xm.shape[1], rank)),
                "C": 0.1 * jax.random.normal(ks[1], (Xt.shape[1], rank)),
                "P": 0.1 * jax.random.normal(ks[2], (n_m, rank)),
                "Q": 0.1 * jax.random.normal(ks[3], (n_t, rank))}

    # all fits of one seed: subsets x folds, in batches of subsets
    run = inference.programs.get(("shapley", ridge), lambda: jax.jit(jax.vmap(
        jax.vmap(partial(_fit_one, ridge=ridge, steps=inference.steps, lr=inference.lr,
                         wd=inference.weight_decay), in_axes=(None, None, 0, 0, None)),
        in_axes=(None, 0, None, None, None))))
    data = tuple(jnp.asarray(a) for a in (Xm, Xt, own_m, own_t, y))
    values = []  # (n_seeds, n_subsets): error of each subset
    for k in jax.random.split(k_init, n_seeds):
        p0 = init(k)
        errs = []
        for lo in range(0, len(subsets), batch):
            sub = jnp.asarray(subsets[lo:lo + batch], jnp.float32)
            errs.append(np.asarray(run(p0, sub, jnp.asarray(trains), jnp.asarray(tests_f), data)))
        e = np.concatenate(errs)  # (n_subsets, n_splits)
        # each protocol kind weighs equally whatever its number of folds
        w = np.where(kinds, 1.0 / max(kinds.sum(), 1), 1.0 / max((~kinds).sum(), 1))
        values.append(e @ (w / w.sum()))
    values = np.asarray(values)
    phi = _shapley_values(subsets, values, orders)
    full = subsets.all(axis=1)
    empty = ~subsets.any(axis=1)
    total = values[:, empty][:, 0] - values[:, full][:, 0]
    table = pd.DataFrame({
        "group": names, "side": [g[1] for g in found], "columns": [", ".join(g[2]) for g in found],
        "shapley": phi.mean(axis=0), "shapley_sd": phi.std(axis=0, ddof=1) if n_seeds > 1
        else np.zeros(len(names)),
        "share": phi.mean(axis=0) / total.mean() if total.mean() != 0 else np.nan,
    }).sort_values("shapley", ascending=False).reset_index(drop=True)
    return Importance(table, float(values[:, empty].mean()), float(values[:, full].mean()),
                      not orders, int(values.size * tests.shape[0]))


def _fit_one(p0, subset, train, test, data, *, ridge, steps, lr, wd):
    """One fit of the game: the factor columns of the groups not in ``subset`` zeroed, trained
    on ``train`` cells, its squared error on ``test`` cells."""
    Xm, Xt, own_m, own_t, y = data
    xm = Xm * subset[own_m]
    xt = Xt * subset[own_t]
    # a model or task without training cells keeps no trace of its random initialisation
    seen_m = (train.sum(axis=1) > 0)[:, None]
    seen_t = (train.sum(axis=0) > 0)[:, None]

    def pred(p):
        lat = (xm @ p["A"] + p["P"] * seen_m) @ (p["Q"] * seen_t + xt @ p["C"]).T
        return (p["mu"] + p["b"][None] + p["c"][:, None] + (xm @ p["beta"])[:, None]
                + (xt @ p["gamma"])[None] + lat)

    def loss(p):
        # the factor weights penalised: dozens of design columns against 29 tasks
        penalty = sum(jnp.sum(p[k] ** 2) for k in ("beta", "gamma", "A", "C"))
        return jnp.sum(train * (pred(p) - y) ** 2) / jnp.sum(train) + ridge * penalty

    p = run_sgd(loss, p0, optax.adamw(lr, weight_decay=wd), steps).params
    return jnp.sum(test * (pred(p) - y) ** 2) / jnp.sum(test)


def _shapley_values(subsets: np.ndarray, values: np.ndarray, orders: list) -> np.ndarray:
    """``(n_seeds, n_groups)`` Shapley values (error reductions) from each subset's error."""
    n = subsets.shape[1]
    index = {tuple(s): i for i, s in enumerate(subsets)}
    phi = np.zeros((values.shape[0], n))
    if orders:  # mean marginal reduction along random orders
        for o in orders:
            cur = [False] * n
            for g in o:
                before = index[tuple(cur)]
                cur[g] = True
                phi[:, g] += values[:, before] - values[:, index[tuple(cur)]]
        return phi / len(orders)
    for g in range(n):
        others = [h for h in range(n) if h != g]
        for size in range(n):
            w = factorial(size) * factorial(n - size - 1) / factorial(n)
            for combo in combinations(others, size):
                s = np.zeros(n, bool)
                s[list(combo)] = True
                without = index[tuple(s)]
                s[g] = True
                phi[:, g] += w * (values[:, without] - values[:, index[tuple(s)]])
    return phi
