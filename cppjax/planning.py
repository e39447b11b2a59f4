"""Evaluation planning: which evaluations to run next, what they cost, how sure we will be after.

A *target* says what we want to know: the scores of some cells (:func:`scores`), a model's rank
on tasks (:func:`rank`) or on the leaderboard aggregate (:func:`aggregate`), the best model on a
task (:func:`best`), or whether one model beats another (:func:`beats`). Its *uncertainty* is
the variance of the scores (in :func:`cppjax.posterior.ranks.task_units`: shares of each task's
observed
range) or of the ranks, or the entropy (bits) of the best model's identity or of the
comparison. The *value* of evaluating a cell is the expected drop of that uncertainty once the
cell's score is known.

How values are computed (``docs/decisions/0010-planning-by-pathwise-updates.md``): from ``S``
joint predictive draws of every cell involved, observing cell ``c`` at value ``y`` moves each
draw ``x_s`` to ``x_s - k (y_s - y)``, ``k = Cov(x, y_c) / Var(y_c)`` (Matheron's rule: exact
for a Gaussian predictive, a linear update otherwise); the uncertainty after is averaged over
``n_scenarios`` outcomes drawn jointly from the predictive, so that non-linear targets (ranks,
the best model) see where the scores may land. A plan is greedy: each pick maximises value per
cost given the picks before it (conditioned on in every scenario), until the budget is spent.
Everything after the posterior's draws runs in one compiled program per target shape.

Example (a fit takes seconds, so the lines are not run as a doctest)::

    import cppjax
    from cppjax import planning
    post = cppjax.fit("pmf_svi", train, rng_key=0)
    p = planning.plan(post, planning.aggregate("LLaMA-2-7B"), budget=5, rng_key=1)
    p.to_frame()                  # the picks, cost spent, expected uncertainty after each
    train2 = train.add_scores(p.template().assign(score=[...]))   # the measured scores
    post2 = post.refit(train2, rng_key=2)     # the compiled programs are reused
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from cppjax.errors import DataError
from cppjax.inference.keys import as_key
from cppjax.posterior.ranks import task_units

#: posterior draws below which planning refuses (a point model's few fits are no distribution)
MIN_DRAWS = 50


# -- targets --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Target:
    """What a plan makes sure of; build one with :func:`scores`, :func:`rank`,
    :func:`aggregate`, :func:`best` or :func:`beats`."""

    kind: str  # "scores", "rank", "aggregate", "best", "beats"
    model: str | None = None
    tasks: tuple[str, ...] | None = None
    models: tuple[str, ...] | None = None
    cells: tuple[tuple[str, str], ...] | None = None

    def describe(self) -> str:
        t = f"{len(self.tasks)} tasks" if self.tasks and len(self.tasks) > 3 else (
            ", ".join(self.tasks or ()) or "all tasks")
        return {"scores": f"scores of {self.model or f'{len(self.cells or ())} cells'}",
                "rank": f"rank of {self.model} on {t}",
                "aggregate": f"aggregate rank of {self.model} over {t}",
                "best": f"best model on {t}",
                "beats": f"{self.models[0]} vs {self.models[1]} on {t}"
                if self.models else ""}[self.kind]


def scores(model: str | None = None, *, cells: Sequence[tuple[str, str]] | None = None,
           tasks: Sequence[str] | None = None) -> Target:
    """The scores of ``model`` on ``tasks`` (default: every task), or of the ``(model, task)``
    pairs ``cells``: uncertainty = their mean predictive variance."""
    if (model is None) == (cells is None):
        raise ValueError("give a model or a list of (model, task) cells")
    return Target("scores", model, _tuple(tasks), None,
                  None if cells is None else tuple((str(m), str(t)) for m, t in cells))


def rank(model: str, tasks: Sequence[str] | None = None) -> Target:
    """``model``'s rank among all models on each of ``tasks`` (default: every task):
    uncertainty = the mean variance of those ranks."""
    return Target("rank", model, _tuple(tasks))


def aggregate(model: str, tasks: Sequence[str] | None = None,
              models: Sequence[str] | None = None) -> Target:
    """``model``'s rank among ``models`` (default: all) on the leaderboard aggregate, its mean
    score over ``tasks`` (:meth:`cppjax.Posterior.aggregate_rank`): uncertainty = the variance
    of that rank."""
    return Target("aggregate", model, _tuple(tasks), _tuple(models))


def best(task: str, models: Sequence[str] | None = None) -> Target:
    """Which of ``models`` (default: all) scores best on ``task``: uncertainty = the entropy
    (bits) of the best model's identity."""
    return Target("best", None, (task,), _tuple(models))


