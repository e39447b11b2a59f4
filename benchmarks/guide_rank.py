"""The rank of the low-rank SVI guide on real tables: NumPyro's default (the square root of the
latent values, 29-53 on the suite's tables), capped ranks and the mean-field guide, for the
two SVI candidates of ``fit("auto")`` (``scaling_mf_svi``, ``pmf_svi``) on the development
suite's splits of three public tables and on random cells of the CPP table.

    python benchmarks/guide_rank.py                   # 4 guides x 2 methods x 7 splits x 2 seeds

Splits (``benchmarks/suite.py`` builds them): OSL largest of family with 0 and 2 revealed
scores, OSL leave-family-out, Pythia-v1 largest finals and 2.8B's final, CPP largest of family;
plus 5% of the CPP table's observed cells at random (``cpp_random``). Per (method, guide):
error as a share of each task's range (``mae``), the pooled coverage of the central 50% and 90%
intervals, the median 90% width, and the seconds of a fit that reuses the compiled programs
(``fit_seconds``; the first fit of each shape, which compiles, is left out of it). Each figure
pools every cell of every split and seed. The default rank of ``SVI(guide="auto")`` is chosen
from these figures (``docs/decisions/0020-guide-rank-capped.md``).
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np
from common import write_results
from guide import latent_values
from suite import splits_for

from cppjax.datasets import load_cpp_crowdsource
from cppjax.models.registry import make_spec
from cppjax.splits import random_cells
from cppjax.stacking import candidate_draws

GUIDES = {"rank_sqrt": {"guide": "lowrank", "guide_rank": "sqrt"},  # NumPyro's default
          "rank_16": {"guide": "lowrank", "guide_rank": 16},
          "rank_8": {"guide": "lowrank", "guide_rank": 8},
          "meanfield": {"guide": "meanfield"}}
SPLITS = ("osl_largest_k0", "osl_largest_k2", "osl_family_out", "pythia_largest",
          "pythia_final", "cpp_largest", "cpp_random")


def splits(which):
    for p in which:
        if p == "cpp_random":
            sm = load_cpp_crowdsource()
            yield p, random_cells(sm, 0.05, rng_key=0)
        elif p == "osl_largest_k2":
            yield p, splits_for(p)[0][0]  # seed 0's reveal only: the other two repeat the models
        elif p == "pythia_final":
            yield p, splits_for(p)[-1][0]  # 2.8B's final from its checkpoints and smaller sizes
        else:
            yield p, splits_for(p)[0][0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--methods", default="scaling_mf_svi,pmf_svi")
    ap.add_argument("--guides", default=",".join(GUIDES))
    ap.add_argument("--splits", default=",".join(SPLITS))
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    guides = args.guides.split(",")
    rows: dict = {}
    for pname, split in splits(args.splits.split(",")):
        mi, ti = (a.astype(np.int32) for a in np.nonzero(split.test.mask))
        y = split.test.scores[mi, ti]
        info = split.test.task_info
        span = (info["upper"] - info["lower"]).to_numpy(float)[ti]
        for method in args.methods.split(","):
            for g in guides:
                kw = dict(GUIDES[g])
                if kw.get("guide_rank") == "sqrt":
                    kw["guide_rank"] = int(round(latent_values(make_spec(method)[0],
                                                               split.train) ** 0.5))
                spec, inf = make_spec(method, **kw)
                for seed in range(args.seeds):
                    t0 = time.perf_counter()
                    post = spec.fit(split.train, rng_key=seed, inference=inf, progress=False)
                    secs = time.perf_counter() - t0
                    d = candidate_draws(post, (mi, ti), jax.random.PRNGKey(seed + 100))
                    ok = np.isfinite(d).all(axis=0)
                    med = np.median(d[:, ok], axis=0)
                    r = rows.setdefault((method, g), {"err": [], "h50": [], "h90": [],
                                                      "w90": [], "secs": [], "per": {}})
                    r["err"].append(np.abs(med - y[ok]) / span[ok])
                    for lev, key in ((0.5, "h50"), (0.9, "h90")):
                        lo, hi = np.quantile(d[:, ok], [(1 - lev) / 2, (1 + lev) / 2], axis=0)
                        r[key].append((y[ok] >= lo) & (y[ok] <= hi))
                        if lev == 0.9:
                            r["w90"].append((hi - lo) / span[ok])
                    if seed > 0:  # the first fit of a shape compiles
                        r["secs"].append(secs)
                    r["per"].setdefault(pname, []).append(float(r["err"][-1].mean()))
                    print(f"{pname:15s} {method:15s} {g:10s} seed {seed}: mae "
                          f"{r['err'][-1].mean():.4f} cov90 {r['h90'][-1].mean():.2f} "
                          f"{secs:.1f} s", flush=True)
    groups, lines = {}, []
    for (method, g), r in rows.items():
        rec = {"mae": float(np.concatenate(r["err"]).mean()),
               "coverage_50": float(np.concatenate(r["h50"]).mean()),
               "coverage_90": float(np.concatenate(r["h90"]).mean()),
               "width_90": float(np.median(np.concatenate(r["w90"]))),
               "fit_seconds": float(np.median(r["secs"])) if r["secs"] else float("nan"),
               "cells": int(sum(e.size for e in r["err"]))}
        groups.setdefault(method, {})[g] = {k: {"mean": v, "std": 0.0, "n": len(r["err"])}
                                            for k, v in rec.items()}
        per = " ".join(f"{p} {np.mean(v):.4f}" for p, v in r["per"].items())
        lines.append(f"| {method} | {g} | {rec['mae']:.4f} | {rec['coverage_50']:.2f} | "
                     f"{rec['coverage_90']:.2f} | {rec['width_90']:.3f} | "
                     f"{rec['fit_seconds']:.1f} | {per} |")
    md = ("# The low-rank guide's rank on real tables\n\n" + __doc__.split("\n\n", 2)[2]
          + f"\nSeeds per split: {args.seeds}. Regenerate with `python benchmarks/guide_rank.py`."
          "\n\n| method | guide | mae | coverage 50 | coverage 90 | width 90 | fit s (reused) "
          "| mae per split |\n|---|---|---|---|---|---|---|---|\n" + "\n".join(lines) + "\n")
    kw = {} if args.out is None else {"out_dir": __import__("pathlib").Path(args.out)}
    write_results("guide_rank", "suite splits of OSL, Pythia-v1, CPP and CPP random cells; "
                  "SVI defaults but the guide", groups, md, **kw)


if __name__ == "__main__":
    main()
