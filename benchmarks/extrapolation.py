"""Scaling laws against collaborative prediction on held-out largest models of each family.

    python benchmarks/extrapolation.py                   # both datasets, 3 seeds, figures
    python benchmarks/extrapolation.py --seeds 1 --datasets obsscaling --quick

For each dataset (the bundled CPP crowdsource table and the Observational Scaling Laws base-model
table), the largest model of every family with at least 3 models of known size is held out
(by training compute, or parameters where a family lacks compute; see
:func:`cppjax.splits.largest_of_family`).
Every method trains on the rest: the scaling laws on the family's other members (the hierarchical
one also on the other families), the collaborative models on every other model and task. With
``k = 2`` (CPP-2), two scores of each held-out model are revealed to every method.

Groups of the JSON: ``<dataset>/k<k>/all`` and ``<dataset>/k<k>/emergent`` (GSM8K, BIG-bench hard,
HumanEval, MBPP where present). ``mae`` and ``rmse`` are in the dataset's original units (points
of percent for CPP, fractions for OSL); ``coverage_90`` is pooled over held-out cells and seeds,
``width_90`` is in normalised units; mean ± sd over seeds (``n`` = seeds; coverage ``n`` = cells).
Figures: ``results/figures/extrapolation_<dataset>_<family>.png`` (seed 0, k = 0).
"""

from __future__ import annotations

import argparse
import re
import time

import jax
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from common import RESULTS, summarise, write_results  # noqa: E402

from cppjax import metrics as M  # noqa: E402
from cppjax.datasets import (  # noqa: E402
    CPP_EMERGENT_TASKS,
    OSL_EMERGENT_TASKS,
    load_cpp_crowdsource,
    load_obsscaling,
)
from cppjax.evaluation import fit_splits  # noqa: E402
from cppjax.plots import scaling_curve  # noqa: E402
from cppjax.splits import largest_of_family  # noqa: E402

DATASETS = {
    "cpp_crowdsource": (load_cpp_crowdsource, CPP_EMERGENT_TASKS),
    "obsscaling": (load_obsscaling, OSL_EMERGENT_TASKS),
}
METHODS = ("scaling_law_unpooled", "scaling_law_hierarchical", "pmf_svi", "bncf_svi",
           "ncf_factors")
FIG_METHODS = ("pmf_svi", "bncf_svi", "ncf_factors")


def cell_metrics(pred, split, sel):
    """MAE/RMSE (original units), 90% coverage and width (normalised) on the cells ``sel``."""
    mi, ti = pred.model_idx[sel], pred.task_idx[sel]
    y_raw = split.test.scores[mi, ti]
    y = split.test.normalize(y_raw, mi, ti)
    out = {"mae": M.l1(y_raw, pred.mean()[sel]), "rmse": M.rmse(y_raw, pred.mean()[sel]),
           "n_cells": int(sel.sum())}
    if pred.n_draws > 1:
        d = pred.draws_normalized[:, sel]
        lo, hi = np.quantile(d, [0.05, 0.95], axis=0)
        out["covered_90"] = ((y >= lo) & (y <= hi)).astype(float)
        out["width_90"] = float(np.mean(hi - lo))
    return out


