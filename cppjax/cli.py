"""The ``cppjax`` command line.

    cppjax predict                       # bundled CPP data, default model, every missing cell
    cppjax predict --scores my.csv --scale percent --out results/
    cppjax rank --task "GSM8K(4-shot)"
    cppjax evaluate --protocol random --methods mf,pmf_svi

Errors on bad input are one message saying what to fix (``--debug`` shows the traceback).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEFAULT_METHOD = "pmf_svi"


def _load(args):
    from cppjax.data import ScoreMatrix, read_factors
    from cppjax.datasets import load_cpp_crowdsource, load_obsscaling

    if args.scores is None:
        return {"cpp": load_cpp_crowdsource, "obsscaling": load_obsscaling}[args.dataset]()
    mf = read_factors(args.model_factors) if args.model_factors else None
    tf = (read_factors(args.task_factors, names_as=args.task_factors_as)
          if args.task_factors else None)
    common = dict(scale=args.scale, model_factors=mf, task_factors=tf,
                  drop_empty=args.drop_empty)
    if args.long:
        common.pop("drop_empty")
        return ScoreMatrix.from_long(args.scores, **common)
    return ScoreMatrix.from_wide(args.scores, models_as=args.models_as, **common)


def _settings(args) -> dict:
    from cppjax.api import make_spec

    spec, inference = make_spec(args.method)
    if inference is None:
        return {}
    out = {}
    if args.samples:
        out["num_samples"] = args.samples
    if args.warmup:
        out["num_warmup"] = args.warmup
    if args.steps:
        out["svi_steps"] = args.steps
    if args.chains:
        out["num_chains"] = args.chains
    return out


def _fit(args, sm):
    import jax

    from cppjax.api import fit

    print(f"fitting {args.method} on {sm} ...", flush=True)
    key = jax.random.PRNGKey(args.seed)
    post = fit(args.method, sm, rng_key=key, **_settings(args))
    diag = getattr(post, "diagnostics", {})
    print(f"fitted in {post.fit_seconds:.1f}s" + (f"; diagnostics: {diag}" if diag else ""))
    return post


def cmd_predict(args) -> int:
    import jax

    from cppjax import plots

    sm = _load(args)
    post = _fit(args, sm)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if post.unplaced_models:
        print(f"the scaling law cannot place {len(post.unplaced_models)} model(s) on a size axis "
              f"(no FLOPs, parameters or tokens): {', '.join(post.unplaced_models)}; their cells "
              f"are not predicted")
    pred = post.predict(post.placed_cells("missing"), rng_key=jax.random.PRNGKey(args.seed + 1))
    df = pred.to_frame(level=args.level).drop(columns=["observed"])
    csv = out / "predictions.csv"
    lev = f"{args.level * 100:g}"
    df.rename(columns={"lower": f"lower_{lev}", "upper": f"upper_{lev}"}).to_csv(csv, index=False)
    unit = {"percent": "%", "fraction": "", "unbounded": ""}[sm.scale]
    print(f"\n{len(df)} unobserved cells predicted ({args.level:.0%} intervals, original units) "
          f"-> {csv}")
    df["width"] = df["upper"] - df["lower"]
    print(f"median interval width {df['width'].median():.3g}{unit}; most uncertain cells:")
    for _, r in df.sort_values("width", ascending=False).head(5).iterrows():
        print(f"  {r['model']:<28.28s} {r['task']:<28.28s} {r['mean']:6.3g}{unit} "
              f"[{r['lower']:.3g}, {r['upper']:.3g}]")
    figs = plots.save_prediction_figures(post, pred, out, seed=args.seed)
    print("figures: " + ", ".join(str(f) for f in figs))
    return 0


def cmd_rank(args) -> int:
    import jax

    from cppjax import plots

    sm = _load(args)
    post = _fit(args, sm)
    rp = post.rank(args.task, rng_key=jax.random.PRNGKey(args.seed + 1))
    df = rp.to_frame(level=args.level)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    safe = "".join(c if c.isalnum() else "_" for c in args.task)
    df.to_csv(out / f"rank_{safe}.csv", index=False)
    print(f"\nrank of each model on {args.task!r} ({args.level:.0%} credible interval; "
          f"observed = score known):")
    print(df.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    fig = out / f"rank_{safe}.png"
    ax = plots.rank_forest(rp, level=args.level)
    ax.figure.savefig(fig, dpi=120, bbox_inches="tight")
    print(f"table -> {out / f'rank_{safe}.csv'}; figure -> {fig}")
    return 0


def cmd_evaluate(args) -> int:
    import numpy as np

    from cppjax import splits as S
    from cppjax.evaluation import evaluate_methods

    sm = _load(args)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if args.protocol == "random":
        splits = [S.random_cells(s, sm, args.frac) for s in range(args.seeds)]
    elif args.protocol == "kfold":
        splits = S.kfold_cells(args.seed, sm, args.folds)
    elif args.protocol == "new_model":
        splits = list(S.each_new_model(args.seed, sm, k=args.k))
    elif args.protocol == "new_task":
        splits = [S.new_task(args.seed + i, sm, t, k=args.k) for i, t in enumerate(sm.tasks)
                  if sm.mask[:, sm.task_index(t)].sum() > args.k]
    else:
        splits = [S.largest_of_family(sm, min_members=3, k=args.k, rng_key=args.seed)]
    print(f"{args.protocol}: {len(splits)} split(s) of {sm}")
    table = evaluate_methods(methods, splits, seed=args.seed, settings=_settings_for_eval(args))
    with np.printoptions(precision=4):
        print(table.to_string(float_format=lambda v: f"{v:.4g}"))
    return 0


def _settings_for_eval(args) -> dict:
    out = {}
    if args.samples:
        out["num_samples"] = args.samples
    if args.steps:
        out["svi_steps"] = args.steps
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cppjax", description="Predict LLM benchmark scores "
                                "with uncertainty (collaborative performance prediction).")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = p.add_subparsers(dest="command", required=True)

    def data_args(sp):
        g = sp.add_argument_group("data")
        g.add_argument("--scores", help="score table (CSV); default: bundled dataset")
        g.add_argument("--dataset", choices=["cpp", "obsscaling"], default="cpp",
                       help="bundled dataset when --scores is not given")
        g.add_argument("--long", action="store_true", help="the table is long: model,task,score")
        g.add_argument("--models-as", choices=["rows", "columns"], default="rows")
        g.add_argument("--scale", choices=["auto", "percent", "fraction", "unbounded"],
                       default="auto")
        g.add_argument("--model-factors", help="CSV of model factors (one row per model)")
        g.add_argument("--task-factors", help="CSV of task factors")
        g.add_argument("--task-factors-as", choices=["rows", "columns"], default="rows",
                       help="tasks as rows (default) or as columns in --task-factors")
        g.add_argument("--drop-empty", action="store_true",
                       help="drop models/tasks with no score instead of failing")

    def fit_args(sp):
        g = sp.add_argument_group("model")
        g.add_argument("--method", default=DEFAULT_METHOD,
                       help=f"predictor (default {DEFAULT_METHOD}; e.g. pmf_nuts, bncf_svi, mf)")
        g.add_argument("--samples", type=int, help="posterior draws")
        g.add_argument("--warmup", type=int, help="NUTS warm-up steps")
        g.add_argument("--chains", type=int, help="NUTS chains")
        g.add_argument("--steps", type=int, help="SVI steps")
        g.add_argument("--seed", type=int, default=0)
        g.add_argument("--level", type=float, default=0.9, help="interval level (default 0.9)")
        g.add_argument("--out", default="cppjax-output", help="output folder")

    sp = sub.add_parser("predict", help="predict every unobserved cell (the main job)")
    data_args(sp)
    fit_args(sp)
    sp.set_defaults(func=cmd_predict)

    sp = sub.add_parser("rank", help="each model's rank on a task, with credible intervals")
    sp.add_argument("--task", required=True)
    data_args(sp)
    fit_args(sp)
    sp.set_defaults(func=cmd_rank)

    sp = sub.add_parser("evaluate", help="run a protocol for a set of methods")
    data_args(sp)
    sp.add_argument("--protocol", default="random",
                    choices=["random", "kfold", "new_model", "new_task", "largest_of_family"])
    sp.add_argument("--methods", default="mf,ncf_factors,pmf_svi")
    sp.add_argument("--seeds", type=int, default=3)
    sp.add_argument("--frac", type=float, default=0.05)
    sp.add_argument("--folds", type=int, default=20)
    sp.add_argument("--k", type=int, default=0, help="revealed scores (new model / task)")
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--samples", type=int)
    sp.add_argument("--steps", type=int)
    sp.set_defaults(func=cmd_evaluate)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    import numpyro

    # NUTS chains run one per device when there are enough; make CPU cores 4 devices (no effect
    # once JAX has started, e.g. when main() is called from a notebook)
    numpyro.set_host_device_count(4)
    try:
        return args.func(args)
    except (ValueError, KeyError, FileNotFoundError) as e:
        if args.debug:
            raise
        msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        print(f"cppjax: error: {msg}\n(run with --debug for the traceback)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
