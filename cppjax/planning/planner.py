"""The planner: scenarios of joint predictive draws conditioned pick by pick (Matheron's rule;
decision 0010), the compiled value programs, greedy plans under a budget."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from cppjax.data.costs import cost_matrix
from cppjax.inference.keys import as_key
from cppjax.planning.targets import Target
from cppjax.posterior.ranks import task_units

#: posterior draws below which planning refuses (a point model's few fits are no distribution)
MIN_DRAWS = 50


# -- the compiled core ----------------------------------------------------------------------
class Scenarios(NamedTuple):
    """What a plan conditions as it picks (decision 0010): ``S`` joint predictive draws, as
    anomalies shared by ``M`` scenarios, each scenario with its own conditional means and its
    own realised outcome of every candidate.

    Attributes:
        candidate_anomalies: ``(S, n_candidates)`` draws of the candidates less their mean.
        candidate_means: ``(M, n_candidates)`` each scenario's conditional mean.
        candidate_outcomes: ``(M, n_candidates)`` each scenario's outcome (a joint draw).
        feature_anomalies: ``(S, n_features)`` draws of the target's features less their mean.
        feature_means: ``(M, n_features)`` each scenario's shift of the features' mean.
    """

    candidate_anomalies: jax.Array
    candidate_means: jax.Array
    candidate_outcomes: jax.Array
    feature_anomalies: jax.Array
    feature_means: jax.Array


def _after(a, innov, AF, MuF, bF, who, *, shape, target):
    """The criterion after observing a cell whose anomalies are ``a`` ``(S,)`` and whose
    innovation in each scenario is ``innov`` ``(M,)``."""
    aa = a @ a
    kF = jnp.where(aa > 1e-12, (AF.T @ a) / jnp.where(aa > 1e-12, aa, 1.0), 0.0)
    return target.criterion(AF - a[:, None] * kF[None, :], MuF + innov[:, None] * kF[None, :],
                            bF, who, shape)


@partial(jax.jit, static_argnames=("shape", "target"))
def _values(sc: Scenarios, bF, who, *, shape, target):
    """The criterion after observing each candidate (``target``: the target's class)."""
    f = partial(_after, AF=sc.feature_anomalies, MuF=sc.feature_means, bF=bF, who=who,
                shape=shape, target=target)
    innov = sc.candidate_outcomes - sc.candidate_means
    return jax.lax.map(lambda c: f(c[0], c[1]), (sc.candidate_anomalies.T, innov.T),
                       batch_size=8)


@partial(jax.jit, static_argnames=("shape", "target", "level"))
def _now(sc: Scenarios, bF, who, *, shape, target, level):
    """The criterion now, and the reported uncertainty and width (over the scenarios)."""
    AF, MuF = sc.feature_anomalies, sc.feature_means
    crit = target.criterion(AF, MuF, bF, who, shape)

    def one(mu):
        return target.report((mu + bF + AF).reshape((AF.shape[0],) + shape), who, level)

    u, w = jax.vmap(one)(MuF)
    return crit, jnp.mean(u), jnp.mean(w)


@jax.jit
def _condition(sc: Scenarios, c) -> Scenarios:
    """Every scenario conditioned on its outcome at candidate ``c``."""
    A, AF = sc.candidate_anomalies, sc.feature_anomalies
    a = A[:, c]
    aa = a @ a
    safe = jnp.where(aa > 1e-12, aa, 1.0)
    k = jnp.where(aa > 1e-12, (A.T @ a) / safe, 0.0)
    kF = jnp.where(aa > 1e-12, (AF.T @ a) / safe, 0.0)
    innov = sc.candidate_outcomes[:, c] - sc.candidate_means[:, c]
    return sc._replace(candidate_anomalies=A - a[:, None] * k,
                       candidate_means=sc.candidate_means + innov[:, None] * k,
                       feature_anomalies=AF - a[:, None] * kF,
                       feature_means=sc.feature_means + innov[:, None] * kF)


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
        self.resolved = r = target.resolve(sm)
        cm, ct = _cells(sm, r.default_candidates if candidates is None else candidates)
        self.cost = cost_matrix(sm, costs)[cm, ct]  # cells no cost names: 1
        self.candidates = (cm, ct)
        unplaced = set(posterior.unplaced_models) & {sm.models[i] for i in
                                                     np.concatenate([cm, r.cells[0]])}
        if unplaced:
            raise ValueError(f"{posterior.method} cannot predict {sorted(unplaced)} (no size "
                             f"or family); leave them out of the target and the candidates")
        k_pred, k_scen = jax.random.split(as_key(rng_key))
        both_m = np.concatenate([cm, r.cells[0]])
        both_t = np.concatenate([ct, r.cells[1]])
        # joint draws in task units, observed cells at their score (Posterior.joint_draws)
        x = task_units(sm, posterior.joint_draws((both_m, both_t), rng_key=k_pred), both_t)
        xc, xt = x[:, :cm.size], x[:, cm.size:]
        F = xt @ r.weights
        S = x.shape[0]
        pick = np.asarray(jax.random.choice(k_scen, S, (n_scenarios,), replace=S < n_scenarios))
        f32 = partial(jnp.asarray, dtype=jnp.float32)
        mc = xc.mean(axis=0)
        self.scenarios = Scenarios(
            candidate_anomalies=f32(xc - mc), candidate_means=f32(np.tile(mc, (n_scenarios, 1))),
            candidate_outcomes=f32(xc[pick]), feature_anomalies=f32(F - F.mean(axis=0)),
            feature_means=f32(np.zeros((n_scenarios, F.shape[1]))))
        self._bF, self._who = f32(F.mean(axis=0)), jnp.asarray(r.who)
        self._shape = (r.groups, r.k)

    def _now(self, sc: Scenarios):
        """(criterion, reported uncertainty, width) of ``sc``."""
        out = _now(sc, self._bF, self._who, shape=self._shape, target=type(self.target),
                   level=self.level)
        return tuple(max(float(v), 0.0) + 0.0 for v in out)  # no -0.0 from rounding

    def _after_each(self, sc: Scenarios) -> np.ndarray:
        return np.asarray(_values(sc, self._bF, self._who, shape=self._shape,
                                  target=type(self.target)), float)

    def values(self) -> pd.DataFrame:
        """Each candidate's value now: ``model, task, cost, value`` (expected drop of the
        plan's criterion), ``value_per_cost`` and ``criterion_after``, best value per cost
        first. An observed cell has value 0."""
        crit = self._now(self.scenarios)[0]
        after = self._after_each(self.scenarios)
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
        state, spent, chosen = self.scenarios, 0.0, np.zeros(self.cost.size, bool)
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
            state = _condition(state, c)
            crit, u, w = self._now(state)
            rows.append({"step": len(rows), "model": sm.models[self.candidates[0][c]],
                         "task": sm.tasks[self.candidates[1][c]], "cost": float(self.cost[c]),
                         "spent": spent, "value": float(value[c]), "criterion": crit,
                         "expected_uncertainty": u, "expected_width": w})
        unit = self.target.unit
        return Plan(self.target, pd.DataFrame(rows), budget, self.level, unit,
                    {"method": self.posterior.method,
                     "n_draws": int(self.scenarios.candidate_anomalies.shape[0]),
                     "n_scenarios": int(self.scenarios.candidate_means.shape[0])})


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
