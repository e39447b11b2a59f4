"""Clustering on difficulty against the task-level laws: a large model's task accuracy from
smaller (or earlier) models' per-item results.

    python benchmarks/cod.py                 # every protocol, 6 seeds, one process
    python benchmarks/cod.py --quick --out cod-smoke

Groups of the JSON (metrics on the target cells: ``mae`` in accuracy points pooled over cells
and seeds, of the predictive median; ``mae_of_mean`` of its mean; ``mae_seeds`` the per-seed
MAEs, ``coverage_90``, ``width_90`` in points,
``fit_seconds`` per fit and predict with its backtest (mean, which carries each compilation,
and ``fit_seconds_median``, the typical fit once compiled); each group's ``verdict`` compares COD
with the better task-level law, seed by seed):

* ``synthetic`` / ``synthetic_saturating``: ``synthetic_items`` (one family, 10 sizes over
  1e20-1e24 FLOPs, 300 items in 3 difficulty clumps, 15% irregular items; the saturating one
  with difficulties in (1.0, 3.5): most items at 0 below a size), the largest model from the 9
  others, one data seed per seed; truth = the expected accuracy (mean of the true pass
  probabilities). Generated data with known truth, not real data;
* ``pythia/sizes``: Pythia v0 arithmetic (10 tasks), the 6.9B and 12B final checkpoints from
  every checkpoint of the sizes up to 2.8B;
* ``pythia/series``: each size's final checkpoint (1B to 12B) from every model of less compute;
* ``pythia/gap_<g>``: the 12B final checkpoint from the models with at most 1/g of its compute;
* ``math/<cut>``: 371 public models on 894 MATH level-5 items (``load_openllm_math``; compute =
  the parameter count in the name), the models above a size held out: the largest 15%
  (``top15``), above 14B, above 8B.

Every method is one settings object for the whole run: its compiled programs are reused from
fit to fit, and the run's process does all fits (``fits`` and ``peak_rss_gb`` in the JSON).
``cod_raw`` is COD without the backtest calibration; the other rows are calibrated.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from collections import Counter

import numpy as np
from common import RESULTS, fmt, summarise, write_results

from cppjax import cod
from cppjax.datasets import load_openllm_math, load_pythia_arithmetic, synthetic_items

#: row -> (method, settings beyond the run's)
METHODS = {"cod": ("cod", {}), "cod_raw": ("cod", {"calibrate": False}),
           "cod_auto": ("auto", {}),
           "cod_kmeans": ("cod", {"clustering": "kmeans"}),
           "cod_irt": ("cod", {"clustering": "irt"}),
           "task_law": ("task_law", {}), "task_sigmoid": ("task_sigmoid", {})}
BASELINES = ("task_law", "task_sigmoid")
SETTINGS: dict = {}  # row -> its one COD settings object (its programs reused all run long)
FITS = [0]
CHOSEN: dict = {}
PROTOCOL = [""]  # protocol -> the methods "auto" chose


def settings_of(row, run_settings) -> cod.COD:
    if row not in SETTINGS:
        SETTINGS[row] = cod.COD(**{**run_settings, **METHODS[row][1]})
    return SETTINGS[row]


def run(data, targets, truth, row, run_settings, seed):
    """Errors (points), coverage and widths of ``row`` on every (target, task) cell."""
    t0 = time.perf_counter()
    post = cod.fit(data, targets=targets, rng_key=seed, method=METHODS[row][0],
                   settings=settings_of(row, run_settings))
    pred = post.predict("missing", rng_key=seed + 1)
    secs = time.perf_counter() - t0
    FITS[0] += 1 + len(post.diagnostics.get("calibration", {}).get("backtests", ()))
    if "auto" in post.diagnostics:
        CHOSEN.setdefault(PROTOCOL[0], []).append(post.diagnostics["auto"]["chosen"])
    lo, hi = pred.interval(0.9)
    y = np.array([truth(pred.matrix.models[i], pred.matrix.tasks[j])
                  for i, j in zip(pred.model_idx, pred.task_idx, strict=True)])
    # the point is the predictive median: the MAE-optimal point, and the one the backtest's
    # widening (around each cell's median, decision 0017) leaves in place
    return {"err": (100 * (pred.median() - y)).tolist(),
            "err_mean": (100 * (pred.mean() - y)).tolist(),
            "covered": ((y >= lo) & (y <= hi)).astype(float).tolist(),
            "width": (100 * (hi - lo)).tolist(), "seconds": secs}


def pool(recs: list[list[dict]]) -> dict:
    """``recs``: per seed, the runs of that seed (pooled over cells and seeds)."""
    flat = [r for seed in recs for r in seed]
    err = [e for r in flat for e in r["err"]]
    return {"mae": summarise(np.abs(err)), "bias": summarise(err),
            "mae_of_mean": summarise(np.abs([e for r in flat for e in r["err_mean"]])),
            "mae_seeds": summarise([np.mean(np.abs([e for r in seed for e in r["err"]]))
                                    for seed in recs]),
            "coverage_90": summarise([c for r in flat for c in r["covered"]]),
            "width_90": summarise([w for r in flat for w in r["width"]]),
            "fit_seconds": summarise([r["seconds"] for r in flat]),
            # the typical fit: a row's first fit of a shape in the process compiles its
            # programs, the others reuse them (the target is < 10 s after compilation)
            "fit_seconds_median": float(np.median([r["seconds"] for r in flat])),
            "_seed_mae": [float(np.mean(np.abs([e for r in seed for e in r["err"]])))
                          for seed in recs]}


def verdict(g: dict, row: str = "cod") -> dict | None:
    """``row``'s per-seed MAE minus the better baseline's (negative: ``row`` better), its
    spread over seeds, and whether it wins by more than that spread."""
    base = [b for b in BASELINES if b in g]
    if row not in g or not base:
        return None
    best = min(base, key=lambda b: g[b]["mae"]["mean"])
    d = np.array(g[row]["_seed_mae"]) - np.array(g[best]["_seed_mae"])
    sd = float(d.std(ddof=1)) if d.size > 1 else 0.0
    return {"baseline": best, "diff_mean": float(d.mean()), "diff_sd": sd,
            "cod_wins": bool(d.mean() < 0 and -d.mean() > sd),
            "cod_at_or_below": bool(d.mean() <= sd)}


def table(title, group: dict) -> list[str]:
    md = [f"\n### {title}\n", "| method | MAE (points) | MAE per seed | MAE of the mean | bias | "
          "90% coverage | 90% width | fit s (mean) | fit s (median) |",
          "|---|---|---|---|---|---|---|---|---|"]
    for m, g in group.items():
        if m.startswith("verdict"):
            continue
        md.append(f"| {m} | {fmt(g['mae'], 2)} | {fmt(g['mae_seeds'], 2)} | "
                  f"{g['mae_of_mean']['mean']:.2f} | {fmt(g['bias'], 2)}"
                  f" | {fmt(g['coverage_90'], 2)} | {fmt(g['width_90'], 1)} | "
                  f"{g['fit_seconds']['mean']:.1f} | {g['fit_seconds_median']:.1f} |")
    for key, row in (("verdict", "cod"), ("verdict_auto", "cod_auto")):
        v = group.get(key)
        if v:
            md.append(f"\n{row} minus {v['baseline']} (MAE per seed): {v['diff_mean']:+.2f} ± "
                      f"{v['diff_sd']:.2f}: " + ("wins by more than the seed spread."
                                                 if v["cod_wins"] else "does not win."))
    return md


TITLES = {
    "synthetic": "synthetic (the largest of 10 sizes from the 9 others; n = seeds x 1 cell)",
    "synthetic_saturating": "synthetic, saturating items (most items at 0 below a size)",
    "pythia/sizes": "Pythia arithmetic: 6.9B and 12B final checkpoints from sizes up to 2.8B "
                    "(20 cells per seed)",
    "pythia/series": "Pythia arithmetic: each size's final checkpoint (1B to 12B) from every "
                     "model of less compute",
}


def protocol(name, cases, rows, run_settings, seeds, groups):
    """``cases``: (data, targets, truth) per case; every row on every case and seed."""
    recs = {m: [[] for _ in range(seeds)] for m in rows}
    PROTOCOL[0] = name
    for seed in range(seeds):
        for data, targets, truth in cases(seed):
            for m in rows:
                recs[m][seed].append(run(data, targets, truth, m, run_settings, seed))
        print(f"{name} seed {seed}: " + ", ".join(
            f"{m} {np.mean(np.abs([e for r in recs[m][seed] for e in r['err']])):.1f}"
            for m in rows), flush=True)
    g = {m: pool(r) for m, r in recs.items()}
    g["verdict"], g["verdict_auto"] = verdict(g), verdict(g, "cod_auto")
    groups[name] = g


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, default=6)
    p.add_argument("--methods", default="cod,cod_raw,cod_auto,task_law,task_sigmoid")
    p.add_argument("--synthetic-methods", default=",".join(METHODS))
    p.add_argument("--parts", default="synthetic,sizes,series,gap,math")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--merge", action="store_true")
    p.add_argument("--out", default=None)
    a = p.parse_args(argv)
    out_dir = RESULTS if a.out is None else __import__("pathlib").Path(a.out)
    run_settings: dict = {}
    rows, syn_rows = a.methods.split(","), a.synthetic_methods.split(",")
    parts = a.parts.split(",")
    if a.quick:
        run_settings, a.seeds = {"num_steps": 300, "num_samples": 100}, 1
    groups, commands = {}, []
    jp = out_dir / "cod.json"
    if a.merge and jp.exists():
        old = json.loads(jp.read_text())
        groups, commands = old["groups"], [old["command"]]
    t_start = time.perf_counter()
    for name, diff in (("synthetic", (-2.0, 2.5)), ("synthetic_saturating", (1.0, 3.5))):
        if name not in parts and not (name.startswith("synthetic") and "synthetic" in parts):
            continue

        def cases(seed, diff=diff):
            s = synthetic_items(seed, n_items=300, sizes=10, n_families=1, difficulty=diff)
            return [(s.data, [m for m in s.data.models if m.endswith("-9")],
                     lambda mm, t, s=s: s.task_truth.loc[mm, t])]

        protocol(name, cases, syn_rows, run_settings, a.seeds, groups)
    if {"sizes", "series", "gap"} & set(parts):
        data = load_pythia_arithmetic()
        acc, comp = data.task_accuracy(), data.compute()

        def truth(m, t):
            return float(acc.loc[m, t])
    if "sizes" in parts:
        big = ["pythia-6.9b-deduped-v0@step143000", "pythia-12b-deduped-v0@step143000"]
        small = [m for m in data.models if not m.startswith(("pythia-6.9b", "pythia-12b"))]
        sub = data.subset(small + big)
        protocol("pythia/sizes", lambda seed: [(sub, big, truth)], rows, run_settings,
                 a.seeds, groups)
    if "series" in parts:
        finals = [m for m in data.models if m.endswith("@step143000")
                  and not m.startswith(("pythia-160m", "pythia-410m"))]
        series = [(data.subset([m for m in data.models if comp[m] < comp[t]] + [t]), [t], truth)
                  for t in finals]
        protocol("pythia/series", lambda seed: series, rows, run_settings, a.seeds, groups)
    if "gap" in parts:
        target = "pythia-12b-deduped-v0@step143000"
        for gap in (1.5, 4.0, 10.0):
            keep = [m for m in data.models if comp[m] <= comp[target] / gap] + [target]
            TITLES[f"pythia/gap_{gap:g}"] = (f"Pythia arithmetic: 12B final from models with "
                                             f"at most 1/{gap:g} of its compute "
                                             f"({len(keep) - 1} models)")
            case = [(data.subset(keep), [target], truth)]
            protocol(f"pythia/gap_{gap:g}", lambda seed, c=case: c, rows, run_settings,
                     a.seeds, groups)
    if "math" in parts:
        zoo = load_openllm_math()
        zacc, zcomp = zoo.task_accuracy(), zoo.compute()
        for cut, c in (("top15", float(zcomp.quantile(0.85))), ("above_14b", 14e9 * 1.001),
                       ("above_8b", 8e9 * 1.001)):
            held = [m for m in zoo.models if zcomp[m] > c]
            TITLES[f"math/{cut}"] = (f"MATH level 5, model zoo: the {len(held)} models above "
                                     f"{c / 1e9:.1f}B from the {zoo.n_models - len(held)} "
                                     f"others")
            case = [(zoo, held, lambda m, t: float(zacc.loc[m, t]))]
            protocol(f"math/{cut}", lambda seed, c=case: c, rows, run_settings, a.seeds,
                     groups)
    for name, g in groups.items():
        for m in g.values():
            if isinstance(m, dict):
                m.pop("_seed_mae", None)
        if "cod_auto" in g and name in CHOSEN:  # which method "auto" chose, per seed and case
            g["cod_auto"]["chosen"] = dict(Counter(CHOSEN.get(name, [])))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
    groups["run"] = {"fits": FITS[0], "peak_rss_gb": round(peak, 2),
                     "seconds": round(time.perf_counter() - t_start, 1)}
    md = ["# Clustering on difficulty (COD) against task-level laws\n",
          "Errors and interval widths in accuracy points (0-100), of the predictive median "
          "(MAE of the mean beside it); coverage of the 90% intervals "
          "over the target cells pooled over seeds; `bias` = mean signed error (positive: too "
          "high); MAE per seed: mean ± sd over seeds. `cod_raw`: COD without the backtest "
          "calibration (every other row is calibrated). Synthetic rows are from a generator "
          "with known truth, not real data.",
          f"\nOne process: {FITS[0]} fits (backtest refits included), peak resident memory "
          f"{peak:.1f} GB, {groups['run']['seconds'] / 60:.0f} min."]
    for name, g in groups.items():
        if name != "run":
            md += table(TITLES.get(name, name), g)
    write_results("cod", "a large model's task accuracy from smaller models' per-item results "
                  "(synthetic with known truth; Pythia v0 arithmetic; MATH level 5 items of a "
                  "model zoo)", groups, "\n".join(md) + "\n", out_dir=out_dir,
                  previous_commands=commands)


if __name__ == "__main__":
    main()
