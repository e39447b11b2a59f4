"""Per-item results: models (or checkpoints) x items, each cell a 0/1 result or a per-item
probability (share of an item's instances or samples solved), with each item's task and each
model's factors (compute, family). The data of clustering on difficulty (:mod:`cppjax.cod`).

Build one with :meth:`ItemResponses.from_long` (a long CSV or DataFrame: ``model, item, task,
correct``) and a model table; bad input is a :class:`~cppjax.DataError` naming the file, row and
column, as for score matrices.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from cppjax.data.compute import model_compute
from cppjax.errors import DataError, FactorMismatchError, did_you_mean


@dataclass(frozen=True, eq=False)
class ItemResponses:
    """Results of ``n_models`` models on ``n_items`` items (``NaN`` = not run).

    Attributes:
        results: ``(n_models, n_items)`` in [0, 1]: 0/1, or the share of the item's
            ``n_trials`` instances solved.
        models, items: names (unique).
        item_task: the task of each item ``(n_items,)``.
        model_factors: a table indexed by model (``family``, ``parameters``, ``tokens``,
            ``flops``...); compute follows :func:`cppjax.data.compute.model_compute`.
        chance: each task's accuracy floor (random guessing; default 0).
        source: where the results came from, for messages.
    """

    results: np.ndarray
    models: tuple[str, ...]
    items: tuple[str, ...]
    item_task: np.ndarray
    model_factors: pd.DataFrame
    chance: dict = field(default_factory=dict)
    source: str = "array"

    def __post_init__(self):
        r = np.array(self.results, dtype=float)
        models, items = tuple(map(str, self.models)), tuple(map(str, self.items))
        if r.shape != (len(models), len(items)) or r.size == 0:
            raise DataError(f"{self.source}: results of shape {r.shape} for {len(models)} "
                            f"models and {len(items)} items")
        for kind, names in (("model", models), ("item", items)):
            dup = pd.Index(names)[pd.Index(names).duplicated()]
            if len(dup):
                raise DataError(f"{self.source}: {kind} {dup[0]!r} appears twice")
        bad = np.isfinite(r) & ((r < 0) | (r > 1)) | np.isinf(r)
        if bad.any():
            i, j = np.argwhere(bad)[0]
            raise DataError(f"{self.source}: result {r[i, j]:g} of model {models[i]!r} on item "
                            f"{items[j]!r} is outside [0, 1] (0/1 or a share solved)")
        mf = pd.DataFrame(self.model_factors).copy()
        mf.index = mf.index.map(str)
        missing = [m for m in models if m not in mf.index]
        if missing:
            raise FactorMismatchError(f"{self.source}: no model factors for {missing[0]!r}"
                                      f"{did_you_mean(missing[0], mf.index)} "
                                      f"({len(missing)} model(s) missing)")
        r.setflags(write=False)
        object.__setattr__(self, "results", r)
        object.__setattr__(self, "models", models)
        object.__setattr__(self, "items", items)
        object.__setattr__(self, "item_task", np.asarray(self.item_task, dtype=object))
        object.__setattr__(self, "model_factors", mf.loc[list(models)])

    # -- shapes and derived tables -----------------------------------------------------------
    @property
    def n_models(self) -> int:
        return len(self.models)

    @property
    def n_items(self) -> int:
        return len(self.items)

    @property
    def tasks(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.item_task))

    def __repr__(self) -> str:
        return (f"ItemResponses({self.n_models} models x {self.n_items} items in "
                f"{len(self.tasks)} task(s), {np.isfinite(self.results).mean():.0%} observed)")

    def compute(self) -> pd.Series:
        """Training compute per model (FLOPs, else 6ND, else parameters); a model with none is
        an error naming it (it cannot be placed on the compute axis)."""
        c = model_compute(self.model_factors)
        if (c["source"] == "none").any():
            m = c.index[c["source"] == "none"][0]
            raise DataError(f"{self.source}: model {m!r} has no FLOPs, parameters or tokens: "
                            f"it cannot be placed on a compute axis")
        if c["source"].nunique() > 1:
            raise DataError(f"{self.source}: compute comes from {sorted(set(c['source']))} for "
                            f"different models (FLOPs for some, parameters for others); give "
                            f"one unit for all")
        return c["compute"].astype(float)

    def task_items(self, task: str) -> np.ndarray:
        """Indices of the items of ``task``."""
        if task not in self.tasks:
            raise KeyError(f"unknown task {task!r}{did_you_mean(task, self.tasks)}")
        return np.flatnonzero(self.item_task == task)

    def task_accuracy(self) -> pd.DataFrame:
        """Models x tasks: each task's accuracy, the mean over its items run."""
        out = {t: np.nanmean(self.results[:, self.task_items(t)], axis=1) for t in self.tasks}
        return pd.DataFrame(out, index=pd.Index(self.models, name="model"))

    def subset(self, models: Sequence[str] | None = None) -> ItemResponses:
        """The results of ``models`` only (every item kept)."""
        models = list(self.models if models is None else models)
        idx = []
        for m in models:
            if m not in self.models:
                raise KeyError(f"unknown model {m!r}{did_you_mean(m, self.models)}")
            idx.append(self.models.index(m))
        return ItemResponses(self.results[idx], models, self.items, self.item_task,
                             self.model_factors, dict(self.chance), self.source)

    # -- constructors ------------------------------------------------------------------------
    @classmethod
    def from_long(cls, data, models, *, model: str = "model", item: str = "item",
                  task: str = "task", correct: str = "correct",
                  chance: dict | None = None, source_name: str | None = None
                  ) -> ItemResponses:
        """From a long table (a CSV path or a DataFrame) with one row per (model, item) and a
        model table (a path or a DataFrame indexed by, or with a column, ``model``).

        ``correct`` is 0/1 or the share solved; an item's task must be the same on every row;
        a repeated (model, item), a missing or non-numeric result, or a model of the results
        absent from the model table is an error naming the row."""
        source = source_name or (str(data) if not isinstance(data, pd.DataFrame)
                                 else "DataFrame")
        df = pd.read_csv(data, dtype=str, keep_default_na=False) if not isinstance(
            data, pd.DataFrame) else data.astype(str)
        for col in (model, item, task, correct):
            if col not in df.columns:
                raise DataError(f"{source}: no column {col!r} (columns: {list(df.columns)})")
        value = pd.to_numeric(df[correct].str.strip(), errors="coerce")
        if value.isna().any():
            r = int(np.flatnonzero(value.isna().to_numpy())[0])
            raise DataError(f"{source}: row {r + 2}, column {correct!r}: "
                            f"{df[correct].iloc[r]!r} is not a number")
        keys = df[model].str.strip() + "\x00" + df[item].str.strip()
        if keys.duplicated().any():
            r = int(np.flatnonzero(keys.duplicated().to_numpy())[0])
            raise DataError(f"{source}: row {r + 2}: model {df[model].iloc[r]!r} on item "
                            f"{df[item].iloc[r]!r} appears twice")
        tasks = df.groupby(df[item].str.strip())[task].nunique()
        if (tasks > 1).any():
            raise DataError(f"{source}: item {tasks.index[tasks > 1][0]!r} has more than one "
                            f"task")
        d = pd.DataFrame({"model": df[model].str.strip(), "item": df[item].str.strip(),
                          "task": df[task].str.strip(), "value": value})
        wide = d.pivot(index="model", columns="item", values="value")
        model_order = list(dict.fromkeys(d["model"]))
        item_order = list(dict.fromkeys(d["item"]))
        wide = wide.reindex(index=model_order, columns=item_order)
        item_task = d.drop_duplicates("item").set_index("item").loc[item_order, "task"]
        mf = models
        if not isinstance(models, pd.DataFrame):
            mf = pd.read_csv(models, keep_default_na=False, na_values=[""])
        if "model" in mf.columns:
            mf = mf.set_index("model")
        return cls(wide.to_numpy(), model_order, item_order, item_task.to_numpy(), mf,
                   dict(chance or {}), source)