def beats(a: str, b: str, task: str) -> Target:
    """Whether model ``a`` scores better than ``b`` on ``task``: uncertainty = the entropy
    (bits) of the answer."""
    return Target("beats", None, (task,), (a, b))


def _tuple(x):
    return None if x is None else tuple(str(v) for v in x)


@dataclass(frozen=True)
class _Resolved:
    """A target on a matrix: the cells it reads, the linear map from their values (task units)
    to its features ``(groups, k)``, the measure, and the ranked position in each group."""

    cells: tuple[np.ndarray, np.ndarray]
    weights: np.ndarray  # (n_cells, groups * k)
    groups: int
    k: int
    measure: str  # "variance", "rank", "best", "beats"
    who: np.ndarray  # (groups,) position of the ranked model in each group
    default_candidates: tuple[np.ndarray, np.ndarray]


def _resolve(t: Target, sm) -> _Resolved:
    def tasks_of(names):
        return np.array([sm.task_index(x) for x in (names or sm.tasks)], np.int32)

    def models_of(names):
        return np.array([sm.model_index(x) for x in (names or sm.models)], np.int32)

    def missing_of_model(i):
        tj = np.flatnonzero(~sm.mask[i]).astype(np.int32)
        return np.full(tj.size, i, np.int32), tj

    def missing_on_task(j, mi):
        mi = mi[~sm.mask[mi, j]]
        return mi.astype(np.int32), np.full(mi.size, j, np.int32)

    if t.kind == "scores":
        if t.cells is not None:
            mi, ti = sm.cells([m for m, _ in t.cells], [x for _, x in t.cells])
            cand = (mi[~sm.mask[mi, ti]], ti[~sm.mask[mi, ti]])
        else:
            i = sm.model_index(t.model)
            ti = tasks_of(t.tasks)
            mi = np.full(ti.size, i, np.int32)
            cand = missing_of_model(i)
        return _Resolved((mi, ti), np.eye(mi.size), 1, mi.size, "variance",
                         np.zeros(1, np.int32), cand)
    if t.kind in ("rank", "aggregate"):
        i = sm.model_index(t.model)
        tj, mj = tasks_of(t.tasks), models_of(t.models)
        if i not in mj:
            raise ValueError(f"{t.model!r} is not among the ranked models")
        mi, ti = (a.ravel().astype(np.int32) for a in np.meshgrid(mj, tj, indexing="ij"))
        n = mi.size
        if t.kind == "rank":  # features (task, model): the models' task units on each task
            w = np.zeros((n, tj.size * mj.size))
            w[np.arange(n), np.tile(np.arange(tj.size), mj.size) * mj.size
              + np.repeat(np.arange(mj.size), tj.size)] = 1.0
            groups, k = tj.size, mj.size
        else:  # one group: each model's mean over the tasks
            w = np.zeros((n, mj.size))
            w[np.arange(n), np.repeat(np.arange(mj.size), tj.size)] = 1.0 / tj.size
            groups, k = 1, mj.size
        who = np.full(groups, int(np.flatnonzero(mj == i)[0]), np.int32)
        return _Resolved((mi, ti), w, groups, k, "rank", who, missing_of_model(i))
    j = sm.task_index(t.tasks[0])
    mj = models_of(t.models)
    if len(set(mj.tolist())) != mj.size or mj.size < 2:
        raise ValueError("a best/beats target needs two or more distinct models")
    mi, ti = mj, np.full(mj.size, j, np.int32)
    return _Resolved((mi, ti), np.eye(mj.size), 1, mj.size,
                     "best" if t.kind == "best" else "beats", np.zeros(1, np.int32),
                     missing_on_task(j, mj))


