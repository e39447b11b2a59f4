"""Which SVI guide by size: the low-rank and the mean-field guide on synthetic tables of growing
size, with the defaults a user gets (``SVI()``: 5,000 steps, 1,000 draws), 30% observed.

    python benchmarks/guide.py                      # 4 sizes x 2 guides x 2 seeds (CPU)

Every table comes from :func:`cppjax.datasets.synthetic` (seeded, known truth; not real data):
50 tasks, rank 3, 10 families. For each (size, guide, seed): the latent values of the PMF model
(what ``SVI(guide="auto")`` reads), fit + prediction of every missing cell (seconds, compile
included, one process for all so later fits reuse nothing: each size is a new shape), the MSE
of the predictive mean against the truth (fraction units) and the coverage of the 90% interval
of the noisy scores. The threshold of ``cppjax.inference.objects.AUTO_MEANFIELD_ABOVE`` is
chosen from these figures (decision 0013).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from common import summarise, write_results  # noqa: E402

GUIDES = ("lowrank", "meanfield")


def latent_values(spec, sm) -> int:
    from cppjax.inference.programs import abstract_sites
    from cppjax.models.likelihood import pad_cells

    obs = sm.observed()
    mi, ti, y, mask = pad_cells(obs.model_idx, obs.task_idx, obs.values)
    model, data = spec.model_parts(sm, data_cells=True)
    Xm, Xt = spec.design(sm)
    _, sizes = abstract_sites(model, (Xm, Xt, mi, ti), {"y": y, **data, "mask": mask})
    return int(sum(sizes.values()))


def one(n_models: int, guide: str, seed: int) -> dict:
    from cppjax import PMF, SVI
    from cppjax.datasets import synthetic

    syn = synthetic(seed, n_models=n_models, n_tasks=50, rank=3, n_families=10, observed=0.3)
    sm = syn.matrix
    spec = PMF()
    t0 = time.perf_counter()
    post = spec.fit(sm, rng_key=seed, inference=SVI(guide=guide), progress=False)
    mi, ti = sm.missing()
    pred = post.predict((mi, ti), rng_key=seed + 1)
    seconds = time.perf_counter() - t0
    lo, hi = pred.interval(0.9)
    noisy = syn.full.scores[mi, ti]
    return {"latent": latent_values(spec, sm), "cells": int(sm.n_observed),
            "fit_predict_seconds": seconds,
            "mse": float(np.mean((pred.mean() - syn.truth[mi, ti]) ** 2)),
            "coverage_90": float(np.mean((noisy >= lo) & (noisy <= hi)))}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="100,200,400,1000", help="table heights (50 tasks)")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    sizes = [int(x) for x in args.models.split(",")]
    groups, lines = {}, []
    for n in sizes:
        for guide in GUIDES:
            runs = [one(n, guide, s) for s in range(args.seeds)]
            g = groups.setdefault(f"synthetic/{n}x50", {})
            g[f"pmf_svi_{guide}"] = {k: summarise([r[k] for r in runs])
                                     for k in ("fit_predict_seconds", "mse", "coverage_90")}
            m = g[f"pmf_svi_{guide}"]
            lines.append(f"| {n} x 50 | {runs[0]['latent']} | {guide} | "
                         f"{m['fit_predict_seconds']['mean']:.1f} | {m['mse']['mean']:.5f} | "
                         f"{m['coverage_90']['mean']:.3f} |")
            print(lines[-1], flush=True)
    md = ("# SVI guide by size\n\nSynthetic tables (seeded, known truth), 50 tasks, 30% observed; "
          f"defaults of `SVI()` but the guide; mean over {args.seeds} seeds. Regenerate with "
          "`python benchmarks/guide.py`.\n\n| table | latent values | guide | fit + predict s | "
          "MSE vs truth | coverage 90 |\n|---|---|---|---|---|---|\n" + "\n".join(lines) + "\n")
    kw = {} if args.out is None else {"out_dir": __import__("pathlib").Path(args.out)}
    write_results("guide", "synthetic tables, 30% observed, 50 tasks; SVI defaults but the guide",
                  groups, md, **kw)


if __name__ == "__main__":
    main()
