"""What a plan makes sure of: one class per kind of target, each with its own uncertainty
(:meth:`Target.criterion`, the quantity a plan minimises, traced in the compiled value program;
:meth:`Target.report`, what the plan shows), and the functions that build them."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


# -- targets --------------------------------------------------------------------------------
class Resolved(NamedTuple):
    """A target on a matrix: the cells it reads, the linear map from their values (task units)
    to its features ``(groups, k)``, and the ranked position in each group."""

    cells: tuple[np.ndarray, np.ndarray]
    weights: np.ndarray  # (n_cells, groups * k)
    groups: int
    k: int
    who: np.ndarray  # (groups,) position of the ranked model in each group
    default_candidates: tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class Target(abc.ABC):
    """What a plan makes sure of; build one with :func:`scores`, :func:`rank`,
    :func:`aggregate`, :func:`best` or :func:`beats`. Each kind is a subclass with its own
    uncertainty (:meth:`criterion`, what a plan minimises; :meth:`report`, what it shows)."""

    model: str | None = None
    tasks: tuple[str, ...] | None = None
    models: tuple[str, ...] | None = None
    cells: tuple[tuple[str, str], ...] | None = None

    #: the unit of :meth:`report`'s uncertainty
    unit: ClassVar[str] = ""

    @property
    def kind(self) -> str:
        """A short name of the kind (``"scores"``, ``"rank"``, ``"aggregate"``, ``"best"``,
        ``"beats"``)."""
        return type(self).__name__.removesuffix("Target").lower()

    def _task_names(self) -> str:
        if self.tasks and len(self.tasks) > 3:
            return f"{len(self.tasks)} tasks"
        return ", ".join(self.tasks or ()) or "all tasks"

    @abc.abstractmethod
    def describe(self) -> str:
        """One line for a plan's output."""

    @abc.abstractmethod
    def resolve(self, sm) -> Resolved:
        """The target's cells and features on the matrix ``sm``."""

    @staticmethod
    @abc.abstractmethod
    def criterion(AF, MuF, bF, who, shape):
        """The uncertainty a plan minimises, averaged over the scenarios (means ``MuF + bF``,
        shared anomalies ``AF``); traced inside the compiled value program."""

    @staticmethod
    @abc.abstractmethod
    def report(x, who, level: float):
        """``(uncertainty, width)`` of feature draws ``x`` ``(S, groups, k)`` as the plan
        reports them after each pick."""


def _tasks_of(sm, names):
    return np.array([sm.task_index(x) for x in (names or sm.tasks)], np.int32)


def _models_of(sm, names):
    return np.array([sm.model_index(x) for x in (names or sm.models)], np.int32)


def _missing_of_model(sm, i):
    tj = np.flatnonzero(~sm.mask[i]).astype(np.int32)
    return np.full(tj.size, i, np.int32), tj


def _quantile_index(n: int, q: float) -> int:  # the inverted-CDF quantile RankPosterior uses
    return max(0, int(np.ceil(q * n)) - 1)


def _spread(x, level):
    """Mean variance and mean ``level`` interval width of draws ``x`` ``(S, ...)``."""
    n = x.shape[0]
    lo, hi = _quantile_index(n, (1 - level) / 2), _quantile_index(n, (1 + level) / 2)
    s = jnp.sort(x, axis=0)
    return jnp.mean(jnp.var(x, axis=0)), jnp.mean(s[hi] - s[lo])