# -- costs ----------------------------------------------------------------------------------
def cost_matrix(sm, costs=None) -> np.ndarray:
    """The cost of evaluating each cell, ``(n_models, n_tasks)``. ``costs``: ``None`` (1 per
    evaluation), a number, a Series or dict by task name (items x tokens) or by model name
    (parameters, API price), a DataFrame with columns ``model, task, cost`` (or ``task, cost``
    / ``model, cost``), or a wide models x tasks DataFrame. Names must be the matrix's; every
    cost positive and finite."""
    if costs is None:
        return np.ones(sm.shape)
    if np.isscalar(costs):
        out = np.full(sm.shape, float(costs))
    elif isinstance(costs, dict) or isinstance(costs, pd.Series):
        out = _by_name(sm, pd.Series(costs, dtype=float))
    elif isinstance(costs, pd.DataFrame):
        cols = {c.lower(): c for c in costs.columns}
        if "cost" in cols and ("model" in cols) != ("task" in cols):
            by = cols.get("model") or cols.get("task")
            out = _by_name(sm, pd.Series(costs[cols["cost"]].to_numpy(float),
                                         index=costs[by].astype(str)))
        elif {"model", "task", "cost"} <= set(cols):
            out = np.full(sm.shape, np.nan)
            for r in costs.itertuples(index=False):
                row = dict(zip(costs.columns, r, strict=True))
                out[sm.model_index(str(row[cols["model"]])),
                    sm.task_index(str(row[cols["task"]]))] = float(row[cols["cost"]])
        else:  # wide: models as rows, tasks as columns
            out = np.full(sm.shape, np.nan)
            for m in costs.index:
                for t in costs.columns:
                    out[sm.model_index(str(m)), sm.task_index(str(t))] = float(costs.loc[m, t])
    else:
        raise TypeError(f"costs must be None, a number, a dict/Series by name or a DataFrame; "
                        f"got {type(costs).__name__}")
    bad = np.isfinite(out) & (out <= 0)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise DataError(f"cost of {sm.models[i]!r} on {sm.tasks[j]!r} is {out[i, j]:g}; costs "
                        f"must be positive")
    return out


def read_costs(path, *, sep=None) -> pd.DataFrame:
    """A cost table from a CSV or Excel file, for :func:`cost_matrix`: columns ``task, cost``,
    ``model, cost`` or ``model, task, cost`` (any case), else a wide models x tasks table
    (first column the model names). A cost that is not a number is an error naming its row."""
    from cppjax.data.tables import read_table

    t = read_table(path, label_column=None, sep=sep, long=True)
    df = t.frame
    lower = [str(c).strip().lower() for c in df.columns]
    named = {"model", "task"} & set(lower)
    if "cost" in lower and named:
        df = df.set_axis(lower, axis=1)
        value_cols = ["cost"]
    else:
        df = df.set_index(df.columns[0])
        df.index = [str(x).strip() for x in df.index]
        value_cols = list(df.columns)
    for col in value_cols:
        num = pd.to_numeric(df[col], errors="coerce")
        if num.isna().any():
            r = int(np.flatnonzero(num.isna().to_numpy())[0])
            raise DataError(f"{path}: row {r + 2}, column {col!r}: cost {df[col].iloc[r]!r} is "
                            f"not a number")
        df[col] = num.astype(float)
    return df


