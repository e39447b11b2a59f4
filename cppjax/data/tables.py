"""Reading score and factor tables from files or DataFrames, and locating what is wrong in them.

Every error names the file (or ``DataFrame``), the line or row, and the column at fault.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cppjax.errors import DataError, did_you_mean

#: Cell contents read as "not reported" (compared after stripping, case-insensitively).
MISSING_TOKENS = frozenset(
    {"", "-", "--", "\u2013", "\u2014", "na", "n/a", "nan", "null", "none", "?"}
)
SCALE_RANGE = {"percent": (0.0, 100.0), "fraction": (0.0, 1.0), "unbounded": (-math.inf, math.inf),
               "mixed": (-math.inf, math.inf)}  # mixed: each task's own (cppjax.data.taskinfo)
MAX_LISTED = 8

# ---------------------------------------------------------------------------------------------
# Reading tables
# ---------------------------------------------------------------------------------------------
@dataclass
class Table:
    frame: pd.DataFrame  # values as given (strings for CSV), columns = col labels
    row_labels: list[str]
    col_labels: list[str]
    source: str
    line_of: list[int] | None  # file line of each data row (1-based), None for a DataFrame

    def where(self, r: int) -> str:
        if self.line_of is not None:
            return f"line {self.line_of[r]}"
        return f"row {self.row_labels[r]!r}" if self.row_labels else f"row {r}"


#: delimiters tried, in this order, when none is given: the first one the header line holds
DELIMITERS = (",", ";", "\t", "|")


def read_text(path: Path) -> str:
    """A text file's contents: UTF-8 (with or without a byte-order mark) or UTF-16 (with one);
    anything else is an error naming the file and what it looks like."""
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    raw = path.read_bytes()
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16")
    if raw.startswith(b"PK\x03\x04"):
        raise DataError(f"{path}: this is a zip archive (an Excel .xlsx workbook?), not a CSV "
                        f"table: save it as CSV, or read it with pandas.read_excel and pass the "
                        f"DataFrame")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise DataError(f"{path}: line {line} is not UTF-8 text (byte {e.start}); save the "
                        f"table as UTF-8 (or UTF-16 with a byte-order mark)") from None


def sniff_delimiter(text: str) -> str:
    """The delimiter of a CSV text: the first of :data:`DELIMITERS` its first non-empty line
    holds (``","`` if none)."""
    first = next((line for line in text.splitlines() if line.strip()), "")
    return next((d for d in DELIMITERS if d in first), ",")


def read_csv_rows(path: Path, sep: str | None) -> tuple[list[str], list[list[str]], list[int]]:
    import io

    text = read_text(path)
    sep = sniff_delimiter(text) if sep is None else sep
    with io.StringIO(text, newline="") as fh:
        reader = csv.reader(fh, delimiter=sep)
        header: list[str] | None = None
        rows, lines = [], []
        for rec in reader:
            if not rec or all(not c.strip() for c in rec):
                continue
            if header is None:
                header = [c.strip() for c in rec]
                continue
            if len(rec) > len(header):
                extra = rec[len(header) :]
                if any(c.strip() for c in extra):
                    raise DataError(
                        f"{path}: line {reader.line_num} has {len(rec)} fields but the header "
                        f"has {len(header)}"
                    )
                rec = rec[: len(header)]
            rows.append(rec + [""] * (len(header) - len(rec)))
            lines.append(reader.line_num)
    if header is None:
        raise DataError(f"{path}: the file is empty")
    return header, rows, lines


def is_workbook(path: Path) -> bool:
    """An Excel workbook, by its name or (a renamed one) by its zip signature."""
    if path.suffix.lower() in (".xlsx", ".xlsm", ".xls"):
        return True
    with open(path, "rb") if path.is_file() else open(os.devnull, "rb") as fh:
        return fh.read(4) == b"PK\x03\x04"


def read_excel_rows(path: Path, sep=None):
    """The first sheet of an Excel workbook as (header, rows, line numbers), read by pandas
    (its optional dependency ``openpyxl``: ``pip install "cppjax[excel]"``)."""
    del sep  # a workbook has cells, not delimiters
    try:
        df = pd.read_excel(path, header=None, dtype=object)
    except ImportError as e:
        raise DataError(f"{path}: an Excel workbook; reading it needs openpyxl: pip install "
                        f"openpyxl (or \"cppjax[excel]\"), or save the sheet as CSV") from e
    except Exception as e:  # noqa: BLE001 - pandas/openpyxl raise many types for a bad file
        raise DataError(f"{path}: neither a CSV table nor a readable Excel workbook "
                        f"({type(e).__name__}: {e})") from None
    cells = [["" if v is None or (isinstance(v, float) and v != v) else str(v) for v in row]
             for row in df.itertuples(index=False)]
    if not cells:
        raise DataError(f"{path}: the workbook's first sheet is empty")
    return cells[0], cells[1:], list(range(2, len(cells) + 1))


def read_table(data, *, label_column, sep, long=False) -> Table:
    if isinstance(data, pd.DataFrame):
        df = data.copy()
        source = "DataFrame"
        lines = None
        if long:
            df = df.reset_index(drop=True)
            return Table(
                df, [str(i) for i in range(len(df))], [str(c) for c in df.columns], source, None
            )
        if label_column is not None:
            if label_column not in df.columns:
                raise DataError(f"DataFrame has no column {label_column!r}")
            df = df.set_index(label_column)
        row_labels = [str(x).strip() for x in df.index]
    else:
        if not isinstance(data, (str, os.PathLike)):
            raise DataError(f"a score table is a CSV/Excel path or a pandas DataFrame, not a "
                            f"{type(data).__name__}; for an array use ScoreMatrix(scores, "
                            f"models, tasks) or pd.DataFrame(array, index=models, "
                            f"columns=tasks)")
        path = Path(data)
        if path.is_dir():
            raise DataError(f"{path} is a folder; give a CSV or Excel file (a folder of "
                            f"lm-evaluation-harness JSON results: ScoreMatrix.from_harness)")
        source = str(path)
        reader = read_excel_rows if is_workbook(path) else read_csv_rows
        header, rows, lines = reader(path, sep)
        if long:
            df = pd.DataFrame(rows, columns=header, dtype=object)
            return Table(df, [str(i) for i in range(len(df))], header, source, lines)
        col = 0 if label_column is None else header_pos(header, label_column, source)
        row_labels = [r[col].strip() for r in rows]
        cols = [c for k, c in enumerate(header) if k != col]
        df = pd.DataFrame(
            [[v for k, v in enumerate(r) if k != col] for r in rows], columns=cols, dtype=object
        )
        for r, lab in enumerate(row_labels):
            if not lab:
                raise DataError(f"{source}: line {lines[r]} has no name in its first column")
    col_labels = [str(c).strip() for c in df.columns]
    for k, c in enumerate(col_labels):
        if not c or c.lower().startswith("unnamed:"):
            raise DataError(f"{source}: column {k + 1} of the header has no name")
    return Table(df, row_labels, col_labels, source, lines)


def header_pos(header, name, source) -> int:
    if name not in header:
        raise DataError(f"{source}: no column {name!r}{did_you_mean(name, header)}")
    return header.index(name)


def is_missing(v) -> bool:
    if v is None:
        return True
    if isinstance(v, float) and math.isnan(v):
        return True
    if isinstance(v, str) and v.strip().lower() in MISSING_TOKENS:
        return True
    return v is pd.NA or v is pd.NaT


def to_float(v) -> float | None:
    """A cell as a float, NaN if missing, None if it is not a number."""
    if is_missing(v):
        return math.nan
    if isinstance(v, bool | np.bool_):
        return None
    if isinstance(v, int | float | np.integer | np.floating):
        return float(v)
    try:
        return float(str(v).strip().replace("\u2212", "-"))
    except ValueError:
        return None


def parse_numeric(table: Table) -> np.ndarray:
    raw = table.frame.to_numpy(dtype=object)
    out = np.empty(raw.shape, dtype=float)
    bad = []
    for r in range(raw.shape[0]):
        for c in range(raw.shape[1]):
            f = to_float(raw[r, c])
            if f is None:
                bad.append((r, c))
                out[r, c] = np.nan
            else:
                out[r, c] = f
    if bad:
        listed = "; ".join(
            f"{cell_where(table, r, c)}: {raw[r, c]!r}" for r, c in bad[:MAX_LISTED]
        )
        more = f" (and {len(bad) - MAX_LISTED} more)" if len(bad) > MAX_LISTED else ""
        raise DataError(
            f"{table.source}: {len(bad)} non-numeric score cell(s): {listed}{more}. Use a number, "
            f"or leave the cell blank / '-' if the score is not reported"
        )
    if np.isinf(out).any():
        r, c = np.argwhere(np.isinf(out))[0]
        raise DataError(f"{table.source}: {cell_where(table, r, c)}: infinite score")
    return out


def cell_where(table: Table, r: int, c: int) -> str:
    row = table.where(r)
    if table.line_of is not None and table.row_labels:
        row += f" ({table.row_labels[r]!r})"
    return f"{row}, column {table.col_labels[c]!r}"


def check_unique_labels(labels, kind, table: Table, axis="row"):
    seen: dict[str, int] = {}
    for k, lab in enumerate(labels):
        if lab in seen:
            if axis == "row":
                where = f"{table.where(seen[lab])} and {table.where(k)}"
            else:
                where = (
                    f"columns {seen[lab] + 2} and {k + 2}"
                    if table.line_of
                    else f"columns {seen[lab]} and {k}"
                )
            raise DataError(f"{table.source}: duplicate {kind} name {lab!r} ({where})")
        seen[lab] = k


def check_unique(names, kind, source):
    seen = set()
    for n in names:
        if n in seen:
            raise DataError(f"{source}: duplicate {kind} name {n!r}")
        seen.add(n)


def empty_rows_cols(values, models, tasks, source, drop_empty):
    obs = ~np.isnan(values)
    empty_m = [models[i] for i in np.flatnonzero(~obs.any(axis=1))]
    empty_t = [tasks[j] for j in np.flatnonzero(~obs.any(axis=0))]
    if (empty_m or empty_t) and not drop_empty:
        parts = []
        if empty_m:
            parts.append(f"model(s) with no observed score: {empty_m}")
        if empty_t:
            parts.append(f"task(s) with no observed score: {empty_t}")
        raise DataError(
            f"{source}: {'; '.join(parts)}. Remove them, or pass drop_empty=True (on the "
            f"command line: --drop-empty) to drop them (their names are kept in "
            f".dropped_models / .dropped_tasks); to predict them from their factors, add them "
            f"to the table read without them with ScoreMatrix.extended(...)"
        )
    if empty_m and len(empty_m) == len(models) or empty_t and len(empty_t) == len(tasks):
        raise DataError(f"{source}: no observed score at all")
    return empty_m, empty_t