@dataclass(frozen=True)
class ScoresTarget(Target):
    """The scores of a model on tasks, or of listed cells: uncertainty = their mean predictive
    variance (task units)."""

    unit: ClassVar[str] = "score (share of the task's observed range)"

    def describe(self) -> str:
        return f"scores of {self.model or f'{len(self.cells or ())} cells'}"

    def resolve(self, sm) -> Resolved:
        if self.cells is not None:
            mi, ti = sm.cells([m for m, _ in self.cells], [x for _, x in self.cells])
            cand = (mi[~sm.mask[mi, ti]], ti[~sm.mask[mi, ti]])
        else:
            i = sm.model_index(self.model)
            ti = _tasks_of(sm, self.tasks)
            mi = np.full(ti.size, i, np.int32)
            cand = _missing_of_model(sm, i)
        return Resolved((mi, ti), np.eye(mi.size), 1, mi.size, np.zeros(1, np.int32), cand)

    @staticmethod
    def criterion(AF, MuF, bF, who, shape):
        return jnp.mean(jnp.var(AF, axis=0))

    @staticmethod
    def report(x, who, level):
        return _spread(x, level)


@dataclass(frozen=True)
class RankTarget(Target):
    """A model's rank among models on each of some tasks: uncertainty = the mean variance of
    those ranks."""

    unit: ClassVar[str] = "rank"

    def describe(self) -> str:
        return f"rank of {self.model} on {self._task_names()}"

    def _features(self, n, n_tasks, n_models):
        """Features (task, model): the models' task units on each task."""
        w = np.zeros((n, n_tasks * n_models))
        w[np.arange(n), np.tile(np.arange(n_tasks), n_models) * n_models
          + np.repeat(np.arange(n_models), n_tasks)] = 1.0
        return w, n_tasks, n_models

    def resolve(self, sm) -> Resolved:
        i = sm.model_index(self.model)
        tj, mj = _tasks_of(sm, self.tasks), _models_of(sm, self.models)
        if i not in mj:
            raise ValueError(f"{self.model!r} is not among the ranked models")
        mi, ti = (a.ravel().astype(np.int32) for a in np.meshgrid(mj, tj, indexing="ij"))
        w, groups, k = self._features(mi.size, tj.size, mj.size)
        who = np.full(groups, int(np.flatnonzero(mj == i)[0]), np.int32)
        return Resolved((mi, ti), w, groups, k, who, _missing_of_model(sm, i))

    @staticmethod
    def criterion(AF, MuF, bF, who, shape):
        """The sum over the other models of the variance of "it beats the model",
        ``p (1 - p)`` with ``p`` from the Gaussian of the score difference (the rank's
        variance with the comparisons taken as independent: O(draws x models) per candidate
        where the rank's own draws cost that per scenario; decision 0010)."""
        S = AF.shape[0]
        a = AF.reshape((S,) + shape)
        d = a - jnp.take_along_axis(a, who[None, :, None], axis=2)
        sd = jnp.sqrt(jnp.mean(d**2, axis=0))  # (groups, k); anomalies have mean 0
        mu = (MuF + bF).reshape((MuF.shape[0],) + shape)
        m = mu - jnp.take_along_axis(mu, who[None, :, None], axis=2)
        z = m / jnp.where(sd > 1e-9, sd, 1.0)
        p = jnp.where(sd > 1e-9, jax.scipy.stats.norm.cdf(z), (m > 0).astype(jnp.float32))
        return jnp.mean(jnp.sum(p * (1 - p), axis=2))

    @staticmethod
    def report(x, who, level):
        own = jnp.take_along_axis(x, who[None, :, None], axis=2)
        ranks = 1.0 + jnp.sum(x > own, axis=2, dtype=jnp.float32)[..., None]
        return _spread(ranks, level)


@dataclass(frozen=True)
class AggregateTarget(RankTarget):
    """A model's rank on the leaderboard aggregate (its mean score over tasks):
    uncertainty = the variance of that rank."""

    def describe(self) -> str:
        return f"aggregate rank of {self.model} over {self._task_names()}"

    def _features(self, n, n_tasks, n_models):
        """One group: each model's mean over the tasks."""
        w = np.zeros((n, n_models))
        w[np.arange(n), np.repeat(np.arange(n_models), n_tasks)] = 1.0 / n_tasks
        return w, 1, n_models