def _by_name(sm, s: pd.Series) -> np.ndarray:
    names = [str(x) for x in s.index]
    if all(n in sm.tasks for n in names):
        out = np.full(sm.shape, np.nan)
        out[:, [sm.task_index(n) for n in names]] = s.to_numpy(float)
        return out
    if all(n in sm.models for n in names):
        out = np.full(sm.shape, np.nan)
        out[[sm.model_index(n) for n in names], :] = s.to_numpy(float)[:, None]
        return out
    unknown = [n for n in names if n not in sm.tasks and n not in sm.models]
    raise DataError(f"costs name {unknown[:5] or names[:5]}: neither all tasks nor all models "
                    f"of the matrix")


# -- the compiled core ----------------------------------------------------------------------
def _quantile_index(n: int, q: float) -> int:  # the inverted-CDF quantile RankPosterior uses
    return max(0, int(np.ceil(q * n)) - 1)


def _measure(x, who, *, measure: str, level: float):
    """``(uncertainty, width)`` of the draws ``x`` ``(S, groups, k)``, as the planner reports
    them after each pick: width is the mean ``level`` interval width (scores, ranks) or the
    entropy in bits (best, beats)."""
    n = x.shape[0]
    lo, hi = _quantile_index(n, (1 - level) / 2), _quantile_index(n, (1 + level) / 2)
    if measure in ("variance", "rank"):
        if measure == "rank":
            own = jnp.take_along_axis(x, who[None, :, None], axis=2)
            x = 1.0 + jnp.sum(x > own, axis=2, dtype=jnp.float32)[..., None]
        s = jnp.sort(x, axis=0)
        return jnp.mean(jnp.var(x, axis=0)), jnp.mean(s[hi] - s[lo])
    h = _entropy(x, measure)
    return h, h


def _entropy(x, measure):
    """Mean over groups of the entropy (bits) of the best model (``best``) or of the answer to
    "does the first model beat the second" (``beats``), from draws ``(S, groups, k)``."""
    if measure == "best":
        p = jnp.mean(jax.nn.one_hot(jnp.argmax(x, axis=2), x.shape[2]), axis=0)
    else:
        p1 = jnp.mean(x[:, :, 0] > x[:, :, 1], axis=0)[:, None]
        p = jnp.concatenate([p1, 1 - p1], axis=1)
    return jnp.mean(-jnp.sum(jnp.where(p > 0, p * jnp.log2(jnp.where(p > 0, p, 1.0)), 0.0),
                             axis=1))


def _uncertainty(AF, MuF, bF, who, *, shape, measure):
    """The criterion a plan minimises, averaged over the scenarios (means ``MuF + bF``, shared
    anomalies ``AF``): the mean variance of the scores; for a rank, the sum over the other
    models of the variance of "it beats the model", ``p (1 - p)`` with ``p`` from the
    Gaussian of the score difference (the rank's variance with the comparisons taken as
    independent: O(draws x models) per candidate where the rank's own draws cost that per
    scenario; decision 0010); the entropy for best and beats."""
    S = AF.shape[0]
    if measure == "variance":
        return jnp.mean(jnp.var(AF, axis=0))
    if measure == "rank":
        a = AF.reshape((S,) + shape)
        d = a - jnp.take_along_axis(a, who[None, :, None], axis=2)
        sd = jnp.sqrt(jnp.mean(d**2, axis=0))  # (groups, k); anomalies have mean 0
        mu = (MuF + bF).reshape((MuF.shape[0],) + shape)
        m = mu - jnp.take_along_axis(mu, who[None, :, None], axis=2)
        z = m / jnp.where(sd > 1e-9, sd, 1.0)
        p = jnp.where(sd > 1e-9, jax.scipy.stats.norm.cdf(z), (m > 0).astype(jnp.float32))
        return jnp.mean(jnp.sum(p * (1 - p), axis=2))
    return jnp.mean(jax.vmap(lambda mu: _entropy((mu + bF + AF).reshape((S,) + shape),
                                                  measure))(MuF))


