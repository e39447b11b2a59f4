"""Tasks bounded on one side (a perplexity, a loss) in a table of rates: the Pythia-v1 ladder's 8
0-shot accuracies plus LAMBADA's perplexity (Biderman et al. 2023;
``../shared/data/pythia_v1_evals``), read as a user's table is (``ScoreMatrix.from_long``: the
perplexity's bounds [0, inf) and its direction from its name), beyond the table: the final
checkpoints of 6.9B and 12B (``largest``), and each of 410M, 1.4B and 2.8B's final checkpoint
from its earlier ones and the smaller sizes (``final``), as in ``benchmarks/suite.py``.

    python benchmarks/halfopen.py --seeds 2       # about 12 minutes on 2 cores

Rows: the stack (``auto``) and each single method, fitted on the same training table. Metrics
of the perplexity cells: ``mae`` (perplexity units), ``rel_error`` (mean |prediction / truth -
1|), ``min_median`` (the smallest predicted median: 0 is a perplexity clipped onto its floor),
coverage and median width of the 90% intervals; ``mae_rates``: the MAE of the accuracy cells.
Decision 0027."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from common import RESULTS, fmt, summarise, write_results
from suite import SHARED, hold_models, pythia_ladder

import cppjax

METHODS = ("auto", "pmf_svi", "scaling_mf_svi", "scaling_law_hierarchical_map", "copy_sibling")
ORDER = ["70m", "160m", "410m", "1b", "1.4b", "2.8b", "6.9b", "12b"]


def table() -> cppjax.ScoreMatrix:
    base = pythia_ladder()
    ev = pd.read_csv(SHARED / "data" / "pythia_v1_evals" / "evals_long.csv.gz")
    ppl = ev[(ev["shots"] == 0) & (ev["task"] == "lambada_openai") & (ev["metric"] == "ppl")
             & ev["model"].isin(base.models)]
    long = pd.concat([base.to_long()[["model", "task", "score"]],
                      ppl.rename(columns={"value": "score"}).assign(task="lambada_ppl")
                      [["model", "task", "score"]]])
    return cppjax.ScoreMatrix.from_long(long, model="model", task="task", score="score",
                                        model_factors=base.model_factors)


def size(m: str) -> str:
    return m.split("@")[0].split("-")[1]


def splits(sm):
    out = {"largest": [hold_models(sm, [m for m in sm.models if size(m) in ("6.9b", "12b")
                                        and m.endswith("@step143000")], "largest")],
           "final": []}
    for s in ("410m", "1.4b", "2.8b"):
        sub = sm.subset(models=[m for m in sm.models if ORDER.index(size(m)) <= ORDER.index(s)])
        out["final"].append(hold_models(sub, [m for m in sub.models if size(m) == s
                                              and m.endswith("@step143000")], f"final({s})"))
    return out


def score(post, split, seed):
    pred = post.predict(split.test, rng_key=seed + 1)
    mi, ti = np.nonzero(split.test.mask)
    y = split.test.scores[mi, ti]
    d = np.asarray(pred.draws, float)
    med = np.median(d, axis=0)
    lo, hi = np.quantile(d, [0.05, 0.95], axis=0)
    ppl = ti == split.test.task_index("lambada_ppl")
    point = d.shape[0] == 1  # a point method: no interval
    return {"err": np.abs(med - y)[ppl], "rel": np.abs(med / y - 1)[ppl],
            "hit": np.full(ppl.sum(), np.nan) if point else ((y >= lo) & (y <= hi))[ppl],
            "width": np.full(ppl.sum(), np.nan) if point else (hi - lo)[ppl],
            "min": med[ppl].min(), "rates": np.abs(med - y)[~ppl]}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--out", default=str(RESULTS))
    a = p.parse_args(argv)
    sm = table()
    groups = {}
    for proto, parts in splits(sm).items():
        rows = {}
        for name in METHODS:
            per_seed = {k: [] for k in ("mae", "rel_error", "min_median", "coverage_90",
                                        "width_90", "mae_rates", "fit_seconds")}
            for seed in range(a.seeds):
                res, t0 = [], time.perf_counter()
                for split in parts:
                    post = cppjax.fit(name, split.train, rng_key=seed, progress=False)
                    res.append(score(post, split, seed))
                per_seed["fit_seconds"].append((time.perf_counter() - t0) / len(parts))
                cat = {k: np.concatenate([np.atleast_1d(r[k]) for r in res]) for k in res[0]}
                per_seed["mae"].append(cat["err"].mean())
                per_seed["rel_error"].append(cat["rel"].mean())
                per_seed["min_median"].append(cat["min"].min())
                per_seed["coverage_90"].append(np.mean(cat["hit"]))
                per_seed["width_90"].append(np.median(cat["width"]))
                per_seed["mae_rates"].append(cat["rates"].mean())
            # a metric that does not apply (a point method's interval) is left out
            rows[name] = {k: summarise(v) for k, v in per_seed.items()
                          if np.isfinite(v).all()}
            print(f"{proto} {name}: ppl MAE {rows[name]['mae']['mean']:.3f}",
                  file=sys.stderr, flush=True)
        groups[f"pythia_lambada_ppl/{proto}"] = rows
    md = ["# A perplexity beside accuracies: tasks bounded on one side\n",
          __doc__.split("\n\n")[0].replace("\n", " ") + "\n",
          "Perplexity cells: 4 (largest) and 6 (final, 3 splits) per seed.\n"]
    for g, rows in groups.items():
        md += [f"\n## {g}\n", "| method | ppl MAE | relative error | smallest median | "
               "90% coverage | median 90% width | MAE of the rates | fit s |",
               "|---|---|---|---|---|---|---|---|"]
        for n, r in rows.items():
            md.append(f"| {n} | {fmt(r['mae'], 3)} | {fmt(r['rel_error'], 3)} | "
                      f"{fmt(r['min_median'], 3)} | {fmt(r.get('coverage_90'), 2)} | "
                      f"{fmt(r.get('width_90'), 3)} | {fmt(r['mae_rates'], 4)} | "
                      f"{fmt(r['fit_seconds'], 1)} |")
    write_results("halfopen", "a perplexity beside rates; Pythia-v1 beyond the table",
                  groups, "\n".join(md) + "\n", Path(a.out))


if __name__ == "__main__":
    main()