@dataclass(frozen=True)
class TopTarget(Target):
    """The order of the leaderboard's top ``k`` models on the aggregate (each model's mean score
    over the tasks), choosing among every missing cell of the models and tasks: uncertainty =
    the expected number of discordant pairs ``sum p_ab (1 - p_ab)`` over the pairs of the ``2k``
    models of highest mean with at least one of the two in the top ``k`` (the order within the
    top and who crosses its boundary; ``p_ab``: the probability that ``a`` beats ``b``, from the
    Gaussian of their difference in the value program, from the draws in the report). Kendall's
    distance of the top of the board, in expectation."""

    k: int = 10
    unit: ClassVar[str] = "discordant pairs"

    def describe(self) -> str:
        return f"order of the top {self.k} on {self._task_names()}"

    def resolve(self, sm) -> Resolved:
        tj, mj = _tasks_of(sm, self.tasks), _models_of(sm, self.models)
        if not 2 <= self.k <= mj.size:
            raise ValueError(f"a top-k target needs 2 <= k <= the number of models "
                             f"({mj.size}); got k={self.k}")
        mi, ti = (a.ravel().astype(np.int32) for a in np.meshgrid(mj, tj, indexing="ij"))
        w = np.zeros((mi.size, mj.size))
        w[np.arange(mi.size), np.repeat(np.arange(mj.size), tj.size)] = 1.0 / tj.size
        todo = ~sm.mask[mi, ti]
        # ``who``: over the 2k compared models (its length, static in the program), 1 for the
        # top k
        who = (np.arange(min(mj.size, 2 * self.k)) < self.k).astype(np.int32)
        return Resolved((mi, ti), w, 1, mj.size, who, (mi[todo], ti[todo]))

    @staticmethod
    def _discord(p, who):
        m = who.shape[0]
        pairs = jnp.triu(jnp.ones((m, m)), 1) * who[:, None]  # a above b, a in the top k
        return jnp.sum(p * (1 - p) * pairs, axis=(-2, -1))

    @classmethod
    def criterion(cls, AF, MuF, bF, who, shape):
        m = who.shape[0]
        S = AF.shape[0]
        a = AF.reshape(S, -1)
        mu = MuF + bF  # (M, n_models)
        top = jnp.argsort(-jnp.mean(mu, axis=0))[:m]  # the same set in every scenario
        a, mu = a[:, top], mu[:, top]
        sd = jnp.sqrt(jnp.mean((a[:, :, None] - a[:, None, :]) ** 2, axis=0))
        d = mu[:, :, None] - mu[:, None, :]
        p = jnp.where(sd > 1e-9, jax.scipy.stats.norm.cdf(d / jnp.where(sd > 1e-9, sd, 1.0)),
                      (d > 0).astype(jnp.float32))
        return jnp.mean(cls._discord(p, who))

    @classmethod
    def report(cls, x, who, level):
        m = who.shape[0]
        x = x.reshape(x.shape[0], -1)
        top = jnp.argsort(-jnp.mean(x, axis=0))[:m]
        x = x[:, top]
        p = jnp.mean((x[:, :, None] > x[:, None, :]).astype(jnp.float32), axis=0)
        d = cls._discord(p, who)
        return d, d


def _entropy_bits(p):
    return jnp.mean(-jnp.sum(jnp.where(p > 0, p * jnp.log2(jnp.where(p > 0, p, 1.0)), 0.0),
                             axis=1))