def _after(a, innov, AF, MuF, bF, who, *, shape, measure):
    """The criterion after observing a cell whose anomalies are ``a`` ``(S,)`` and whose
    innovation in each scenario is ``innov`` ``(M,)``."""
    aa = a @ a
    kF = jnp.where(aa > 1e-12, (AF.T @ a) / jnp.where(aa > 1e-12, aa, 1.0), 0.0)
    return _uncertainty(AF - a[:, None] * kF[None, :], MuF + innov[:, None] * kF[None, :], bF,
                        who, shape=shape, measure=measure)


@partial(jax.jit, static_argnames=("shape", "measure"))
def _values(A, Mu, Y, AF, MuF, bF, who, *, shape, measure):
    """The criterion after observing each candidate (the columns of ``A``)."""
    f = partial(_after, AF=AF, MuF=MuF, bF=bF, who=who, shape=shape, measure=measure)
    return jax.lax.map(lambda c: f(c[0], c[1]), (A.T, (Y - Mu).T), batch_size=8)


@partial(jax.jit, static_argnames=("shape", "measure", "level"))
def _now(AF, MuF, bF, who, *, shape, measure, level):
    """The criterion now, and the reported uncertainty and width (over the scenarios)."""
    crit = _uncertainty(AF, MuF, bF, who, shape=shape, measure=measure)

    def one(mu):
        return _measure((mu + bF + AF).reshape((AF.shape[0],) + shape), who, measure=measure,
                        level=level)

    u, w = jax.vmap(one)(MuF)
    return crit, jnp.mean(u), jnp.mean(w)


@jax.jit
def _condition(A, Mu, Y, AF, MuF, c):
    """Every scenario conditioned on its outcome at candidate ``c``."""
    a = A[:, c]
    aa = a @ a
    safe = jnp.where(aa > 1e-12, aa, 1.0)
    k = jnp.where(aa > 1e-12, (A.T @ a) / safe, 0.0)
    kF = jnp.where(aa > 1e-12, (AF.T @ a) / safe, 0.0)
    innov = Y[:, c] - Mu[:, c]
    return (A - a[:, None] * k, Mu + innov[:, None] * k, AF - a[:, None] * kF,
            MuF + innov[:, None] * kF)


# -- the planner ----------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Plan:
    """A greedy plan: the picks in order with their cost and the expected uncertainty after
    each (``steps``: one row per pick, row 0 the state before any)."""

    target: Target
    steps: pd.DataFrame
    budget: float | None
    level: float
    unit: str
    meta: dict = field(default_factory=dict)

    @property
    def cells(self) -> list[tuple[str, str]]:
        """The planned evaluations, ``(model, task)`` in order."""
        s = self.steps.iloc[1:]
        return list(zip(s["model"], s["task"], strict=True))

    def to_frame(self) -> pd.DataFrame:
        return self.steps.copy()

    def template(self) -> pd.DataFrame:
        """``model, task, score`` with the planned cells and blank scores: fill in the scores
        and give it to :meth:`cppjax.ScoreMatrix.add_scores`."""
        return pd.DataFrame({"model": [m for m, _ in self.cells],
                             "task": [t for _, t in self.cells], "score": np.nan})

    def plot(self, ax=None):
        """Expected uncertainty (interval width, or entropy) against the budget spent."""
        from cppjax.plots import plan_curve

        return plan_curve(self, ax=ax)


