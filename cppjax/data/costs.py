"""What evaluating each cell costs: :func:`cost_matrix` from a number, a table by task or by
model, a long or a wide table; :func:`read_costs` reads one from a file. Planning
(:mod:`cppjax.planning`) spends a budget in these units."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cppjax.data.tables import read_table
from cppjax.errors import DataError


def cost_matrix(sm, costs=None) -> np.ndarray:
    """The cost of evaluating each cell, ``(n_models, n_tasks)``. ``costs``: ``None`` (1 per
    evaluation), a number, a Series or dict by task name (items x tokens) or by model name
    (parameters, API price), a DataFrame with columns ``model, task, cost`` (or ``task, cost``
    / ``model, cost``), or a wide models x tasks DataFrame. Names must be the matrix's; every
    cost given positive and finite; a cell no cost names costs 1 (one evaluation)."""
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
    return np.where(np.isnan(out), 1.0, out)  # not named: one evaluation


def read_costs(path, *, sep=None) -> pd.DataFrame:
    """A cost table from a CSV or Excel file, for :func:`cost_matrix`: columns ``task, cost``,
    ``model, cost`` or ``model, task, cost`` (any case), else a wide models x tasks table
    (first column the model names). A cost that is not a number is an error naming its row."""
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
