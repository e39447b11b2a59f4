"""Model and task factor tables: reading them, typing their columns, aligning them to names."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from typing import Literal

import pandas as pd

from cppjax.data.tables import (
    MAX_LISTED,
    check_unique_labels,
    is_missing,
    read_table,
    to_float,
)
from cppjax.errors import CppjaxWarning, DataError, FactorMismatchError, did_you_mean


# ---------------------------------------------------------------------------------------------
# Factor tables
# ---------------------------------------------------------------------------------------------
def read_factors(
    data: str | os.PathLike | pd.DataFrame,
    *,
    names_as: Literal["rows", "columns"] = "rows",
    name_column: str | None = None,
    categorical: Sequence[str] = (),
    sep: str | None = None,
) -> pd.DataFrame:
    """Read a factor table into a DataFrame indexed by model (or task) name.

    Each column becomes numeric (``float``) if every non-missing value is a number, otherwise
    categorical (strings); ``categorical`` forces columns to categorical (e.g. a context window
    that should be embedded rather than scaled). Missing values stay missing (``NaN`` / ``None``),
    never 0. ``names_as="columns"`` reads tables with one column per name and one row per factor
    (as the CPP paper's ``benchmark_feature.csv``).
    """
    table = read_table(data, label_column=name_column, sep=sep)
    df = table.frame.copy()
    df.columns = table.col_labels
    df.index = table.row_labels
    if names_as == "columns":
        check_unique_labels(table.col_labels, "name", table, axis="column")
        df = df.T
    elif names_as != "rows":
        raise ValueError(f"names_as must be 'rows' or 'columns'; got {names_as!r}")
    else:
        check_unique_labels(table.row_labels, "name", table)
    df.index = pd.Index([str(i).strip() for i in df.index], name="name")
    return type_factor_columns(df, categorical)


def type_factor_columns(df: pd.DataFrame, categorical: Sequence[str] = ()) -> pd.DataFrame:
    out = {}
    for col in df.columns:
        values = df[col].tolist()
        floats = [to_float(v) for v in values]
        if col not in categorical and all(f is not None for f in floats):
            out[col] = pd.Series(floats, index=df.index, dtype=float)
        else:
            out[col] = pd.Series(
                [None if is_missing(v) else str(v).strip() for v in values],
                index=df.index,
                dtype=object,
            )
    return pd.DataFrame(out, index=df.index)


def factor_frame(df, names, kind) -> pd.DataFrame:
    if df is None:
        return pd.DataFrame(index=pd.Index(list(names), name=kind))
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"{kind}_factors must be a DataFrame indexed by {kind} name")
    if list(df.index) != list(names):
        missing = [n for n in names if n not in set(df.index)]
        if missing:
            raise FactorMismatchError(f"{kind} factors have no row for {missing[:MAX_LISTED]}")
        df = df.loc[list(names)]
    df = df.copy()
    df.index = pd.Index(list(names), name=kind)
    return df


def join_factors(factors, names, kind, on_mismatch, source) -> pd.DataFrame | None:
    if factors is None:
        return None
    if not isinstance(factors, pd.DataFrame):
        factors = read_factors(factors)
    elif not all(isinstance(i, str) for i in factors.index):
        raise DataError(f"{kind} factors must be indexed by {kind} name (strings)")
    else:
        factors = type_factor_columns(factors)
    fsrc = getattr(factors, "attrs", {}).get("source", f"{kind} factor table")
    idx = [str(i) for i in factors.index]
    if len(set(idx)) != len(idx):
        dup = pd.Series(idx)[pd.Series(idx).duplicated()].iloc[0]
        raise DataError(f"{fsrc}: duplicate {kind} name {dup!r}")
    have = set(idx)
    want = set(names)
    no_factors = [n for n in names if n not in have]
    no_scores = [n for n in idx if n not in want]
    if no_factors or no_scores:
        lines = []
        for n in no_factors:
            lines.append(
                f"  {kind} {n!r} (scores) has no factor row{did_you_mean(n, no_scores or idx)}"
            )
        for n in no_scores:
            lines.append(
                f"  factor row {n!r} matches no {kind} of {source}"
                f"{did_you_mean(n, no_factors or names)}"
            )
        msg = (
            f"{kind} names of the factor table and of the scores differ:\n"
            + "\n".join(lines)
            + "\nRename them so they match (e.g. factors.rename(index={...}))."
        )
        if on_mismatch == "raise":
            raise FactorMismatchError(msg)
        warnings.warn(
            msg + f"\nFactors of unmatched {kind}s are left missing.", CppjaxWarning, stacklevel=4
        )
    aligned = factors.reindex(list(names))
    aligned.index.name = kind
    aligned.attrs["unmatched"] = tuple(no_scores)
    return aligned

