"""Accuracy and calibration of the Bayesian models (and the point NCF + factors beside them) on
the CPP crowdsource data: random held-out cells, k-fold, and the cold-start protocols.

    python benchmarks/calibration.py                          # defaults below
    python benchmarks/calibration.py --protocol kfold --folds 20
    python benchmarks/calibration.py --methods pmf_svi,ncf_factors --seeds 2 --quick
    python benchmarks/calibration.py --methods bncf_nuts --skip-cold --first-seed 100 \
        --set max_tree_depth=8 --out tuning-results   # a setting tried on other splits
    python benchmarks/calibration.py --methods bncf_nuts --skip-random --cold cpp0 \
        --cold-skip 24 --set noise_floor=0.03 --out tuning-results   # on other new models

Protocols (groups of the JSON):
* ``cpp_crowdsource/random``: 5% of observed cells held out, ``--seeds`` splits (or
  ``cpp_crowdsource/kfold``: every observed cell held out once over ``--folds`` folds);
* ``cpp_crowdsource/cpp0``, ``cpp2``: new models with 0 / 2 revealed scores; the ``--cold-models``
  models with the most scores are cold-started in groups of ``--group`` per fit;
* ``cpp_crowdsource/cpp_t0``, ``cpp_t2``: new tasks (BoolQ, BIG-bench hard, HellaSwag(10-shot),
  HumanEval, as in the paper) with 0 / 2 revealed scores, one task per fit.
Coverage is pooled over all held-out cells of a protocol (``n`` = cells; ``std`` = its standard
error from a bootstrap over the held-out models, or tasks on CPP-T0/T2); the other metrics are
mean ± sd over splits (``n`` = splits).
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import numpy as np
from common import RESULTS, fmt, summarise, write_results

from cppjax import metrics as M
from cppjax import splits as S
from cppjax.datasets import load_cpp_crowdsource
from cppjax.evaluation import fit_splits, score_predictive
from cppjax.inference.keys import as_key

COLD_TASKS = ("BoolQ(0-shot)", "BIG-bench hard(3-shot)", "HellaSwag(10-shot)", "HumanEval(pass@1)")
LEVELS = (0.5, 0.8, 0.9, 0.95)


def cold_model_splits(sm, k, n_models, group, seed, skip=0):
    """Cold-start ``n_models`` models (most-observed first, after the first ``skip``), ``group``
    of them per split."""
    order = np.argsort(-sm.mask.sum(axis=1), kind="stable")[:skip + n_models]
    rng_keys = jax.random.split(as_key(seed), len(order))
    order = order[skip:]
    out = []
    for g in range(0, len(order), group):
        mi_all, ti_all, info = [], [], []
        for i in order[g:g + group]:
            s = S.new_model(sm, sm.models[i], k, rng_key=rng_keys[i % len(rng_keys)])
            mi, ti = np.nonzero(s.test.mask)
            mi_all += mi.tolist()
            ti_all += ti.tolist()
            info.append(s.info)
        out.append(S.split_cells(sm, mi_all, ti_all, f"new_models(k={k})", {"models": info}))
    return out


def run_protocol(method, splits, seed, settings, group_by="model"):
    """Fit and score ``method`` on every split; coverage pooled over the held-out cells, with
    its standard error from a bootstrap over the held-out models (``group_by="task"``: tasks)."""
    k_fit, k_pred = jax.random.split(as_key(seed))
    posts = fit_splits(method, splits, rng_key=k_fit, settings=settings, progress=False)
    keys = jax.random.split(k_pred, len(splits))
    per, draws, ys, groups = [], [], [], []
    for post, split, key in zip(posts, splits, keys, strict=True):
        pred = post.predict(split.test, rng_key=key)
        m = score_predictive(pred, split)
        m["fit_seconds"] = post.fit_seconds
        if pred.n_draws > 1:  # intervals of zero width in the table's units (draws clipped)
            lo, hi = pred.interval(0.9)
            m["zero_width_90"] = float(np.mean(np.asarray(hi) - np.asarray(lo) <= 1e-9))
        for lev in LEVELS:  # pooled below
            m.pop(f"coverage_{int(lev * 100)}", None)
        per.append(m)
        draws.append(pred.draws_normalized)
        ys.append(split.test.normalize(split.test.scores[pred.model_idx, pred.task_idx],
                                       pred.model_idx, pred.task_idx))
        names, idx = ((split.test.models, pred.model_idx) if group_by == "model"
                      else (split.test.tasks, pred.task_idx))
        groups.append(np.asarray(names)[idx])
    out = {k: summarise([p[k] for p in per if k in p]) for k in per[0]}
    # the first fit of a protocol compiles its programs; the later fits (same model, settings
    # and shapes of inputs) reuse them (cppjax.inference caches them)
    out["fit_seconds_first"] = summarise([per[0]["fit_seconds"]])
    if len(per) > 1:
        out["fit_seconds_later"] = summarise([p["fit_seconds"] for p in per[1:]])
    if draws[0].shape[0] > 1:
        n_draws = min(d.shape[0] for d in draws)
        d = np.concatenate([x[:n_draws] for x in draws], axis=1)
        y = np.concatenate(ys)
        se = M.coverage_se(d, y, np.concatenate(groups), LEVELS)
        for lev, c in M.coverage(d, y, LEVELS).items():
            out[f"coverage_{int(lev * 100)}"] = {"mean": c, "std": se[lev], "n": int(y.size)}
    diag = [getattr(p, "diagnostics", {}) for p in posts]
    if diag and "max_rhat" in diag[0]:
        out["max_rhat"] = summarise([x["max_rhat"] for x in diag])
        out["divergences"] = summarise([x["divergences"] for x in diag])
        print(f"    NUTS: max r-hat {max(x['max_rhat'] for x in diag):.3f}, divergences "
              f"{sum(x['divergences'] for x in diag)} over {len(diag)} fits")
    return out


def parse_settings(pairs) -> dict:
    """``["likelihood=student_t", "max_tree_depth=7"]`` -> a dict of settings (values read as
    Python literals where they are ones, else kept as strings)."""
    import ast

    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"--set takes KEY=VALUE, got {pair!r}")
        try:
            out[key.strip()] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key.strip()] = value
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--methods", default="pmf_nuts,pmf_svi,bncf_nuts,bncf_svi,ncf_factors")
    p.add_argument("--protocol", choices=["random", "kfold"], default="random")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--first-seed", type=int, default=0,
                   help="random splits are seeds first-seed .. first-seed + seeds - 1 (tuning "
                        "runs use other seeds than the reported 0-4)")
    p.add_argument("--folds", type=int, default=20)
    p.add_argument("--cold-models", type=int, default=24)
    p.add_argument("--group", type=int, default=8)
    p.add_argument("--cold-skip", type=int, default=0,
                   help="cold-start the models after the first N most-observed (tuning runs: "
                        "other models than the reported ones)")
    p.add_argument("--skip-cold", action="store_true")
    p.add_argument("--cold", default="cpp0,cpp2,cpp_t0,cpp_t2",
                   help="which cold-start protocols to run (comma-separated)")
    p.add_argument("--skip-random", action="store_true",
                   help="leave the random splits (or folds) out: cold-start protocols only "
                        "(with --merge, their figures in the results file are kept)")
    p.add_argument("--quick", action="store_true", help="small sample sizes (smoke test)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a setting of the Bayesian methods' specs (repeatable), e.g. "
                        "--set likelihood=student_t --set max_tree_depth=7")
    p.add_argument("--normalization", choices=["task_minmax", "task_logit"],
                   default="task_minmax",
                   help="the table's normalisation (task_logit: every task through the logit of "
                        "its place between its bounds; results/calibration_task_logit.*)")
    p.add_argument("--out", default=None)
    p.add_argument("--merge", action="store_true",
                   help="keep the other methods' figures of the existing results file and "
                        "replace (or add) only the methods run now")
    args = p.parse_args(argv)
    settings = ({"num_warmup": 100, "num_samples": 100, "num_chains": 2, "svi_steps": 500}
                if args.quick else {})
    spec_settings = parse_settings(args.set)
    settings.update(spec_settings)

    sm = load_cpp_crowdsource(args.normalization)
    protocols = {}
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    if args.protocol == "random" and not args.skip_random:
        protocols["random"] = [S.random_cells(sm, 0.05, rng_key=s) for s in seeds]
    elif not args.skip_random:
        protocols["kfold"] = S.kfold_cells(sm, args.folds, rng_key=0)
    cold = [c.strip() for c in args.cold.split(",") if c.strip()]
    if unknown := set(cold) - {"cpp0", "cpp2", "cpp_t0", "cpp_t2"}:
        raise SystemExit(f"--cold: unknown protocols {sorted(unknown)}")
    if not args.skip_cold:
        for k in (0, 2):
            if f"cpp{k}" in cold:
                protocols[f"cpp{k}"] = cold_model_splits(sm, k, args.cold_models, args.group,
                                                         seed=k, skip=args.cold_skip)
            if f"cpp_t{k}" in cold:
                protocols[f"cpp_t{k}"] = [S.new_task(sm, t, k, rng_key=10 + i)
                                          for i, t in enumerate(COLD_TASKS)]
    from pathlib import Path

    out_dir = Path(args.out) if args.out else RESULTS
    name = "calibration" if args.protocol == "random" else "calibration_kfold"
    if args.normalization != "task_minmax":
        name += f"_{args.normalization}"
    groups, commands = {}, []
    if args.merge and (out_dir / f"{name}.json").exists():
        old = json.loads((out_dir / f"{name}.json").read_text())
        groups, commands = old["groups"], old["command"].split(" && ")
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    for pname, splits in protocols.items():
        g = groups.setdefault(f"cpp_crowdsource/{pname}", {})
        for method in methods:
            t0 = time.perf_counter()
            r = run_protocol(method, splits, seed=0, settings=settings,
                             group_by="task" if pname.startswith("cpp_t") else "model")
            # each protocol's first fit compiles anew (the figures count it): fit_splits's
            # inference object, and with it its compiled programs, is dropped after each run
            jax.clear_caches()
            g[method] = r
            cov = r.get("coverage_90", {}).get("mean", float("nan"))
            print(f"[{pname}] {method:12s} MSE {r['mse']['mean']:.4f} L1 {r['l1']['mean']:.4f} "
                  f"rank {r['rank_acc']['mean']:.1f}% cov90 {cov:.2f} "
                  f"fit {r['fit_seconds']['mean']:.1f}s ({time.perf_counter() - t0:.0f}s total)",
                  flush=True)

    cols = ["mse", "l1", "mae", "rank_acc", "mae_at_2", "coverage_50", "coverage_80",
            "coverage_90", "coverage_95", "width_90", "zero_width_90", "crps", "lpd",
            "fit_seconds", "fit_seconds_first", "fit_seconds_later", "max_rhat", "divergences"]
    md = ["# Calibration of the Bayesian models on the CPP crowdsource data\n",
          f"Table normalisation: `{args.normalization}`. MSE, L1, width (of the 90% interval), "
          "CRPS and LPD on normalised scores (not comparable across normalisations); `mae` in "
          "the table's units (points); `zero_width_90`: the share of held-out cells whose 90% "
          "interval has zero width in the table's units (draws clipped at a bound); rank "
          "accuracy and MAE@2 in percent with our rank rule; coverage pooled over "
          "all held-out cells of the protocol (nominal 0.50 / 0.80 / 0.90 / 0.95), ± its standard "
          "error from a bootstrap over the held-out models (tasks on CPP-T0/T2), whose cells "
          "share their errors; the other metrics: mean ± sd over splits. `fit_seconds`: per "
          "fit, compilation included (NUTS: 4 chains x 1000 draws after 500 warm-up, one chain "
          "per CPU device, 4 devices on the cores); `fit_seconds_first`: the protocol's first "
          "fit, which compiles the programs; `fit_seconds_later`: the other fits, which reuse "
          "them (same model, settings and shapes). `max_rhat`: the largest split r-hat of the "
          "fitted cell means in a fit (rank-normalised in rows run with cppjax 0.10, the "
          "classic one before: decision 0025); `divergences`: per fit (NUTS only).\n"]
    for gname, g in groups.items():
        n_cells = next((r["coverage_90"]["n"] for r in g.values() if "coverage_90" in r), None)
        md.append(f"\n## {gname}" + (f" ({n_cells} held-out cells)" if n_cells else "") + "\n")
        md.append("| method | " + " | ".join(cols) + " |")
        md.append("|---" * (len(cols) + 1) + "|")
        for method, r in g.items():
            cells = []
            for c in cols:
                if c not in r:
                    cells.append("–")
                elif c.startswith("coverage"):
                    cells.append(f"{r[c]['mean']:.2f} ± {r[c]['std']:.2f}")
                elif c in ("rank_acc", "mae_at_2"):
                    cells.append(fmt(r[c], 1))
                elif c.startswith("fit_seconds"):
                    cells.append(f"{r[c]['mean']:.1f}")
                else:
                    cells.append(fmt(r[c], 4))
            md.append(f"| {method} | " + " | ".join(cells) + " |")
        ranked = {m: r for m, r in g.items() if "rank_pit_coverage_50" in r}
        if ranked:  # the rank intervals: integer ones as shown, and the randomised PIT
            md.append("\nRank intervals (nominal 0.50 / 0.80 / 0.90), mean over splits: the "
                      "integer intervals a user is shown, and the randomised PIT of the rank "
                      "distribution (`metrics.rank_calibration`)\n")
            md.append("| method | integer intervals | randomised PIT |\n|---|---|---|")
            for method, r in ranked.items():
                md.append(f"| {method} | " + " / ".join(
                    f"{r[f'rank_coverage_{lev}']['mean']:.2f}" for lev in (50, 80, 90))
                    + " | " + " / ".join(f"{r[f'rank_pit_coverage_{lev}']['mean']:.2f}"
                                         for lev in (50, 80, 90)) + " |")
    protocol = (f"random cells 5% (seeds {args.first_seed}-{args.first_seed + args.seeds - 1})"
                if args.protocol == "random" else f"{args.folds}-fold") + \
        ("" if args.skip_cold else f"; cold start {', '.join(cold)}") + \
        (f" (new models: the {args.cold_models} most observed after the first {args.cold_skip})"
         if args.cold_skip and not args.skip_cold else "") + \
        (" (quick settings)" if args.quick else "") + \
        (f"; spec settings {spec_settings}" if spec_settings else "")
    jp, mp = write_results(name, protocol, groups, "\n".join(md) + "\n", out_dir=out_dir,
                           previous_commands=commands)
    print(f"wrote {jp} and {mp}")


if __name__ == "__main__":
    main()