@dataclass(frozen=True)
class BestTarget(Target):
    """Which of some models scores best on a task: uncertainty = the entropy (bits) of the best
    model's identity."""

    unit: ClassVar[str] = "bits"

    def describe(self) -> str:
        return f"best model on {self._task_names()}"

    def resolve(self, sm) -> Resolved:
        j = sm.task_index(self.tasks[0])
        mj = _models_of(sm, self.models)
        if len(set(mj.tolist())) != mj.size or mj.size < 2:
            raise ValueError("a best/beats target needs two or more distinct models")
        todo = mj[~sm.mask[mj, j]].astype(np.int32)
        return Resolved((mj, np.full(mj.size, j, np.int32)), np.eye(mj.size), 1, mj.size,
                        np.zeros(1, np.int32), (todo, np.full(todo.size, j, np.int32)))

    @classmethod
    def entropy(cls, x):
        """Mean over groups of the entropy (bits) of the best model, from ``(S, groups, k)``."""
        return _entropy_bits(jnp.mean(jax.nn.one_hot(jnp.argmax(x, axis=2), x.shape[2]),
                                      axis=0))

    @classmethod
    def criterion(cls, AF, MuF, bF, who, shape):
        S = AF.shape[0]
        return jnp.mean(jax.vmap(lambda mu: cls.entropy((mu + bF + AF).reshape((S,) + shape)))(
            MuF))

    @classmethod
    def report(cls, x, who, level):
        h = cls.entropy(x)
        return h, h


@dataclass(frozen=True)
class BeatsTarget(BestTarget):
    """Whether the first of two models scores better than the second on a task: uncertainty =
    the entropy (bits) of the answer."""

    def describe(self) -> str:
        return f"{self.models[0]} vs {self.models[1]} on {self._task_names()}"

    @classmethod
    def entropy(cls, x):
        p1 = jnp.mean(x[:, :, 0] > x[:, :, 1], axis=0)[:, None]
        return _entropy_bits(jnp.concatenate([p1, 1 - p1], axis=1))


def scores(model: str | None = None, *, cells: Sequence[tuple[str, str]] | None = None,
           tasks: Sequence[str] | None = None) -> ScoresTarget:
    """The scores of ``model`` on ``tasks`` (default: every task), or of the ``(model, task)``
    pairs ``cells``: uncertainty = their mean predictive variance."""
    if (model is None) == (cells is None):
        raise ValueError("give a model or a list of (model, task) cells")
    return ScoresTarget(model, _tuple(tasks), None,
                        None if cells is None else tuple((str(m), str(t)) for m, t in cells))


def rank(model: str, tasks: Sequence[str] | None = None) -> RankTarget:
    """``model``'s rank among all models on each of ``tasks`` (default: every task):
    uncertainty = the mean variance of those ranks."""
    return RankTarget(model, _tuple(tasks))


def aggregate(model: str, tasks: Sequence[str] | None = None,
              models: Sequence[str] | None = None) -> AggregateTarget:
    """``model``'s rank among ``models`` (default: all) on the leaderboard aggregate, its mean
    score over ``tasks`` (:meth:`cppjax.Posterior.aggregate_rank`): uncertainty = the variance
    of that rank."""
    return AggregateTarget(model, _tuple(tasks), _tuple(models))


def top(k: int = 10, tasks: Sequence[str] | None = None,
        models: Sequence[str] | None = None) -> TopTarget:
    """The order of the top ``k`` of ``models`` (default: all) on the aggregate of ``tasks``
    (default: every task), choosing among all their missing cells: uncertainty = the expected
    number of discordant pairs that involve the top ``k`` (:class:`TopTarget`)."""
    if isinstance(k, bool) or not isinstance(k, int | np.integer):
        raise TypeError(f"k must be an integer; got {k!r}")
    return TopTarget(None, _tuple(tasks), _tuple(models), None, int(k))


def best(task: str, models: Sequence[str] | None = None) -> BestTarget:
    """Which of ``models`` (default: all) scores best on ``task``: uncertainty = the entropy
    (bits) of the best model's identity."""
    return BestTarget(None, (task,), _tuple(models))


def beats(a: str, b: str, task: str) -> BeatsTarget:
    """Whether model ``a`` scores better than ``b`` on ``task``: uncertainty = the entropy
    (bits) of the answer."""
    return BeatsTarget(None, (task,), (a, b))


def _tuple(x):
    return None if x is None else tuple(str(v) for v in x)
