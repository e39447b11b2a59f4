"""Evaluation protocols of the CPP paper as reusable, reproducible train/test splits.

Every split returns a :class:`Split` whose ``train`` and ``test`` are :class:`ScoreMatrix` objects
with the same models, tasks and factors as the matrix they came from, and one normalisation
between them. Where it is fitted (``normalization``):

* ``"train"``: on the training cells only, so that nothing of a held-out score reaches the fit
  (for a test model stronger than every training model, a normalisation fitted with its scores
  tells the fit where the top of each task lies). The default of the protocols that hold out
  models: :func:`new_model`, :func:`largest_of_family`, :func:`compute_cutoff`,
  :func:`leave_family_out`.
* ``"parent"``: the parent's, fitted on all its observed cells, as in the CPP paper: the default
  of the cell protocols (:func:`random_cells`, :func:`kfold_cells`) and of :func:`new_task`
  (a new task with no revealed score could not be normalised otherwise). A per-model
  normalisation (``model_max``) always stays the parent's: a held-out model has no cells of its
  own to fit it on.

How much the figures moved: ``docs/decisions/0012-beyond-the-table.md``. ``train`` has the
held-out cells blanked; ``test`` holds exactly the held-out cells. A cell is never in both.

Randomness comes from an explicit ``rng_key`` (a ``jax.random`` key, or an int seed), given by
name after the data, as everywhere in cppjax (required where the split draws: random cells,
folds, revealed scores).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import jax
import numpy as np

from cppjax.data import ScoreMatrix
from cppjax.data.compute import family_scale
from cppjax.inference.keys import as_key


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


Normalise = Literal["train", "parent"]


def _old_keyword(fn):
    """The forms of cppjax 0.5 still accepted for one release, with a DeprecationWarning:
    ``normalise=`` (now ``normalization=``) and the key first (``random_cells(key, sm)``; now
    ``random_cells(sm, rng_key=key)``, as every function of cppjax takes its data first and
    its key by name)."""
    import functools
    import warnings

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        if (len(args) >= 2 and not isinstance(args[0], ScoreMatrix)
                and isinstance(args[1], ScoreMatrix)):
            warnings.warn(f"{fn.__name__}(rng_key, sm, ...) is now {fn.__name__}(sm, ..., "
                          f"rng_key=...) (the old order goes in cppjax 0.7)", DeprecationWarning,
                          stacklevel=2)
            kwargs["rng_key"], args = args[0], args[1:]
        if "normalise" in kwargs:
            warnings.warn("normalise= is now normalization= (removed in cppjax 0.7)",
                          DeprecationWarning, stacklevel=2)
            kwargs["normalization"] = kwargs.pop("normalise")
        return fn(*args, **kwargs)

    return wrapped


@_old_keyword
def split_cells(sm: ScoreMatrix, model_idx, task_idx, name: str, info=None,
                normalization: Normalise = "parent") -> Split:
    """Hold out the given cells (index arrays) of ``sm``; ``normalization``: where the split's
    normalisation is fitted (see the module docstring)."""
    if normalization not in ("train", "parent"):
        raise ValueError(f"normalization must be 'train' or 'parent'; got {normalization!r}")
    model_idx = np.asarray(model_idx, dtype=int)
    task_idx = np.asarray(task_idx, dtype=int)
    if not sm.mask[model_idx, task_idx].all():
        raise ValueError("a held-out cell must be observed")
    held = np.zeros(sm.shape, dtype=bool)
    held[model_idx, task_idx] = True
    train = np.where(held, np.nan, sm.scores)
    test = np.where(held, sm.scores, np.nan)
    info = dict(info or {})
    if normalization == "train" and sm.normalization.kind not in ("model_max", "none"):
        tr = replace(sm, scores=train, normalization=_train_normalization(sm, train), _index=None)
        te = replace(sm, scores=test, normalization=tr.normalization, _index=None)
        info["normalization"] = "train"
        return Split(name, tr, te, info)
    info["normalization"] = "parent"
    return Split(name, sm.with_scores(train), sm.with_scores(test), info)


def _train_normalization(sm: ScoreMatrix, train: np.ndarray):
    """The parent's kind of normalisation fitted on the training cells ``train``; a task left
    without training cells keeps the parent's (there is nothing else to fit it on)."""
    empty = np.isnan(train).all(axis=0)
    fit_on = np.where(empty[None, :], sm.scores, train)
    norm = replace(sm, scores=fit_on, normalization=sm.normalization.kind,
                   _index=None).normalization
    return replace(norm, auto=sm.normalization.auto)  # chosen by cppjax or by the user