class Planner:
    """The joint predictive draws of a target's cells and of the candidate evaluations, ready
    for :meth:`values` and :meth:`plan` (one draw of the posterior per planner)."""

    def __init__(self, posterior, target: Target, *, rng_key, candidates=None, costs=None,
                 n_scenarios: int = 16, level: float = 0.9):
        if not 0.0 < level < 1.0:
            raise ValueError(f"level must be in (0, 1); got {level}")
        if n_scenarios < 1:
            raise ValueError(f"n_scenarios must be >= 1; got {n_scenarios}")
        n_draws = posterior.n_draws
        if n_draws < MIN_DRAWS:
            raise TypeError(f"planning needs a posterior with at least {MIN_DRAWS} draws (a "
                            f"Bayesian model: pmf_svi, pmf_nuts, bncf_svi, a scaling law); "
                            f"{posterior.method} has {n_draws}")
        sm = posterior.matrix
        self.posterior, self.target, self.level = posterior, target, level
        self.resolved = r = _resolve(target, sm)
        cm, ct = _cells(sm, r.default_candidates if candidates is None else candidates)
        self.cost = cost_matrix(sm, costs)[cm, ct]
        if np.isnan(self.cost).any():
            k = int(np.flatnonzero(np.isnan(self.cost))[0])
            raise DataError(f"no cost given for {sm.models[cm[k]]!r} on {sm.tasks[ct[k]]!r}")
        self.candidates = (cm, ct)
        unplaced = set(posterior.unplaced_models) & {sm.models[i] for i in
                                                     np.concatenate([cm, r.cells[0]])}
        if unplaced:
            raise ValueError(f"{posterior.method} cannot predict {sorted(unplaced)} (no size "
                             f"or family); leave them out of the target and the candidates")
        k_pred, k_scen = jax.random.split(as_key(rng_key))
        both_m = np.concatenate([cm, r.cells[0]])
        both_t = np.concatenate([ct, r.cells[1]])
        x = _joint_draws(posterior, both_m, both_t, k_pred)
        xc, xt = x[:, :cm.size], x[:, cm.size:]
        F = xt @ r.weights
        S = x.shape[0]
        pick = np.asarray(jax.random.choice(k_scen, S, (n_scenarios,), replace=S < n_scenarios))
        f32 = partial(jnp.asarray, dtype=jnp.float32)
        mc = xc.mean(axis=0)
        self._state = (f32(xc - mc), f32(np.tile(mc, (n_scenarios, 1))), f32(xc[pick]),
                       f32(F - F.mean(axis=0)), f32(np.zeros((n_scenarios, F.shape[1]))))
        self._bF, self._who = f32(F.mean(axis=0)), jnp.asarray(r.who)
        self._static = {"shape": (r.groups, r.k), "measure": r.measure, "level": level}

    def _now(self, state):
        """(criterion, reported uncertainty, width) of ``state``."""
        out = _now(state[3], state[4], self._bF, self._who, **self._static)
        return tuple(max(float(v), 0.0) + 0.0 for v in out)  # no -0.0 from rounding

    def _after_each(self, state) -> np.ndarray:
        st = {k: v for k, v in self._static.items() if k != "level"}
        return np.asarray(_values(*state, self._bF, self._who, **st), float)

    def values(self) -> pd.DataFrame:
        """Each candidate's value now: ``model, task, cost, value`` (expected drop of the
        plan's criterion), ``value_per_cost`` and ``criterion_after``, best value per cost
        first. An observed cell has value 0."""
        crit = self._now(self._state)[0]
        after = self._after_each(self._state)
        sm = self.posterior.matrix
        value = np.maximum(crit - after, 0.0)
        df = pd.DataFrame({"model": np.asarray(sm.models, object)[self.candidates[0]],
                           "task": np.asarray(sm.tasks, object)[self.candidates[1]],
                           "cost": self.cost, "value": value, "value_per_cost": value / self.cost,
                           "criterion_after": after})
        return df.sort_values("value_per_cost", ascending=False, kind="stable").reset_index(
            drop=True)

    def plan(self, budget: float | None = None, k: int | None = None) -> Plan:
        """Greedy picks by value per cost, each conditioned on those before, until ``budget``
        (in the costs' unit) is spent or ``k`` picks are made (at least one of the two)."""
        if budget is None and k is None:
            raise ValueError("give a budget, a number of evaluations k, or both")
        if budget is not None and not (np.isfinite(budget) and budget > 0):
            raise ValueError(f"budget must be a positive number; got {budget}")
        if k is not None and k < 1:
            raise ValueError(f"k must be a positive integer; got {k}")
        sm = self.posterior.matrix
        state, spent, chosen = self._state, 0.0, np.zeros(self.cost.size, bool)
        crit, u, w = self._now(state)
        rows = [{"step": 0, "model": None, "task": None, "cost": 0.0, "spent": 0.0,
                 "value": 0.0, "criterion": crit, "expected_uncertainty": u,
                 "expected_width": w}]
        observed = sm.mask[self.candidates]
        while k is None or len(rows) <= k:
            value = np.maximum(crit - self._after_each(state), 0.0)
            fits = (~chosen & ~observed
                    & (self.cost <= (np.inf if budget is None else budget - spent) + 1e-9))
            if not fits.any():
                break
            c = int(np.argmax(np.where(fits, value / self.cost, -np.inf)))
            chosen[c] = True
            spent += self.cost[c]
            A, Mu, AF, MuF = _condition(*state, c)
            state = (A, Mu, state[2], AF, MuF)
            crit, u, w = self._now(state)
            rows.append({"step": len(rows), "model": sm.models[self.candidates[0][c]],
                         "task": sm.tasks[self.candidates[1][c]], "cost": float(self.cost[c]),
                         "spent": spent, "value": float(value[c]), "criterion": crit,
                         "expected_uncertainty": u, "expected_width": w})
        unit = {"variance": "score (share of the task's observed range)", "rank": "rank",
                "best": "bits", "beats": "bits"}[self.resolved.measure]
        return Plan(self.target, pd.DataFrame(rows), budget, self.level, unit,
                    {"method": self.posterior.method, "n_draws": int(self._state[0].shape[0]),
                     "n_scenarios": int(self._state[1].shape[0])})


