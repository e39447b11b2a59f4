"""A benchmark no model has a score on yet: every model's score on a task predicted from the
table without that task (its task factors given where the table has them), its range unseen.

    python benchmarks/new_task.py

Each task of a table is held out whole in turn: the training table is the table without it,
extended with the task and its factors (``ScoreMatrix.extended``), so the task's range is
borrowed from the other tasks (decision 0029) rather than read from the held-out scores, as the
CPP paper's new-task protocol (``cppjax.splits.new_task``, CPP-T0) does: from the tasks that
share the most task factors with it where any does (``--borrow all``: from every task), each
draw of a posterior through one of those tasks' ranges. Rows: ``pmf_svi``,
``bncf_svi``, ``ncf_factors`` (point), the baseline ``model_mean`` (each model's mean score over
its other tasks, the table's mean for a model with none: the table's units) and, as a
reference, ``ncf_factors (task's own range)`` (the paper's protocol: the held-out task's min-max
known). Tables: the CPP collaborative table
(72 x 29, task factors: ability, family, output format, shots; Zhang et al. 2024) and the OSL
base table (148 x 8, no task factors; Ruan et al. 2024). Errors in points of the task's range
(0-100), pooled over the tasks' cells; ``spearman``: the models' order on the task, mean over tasks;
coverage of the 90% interval pooled over cells; one seed per task (seed 0).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from common import RESULTS, fmt, write_results
from scipy import stats

import cppjax
from cppjax.data import matrix
from cppjax.datasets import load_cpp_crowdsource, load_obsscaling
from cppjax.splits import split_cells

METHODS = ("pmf_svi", "bncf_svi", "ncf_factors")


def held_out(sm, task):
    """The training table with ``task`` new (no score, its range borrowed), and the test cells."""
    sub = sm.subset(tasks=[t for t in sm.tasks if t != task])
    tf = sm.task_factors.loc[[task]] if sm.task_factors.shape[1] else None
    ext = sub.extended(tasks=[task], task_factors=tf,
                       task_info=sm.task_info.loc[[task], ["lower", "upper", "higher_is_better"]])
    rows = np.flatnonzero(sm.mask[:, sm.task_index(task)])
    mi = np.array([ext.model_index(sm.models[i]) for i in rows], np.int32)
    ti = np.full(mi.size, ext.n_tasks - 1, np.int32)
    return ext, (mi, ti), sm.scores[rows, sm.task_index(task)]


def score(draws, y, span):
    med = np.median(draws, axis=0)
    rec = {"err": 100 * (med - y) / span, "rho": stats.spearmanr(med, y).statistic}
    if draws.shape[0] > 1:
        lo, hi = np.quantile(draws, [0.05, 0.95], axis=0)
        rec["hit"] = (y >= lo) & (y <= hi)
        rec["width"] = 100 * (hi - lo) / span
    return rec


def run_table(name, sm, log, methods=METHODS, reference=True):
    parts = {}
    for task in sm.tasks:
        ext, cells, y = held_out(sm, task)
        info = sm.task_info.loc[task]
        span = float(info["upper"] - info["lower"]) if np.isfinite(info["upper"] - info[
            "lower"]) else float(np.ptp(y) or 1.0)
        for method in methods:
            t0 = time.perf_counter()
            post = cppjax.fit(method, ext, rng_key=0, progress=False)
            pred = post.predict(cells, rng_key=1)
            parts.setdefault(method, []).append(
                {**score(pred.draws, y, span), "secs": time.perf_counter() - t0})
        with np.errstate(all="ignore"):  # a model with no other score: the table's mean
            mean = np.nanmean(np.where(ext.mask, ext.scores, np.nan), axis=1)[cells[0]]
        mean = np.where(np.isfinite(mean), mean, np.nanmean(ext.scores))
        parts.setdefault("model_mean", []).append({**score(mean[None], y, span), "secs": 0.0})
        if not reference:
            continue
        # the paper's protocol, for reference: the held-out task's own range known (the
        # parent's min-max, which NCF reads the table through)
        j = sm.task_index(task)
        rows = np.flatnonzero(sm.mask[:, j])
        split = split_cells(sm, rows, np.full(rows.size, j), f"new_task({task})")
        post = cppjax.fit("ncf_factors", split.train, rng_key=0, progress=False)
        pred = post.predict((rows.astype(np.int32), np.full(rows.size, j, np.int32)), rng_key=1)
        parts.setdefault("ncf_factors (task's own range)", []).append(
            {**score(pred.draws, y, span), "secs": 0.0})
        log(f"{name} {task}: " + ", ".join(
            f"{m} {np.abs(p[-1]['err']).mean():.1f}" for m, p in parts.items()))
    out = {}
    for method, ps in parts.items():
        err = np.concatenate([p["err"] for p in ps])
        rec = {"mae": {"mean": float(np.abs(err).mean()), "std": 0.0, "n": len(ps)},
               "rmse": {"mean": float(np.sqrt((err ** 2).mean())), "std": 0.0, "n": len(ps)},
               "bias": {"mean": float(err.mean()), "std": 0.0, "n": len(ps)},
               "spearman": {"mean": float(np.nanmean([p["rho"] for p in ps])),
                            "std": float(np.nanstd([p["rho"] for p in ps])), "n": len(ps)}}
        if "hit" in ps[0]:
            rec["coverage_90"] = {"mean": float(np.concatenate([p["hit"] for p in ps]).mean()),
                                  "std": 0.0, "n": len(ps)}
            rec["width_90"] = {"mean": float(np.median(np.concatenate([p["width"] for p in ps]))),
                               "std": 0.0, "n": len(ps)}
        out[method] = rec
    return out


def markdown(groups):
    lines = ["# A new task: every model's score on a benchmark no model has a score on\n",
             "See `benchmarks/new_task.py`: each task held out whole, its range unseen (borrowed "
             "from the other tasks); `ncf_factors (task's own range)`: the CPP paper's "
             "protocol, the held-out task's min-max known (a leak a user does not have). "
             "Points of the task's range; `bias`: mean signed error; `spearman`: the models' "
             "order on the task (mean ± sd over tasks); `width_90`: median width of the 90% "
             "interval.\n"]
    for name, rows in groups.items():
        lines += [f"## {name}\n", "| method | MAE | RMSE | bias | spearman | coverage_90 | "
                  "width_90 |", "|---|---|---|---|---|---|---|"]
        for m, r in rows.items():
            lines.append(f"| {m} | " + " | ".join(fmt(r.get(k), 2) for k in (
                "mae", "rmse", "bias", "spearman", "coverage_90", "width_90")) + " |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tables", default="cpp,osl")
    p.add_argument("--borrow", choices=("similar", "all"), default="similar",
                   help="a new task's range from the tasks most like it (the default) or from "
                        "all tasks (pmf_svi and the baseline only)")
    p.add_argument("--merge", action="store_true", help="add to the existing results")
    p.add_argument("--out", default=str(RESULTS))
    a = p.parse_args(argv)
    out = Path(a.out)
    groups, previous = {}, []
    if a.merge and (out / "new_task.json").exists():
        old = json.loads((out / "new_task.json").read_text())
        groups, previous = old["groups"], [old["command"]]
    if a.borrow == "all":  # every task a donor: the table has no say in which tasks are alike
        matrix.similar_tasks = lambda *args: None

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    tables = {"cpp": ("cpp_crowdsource", load_cpp_crowdsource),
              "osl": ("obsscaling", load_obsscaling)}
    for key in a.tables.split(","):
        name, load = tables[key]
        if a.borrow == "all":
            groups[f"{name} (range from all tasks)"] = run_table(
                name, load(), log, methods=("pmf_svi",), reference=False)
        else:
            groups[name] = run_table(name, load(), log)
        write_results("new_task", "each task held out whole, its range unseen (see "
                      "benchmarks/new_task.py)", groups, markdown(groups), out, previous)


if __name__ == "__main__":
    main()