@_old_keyword
def random_cells(sm: ScoreMatrix, frac: float = 0.05, *, rng_key) -> Split:
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


@_old_keyword
def kfold_cells(sm: ScoreMatrix, n_folds: int = 20, *, rng_key) -> list[Split]:
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


@_old_keyword
def new_model(sm: ScoreMatrix, model: str, k: int = 0, normalization: Normalise = "train", *,
              rng_key=None) -> Split:
    """A model never seen before, with ``k`` of its observed scores revealed (CPP-0, CPP-2).

    The revealed tasks are drawn at random among the model's observed tasks; all its other
    observed cells are the test set. The normalisation is fitted on the training cells
    (``normalization="parent"``: the parent's, as in the CPP paper).
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
        normalization,
    )


@_old_keyword
def new_task(sm: ScoreMatrix, task: str, k: int = 0, *, rng_key=None) -> Split:
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


@_old_keyword
def each_new_model(
    sm: ScoreMatrix, k: int = 0, models: Sequence[str] | None = None,
    normalization: Normalise = "train", *, rng_key=None,
) -> Iterator[Split]:
    """:func:`new_model` for each model (default: every model with more than ``k`` scores)."""
    if models is None:
        counts = sm.mask.sum(axis=1)
        models = [m for m, c in zip(sm.models, counts, strict=True) if c > k]
    keys = jax.random.split(as_key(rng_key), len(models)) if k else [None] * len(models)
    for key, m in zip(keys, models, strict=True):
        yield new_model(sm, m, k, normalization, rng_key=key)


@_old_keyword
def largest_of_family(
    sm: ScoreMatrix,
    *,
    family: str = "family",
    min_members: int = 3,
    k: int = 0,
    rng_key=None,
    share: float | None = None,
    normalization: Normalise = "train",
) -> Split:
    """Hold out the largest model of every family with at least ``min_members`` placeable models
    (``share``: the largest ``share`` of each family's placeable models, rounded, at least one,
    and at least two left in training).

    Size is training compute (FLOPs, else 6 x parameters x tokens) when every member of the family
    has it, otherwise parameters (see :func:`cppjax.data.compute.family_scale`); models with
    neither are
    not counted. ``k`` scores of each held-out model may be revealed (drawn with ``rng_key``).
    The normalisation is fitted on the training cells (``normalization="parent"``: the parent's).

    ``info`` lists the held-out models of each family, the axis used, and the families skipped.
    """
    if k and rng_key is None:
        raise ValueError("revealing k > 0 scores needs an rng_key")
    if share is not None and not 0.0 < share < 1.0:
        raise ValueError(f"share must be in (0, 1); got {share}")
    scale = family_scale(sm.model_factors, family=family)
    held_i, held_j, chosen, skipped = [], [], {}, {}
    keys = jax.random.split(as_key(rng_key), sm.n_models) if k else [None] * sm.n_models
    for fam, rows in scale[scale["axis"] != "none"].groupby("family"):
        if len(rows) < min_members:
            skipped[fam] = f"{len(rows)} placeable member(s) < {min_members}"
            continue
        n_top = 1 if share is None else min(max(1, round(share * len(rows))), len(rows) - 2)
        tops = list(rows["x"].sort_values(ascending=False, kind="stable").index[:n_top])
        held_models, revealed = [], []
        for top in tops:
            i = sm.model_index(top)
            tasks = np.flatnonzero(sm.mask[i])
            if tasks.size <= k:
                continue
            order = _permutation(keys[i], tasks.size) if k else np.arange(tasks.size)
            held = tasks[order[k:]]
            held_i.extend([i] * held.size)
            held_j.extend(held.tolist())
            held_models.append(top)
            revealed.append([sm.tasks[j] for j in tasks[order[:k]]])
        if not held_models:
            skipped[fam] = f"largest model(s) {tops} have {k} or fewer scores"
            continue
        chosen[fam] = {
            "model": held_models[0],
            "models": held_models,
            "axis": rows.loc[held_models[0], "axis"],
            "x": float(rows.loc[held_models[0], "x"]),
            "members": list(rows.index),
            "revealed": revealed[0] if len(revealed) == 1 else revealed,
        }
    if not chosen:
        raise ValueError(f"no family has {min_members} or more models with a known size")
    unplaced = list(scale.index[scale["axis"] == "none"])
    name = f"largest_of_family(min_members={min_members}, k={k}"
    name += ")" if share is None else f", share={share:g})"
    return split_cells(
        sm,
        held_i,
        held_j,
        name,
        {"held_out": chosen, "skipped_families": skipped, "unplaced_models": unplaced},
        normalization,
    )


@_old_keyword
def compute_cutoff(
    sm: ScoreMatrix,
    tasks: str | Sequence[str],
    *,
    cutoff: float | None = None,
    share: float = 0.2,
    normalization: Normalise = "train",
) -> Split:
    """The setting of Ruan et al. (*Observational Scaling Laws*, 2024): models trained with at
    least ``cutoff`` FLOPs (default: the top ``share`` of the models with a known compute) are
    the test models; their scores on ``tasks`` are held out, their other scores stay in
    training (they place the test models among the others). Compute is reported FLOPs, else
    6 x parameters x tokens (:func:`cppjax.data.compute.model_compute`); models with neither stay in
    training, listed in ``info["unplaced_models"]``."""
    from cppjax.data.compute import model_compute

    tasks = [tasks] if isinstance(tasks, str) else list(tasks)
    cols = [sm.task_index(t) for t in tasks]
    comp = model_compute(sm.model_factors)
    known = comp["source"].isin(["flops", "6ND"]).to_numpy()
    c = comp["compute"].to_numpy()
    if known.sum() < 2:
        raise ValueError("compute_cutoff needs at least two models with a known training compute")
    if cutoff is None:
        if not 0.0 < share < 1.0:
            raise ValueError(f"share must be in (0, 1); got {share}")
        cutoff = float(np.quantile(c[known], 1.0 - share))
    test = known & (c >= cutoff)
    if not test.any() or test.sum() == known.sum():
        raise ValueError(f"cutoff {cutoff:.3g} FLOPs leaves no test or no training model")
    mi, ti = np.nonzero(test[:, None] & sm.mask[:, cols])
    if mi.size == 0:
        raise ValueError(f"no model above {cutoff:.3g} FLOPs has a score on {tasks}")
    ti = np.asarray(cols)[ti]
    return split_cells(
        sm, mi, ti, f"compute_cutoff({','.join(tasks)}, cutoff={cutoff:.3g})",
        {"cutoff": cutoff, "tasks": tasks,
         "test_models": [sm.models[i] for i in np.flatnonzero(test)],
         "unplaced_models": [sm.models[i] for i in np.flatnonzero(~known)]},
        normalization,
    )


@_old_keyword
def leave_family_out(
    sm: ScoreMatrix,
    *,
    family: str = "family",
    min_members: int = 2,
    normalization: Normalise = "train",
) -> Split:
    """Every family with at least ``min_members`` placeable models keeps only its smallest in
    training; every score of its larger models is held out (none revealed). The setting of Polo
    et al. (*Sloth*, 2025). Size as :func:`largest_of_family`."""
    scale = family_scale(sm.model_factors, family=family)
    held_i, held_j, chosen = [], [], {}
    for fam, rows in scale[scale["axis"] != "none"].groupby("family"):
        if len(rows) < min_members:
            continue
        order = rows["x"].sort_values(kind="stable").index
        kept, larger = order[0], [m for m in order[1:] if sm.mask[sm.model_index(m)].any()]
        for m in larger:
            i = sm.model_index(m)
            tasks = np.flatnonzero(sm.mask[i])
            held_i.extend([i] * tasks.size)
            held_j.extend(tasks.tolist())
        if larger:
            chosen[fam] = {"kept": kept, "models": larger, "axis": rows.loc[kept, "axis"]}
    if not chosen:
        raise ValueError(f"no family has {min_members} or more models with a known size")
    return split_cells(sm, held_i, held_j, f"leave_family_out(min_members={min_members})",
                       {"held_out": chosen}, normalization)