def _cells(sm, cells) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(cells, str):
        if cells != "missing":
            raise ValueError(f"candidates must be 'missing', (models, tasks) names or index "
                             f"arrays; got {cells!r}")
        return sm.missing()
    a, b = cells
    if len(a) and isinstance(a[0], str):
        return sm.cells(list(a), list(b))
    a, b = np.asarray(a, np.int32), np.asarray(b, np.int32)
    if a.shape != b.shape:
        raise ValueError("candidate model and task indices must have the same length")
    return a, b


def _joint_draws(posterior, mi, ti, key) -> np.ndarray:
    """Draws ``(S, n)`` of the cells in task units, observed cells at their score."""
    sm = posterior.matrix
    obs = sm.mask[mi, ti]
    flat = mi.astype(np.int64) * sm.n_tasks + ti
    todo = np.unique(flat[~obs])
    if todo.size == 0:
        x = np.broadcast_to(sm.scores[mi, ti], (posterior.n_draws, mi.size)).copy()
    else:
        pred = posterior.predict((todo // sm.n_tasks, todo % sm.n_tasks), rng_key=key)
        x = np.broadcast_to(sm.scores[mi, ti], (pred.n_draws, mi.size)).copy()
        x[:, ~obs] = pred.draws[:, np.searchsorted(todo, flat[~obs])]
    return task_units(sm, x, ti)


def values(posterior, target: Target, *, rng_key, candidates=None, costs=None,
           n_scenarios: int = 16) -> pd.DataFrame:
    """The value of each candidate evaluation for ``target`` (see :meth:`Planner.values`);
    candidates default to the target's model's unobserved cells (or the task's)."""
    return Planner(posterior, target, rng_key=rng_key, candidates=candidates, costs=costs,
                   n_scenarios=n_scenarios).values()


def plan(posterior, target: Target, *, rng_key, budget: float | None = None,
         k: int | None = None, candidates=None, costs=None, n_scenarios: int = 16,
         level: float = 0.9) -> Plan:
    """A greedy plan of evaluations for ``target`` under ``budget`` (and/or ``k`` picks); see
    the module docstring."""
    return Planner(posterior, target, rng_key=rng_key, candidates=candidates, costs=costs,
                   n_scenarios=n_scenarios, level=level).plan(budget=budget, k=k)
