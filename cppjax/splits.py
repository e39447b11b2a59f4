"""Evaluation protocols of the CPP paper as reusable, reproducible train/test splits.

Every split returns a :class:`Split` whose ``train`` and ``test`` are :class:`ScoreMatrix` objects
with the same models, tasks, factors and normalisation as the matrix they came from (the
normalisation is the parent's, fitted on all its observed cells, as in the paper: a new task with
no revealed score could not be normalised otherwise). ``train`` has the held-out cells blanked;
``test`` holds exactly the held-out cells. A cell is never in both.

Randomness comes from an explicit ``rng_key`` (a ``jax.random`` key, or an int seed).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import jax
import numpy as np

from cppjax.compute import family_scale
from cppjax.data import ScoreMatrix
from cppjax.keys import as_key


@dataclass(frozen=True, eq=False)
class Split:
    """A train/test pair sharing names and normalisation.

    Attributes:
        name: the protocol, e.g. ``"random_cells(frac=0.05)"`` or ``"new_model(k=2)"``.
        train: the matrix a model is fitted on (held-out cells are NaN).
        test: the held-out cells (everything else NaN).
        info: protocol details (held-out model or task, revealed tasks, ...).
    """

    name: str
    train: ScoreMatrix
    test: ScoreMatrix
    info: dict = field(default_factory=dict)

    @property
    def full(self) -> ScoreMatrix:
        """Train and test cells together (the truth the rank metrics compare with)."""
        return self.train.with_scores(
            np.where(self.train.mask, self.train.scores, self.test.scores)
        )

    def __repr__(self) -> str:
        return (
            f"Split({self.name}: {self.train.n_observed} train cells, "
            f"{self.test.n_observed} test cells)"
        )


def _permutation(rng_key, n: int) -> np.ndarray:
    return np.asarray(jax.random.permutation(as_key(rng_key), n))


def split_cells(sm: ScoreMatrix, model_idx, task_idx, name: str, info=None) -> Split:
    """Hold out the given cells (index arrays) of ``sm``."""
    model_idx = np.asarray(model_idx, dtype=int)
    task_idx = np.asarray(task_idx, dtype=int)
    if not sm.mask[model_idx, task_idx].all():
        raise ValueError("a held-out cell must be observed")
    held = np.zeros(sm.shape, dtype=bool)
    held[model_idx, task_idx] = True
    train = np.where(held, np.nan, sm.scores)
    test = np.where(held, sm.scores, np.nan)
    return Split(name, sm.with_scores(train), sm.with_scores(test), dict(info or {}))


def random_cells(rng_key, sm: ScoreMatrix, frac: float = 0.05) -> Split:
    """Hold out a random ``frac`` of the observed cells (the paper: 5%; at least one cell).

    Cells are drawn uniformly among observed cells, as in the paper, so a model or task can lose
    all its training cells.
    """
    if not 0.0 < frac < 1.0:
        raise ValueError(f"frac must be in (0, 1); got {frac}")
    mi, ti = np.nonzero(sm.mask)
    n_test = max(1, int(round(frac * mi.size)))
    pick = _permutation(rng_key, mi.size)[:n_test]
    return split_cells(sm, mi[pick], ti[pick], f"random_cells(frac={frac:g})")


def kfold_cells(rng_key, sm: ScoreMatrix, n_folds: int = 20) -> list[Split]:
    """Partition the observed cells into ``n_folds`` folds; each fold is held out once.

    With 20 folds every fold is 5% of the observed cells, as the paper's protocol, and every
    observed cell is predicted exactly once.
    """
    mi, ti = np.nonzero(sm.mask)
    if not 2 <= n_folds <= mi.size:
        raise ValueError(f"n_folds must be between 2 and {mi.size}; got {n_folds}")
    perm = _permutation(rng_key, mi.size)
    folds = np.array_split(perm, n_folds)
    return [
        split_cells(
            sm,
            mi[f],
            ti[f],
            f"kfold_cells(fold={k + 1}/{n_folds})",
            {"fold": k, "n_folds": n_folds},
        )
        for k, f in enumerate(folds)
    ]


def new_model(rng_key, sm: ScoreMatrix, model: str, k: int = 0) -> Split:
    """A model never seen before, with ``k`` of its observed scores revealed (CPP-0, CPP-2).

    The revealed tasks are drawn at random among the model's observed tasks; all its other
    observed cells are the test set.
    """
    i = sm.model_index(model)
    tasks = np.flatnonzero(sm.mask[i])
    if tasks.size <= k:
        raise ValueError(
            f"model {model!r} has {tasks.size} observed scores; cannot reveal {k} "
            f"and test on the rest"
        )
    order = _permutation(rng_key, tasks.size) if k else np.arange(tasks.size)
    revealed, held = tasks[order[:k]], tasks[order[k:]]
    return split_cells(
        sm,
        np.full(held.size, i),
        held,
        f"new_model(k={k})",
        {"model": model, "revealed": [sm.tasks[j] for j in revealed]},
    )


def new_task(rng_key, sm: ScoreMatrix, task: str, k: int = 0) -> Split:
    """A task never seen before, with ``k`` of its observed scores revealed (CPP-T0, CPP-T2)."""
    j = sm.task_index(task)
    models = np.flatnonzero(sm.mask[:, j])
    if models.size <= k:
        raise ValueError(
            f"task {task!r} has {models.size} observed scores; cannot reveal {k} "
            f"and test on the rest"
        )
    order = _permutation(rng_key, models.size) if k else np.arange(models.size)
    revealed, held = models[order[:k]], models[order[k:]]
    return split_cells(
        sm,
        held,
        np.full(held.size, j),
        f"new_task(k={k})",
        {"task": task, "revealed": [sm.models[i] for i in revealed]},
    )


def each_new_model(
    rng_key, sm: ScoreMatrix, k: int = 0, models: Sequence[str] | None = None
) -> Iterator[Split]:
    """:func:`new_model` for each model (default: every model with more than ``k`` scores)."""
    if models is None:
        counts = sm.mask.sum(axis=1)
        models = [m for m, c in zip(sm.models, counts, strict=True) if c > k]
    keys = jax.random.split(as_key(rng_key), len(models))
    for key, m in zip(keys, models, strict=True):
        yield new_model(key, sm, m, k)


def largest_of_family(
    sm: ScoreMatrix,
    *,
    family: str = "family",
    min_members: int = 3,
    k: int = 0,
    rng_key=None,
) -> Split:
    """Hold out the largest model of every family with at least ``min_members`` placeable models.

    Size is training compute (FLOPs, else 6 x parameters x tokens) when every member of the family
    has it, otherwise parameters (see :func:`cppjax.compute.family_scale`); models with neither are
    not counted. ``k`` scores of each held-out model may be revealed (drawn with ``rng_key``).

    ``info`` lists the held-out model of each family, the axis used, and the families skipped.
    """
    if k and rng_key is None:
        raise ValueError("revealing k > 0 scores needs an rng_key")
    scale = family_scale(sm.model_factors, family=family)
    held_i, held_j, chosen, skipped = [], [], {}, {}
    keys = jax.random.split(as_key(rng_key), sm.n_models) if k else [None] * sm.n_models
    for fam, rows in scale[scale["axis"] != "none"].groupby("family"):
        if len(rows) < min_members:
            skipped[fam] = f"{len(rows)} placeable member(s) < {min_members}"
            continue
        top = rows["x"].idxmax()
        i = sm.model_index(top)
        tasks = np.flatnonzero(sm.mask[i])
        if tasks.size <= k:
            skipped[fam] = f"largest model {top!r} has only {tasks.size} scores"
            continue
        order = _permutation(keys[i], tasks.size) if k else np.arange(tasks.size)
        held = tasks[order[k:]]
        held_i.extend([i] * held.size)
        held_j.extend(held.tolist())
        chosen[fam] = {
            "model": top,
            "axis": rows.loc[top, "axis"],
            "x": float(rows.loc[top, "x"]),
            "members": list(rows.index),
            "revealed": [sm.tasks[j] for j in tasks[order[:k]]],
        }
    if not chosen:
        raise ValueError(f"no family has {min_members} or more models with a known size")
    unplaced = list(scale.index[scale["axis"] == "none"])
    return split_cells(
        sm,
        held_i,
        held_j,
        f"largest_of_family(min_members={min_members}, k={k})",
        {"held_out": chosen, "skipped_families": skipped, "unplaced_models": unplaced},
    )
