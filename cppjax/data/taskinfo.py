"""What each task's scores mean: their bounds, their direction and their chance level.

A real leaderboard mixes metrics: accuracies in [0, 1], percentages, calibration errors and
bits-per-byte (lower is better), differences that may be negative. Each task of a
:class:`~cppjax.ScoreMatrix` therefore carries a row of ``task_info`` (a DataFrame indexed by
task):

* ``lower``, ``upper``: the bounds its scores cannot leave (``-inf`` / ``inf``: none);
* ``higher_is_better``: False for error rates, perplexities, bits-per-byte... (ranks: 1 = best);
* ``chance``: the score of random guessing where known (NaN otherwise).

The defaults come from the table's ``scale`` (percent: [0, 100], fraction: [0, 1], unbounded);
``scale="mixed"`` decides each task's bounds from its name and its own scores
(:func:`cppjax.data.names.metric_kind`: rating scales, BLEU/ROUGE, signed differences, rates,
percents); a task whose name says lower is better (bits per byte, perplexity, loss, error, ECE,
toxicity, bias, ...: :data:`cppjax.data.names.LOWER_IS_BETTER`) is ranked lowest first on any
scale. Anything
given explicitly (a ``task_info`` table or dict, the task table's columns of these names, the
CLI's ``--task-info`` and ``--lower-is-better``) overrides them, task by task.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd

from cppjax.data.names import metric_kind, named_direction
from cppjax.errors import DataError, did_you_mean

log = logging.getLogger("cppjax.data.matrix")  # the reader's messages, one logger

COLUMNS = ("lower", "upper", "higher_is_better", "chance")
UNIT_BOUNDS = {"percent": (0.0, 100.0), "fraction": (0.0, 1.0),
               "unbounded": (-math.inf, math.inf)}
_TRUE = {"true", "1", "yes", "higher", "y", "t"}
_FALSE = {"false", "0", "no", "lower", "n", "f"}


def _bool(v, task, source) -> bool:
    if isinstance(v, bool | np.bool_):
        return bool(v)
    s = str(v).strip().lower()
    if s in _TRUE:
        return True
    if s in _FALSE:
        return False
    raise DataError(f"{source}: task {task!r}: higher_is_better must be true or false; got {v!r}")


def _float(v, task, col, source) -> float:
    if v is None or (isinstance(v, str) and v.strip() in ("", "-", "nan", "NaN")):
        return {"lower": -math.inf, "upper": math.inf}.get(col, math.nan)
    try:
        return float(v)
    except (TypeError, ValueError):
        raise DataError(f"{source}: task {task!r}: {col} must be a number; got {v!r}") from None


def given_info(info, tasks, source: str) -> pd.DataFrame:
    """``info`` (a DataFrame indexed by task, or a dict ``{task: {column: value}}``) checked:
    known tasks and columns only; an empty frame for None."""
    if info is None:
        return pd.DataFrame(index=pd.Index([], name="task"))
    if isinstance(info, dict):
        info = pd.DataFrame.from_dict(info, orient="index")
    if not isinstance(info, pd.DataFrame):
        raise TypeError(f"task_info must be a DataFrame or a dict; got {type(info).__name__}")
    bad_cols = [c for c in info.columns if c not in COLUMNS]
    if bad_cols:
        raise DataError(f"{source}: unknown task_info column(s) {bad_cols}; the columns are "
                        f"{list(COLUMNS)}")
    unknown = [t for t in info.index if str(t) not in set(tasks)]
    if unknown:
        raise DataError(f"{source}: task_info names task(s) not in the table: {unknown[:5]}"
                        f"{did_you_mean(str(unknown[0]), tasks)}")
    out = info.copy()
    out.index = [str(t) for t in out.index]
    return out


def task_info_frame(scores: np.ndarray, tasks, scale: str, info, source: str) -> pd.DataFrame:
    """The full ``task_info`` of a table: defaults from ``scale`` (per task for ``"mixed"``),
    overridden by ``info``; checked (``lower < upper``, chance within the bounds)."""
    given = given_info(info, tasks, source)
    rows = []
    for j, t in enumerate(tasks):
        if scale == "mixed":  # each task's bounds and direction from its name and scores
            k = metric_kind(t, scores[:, j])
            lo, hi, hib = k.lower, k.upper, k.higher_is_better
        else:  # the table's bounds; the direction from the name (an error rate, a loss)
            lo, hi = UNIT_BOUNDS[scale]
            hib = named_direction(t)[0]
        row = {"lower": lo, "upper": hi, "higher_is_better": hib, "chance": math.nan}
        if t in given.index:
            for c, v in given.loc[t].items():
                if v is None or (isinstance(v, float) and math.isnan(v)) or (
                        isinstance(v, str) and not v.strip()):
                    continue  # a column left blank for this task: its default
                row[c] = _bool(v, t, source) if c == "higher_is_better" else _float(v, t, c,
                                                                                   source)
        if not row["lower"] < row["upper"]:
            raise DataError(f"{source}: task {t!r}: lower ({row['lower']:g}) must be below "
                            f"upper ({row['upper']:g})")
        if not math.isnan(row["chance"]) and not row["lower"] <= row["chance"] <= row["upper"]:
            raise DataError(f"{source}: task {t!r}: chance {row['chance']:g} outside its bounds "
                            f"[{row['lower']:g}, {row['upper']:g}]")
        rows.append(row)
    frame = pd.DataFrame(rows, index=pd.Index(list(tasks), name="task"), columns=list(COLUMNS))
    return frame.astype({"lower": float, "upper": float, "higher_is_better": bool,
                         "chance": float})


def check_task_range(scores, models, tasks, info: pd.DataFrame, scale: str, source: str,
                     listed: int = 5) -> None:
    """Every observed score within its task's bounds, or an error naming the cells."""
    lo = info["lower"].to_numpy()[None, :]
    hi = info["upper"].to_numpy()[None, :]
    obs = scores[~np.isnan(scores)]
    if scale == "percent" and obs.size >= 5 and obs.min() >= 0 and obs.max() <= 1:
        raise DataError(f"{source}: scale='percent' but every one of the {obs.size} scores lies "
                        f"in [0, 1]: fractions read as percent would print 0.53 as 0.53%; pass "
                        f"scale='fraction' (--scale fraction) or 'auto'")
    with np.errstate(invalid="ignore"):
        out = (scores < lo) | (scores > hi)
    if not out.any():
        return
    cells = np.argwhere(out)
    text = "; ".join(f"model {models[i]!r}, task {tasks[j]!r}: {scores[i, j]:g}"
                     + ("" if scale in UNIT_BOUNDS else f" (bounds [{lo[0, j]:g}, {hi[0, j]:g}])")
                     for i, j in cells[:listed])
    hint = ""
    if scale == "fraction" and np.nanmax(scores) <= 100 and np.nanmin(scores) >= 0:
        hint = " Scores look like percentages: pass scale='percent' (--scale percent)."
    elif scale in UNIT_BOUNDS:
        hint = (" A table mixing metrics: pass scale='mixed' (--scale mixed; bounds decided "
                "per task) or give each task's bounds (task_info=, --task-info FILE).")
    where = (f"the {scale} scale [{UNIT_BOUNDS[scale][0]:g}, {UNIT_BOUNDS[scale][1]:g}]"
             if scale in UNIT_BOUNDS else "their task's bounds")
    raise DataError(f"{source}: {len(cells)} score(s) outside {where}: {text}.{hint}")


