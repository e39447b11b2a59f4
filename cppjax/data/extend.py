"""A table extended with models and tasks that have no score yet, so that a posterior predicts
them from their design factors: the CPP paper's new-model and new-task questions asked of the
table a user holds (:meth:`cppjax.ScoreMatrix.extended`).

A new task's range is borrowed from the tasks with scores (``Normalization.borrowed``; decision
0029): its level is then as uncertain as the spread of the other tasks' levels, which a
posterior of PMF carries into its intervals and a point model does not.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cppjax.data.tables import check_unique
from cppjax.errors import DataError


def extended(sm, models=(), tasks=(), model_factors=None, task_factors=None, task_info=None):
    """``sm`` with the new ``models`` and ``tasks`` (names; no score yet) appended; their factors
    as rows of ``model_factors`` / ``task_factors`` (DataFrames indexed by name, the table's
    factor columns), their bounds and direction in ``task_info`` (where the table's scale does
    not give them)."""
    models = [str(m) for m in ([models] if isinstance(models, str) else models)]
    tasks = [str(t) for t in ([tasks] if isinstance(tasks, str) else tasks)]
    if not models and not tasks:
        raise ValueError("extended() needs at least one new model or task")
    for new, have, kind in ((models, sm.models, "model"), (tasks, sm.tasks, "task")):
        check_unique(tuple(new), kind, "the new names")
        if dup := [n for n in new if n in set(have)]:
            raise DataError(f"{kind}(s) already in the table: {dup} (add their scores with "
                            f"add_scores)")
    mf = _rows(sm.model_factors, models, model_factors, "model")
    tf = _rows(sm.task_factors, tasks, task_factors, "task")
    scores = np.full((sm.n_models + len(models), sm.n_tasks + len(tasks)), np.nan)
    scores[:sm.n_models, :sm.n_tasks] = sm.scores
    info = sm.task_info
    if task_info is not None:
        given = (pd.DataFrame.from_dict(task_info, orient="index")
                 if isinstance(task_info, dict) else pd.DataFrame(task_info))
        if stray := [t for t in given.index if str(t) not in set(tasks)]:
            raise DataError(f"task_info names task(s) that are not new: {stray[:5]}")
        info = pd.concat([info, given])
    return type(sm)(  # the ScoreMatrix class, without importing it back (no import cycle)
        scores, (*sm.models, *models), (*sm.tasks, *tasks), model_factors=mf, task_factors=tf,
        scale=sm.scale,
        normalization="auto" if sm.normalization.auto else sm.normalization.kind,
        source=sm.source, task_info=info)


def _rows(table: pd.DataFrame, new: list, given, kind: str) -> pd.DataFrame:
    """The factor table with the new names' rows appended (every column of the table; a new
    name without a row, or a column the table does not have, is an error naming it)."""
    if not new:
        return table
    cols = list(table.columns)
    if given is None:
        if cols:
            raise DataError(f"the new {kind}(s) {new[:5]} need their {kind} factors "
                            f"({kind}_factors=, a DataFrame indexed by name with the columns "
                            f"{cols}): they are predicted from them")
        return pd.concat([table, pd.DataFrame(index=pd.Index(new, name=table.index.name))])
    if not isinstance(given, pd.DataFrame):
        raise DataError(f"{kind}_factors must be a DataFrame indexed by {kind} name")
    given = given.copy()
    given.index = [str(i) for i in given.index]
    if missing := [n for n in new if n not in set(given.index)]:
        raise DataError(f"{kind}_factors has no row for the new {kind}(s) {missing[:5]}")
    if extra := [c for c in given.columns if c not in cols]:
        raise DataError(f"{kind}_factors column(s) {extra} are not factors of the table "
                        f"(its columns: {cols})")
    rows = given.loc[new].reindex(columns=cols)
    out = pd.concat([table, rows.astype(table.dtypes.to_dict(), errors="ignore")])
    out.index.name = table.index.name
    return out


def similar_tasks(task_factors: pd.DataFrame, scores) -> np.ndarray | None:
    """Per task without scores, the tasks with scores that share the most of its categorical
    task factors (ability, output format, benchmark family...; at least one): the donors of its
    borrowed range (``(n_tasks, n_tasks)`` bool, rows of the other tasks unused). None where no
    task lacks scores or the table has no categorical task factor. Leaving each CPP task out in
    turn, its min and max were 23 points from the most similar tasks' medians, 33 from all
    tasks' (decision 0029)."""
    empty = np.isnan(np.asarray(scores, float)).all(axis=0)
    cols = [c for c in task_factors.columns
            if not pd.api.types.is_numeric_dtype(task_factors[c])]
    if not empty.any() or not cols:
        return None
    v = task_factors[cols].astype(object).to_numpy()
    known = pd.notna(v)
    shared = ((v[:, None, :] == v[None, :, :]) & known[:, None, :] & known[None, :, :]).sum(-1)
    shared = np.where(empty[None, :], -1, shared)  # donors have scores
    best = shared.max(axis=1, keepdims=True)
    return (shared == best) & (best > 0)
