"""Result files of EleutherAI's lm-evaluation-harness: one JSON per model (or checkpoint) and run.

Two layouts are read: the 0.3 one (``results[task][metric]``, ``metric_stderr``;
``config.model_args`` and ``config.num_fewshot``, as in the Pythia repository's ``evals/``) and the
0.4 one (``results[task]["metric,filter"]``, ``"metric_stderr,filter"``, ``n-shot`` per task,
``model_name``/``config.model_args``).

* **The model** is ``pretrained=`` of ``model_args`` (else ``model_name``, else the file's name),
  with ``@revision`` appended when a ``revision=`` is given (a checkpoint: ``...@step143000``).
* **The task** is the harness's task name; a task run at several shot counts in the files becomes
  one task per count (``"arc_easy (5-shot)"``).
* **One metric per task** by :data:`METRIC_ORDER` (the first the file reports: accuracy before
  its length-normalised variant, exact match, F1, ...; perplexity-like metrics only when nothing
  else is reported, read as lower-is-better and unbounded); ``metric={"task": "acc_norm"}``
  chooses another.
* **Standard errors** stay in the long table of :func:`read_harness` (``stderr``).

Errors name the file and the key that is missing or malformed.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import pandas as pd

from cppjax.errors import DataError

#: the metric kept for a task: the first of these the file reports
METRIC_ORDER = ("acc", "exact_match", "em", "f1", "mc2", "mc1", "acc_norm", "bleu", "rougeL",
                "rouge2", "rouge1", "chrf", "ter", "pct_stereotype", "likelihood_difference",
                "word_perplexity", "ppl", "perplexity", "byte_perplexity", "bits_per_byte")
#: metrics where lower is better, with no upper bound
LOWER_UNBOUNDED = ("ppl", "perplexity", "word_perplexity", "byte_perplexity", "bits_per_byte",
                   "likelihood_difference", "ter")
#: metrics on [0, 100]
PERCENT = ("bleu", "rougeL", "rouge2", "rouge1", "chrf")


def _files(paths) -> list[Path]:
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    out = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(p.rglob("*.json"))
            if not found:
                raise DataError(f"{p}: a folder with no .json result file")
            out.extend(found)
        elif p.exists():
            out.append(p)
        else:
            raise FileNotFoundError(f"{p}: no such file or folder")
    return out


def _model_name(doc: dict, path: Path) -> str:
    cfg = doc.get("config") or {}
    args = cfg.get("model_args") or ""
    if isinstance(args, dict):
        parts = {k: str(v) for k, v in args.items()}
    else:
        parts = dict(kv.split("=", 1) for kv in str(args).split(",") if "=" in kv)
    name = parts.get("pretrained") or doc.get("model_name") or path.stem
    rev = parts.get("revision")
    return f"{name}@{rev}" if rev and rev != "main" else name


def _shots(doc: dict, task: str, path: Path):
    nshot = doc.get("n-shot") or {}
    if task in nshot:
        return int(nshot[task])
    cfg = doc.get("config") or {}
    if "num_fewshot" in cfg and cfg["num_fewshot"] is not None:
        return int(cfg["num_fewshot"])
    return None


def read_harness(paths) -> pd.DataFrame:
    """Every reported metric of every result file: a long table ``model, task, shots, metric,
    value, stderr, file`` (``paths``: files, folders searched for ``*.json``, or a list)."""
    rows = []
    for path in _files(paths):
        try:
            doc = json.loads(path.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise DataError(f"{path}: not a JSON file ({e})") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("results"), dict):
            raise DataError(f"{path}: no 'results' object (an lm-evaluation-harness result file "
                            f"has results -> task -> metric)")
        model = _model_name(doc, path)
        for task, metrics in doc["results"].items():
            if not isinstance(metrics, dict):
                raise DataError(f"{path}: results[{task!r}] is not an object of metrics")
            for key, value in metrics.items():
                name, _, filt = key.partition(",")
                if name.endswith("_stderr") or name == "alias" or value in ("N/A", " ", None):
                    continue
                if not isinstance(value, (int, float)) or isinstance(value, bool):
                    raise DataError(f"{path}: results[{task!r}][{key!r}] is not a number: "
                                    f"{value!r}")
                err = metrics.get(f"{name}_stderr" + (f",{filt}" if filt else ""))
                err = float(err) if isinstance(err, (int, float)) else math.nan
                rows.append({"model": model, "task": task, "shots": _shots(doc, task, path),
                             "metric": name, "value": float(value), "stderr": err,
                             "file": str(path)})
    if not rows:
        raise DataError(f"no metric in {paths}")
    return pd.DataFrame(rows)


def _choose(metrics: set, task: str, metric: dict) -> str:
    if task in metric:
        if metric[task] not in metrics:
            raise DataError(f"metric={{{task!r}: {metric[task]!r}}}: the files report "
                            f"{sorted(metrics)} for {task!r}")
        return metric[task]
    for m in METRIC_ORDER:
        if m in metrics:
            return m
    return sorted(metrics)[0]


def from_harness(cls, paths, *, metric: dict | None = None, **kwargs):
    """A :class:`ScoreMatrix` from lm-evaluation-harness result files (see the module
    docstring), e.g. ``ScoreMatrix.from_harness("results/")``; ``kwargs`` go to
    :meth:`ScoreMatrix.from_long` (``model_factors=`` ...)."""
    metric = dict(metric or {})
    long = read_harness(paths)
    multi = long.groupby("task")["shots"].nunique() > 1
    long["name"] = [f"{t} ({s}-shot)" if multi.get(t, False) and s is not None else t
                    for t, s in zip(long["task"], long["shots"], strict=True)]
    keep, info = [], {}
    for name, rows in long.groupby("name", sort=False):
        task = rows["task"].iloc[0]
        chosen = _choose(set(rows["metric"]), task, metric)
        rows = rows[rows["metric"] == chosen]
        dup = rows[rows.duplicated("model", keep=False)]
        if not dup.empty:
            raise DataError(f"{name!r}: model {dup['model'].iloc[0]!r} is reported twice "
                            f"({', '.join(dup['file'].unique()[:2])})")
        keep.append(rows)
        base = re.sub(r"_(norm|stderr)$", "", chosen)
        if chosen in LOWER_UNBOUNDED:
            info[name] = {"lower": 0.0, "upper": math.inf, "higher_is_better": False}
        elif base in PERCENT:
            info[name] = {"lower": 0.0, "upper": 100.0, "higher_is_better": True}
        else:
            # a rate; a higher share of stereotyped completions is worse
            info[name] = {"lower": 0.0, "upper": 1.0,
                          "higher_is_better": chosen != "pct_stereotype"}
    table = pd.concat(keep)[["model", "name", "value"]]
    table = table.rename(columns={"name": "task", "value": "score"})
    kwargs.setdefault("scale", "mixed")
    kwargs["task_info"] = {**info, **(kwargs.get("task_info") or {})}
    return cls.from_long(table, **kwargs)