def split_task_info(task_factors: pd.DataFrame | None):
    """A task table's columns named like ``task_info``'s taken out of the design factors:
    ``(factors, info or None)``."""
    if task_factors is None:
        return None, None
    cols = [c for c in task_factors.columns if c in COLUMNS]
    if not cols:
        return task_factors, None
    return task_factors.drop(columns=cols), task_factors[cols]


def check_new_score(sm, i: int, j: int, value: float, model, task) -> None:
    """A new score outside its task's bounds is an error; a score of at most 1 on a percent
    task whose scores are otherwise well above it is most likely a fraction: warn."""
    import warnings

    from cppjax.errors import CppjaxWarning

    info = sm.task_info.iloc[j]
    lo, hi = float(info["lower"]), float(info["upper"])
    if value < lo or value > hi:
        raise DataError(f"new score of {model!r} on {task!r} is {value:g}, outside the task's "
                        f"bounds [{lo:g}, {hi:g}]")
    col = sm.scores[:, j][sm.mask[:, j]]
    if hi == 100.0 and 0.0 < value <= 1.0 and col.size and np.median(col) > 5.0:
        warnings.warn(f"new score of {model!r} on {task!r} is {value:g} on a percent task "
                      f"(median {np.median(col):.3g}): a fraction? Give {value * 100:g} for "
                      f"{value:.0%}", CppjaxWarning, stacklevel=3)


def auto_scale(values, tasks, source) -> str:
    """One scale for the table where its scores and task names allow (fraction if all lie in
    [0, 1], else percent if all lie in [0, 100], and no task's name says otherwise: a rating,
    bits per byte, a signed difference), else ``"mixed"``: each task's bounds from its name and
    scores (:func:`cppjax.data.names.metric_kind`); the decision is logged."""
    kinds = [metric_kind(t, values[:, j]) for j, t in enumerate(tasks)]
    plain = all(k.kind in ("rate", "percent", "unknown") or k.kind.startswith("text overlap")
                for k in kinds)
    obs = values[~np.isnan(values)]
    # a 0-100 metric by its name (BLEU, ROUGE) beside tasks whose every score lies in [0, 1]:
    # fractions and a 0-100 column, not one percent table (accuracies in [0, 1] were read as
    # percents beside a BLEU column, their intervals up to 5.97; decision 0027)
    named = np.array([k.kind == "text overlap (0-100)" for k in kinds], bool)
    rest = values[:, ~named]
    rest = rest[~np.isnan(rest)]
    if named.any() and rest.size and rest.min() >= 0 and rest.max() <= 1 and obs.max() > 1:
        plain = False
    if plain and obs.size and obs.min() >= 0 and obs.max() <= 100:
        scale = "percent" if obs.max() > 1.0 else "fraction"
        log.info("%s: scores read as %s (scale='auto'; pass scale= to fix it)", source, scale)
        return scale
    log.info("%s: a mixed table (scale='auto'): per task %s", source,
             ", ".join(f"{t}: {k.kind} ({k.rule})" for t, k in zip(tasks, kinds, strict=True)))
    return "mixed"