def family_figure(name, fam, info, split, posts, preds, out_dir, emergent, seed):
    sm = split.full
    held = info["model"]
    i = sm.model_index(held)
    tasks = [sm.tasks[j] for j in np.flatnonzero(split.test.mask[i])]
    tasks = sorted(tasks, key=lambda t: (t not in emergent, -sm.mask[:, sm.task_index(t)].sum()))
    tasks = tasks[:8]
    ncol = min(4, len(tasks))
    nrow = int(np.ceil(len(tasks) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.6 * ncol, 3.1 * nrow + 0.6), squeeze=False)
    for ax, task in zip(axes.flat, tasks, strict=False):
        truth = {held: split.test.scores[i, sm.task_index(task)]}
        scaling_curve(posts["scaling_law_hierarchical"], fam, task, rng_key=seed,
                      color="tab:green", show_data=False, legend=False, ax=ax)
        scaling_curve(posts["scaling_law_unpooled"], fam, task, rng_key=seed, truth=truth,
                      others={m: preds[m] for m in FIG_METHODS if m in preds}, legend=False,
                      ax=ax)
        ax.tick_params(labelsize=7)
        ax.xaxis.label.set_size(8)
        ax.yaxis.label.set_size(8)
        ax.set_title(task, fontsize=9)
    for ax in list(axes.flat)[len(tasks):]:
        ax.set_visible(False)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 4), fontsize=8,
               frameon=False)
    fig.suptitle(f"{name}: {fam} — largest model {held} held out (90% intervals)", fontsize=10)
    fig.tight_layout(rect=(0, 0.08 if nrow == 1 else 0.05, 1, 0.97))
    out_dir.mkdir(parents=True, exist_ok=True)
    safe = re.sub(r"[^A-Za-z0-9.-]+", "_", fam)
    path = out_dir / f"extrapolation_{name}_{safe}.png"
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--ks", default="0,2", help="revealed scores of each held-out model")
    ap.add_argument("--no-figures", action="store_true")
    ap.add_argument("--quick", action="store_true", help="small inference settings (smoke test)")
    args = ap.parse_args(argv)
    methods = args.methods.split(",")
    settings = ({"num_warmup": 100, "num_samples": 100, "svi_steps": 500} if args.quick else
                {})
    groups, per_family, split_info = {}, {}, {}
    for name in args.datasets.split(","):
        loader, emergent = DATASETS[name]
        sm = loader()
        for k in (int(x) for x in args.ks.split(",")):
            acc = {sub: {m: {} for m in methods} for sub in ("all", "emergent")}
            for seed in range(args.seeds):
                split = largest_of_family(sm, k=k, rng_key=seed if k else None)
                split_info[f"{name}/k{k}"] = split.info
                posts, preds = {}, {}
                for method in methods:
                    t0 = time.perf_counter()
                    k_fit, k_pred = jax.random.split(jax.random.PRNGKey(seed))
                    post = fit_splits(method, [split], rng_key=k_fit, settings=settings)[0]
                    preds[method] = post.predict(split.test, rng_key=k_pred)
                    posts[method] = post
                    pred = preds[method]
                    em = np.isin(np.asarray(sm.tasks)[pred.task_idx], emergent)
                    for sub, sel in (("all", np.ones_like(em)), ("emergent", em)):
                        if not sel.any():
                            continue
                        cm = cell_metrics(pred, split, sel)
                        a = acc[sub][method]
                        for key in ("mae", "rmse", "width_90"):
                            if key in cm:
                                a.setdefault(key, []).append(cm[key])
                        if "covered_90" in cm:
                            a.setdefault("covered_90", []).extend(cm["covered_90"].tolist())
                        a.setdefault("fit_seconds", []).append(post.fit_seconds)
                        a["n_cells"] = cm["n_cells"]
                    if seed == 0 and k == 0:
                        for f, v in split.info["held_out"].items():
                            sel = pred.model_idx == sm.model_index(v["model"])
                            per_family.setdefault(name, {}).setdefault(f, {})[method] = float(
                                np.mean(np.abs(pred.mean()[sel]
                                               - split.test.scores[pred.model_idx[sel],
                                                                   pred.task_idx[sel]])))
                    print(f"{name} k={k} seed={seed} {method}: "
                          f"{time.perf_counter() - t0:.1f}s, mae "
                          f"{acc['all'][method]['mae'][-1]:.4f}", flush=True)
                if seed == 0 and k == 0 and not args.no_figures and all(
                        m in posts for m in ("scaling_law_unpooled", "scaling_law_hierarchical")):
                    for fam, info in split.info["held_out"].items():
                        family_figure(name, fam, info, split, posts, preds,
                                      RESULTS / "figures", emergent, seed)
            for sub in ("all", "emergent"):
                g = {}
                for method, a in acc[sub].items():
                    if not a:
                        continue
                    row = {key: summarise(a[key]) for key in ("mae", "rmse", "width_90",
                                                              "fit_seconds") if key in a}
                    if "covered_90" in a:
                        c = np.asarray(a["covered_90"])
                        row["coverage_90"] = {"mean": float(c.mean()),
                                              "std": float(np.sqrt(c.mean() * (1 - c.mean())
                                                                   / c.size)),
                                              "n": int(c.size)}
                    g[method] = row
                groups[f"{name}/k{k}/{sub}"] = g
    md = markdown(groups, per_family, split_info, args)
    write_results("extrapolation",
                  "largest model of each family (>= 3 sized members) held out; k scores of it "
                  "revealed; scaling laws vs collaborative models", groups, md)
    print(md)


def markdown(groups, per_family, split_info, args) -> str:
    lines = [
        "# Extrapolation to the largest model of each family",
        "",
        "Largest model (by training compute, or parameters) of every family with at least 3 sized "
        "models held out; k of its scores revealed to every method. MAE and RMSE in the "
        "dataset's units (CPP: percent points; OSL: fraction); coverage of the 90% interval "
        f"pooled over held-out cells and {args.seeds} seed(s); width in normalised units. "
        "`ncf_factors` is a point predictor (no interval). Regenerate with "
        "`python benchmarks/extrapolation.py`.",
        "",
    ]
    for g, rows in groups.items():
        lines += [f"## {g}", "", "| method | MAE | RMSE | coverage 90% | width 90% | fit s |",
                  "|---|---|---|---|---|---|"]
        for m, r in rows.items():
            def f(key, d=3, r=r):
                s = r.get(key)
                return f"{s['mean']:.{d}f} ± {s['std']:.{d}f}" if s else "–"
            lines.append(f"| {m} | {f('mae')} | {f('rmse')} | "
                         f"{f('coverage_90', 2)} | {f('width_90')} | {f('fit_seconds', 1)} |")
        lines.append("")
    for name, fams in per_family.items():
        methods = list(next(iter(fams.values())))
        lines += [f"## {name}: MAE per family (k = 0, seed 0)", "",
                  "| family | held-out model | " + " | ".join(methods) + " |",
                  "|---|---|" + "---|" * len(methods)]
        info = split_info[f"{name}/k0"]["held_out"]
        for fam, r in fams.items():
            best = min(r.values())
            cells = [f"**{r[m]:.3f}**" if r[m] == best else f"{r[m]:.3f}" for m in methods]
            lines.append(f"| {fam} | {info[fam]['model']} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
