"""Clustering on difficulty against the task-level laws: a large model's task accuracy from
smaller (or earlier) models' per-item results.

    python benchmarks/cod.py                 # synthetic seeds and Pythia arithmetic
    python benchmarks/cod.py --quick --out cod-smoke

Groups of the JSON (metrics on the target cells: ``mae`` in accuracy points, ``coverage_90``,
``width_90`` in points, ``fit_seconds``):

* ``synthetic``: ``synthetic_items`` (one family, 10 sizes over 1e20-1e24 FLOPs, 300 items in
  3 difficulty clumps, 15% irregular items), the largest model predicted from the 9 others,
  ``--seeds`` seeds; truth = the expected accuracy (mean of the true pass probabilities);
  COD with the three clusterings beside the task-level law and sigmoid;
* ``pythia/sizes``: Pythia v0 arithmetic (10 tasks), the 6.9B and 12B final checkpoints from
  every checkpoint of the sizes up to 2.8B;
* ``pythia/series``: each size's final checkpoint from every model of less compute;
* ``pythia/gap_<g>``: the 12B final checkpoint from the models with at most 1/g of its compute.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from common import RESULTS, fmt, summarise, write_results

from cppjax import cod
from cppjax.datasets import load_pythia_arithmetic, synthetic_items

METHODS = {"cod": ("cod", "meanshift"), "cod_kmeans": ("cod", "kmeans"),
           "cod_irt": ("cod", "irt"), "task_law": ("task_law", "meanshift"),
           "task_sigmoid": ("task_sigmoid", "meanshift")}


def run(data, targets, truth, method, settings, seed):
    """Errors (points), coverage and widths of ``method`` on every (target, task) cell."""
    kind, clustering = METHODS[method]
    s = cod.COD(**{**settings, "clustering": clustering})
    t0 = time.perf_counter()
    post = cod.fit(data, targets=targets, rng_key=seed, method=kind, settings=s)
    pred = post.predict("missing", rng_key=seed + 1)
    secs = time.perf_counter() - t0
    lo, hi = pred.interval(0.9)
    y = np.array([truth(pred.matrix.models[i], pred.matrix.tasks[j])
                  for i, j in zip(pred.model_idx, pred.task_idx, strict=True)])
    return {"err": (100 * (pred.mean() - y)).tolist(),
            "covered": ((y >= lo) & (y <= hi)).astype(float).tolist(),
            "width": (100 * (hi - lo)).tolist(), "seconds": secs}


def pool(recs):
    err = [e for r in recs for e in r["err"]]
    return {"mae": summarise(np.abs(err)), "bias": summarise(err),
            "coverage_90": summarise([c for r in recs for c in r["covered"]]),
            "width_90": summarise([w for r in recs for w in r["width"]]),
            "fit_seconds": summarise([r["seconds"] for r in recs])}


def table(title, group: dict) -> list[str]:
    md = [f"\n### {title}\n", "| method | MAE (points) | bias | 90% coverage | 90% width | "
          "fit s |", "|---|---|---|---|---|---|"]
    for m, g in group.items():
        md.append(f"| {m} | {fmt(g['mae'], 2)} | {fmt(g['bias'], 2)} | "
                  f"{fmt(g['coverage_90'], 2)} | {fmt(g['width_90'], 1)} | "
                  f"{g['fit_seconds']['mean']:.0f} |")
    return md


TITLES = {
    "synthetic": "synthetic (the largest of 10 sizes from the 9 others; n = seeds x 1 cell)",
    "pythia/sizes": "Pythia arithmetic: 6.9B and 12B final checkpoints from sizes up to 2.8B "
                    "(20 cells)",
    "pythia/series": "Pythia arithmetic: each size's final checkpoint (1B to 12B) from every "
                     "model of less compute",
}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--parts", default="synthetic,sizes,series,gap",
                   help="which protocols (each can run in its own process with --merge: NUTS "
                   "programs of many fits in one process use up the memory maps)")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--merge", action="store_true")
    p.add_argument("--out", default=None)
    a = p.parse_args(argv)
    out_dir = RESULTS if a.out is None else __import__("pathlib").Path(a.out)
    settings = {"num_warmup": 300, "num_samples": 300}
    methods = a.methods.split(",")
    parts = a.parts.split(",")
    if a.quick:
        settings, a.seeds = {"num_warmup": 50, "num_samples": 50}, 1
    groups, commands = {}, []
    jp = out_dir / "cod.json"
    if a.merge and jp.exists():
        old = json.loads(jp.read_text())
        groups, commands = old["groups"], [old["command"]]
    if "synthetic" in parts:
        recs = {m: [] for m in methods}
        for seed in range(a.seeds):
            s = synthetic_items(seed, n_items=300, sizes=10, n_families=1)
            target = [m for m in s.data.models if m.endswith("-9")]
            for m in methods:
                recs[m].append(run(s.data, target, lambda mm, t, s=s: s.task_truth.loc[mm, t],
                                   m, settings, seed))
            print(f"synthetic seed {seed}: " + ", ".join(
                f"{m} {recs[m][-1]['err'][0]:+.1f}" for m in methods), flush=True)
        groups["synthetic"] = {m: pool(r) for m, r in recs.items()}
    if {"sizes", "series", "gap"} & set(parts):
        data = load_pythia_arithmetic()
        acc = data.task_accuracy()
        comp = data.compute()

        def truth(m, t):
            return float(acc.loc[m, t])

        base = [m for m in methods if m in ("cod", "task_law", "task_sigmoid")]
    if "sizes" in parts:
        big = ["pythia-6.9b-deduped-v0@step143000", "pythia-12b-deduped-v0@step143000"]
        small = [m for m in data.models if not m.startswith(("pythia-6.9b", "pythia-12b"))]
        sub = data.subset(small + big)
        groups["pythia/sizes"] = {m: pool([run(sub, big, truth, m, settings, 0)]) for m in base}
    if "series" in parts:
        series = {m: [] for m in base}
        finals = [m for m in data.models if m.endswith("@step143000")
                  and not m.startswith(("pythia-160m", "pythia-410m"))]
        for target in finals:
            keep = [m for m in data.models if comp[m] < comp[target]] + [target]
            for m in base:
                series[m].append(run(data.subset(keep), [target], truth, m, settings, 0))
            print(f"series {target}: " + ", ".join(
                f"{m} {np.mean(np.abs(series[m][-1]['err'])):.1f}" for m in base), flush=True)
        groups["pythia/series"] = {m: pool(r) for m, r in series.items()}
    if "gap" in parts:
        target = "pythia-12b-deduped-v0@step143000"
        for gap in (1.5, 4.0, 10.0):
            keep = [m for m in data.models if comp[m] <= comp[target] / gap] + [target]
            TITLES[f"pythia/gap_{gap:g}"] = (f"Pythia arithmetic: 12B final from models with "
                                             f"at most 1/{gap:g} of its compute "
                                             f"({len(keep) - 1} models)")
            groups[f"pythia/gap_{gap:g}"] = {
                m: pool([run(data.subset(keep), [target], truth, m, settings, 0)]) for m in base}
            print(f"gap {gap}: done", flush=True)
    md = ["# Clustering on difficulty (COD) against task-level laws\n",
          "Errors and interval widths in accuracy points (0-100); coverage of the 90% intervals "
          "over the target cells; `bias` = mean signed error (negative: too low). Synthetic "
          "rows are from a generator with known truth, not real data."]
    for name, g in groups.items():
        md += table(TITLES.get(name, name), g)
        if {"cod", "task_law"} <= set(g):
            md.append(f"\nCOD's MAE / the task-level law's: "
                      f"{g['cod']['mae']['mean'] / g['task_law']['mae']['mean']:.2f}.")
    write_results("cod", "a large model's task accuracy from smaller models' per-item results "
                  "(synthetic with known truth; Pythia v0 arithmetic)", groups,
                  "\n".join(md) + "\n", out_dir=out_dir, previous_commands=commands)


if __name__ == "__main__":
    main()
