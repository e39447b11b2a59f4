"""``cppjax cod``: predict a large model's task accuracies from small models' per-item results.

    cppjax cod --items items.csv --models models.csv --target-compute 1e23
    cppjax cod --target-model pythia-12b-deduped-v0@step143000   # bundled Pythia arithmetic
"""

from __future__ import annotations

import sys
from pathlib import Path

COD_FILES = ("cod_predictions.csv", "cod_clusters.csv")


def add_parser(sub, common) -> None:
    """The ``cod`` subcommand on ``sub`` (``common(sp)``: --seed, --out, --overwrite, --level)."""
    sp = sub.add_parser("cod", help="clustering on difficulty: a large model's task accuracy "
                        "from small models' per-item results")
    sp.add_argument("--items", help="long CSV of per-item results: model, item, task, correct "
                    "(0/1 or the share solved); default: the bundled Pythia arithmetic data")
    sp.add_argument("--models", help="CSV of the models: model, then flops and/or parameters, "
                    "tokens (compute: FLOPs, else 6ND, else parameters), family")
    sp.add_argument("--target-compute", type=float, nargs="+", metavar="FLOPS",
                    help="training compute of the model(s) to predict")
    sp.add_argument("--target-model", nargs="+", metavar="NAME",
                    help="model(s) of the data to predict (their results are hidden)")
    sp.add_argument("--methods", default="cod,task_law,task_sigmoid",
                    help="comma-separated: cod, task_law, task_sigmoid (default: all three)")
    sp.add_argument("--clustering", choices=["meanshift", "kmeans", "irt"], default="meanshift")
    sp.add_argument("--inference", choices=["svi", "nuts"], default="svi",
                    help="how the laws are fitted (default svi: seconds; nuts: a minute)")
    sp.add_argument("--steps", type=int, help="SVI steps (default 1500)")
    sp.add_argument("--samples", type=int, help="draws (NUTS: per chain; default 500)")
    sp.add_argument("--warmup", type=int, help="NUTS warm-up per chain (default 500)")
    common(sp)
    sp.set_defaults(func=cmd_cod)


def _check(args):
    from cppjax.cod import METHODS

    if not args.target_compute and not args.target_model and args.items is not None:
        raise ValueError("give --target-compute FLOPS or --target-model NAME (what to predict)")
    for c in args.target_compute or ():
        if not c > 0:
            raise ValueError(f"--target-compute must be positive FLOPs; got {c:g}")
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    bad = [m for m in methods if m not in METHODS]
    if bad or not methods:
        raise ValueError(f"--methods: unknown {bad}; choose from {', '.join(METHODS)}")
    if (args.items is None) != (args.models is None):
        raise ValueError("--items and --models go together (or neither: the bundled data)")
    for flag in ("samples", "warmup", "steps"):
        v = getattr(args, flag)
        if v is not None and v < 1:
            raise ValueError(f"--{flag} must be a positive integer; got {v}")
    return methods


def cmd_cod(args) -> int:
    import jax
    import matplotlib.pyplot as plt
    import pandas as pd

    from cppjax import cod, plots
    from cppjax.cli.common import check_common, refuse_overwrite

    check_common(args)
    methods = _check(args)
    refuse_overwrite(args, COD_FILES)
    if args.items is None:
        from cppjax.datasets import load_pythia_arithmetic

        data = load_pythia_arithmetic()
    else:
        from cppjax.data.items import ItemResponses

        data = ItemResponses.from_long(args.items, args.models)
    targets = list(args.target_model or [])
    if not targets and not args.target_compute:  # the bundled data: its largest model held out
        comp = data.compute()
        targets = [max(data.models, key=lambda m: comp[m])]
        print(f"no target given: predicting the largest model, {targets[0]} (--target-model "
              f"or --target-compute to choose)")
    for m in targets:
        if m not in data.models:
            from cppjax.errors import did_you_mean

            raise KeyError(f"--target-model {m!r} is not in the data"
                           f"{did_you_mean(m, data.models)}")
    data.compute()  # a model without a compute fails here, before the fit
    extra = {f"target@{c:.3g}": c for c in args.target_compute or ()}
    settings = cod.COD(clustering=args.clustering, inference=args.inference,
                       num_steps=args.steps or 1500, num_samples=args.samples or 500,
                       num_warmup=args.warmup or 500)
    print(f"{data}; predicting {', '.join(targets + list(extra))}", flush=True)
    out = Path(args.out)
    posts, frames = {}, []
    # one key per method, split into a fitting and a prediction key (no seed arithmetic)
    method_keys = jax.random.split(jax.random.PRNGKey(args.seed), len(methods))
    for method, key in zip(methods, method_keys, strict=True):
        print(f"fitting {method} ...", flush=True)
        k_fit, k_pred = jax.random.split(key)
        post = cod.fit(data, rng_key=k_fit, targets=targets, target_compute=extra,
                       method=method, settings=settings)
        posts[method] = post
        f = post.predict("missing", rng_key=k_pred).to_frame(level=args.level)
        frames.append(f.drop(columns=["observed"]).assign(method=method))
        print(f"  fitted in {post.fit_seconds:.0f}s")
    df = pd.concat(frames)[["method", "model", "task", "mean", "median", "lower", "upper"]]
    lev = f"{args.level * 100:g}"
    df.rename(columns={"lower": f"lower_{lev}", "upper": f"upper_{lev}"}).to_csv(
        out / COD_FILES[0], index=False)
    acc = data.task_accuracy()
    truth = {m: acc.loc[m] for m in targets}
    with pd.option_context("display.width", 160, "display.max_rows", 200):
        show = df.copy()
        for m in targets:
            show.loc[show["model"] == m, "truth"] = [truth[m][t] for t in
                                                     show.loc[show["model"] == m, "task"]]
        print(show.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    figs = []
    if "cod" in posts:
        posts["cod"].clusters.to_csv(out / COD_FILES[1], index=False)
        print(posts["cod"].summary.to_string())
    for task in data.tasks:
        safe = "".join(c if c.isalnum() else "_" for c in task)
        fig, axes = plt.subplots(1, 2 if "cod" in posts else 1, figsize=(13, 4.5),
                                 squeeze=False)
        plots.cod_prediction(posts, task, truth={m: truth[m][task] for m in targets},
                             level=args.level, ax=axes[0, -1])
        if "cod" in posts:
            plots.cod_clusters(posts["cod"], task, level=args.level, ax=axes[0, 0])
        path = out / f"cod_{safe}.png"
        fig.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(fig)
        figs.append(path)
    print(f"predictions -> {out / COD_FILES[0]}; figures: {len(figs)} in {out}", file=sys.stdout)
    return 0
