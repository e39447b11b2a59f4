"""The score-matrix container: scores of models on tasks, with their design factors.

A :class:`ScoreMatrix` holds

* ``scores``: an ``(n_models, n_tasks)`` float array in the user's original units, ``NaN`` where a
  model was not evaluated on a task;
* ``models`` / ``tasks``: the names of the rows and columns;
* ``model_factors`` / ``task_factors``: DataFrames indexed by those names (numeric and categorical
  columns, missing values kept as missing);
* ``scale``: the declared unit of the scores (``"percent"`` 0-100, ``"fraction"`` 0-1 or
  ``"unbounded"``), fixed for the whole table;
* ``normalization``: the invertible map models fit through (per-task min-max as in the CPP paper,
  a bounded task's logit first, or the row maximum; one chosen by cppjax may be read through
  another by a model, decision 0024); predictions come back in original units.

Example:
    >>> import pandas as pd
    >>> df = pd.DataFrame({"mmlu": [45.0, 70.0, None], "gsm8k": [10.0, "-", 60.0]},
    ...                   index=["small", "mid", "large"])
    >>> sm = ScoreMatrix.from_wide(df, scale="percent")
    >>> sm.shape, sm.n_observed
    ((3, 2), 4)
    >>> obs = sm.observed()
    >>> [float(v) for v in obs.values]
    [0.0, 0.0, 1.0, 1.0]
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Literal, NamedTuple

import numpy as np
import pandas as pd

from cppjax.data.extend import extended, similar_tasks
from cppjax.data.factors import factor_frame, join_factors, read_factors, type_factor_columns
from cppjax.data.names import orient
from cppjax.data.normalization import Normalization, NormKind
from cppjax.data.tables import (
    MISSING_TOKENS,
    SCALE_RANGE,
    Table,
    check_unique,
    check_unique_labels,
    empty_rows_cols,
    parse_numeric,
    read_table,
)
from cppjax.data.taskinfo import (
    auto_scale,
    check_new_score,
    check_task_range,
    given_info,
    split_task_info,
    task_info_frame,
)
from cppjax.errors import DataError, did_you_mean

Scale = Literal["percent", "fraction", "unbounded", "mixed"]


class Observations(NamedTuple):
    """Observed cells as flat arrays, ready for a JAX model."""

    model_idx: np.ndarray  # int32, (n_obs,)
    task_idx: np.ndarray  # int32, (n_obs,)
    values: np.ndarray  # float32 normalised scores, (n_obs,)


@dataclass(frozen=True, eq=False)
class ScoreMatrix:
    """Scores of ``n_models`` models on ``n_tasks`` tasks (``NaN`` = unobserved), with factors.

    Build one with :meth:`from_wide`, :meth:`from_long` or the bundled loaders in
    :mod:`cppjax.datasets`; the direct constructor validates shapes and names. The readers refuse a
    model or task without any score (unless ``drop_empty``); the constructor and :meth:`extended`
    keep it, as the splits do: a cold start, predicted from its design factors.

    Attributes:
        scores: ``(n_models, n_tasks)`` float array in original units.
        models, tasks: row and column names (unique).
        model_factors, task_factors: DataFrames indexed by ``models`` / ``tasks``.
        scale: ``"percent"``, ``"fraction"`` or ``"unbounded"``; scores are checked against it.
        normalization: a :class:`Normalization`, or its kind to fit one on the observed cells.
        source: where the scores came from (a path or ``"DataFrame"``), used in messages.
        dropped_models, dropped_tasks: names removed at load time with ``drop_empty=True``.
    """

    scores: np.ndarray
    models: tuple[str, ...]
    tasks: tuple[str, ...]
    model_factors: pd.DataFrame | None = None
    task_factors: pd.DataFrame | None = None
    scale: Scale = "fraction"
    normalization: Normalization | NormKind | Literal["auto"] = "auto"
    source: str = "array"
    dropped_models: tuple[str, ...] = ()
    dropped_tasks: tuple[str, ...] = ()
    task_info: pd.DataFrame | dict | None = None
    _index: dict = field(default=None, repr=False, compare=False)

    def __post_init__(self):
        scores = np.array(self.scores, dtype=float)  # a copy: the caller's array is never altered
        if scores.ndim != 2:
            raise DataError(f"scores must be 2-D (models x tasks); got shape {scores.shape}")
        models = tuple(str(m) for m in self.models)
        tasks = tuple(str(t) for t in self.tasks)
        if scores.shape != (len(models), len(tasks)):
            raise DataError(
                f"scores have shape {scores.shape} but there are {len(models)} model names and "
                f"{len(tasks)} task names"
            )
        if 0 in scores.shape:
            raise DataError(f"{self.source}: no scores: {len(models)} model(s) x {len(tasks)} "
                            f"task(s) (a header without rows, or rows without score columns?)")
        check_unique(models, "model", self.source)
        check_unique(tasks, "task", self.source)
        if np.isinf(scores).any():
            i, j = np.argwhere(np.isinf(scores))[0]
            raise DataError(
                f"{self.source}: infinite score at model {models[i]!r}, task {tasks[j]!r}"
            )
        if self.scale not in SCALE_RANGE:
            raise DataError(f"scale must be one of {sorted(SCALE_RANGE)}; got {self.scale!r}")
        scores.setflags(write=False)
        mf = factor_frame(self.model_factors, models, "model")
        # a task table's lower/upper/higher_is_better/chance columns are task_info, not factors
        tf, info = split_task_info(factor_frame(self.task_factors, tasks, "task"))
        if self.task_info is not None:
            given = given_info(self.task_info, tasks, self.source)
            info = given if info is None else given.combine_first(info)
        info = task_info_frame(scores, tasks, self.scale, info, self.source)
        check_task_range(scores, models, tasks, info, self.scale, self.source)
        norm = self.normalization
        if auto := isinstance(norm, str) and norm == "auto":
            norm = "task_logit" if self.scale == "mixed" else "task_minmax"
        if isinstance(norm, str):
            norm = Normalization.fit(scores, norm, self.scale,  # names for its errors
                                     names=models if norm == "model_max" else tasks,
                                     lower=info["lower"].to_numpy(),
                                     upper=info["upper"].to_numpy(), like=similar_tasks(tf, scores))
            if auto:  # cppjax chose it: a model may read the table through another (0024)
                norm = replace(norm, auto=True)
        else:
            expected = {(1, len(tasks)), (len(models), 1)}
            if norm.loc.shape not in expected:
                raise DataError(
                    f"normalisation of shape {norm.loc.shape} does not fit {scores.shape}"
                )
        object.__setattr__(self, "scores", scores)
        object.__setattr__(self, "models", models)
        object.__setattr__(self, "tasks", tasks)
        object.__setattr__(self, "model_factors", mf)
        object.__setattr__(self, "task_factors", tf)
        object.__setattr__(self, "normalization", norm)
        object.__setattr__(self, "task_info", info)
        index = {
            "models": {m: i for i, m in enumerate(models)},
            "tasks": {t: j for j, t in enumerate(tasks)},
        }
        object.__setattr__(self, "_index", index)

    # -- shapes -----------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int]:
        return self.scores.shape

    @property
    def n_models(self) -> int:
        return self.scores.shape[0]

    @property
    def n_tasks(self) -> int:
        return self.scores.shape[1]

    @property
    def mask(self) -> np.ndarray:
        """Boolean ``(n_models, n_tasks)``: True where a score is observed."""
        return ~np.isnan(self.scores)

    @property
    def n_observed(self) -> int:
        return int(self.mask.sum())

    def __repr__(self) -> str:
        mf, tf = list(self.model_factors.columns), list(self.task_factors.columns)
        return (f"ScoreMatrix({self.n_models} models x {self.n_tasks} tasks, {self.n_observed} "
                f"observed ({self.n_observed / max(self.scores.size, 1):.0%}), scale="
                f"{self.scale!r}, normalization={self.normalization.kind!r}, model factors={mf}, "
                f"task factors={tf})")

    # -- names ------------------------------------------------------------------------------
    def model_index(self, name: str) -> int:
        try:
            return self._index["models"][name]
        except KeyError:
            raise KeyError(f"unknown model {name!r}{did_you_mean(name, self.models)}") from None

    def task_index(self, name: str) -> int:
        try:
            return self._index["tasks"][name]
        except KeyError:
            raise KeyError(f"unknown task {name!r}{did_you_mean(name, self.tasks)}") from None

    # -- normalisation ----------------------------------------------------------------------
    @property
    def normalized(self) -> np.ndarray:
        """The score matrix in normalised units (``NaN`` where unobserved)."""
        mi, ti = np.indices(self.shape)
        return self.normalization.transform(self.scores, mi, ti)

    def normalize(self, values, model_idx, task_idx) -> np.ndarray:
        return self.normalization.transform(values, model_idx, task_idx)

    def denormalize(self, values, model_idx, task_idx) -> np.ndarray:
        return self.normalization.inverse(values, model_idx, task_idx)

    # -- conversion for JAX ------------------------------------------------------------------
    def observed(self) -> Observations:
        """Index arrays of the observed cells (row-major order) and their normalised scores."""
        mi, ti = np.nonzero(self.mask)
        values = self.normalize(self.scores[mi, ti], mi, ti)
        return Observations(mi.astype(np.int32), ti.astype(np.int32), values.astype(np.float32))

    def missing(self) -> tuple[np.ndarray, np.ndarray]:
        """Index arrays ``(model_idx, task_idx)`` of the unobserved cells (row-major order)."""
        mi, ti = np.nonzero(~self.mask)
        return mi.astype(np.int32), ti.astype(np.int32)

    def cells(self, models: Sequence[str], tasks: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Index arrays for cells given by name (``models[k]``, ``tasks[k]`` pairs)."""
        if len(models) != len(tasks):
            raise ValueError("models and tasks must have the same length")
        mi = np.array([self.model_index(m) for m in models], dtype=np.int32)
        ti = np.array([self.task_index(t) for t in tasks], dtype=np.int32)
        return mi, ti

    def sparse(self, min_scores: int = 3) -> tuple[list[str], list[str]]:
        """The models and the tasks with at least one but fewer than ``min_scores`` observed
        scores: their predictions lean on the priors and the design factors, so say so."""
        m, t = self.mask.sum(axis=1), self.mask.sum(axis=0)
        return ([self.models[i] for i in np.flatnonzero((m > 0) & (m < min_scores))],
                [self.tasks[j] for j in np.flatnonzero((t > 0) & (t < min_scores))])

    # -- derived matrices --------------------------------------------------------------------
    def with_scores(self, scores: np.ndarray) -> ScoreMatrix:
        """Same names, factors, scale and normalisation, other scores (used by the splits)."""
        return replace(self, scores=scores, _index=None)

    def renormalized(self, kind: NormKind | None) -> ScoreMatrix:
        """The same scores, names, factors and bounds, the normalisation refitted as ``kind``
        (chosen by the caller) and predicting in the same original units: what a model reads an
        automatic normalisation through (``ModelSpec.preferred_normalization``, decision 0024).
        Itself for None, its own kind, or a logit that changes nothing; only a ``task_minmax``
        table goes to ``task_logit``; a task without scores keeps the range it had (0029)."""
        if kind is None or kind == self.normalization.kind:
            return self
        if kind == "task_logit" and self.normalization.kind != "task_minmax":
            return self
        new = replace(self, normalization=kind, _index=None)
        if kind == "task_logit" and not np.any(new.normalization.logit):
            return self
        return replace(new, normalization=new.normalization.ranges_from(self.normalization))

    def add_scores(self, new) -> ScoreMatrix:
        """This matrix with newly observed scores: a long table ``model, task, score`` or a dict
        ``{(model, task): score}``; names, factors and normalisation kept (a refit then reads
        its scores on the same scale). A missing or non-finite score, an unknown name, or a
        cell already observed with another score is an error naming the row."""
        if not isinstance(new, dict):
            new = pd.DataFrame(new)
            if not {"model", "task", "score"} <= set(new.columns):
                raise DataError(f"new scores need columns model, task, score: {list(new)}")
        rows = (list(new.items()) if isinstance(new, dict) else
                [((r.model, r.task), r.score) for r in new.itertuples()])
        scores = np.array(self.scores)
        for (model, task), value in rows:
            i, j = self.model_index(str(model)), self.task_index(str(task))
            if not np.isfinite(float(value)):
                raise DataError(f"new score of {model!r} on {task!r} is {value!r}, not a number")
            if self.mask[i, j] and not np.isclose(scores[i, j], float(value)):
                raise DataError(f"{model!r} on {task!r} is already observed ({scores[i, j]:g});"
                                f" the new score {float(value):g} would replace it")
            check_new_score(self, i, j, float(value), model, task)
            scores[i, j] = float(value)
        return self.with_scores(scores)

    def extended(self, models=(), tasks=(), *, model_factors=None, task_factors=None,
                 task_info=None) -> ScoreMatrix:
        """With new models and tasks that have no score yet, predicted from their factors (a
        new task's range borrowed from the others): :func:`cppjax.data.extend.extended`."""
        return extended(self, models, tasks, model_factors, task_factors, task_info)

    def subset(self, models: Sequence[str] | None = None, tasks: Sequence[str] | None = None):
        """A sub-matrix on the named models and tasks (normalisation re-fitted on what remains)."""
        models = list(self.models if models is None else models)
        tasks = list(self.tasks if tasks is None else tasks)
        mi = [self.model_index(m) for m in models]
        ti = [self.task_index(t) for t in tasks]
        return ScoreMatrix(
            self.scores[np.ix_(mi, ti)], models, tasks,
            model_factors=self.model_factors.loc[models],
            task_factors=self.task_factors.loc[tasks],
            scale=self.scale,
            normalization="auto" if self.normalization.auto else self.normalization.kind,
            source=self.source,
            task_info=self.task_info.loc[tasks],
        )

    def to_long(self, dropna: bool = True) -> pd.DataFrame:
        """Long table ``model, task, score`` in original units."""
        mi, ti = np.indices(self.shape)
        df = pd.DataFrame(
            {
                "model": np.asarray(self.models, dtype=object)[mi.ravel()],
                "task": np.asarray(self.tasks, dtype=object)[ti.ravel()],
                "score": self.scores.ravel(),
            }
        )
        return df.dropna(subset=["score"]).reset_index(drop=True) if dropna else df

    def to_wide(self) -> pd.DataFrame:
        """Wide table, models as rows, in original units."""
        return pd.DataFrame(self.scores, index=pd.Index(self.models, name="model"),
                            columns=pd.Index(self.tasks, name="task"))

    # -- constructors ------------------------------------------------------------------------
    @classmethod
    def from_wide(
        cls,
        data: str | os.PathLike | pd.DataFrame,
        *,
        models_as: Literal["auto", "rows", "columns"] = "auto",
        scale: Scale | Literal["auto"] = "auto",
        normalization: NormKind | Literal["auto"] = "auto",
        task_info: pd.DataFrame | dict | None = None,
        model_factors: str | os.PathLike | pd.DataFrame | None = None,
        task_factors: str | os.PathLike | pd.DataFrame | None = None,
        on_mismatch: Literal["raise", "warn"] = "raise",
        drop_empty: bool = False,
        label_column: str | None = None,
        factor_columns: Sequence[str] = (),
        sep: str | None = None,
    ) -> ScoreMatrix:
        """Read a wide score table (CSV path or DataFrame).

        Args:
            data: a CSV path (a UTF-8 byte-order mark is handled; the first column holds the row
                names unless ``label_column`` names another) or a DataFrame (row names in its
                index unless ``label_column`` names a column).
            models_as: ``"rows"`` if each row is a model, ``"columns"`` if each column is one;
                ``"auto"`` (default): decided from the labels
                (:func:`cppjax.data.names.orientation`; models in columns is warned about,
                weak or contradictory evidence is a :class:`DataError` asking for it).
            scale: ``"percent"`` (0-100), ``"fraction"`` (0-1), ``"unbounded"``, ``"mixed"``
                (each task's bounds from its own scores: [0, 1], [0, 100] or none), or
                ``"auto"``: fraction if every score lies in [0, 1], percent if in [0, 100],
                else mixed; recorded in ``.scale`` and logged. Scores outside their task's
                bounds are errors.
            normalization: ``"task_minmax"`` (paper), ``"task_logit"`` (bounded tasks through a
                logit: predictions inside the bounds), ``"model_max"`` (official code),
                ``"none"``; ``"auto"``: ``task_logit`` for a mixed table, else ``task_minmax``.
            task_info: each task's ``lower``, ``upper``, ``higher_is_better``, ``chance``
                (a DataFrame indexed by task, or ``{task: {column: value}}``); see
                :mod:`cppjax.data.taskinfo`. Columns of these names in the task factor table
                count too.
            model_factors, task_factors: factor tables (path or DataFrame) with one row per name;
                see :func:`read_factors`. Names are matched exactly; mismatches raise
                :class:`FactorMismatchError` listing the closest names (``on_mismatch="warn"``
                warns instead and leaves the factors of unmatched names missing).
            drop_empty: a model or task with no observed score is an error unless this is True;
                then it is removed and its name kept in ``dropped_models`` / ``dropped_tasks``.
            factor_columns: columns of a models-as-rows table that hold model factors (family,
                size...) rather than scores; they become model factors.
            sep: the CSV delimiter; ``None`` (default) takes the first of ``, ; tab |`` that the
                header line holds. Files may be UTF-8 (with or without a byte-order mark) or
                UTF-16 with one.

        Missing cells may be blank, NaN, or a placeholder such as ``"-"`` or ``"n/a"``
        (see :data:`MISSING_TOKENS`). Any other non-numeric cell is an error naming its line and
        column.
        """
        table = read_table(data, label_column=label_column, sep=sep)
        if models_as == "auto":
            models_as = "rows" if factor_columns else orient(table)
        if factor_columns:
            if models_as != "rows":
                raise ValueError("factor_columns needs models_as='rows'")
            for c in factor_columns:
                if c not in table.col_labels:
                    raise DataError(
                        f"{table.source}: no column {c!r}{did_you_mean(c, table.col_labels)}"
                    )
            inline = table.frame[list(factor_columns)].copy()
            inline.index = table.row_labels
            inline = type_factor_columns(inline)
            if model_factors is not None:
                extra = (
                    model_factors
                    if isinstance(model_factors, pd.DataFrame)
                    else read_factors(model_factors)
                )
                inline = inline.join(type_factor_columns(extra), how="outer")
            model_factors = inline
            keep = [c for c in table.col_labels if c not in set(factor_columns)]
            table = Table(table.frame[keep], table.row_labels, keep, table.source, table.line_of)
        values = parse_numeric(table)
        if models_as == "columns":
            values = values.T
            row_kind, col_kind = "task", "model"
        elif models_as == "rows":
            row_kind, col_kind = "model", "task"
        else:
            raise ValueError(f"models_as must be 'rows' or 'columns'; got {models_as!r}")
        check_unique_labels(table.row_labels, row_kind, table)
        check_unique_labels(table.col_labels, col_kind, table, axis="column")
        if models_as == "columns":
            models, tasks = table.col_labels, table.row_labels
        else:
            models, tasks = table.row_labels, table.col_labels
        return cls._build(
            values,
            models,
            tasks,
            table.source,
            scale,
            normalization,
            model_factors,
            task_factors,
            on_mismatch,
            drop_empty,
            task_info,
        )

    @classmethod
    def from_long(
        cls,
        data: str | os.PathLike | pd.DataFrame,
        *,
        model: str = "model",
        task: str = "task",
        score: str = "score",
        scale: Scale | Literal["auto"] = "auto",
        normalization: NormKind | Literal["auto"] = "auto",
        task_info: pd.DataFrame | dict | None = None,
        model_factors: str | os.PathLike | pd.DataFrame | None = None,
        task_factors: str | os.PathLike | pd.DataFrame | None = None,
        on_mismatch: Literal["raise", "warn"] = "raise",
        sep: str | None = None,
    ) -> ScoreMatrix:
        """Read a long table with one row per (model, task) score.

        Rows whose score is missing (blank, NaN, placeholder) register the model and task without a
        score. A (model, task) pair given twice is an error naming both rows. Models and tasks
        appear in order of first occurrence.
        """
        table = read_table(data, label_column=None, sep=sep, long=True)
        df, source = table.frame, table.source
        for col in (model, task, score):
            if col not in df.columns:
                raise DataError(
                    f"{source}: no column {col!r}{did_you_mean(col, df.columns)}; columns are "
                    f"{list(df.columns)} (set model=, task=, score= to the right names)"
                )
        names = {}
        for col in (model, task):
            s = df[col].map(
                lambda v: (
                    "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v).strip()
                )
            )
            blank = s == ""
            if blank.any():
                r = int(np.flatnonzero(blank.to_numpy())[0])
                raise DataError(f"{source}: {table.where(r)} has an empty {col!r}")
            names[col] = s.to_numpy(dtype=object)
        vals = parse_numeric(
            Table(df[[score]], [str(x) for x in df.index], [score], source, table.line_of)
        )
        key = pd.Series(list(zip(names[model], names[task], strict=True)))
        dup = key.duplicated(keep=False)
        if dup.any():
            rows = np.flatnonzero(dup.to_numpy())
            first = key.iloc[rows[0]]
            same = [table.where(r) for r in rows if key.iloc[r] == first]
            raise DataError(
                f"{source}: model {first[0]!r} on task {first[1]!r} appears more than once "
                f"({', '.join(same)}); keep one score per pair"
            )
        models = list(dict.fromkeys(names[model]))
        tasks = list(dict.fromkeys(names[task]))
        mpos = {m: i for i, m in enumerate(models)}
        tpos = {t: j for j, t in enumerate(tasks)}
        mat = np.full((len(models), len(tasks)), np.nan)
        mi = np.array([mpos[m] for m in names[model]], dtype=int)
        ti = np.array([tpos[t] for t in names[task]], dtype=int)
        mat[mi, ti] = vals[:, 0]
        return cls._build(
            mat,
            models,
            tasks,
            source,
            scale,
            normalization,
            model_factors,
            task_factors,
            on_mismatch,
            drop_empty=False,
            task_info=task_info,
        )

    @classmethod
    def _build(
        cls,
        values,
        models,
        tasks,
        source,
        scale,
        normalization,
        model_factors,
        task_factors,
        on_mismatch,
        drop_empty,
        task_info=None,
    ):
        values = np.asarray(values, dtype=float)
        models, tasks = list(models), list(tasks)
        dropped_m, dropped_t = empty_rows_cols(values, models, tasks, source, drop_empty)
        if dropped_m or dropped_t:
            keep_m = [i for i, m in enumerate(models) if m not in set(dropped_m)]
            keep_t = [j for j, t in enumerate(tasks) if t not in set(dropped_t)]
            values = values[np.ix_(keep_m, keep_t)]
            models = [models[i] for i in keep_m]
            tasks = [tasks[j] for j in keep_t]
        if scale == "auto":
            scale = auto_scale(values, tasks, source)
        mf = join_factors(model_factors, models, "model", on_mismatch, source)
        tf = join_factors(task_factors, tasks, "task", on_mismatch, source)
        return cls(
            values,
            tuple(models),
            tuple(tasks),
            mf,
            tf,
            scale=scale,
            normalization=normalization,
            source=source,
            dropped_models=tuple(dropped_m),
            dropped_tasks=tuple(dropped_t),
            task_info=task_info,
        )


__all__ = ["MISSING_TOKENS", "SCALE_RANGE", "Normalization", "NormKind", "Observations",
           "Scale", "ScoreMatrix", "read_factors"]
