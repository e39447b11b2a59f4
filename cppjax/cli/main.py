"""The ``cppjax`` command line.

    cppjax predict                       # bundled CPP data, default model, every missing cell
    cppjax predict --scores my.csv --scale percent --out results/
    cppjax rank --task "GSM8K(4-shot)"
    cppjax evaluate --protocol random --methods mf,pmf_svi
    cppjax plan --model "Llama 3 8B" --budget 10
    cppjax cod --items items.csv --models models.csv --target-compute 1e23

Errors on bad input are one message saying what to fix (``--debug`` shows the traceback).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cppjax.cli.common import (
    add_normalization_arg,
    check_common,
    normalization_for,
    refuse_overwrite,
    task_info_of,
)

DEFAULT_METHOD = "pmf_svi"


def _load(args):
    from cppjax.data import ScoreMatrix, read_factors
    from cppjax.datasets import load_cpp_crowdsource, load_obsscaling

    if args.scores is None:
        sm = {"cpp": load_cpp_crowdsource, "obsscaling": load_obsscaling}[args.dataset]()
        return normalization_for(sm, args)
    path = Path(args.scores)
    if path.is_dir() or path.suffix.lower() == ".json":  # lm-evaluation-harness result files
        sm = ScoreMatrix.from_harness(path, model_factors=(
            read_factors(args.model_factors, sep=args.sep) if args.model_factors else None),
            task_info=task_info_of(args))
        print(f"read {sm.n_models} models x {sm.n_tasks} tasks from lm-evaluation-harness "
              f"results in {path} (one metric per task: cppjax.data.harness.METRIC_ORDER)")
        return normalization_for(sm, args)
    mf = read_factors(args.model_factors, sep=args.sep) if args.model_factors else None
    tf = (read_factors(args.task_factors, names_as=args.task_factors_as, sep=args.sep)
          if args.task_factors else None)
    common = dict(scale=args.scale, model_factors=mf, task_factors=tf,
                  drop_empty=args.drop_empty, sep=args.sep, task_info=task_info_of(args))
    if args.long:
        common.pop("drop_empty")
        return normalization_for(ScoreMatrix.from_long(args.scores, **common), args)
    models_as = args.models_as
    if models_as == "auto":  # decided from the labels, and said (cppjax.data.names)
        from cppjax.data.names import orientation
        from cppjax.data.tables import read_table

        table = read_table(args.scores, label_column=None, sep=args.sep)
        o = orientation(table.row_labels, table.col_labels, str(args.scores))
        print(o.line)
        models_as = o.models_as
    return normalization_for(ScoreMatrix.from_wide(args.scores, models_as=models_as, **common),
                             args)


def _describe_tasks(sm, shown: int = 12) -> None:
    """Each task's bounds and direction where they differ by task (a mixed table) or where a
    task is lower-is-better: what the table was read as."""
    from cppjax.data.names import metric_kind, named_direction

    info = sm.task_info
    if sm.scale != "mixed" and info["higher_is_better"].all():
        return
    parts = []
    for j, (t, r) in enumerate(info.head(shown).iterrows()):
        k = metric_kind(t, sm.scores[:, j])
        if sm.scale == "mixed" and (k.lower, k.upper, k.higher_is_better) == (
                r.lower, r.upper, r.higher_is_better):
            why = k.rule  # the rule that decided it (cppjax.data.names)
        elif not r.higher_is_better and (word := named_direction(t)[1]):
            why = f"lower is better ('{word}' in the name)"
        else:
            why = "given" if sm.scale == "mixed" else sm.scale
        parts.append(f"{t} [{r.lower:g}, {r.upper:g}]"
                     + ("" if r.higher_is_better else " lower-better") + f" ({why})")
    more = f"; and {len(info) - shown} more" if len(info) > shown else ""
    print(f"tasks read as ({sm.scale}; --task-info to change): {'; '.join(parts)}{more}")


def _warn_sparse(sm, shown: int = 8) -> None:
    """Name the models and tasks with only one or two scores: their predictions rest mostly on
    the other rows and the priors (their intervals say how much)."""
    models, tasks = sm.sparse(3)
    for kind, names in (("task", tasks), ("model", models)):
        if names:
            more = f" and {len(names) - shown} more" if len(names) > shown else ""
            print(f"warning: {len(names)} {kind}(s) with fewer than 3 observed scores: "
                  f"{', '.join(names[:shown])}{more}; their predictions lean on the other "
                  f"{kind}s and the priors", file=sys.stderr)


#: CLI flag -> inference setting (each applies to the inferences that take it)
FLAGS = {"samples": "num_samples", "warmup": "num_warmup", "chains": "num_chains",
         "steps": "num_steps"}


def _flag_names(inference: str = "") -> dict:
    """Flag -> the setting's name in ``inference`` (a point model's Adam calls its steps
    ``steps``)."""
    return {**FLAGS, "steps": "steps"} if inference == "adam" else FLAGS


def _flag_settings(args, inference: str = "") -> dict:
    """The settings of the flags given, by their names in ``inference``."""
    names = _flag_names(inference)
    return {names[f]: getattr(args, f) for f in FLAGS if getattr(args, f, None) is not None}


def _spec(args):
    """The model and inference of ``--method`` with the flags' settings, checked before any
    data is read or fitted: a flag the method's inference does not take is an error."""
    from cppjax.evaluation import settings_for
    from cppjax.models.baselines import BASELINES
    from cppjax.models.registry import METHODS, make_spec

    if args.method == "auto" or args.method in BASELINES:
        given = [f for f in FLAGS if getattr(args, f, None) is not None]
        if given:
            raise ValueError(f"--{', --'.join(given)} do(es) not apply to --method "
                             f"{args.method} (its candidates keep their own settings)")
        if args.method == "auto":
            from cppjax.stacking import Stack

            return Stack(), None
        return BASELINES[args.method](), None
    if args.method not in METHODS:
        return make_spec(args.method)  # the error naming the closest method names
    inference = METHODS[args.method][2]
    usable = settings_for(args.method, _flag_settings(args, inference))
    names = _flag_names(inference)
    unused = [f for f in FLAGS if getattr(args, f, None) is not None and names[f] not in usable]
    if unused:
        raise ValueError(f"--{', --'.join(unused)} do(es) not apply to --method {args.method} "
                         f"(see 'cppjax methods')")
    return make_spec(args.method, **usable)


PREDICT_FILES = ("predictions.csv", "heatmap_mean.png", "heatmap_width.png", "rank_forest.png")


def _rank_files(task: str) -> tuple[str, str]:
    safe = "".join(c if c.isalnum() else "_" for c in task)
    return f"rank_{safe}.csv", f"rank_{safe}.png"


def _fit(args, sm, spec, inference, key):
    print(f"fitting {args.method} on {sm} ...", flush=True)
    post = spec.fit(sm, rng_key=key, inference=inference)
    diag = post.diagnostics
    if "weights" in diag:  # a stack: its choice, not every candidate's diagnostics
        bt = diag["backtest"]
        diag = {"backtest": f"{bt['kind']} ({bt['cells']} cells): {bt['why']}",
                "weights": {c: round(w, 3) for c, w in diag["weights"].items() if w > 0},
                **({"skipped": diag["skipped"]} if diag["skipped"] else {})}
    print(f"fitted in {post.fit_seconds:.1f}s" + (f"; diagnostics: {diag}" if diag else ""))
    return post


def cmd_predict(args) -> int:
    import jax

    from cppjax import plots
    from cppjax.inference.keys import as_key

    check_common(args)
    refuse_overwrite(args, PREDICT_FILES)
    spec, inference = _spec(args)
    sm = _load(args)
    _describe_tasks(sm)
    _warn_sparse(sm)
    k_fit, k_pred, k_fig = jax.random.split(as_key(args.seed), 3)
    post = _fit(args, sm, spec, inference, k_fit)
    out = Path(args.out)
    if post.unplaced_models:
        print(f"the scaling law cannot place {len(post.unplaced_models)} model(s) on a size axis "
              f"(no FLOPs, parameters or tokens): {', '.join(post.unplaced_models)}; their cells "
              f"are not predicted")
    pred = post.predict(post.placed_cells(args.cells), rng_key=k_pred)
    if pred.n_cells == 0:
        print("nothing to predict: every cell of the table is observed "
              f"({sm.n_models} models x {sm.n_tasks} tasks); --cells all writes the fitted "
              f"value of every cell")
        return 0
    df = pred.to_frame(level=args.level)
    if args.cells == "missing":
        df = df.drop(columns=["observed"])
    csv = out / "predictions.csv"
    lev = f"{args.level * 100:g}"
    df.rename(columns={"lower": f"lower_{lev}", "upper": f"upper_{lev}"}).to_csv(csv, index=False)
    unit = "%" if sm.scale == "percent" else ""
    what = "unobserved cells" if args.cells == "missing" else "cells (observed and not)"
    print(f"\n{len(df)} {what} predicted ({args.level:.0%} intervals from {pred.n_draws} "
          f"draws, original units) -> {csv}")
    df["width"] = df["upper"] - df["lower"]
    print(f"median interval width {df['width'].median():.3g}{unit}; most uncertain cells:")
    for _, r in df.sort_values("width", ascending=False).head(5).iterrows():
        print(f"  {r['model']:<28.28s} {r['task']:<28.28s} {r['mean']:6.3g}{unit} "
              f"[{r['lower']:.3g}, {r['upper']:.3g}]")
    figs = plots.save_prediction_figures(post, pred, out, rng_key=k_fig, level=args.level)
    print("figures: " + ", ".join(str(f) for f in figs))
    return 0


def cmd_rank(args) -> int:
    import jax

    from cppjax import plots
    from cppjax.inference.keys import as_key

    check_common(args)
    refuse_overwrite(args, _rank_files(args.task))
    spec, inference = _spec(args)
    sm = _load(args)
    sm.task_index(args.task)  # an unknown task fails here, before the fit
    _describe_tasks(sm)
    _warn_sparse(sm)
    k_fit, k_rank = jax.random.split(as_key(args.seed))
    post = _fit(args, sm, spec, inference, k_fit)
    rp = post.rank(args.task, rng_key=k_rank)
    df = rp.to_frame(level=args.level)
    out = Path(args.out)
    table, fig = (out / name for name in _rank_files(args.task))
    df.to_csv(table, index=False)
    direction = "higher" if rp.higher_is_better else "lower"
    print(f"\nrank of each model on {args.task!r} (1 = best: {direction} is better; "
          f"{args.level:.0%} credible interval; observed = score known):")
    print(df.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    ax = plots.rank_forest(rp, level=args.level)
    ax.figure.savefig(fig, dpi=120, bbox_inches="tight")
    print(f"table -> {table}; figure -> {fig}")
    return 0


def cmd_evaluate(args) -> int:
    import jax
    import numpy as np

    from cppjax import splits as S
    from cppjax.evaluation import check_settings, evaluate_methods
    from cppjax.inference.keys import as_key

    check_common(args)
    if args.out is not None:
        refuse_overwrite(args, ["evaluation.csv"])
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    settings = _settings_for_eval(args)
    check_settings(methods, settings)
    sm = _load(args)
    if args.protocol == "random":
        splits = [S.random_cells(sm, args.frac, rng_key=s) for s in range(args.seeds)]
    elif args.protocol == "kfold":
        splits = S.kfold_cells(sm, args.folds, rng_key=args.seed)
    elif args.protocol == "new_model":
        splits = list(S.each_new_model(sm, k=args.k, rng_key=args.seed))
    elif args.protocol == "new_task":
        tasks = [t for t in sm.tasks if sm.mask[:, sm.task_index(t)].sum() > args.k]
        keys = jax.random.split(as_key(args.seed), len(tasks))
        splits = [S.new_task(sm, t, k=args.k, rng_key=k) for k, t in zip(keys, tasks, strict=True)]
    elif args.protocol == "compute_cutoff":
        splits = [S.compute_cutoff(sm, t) for t in sm.tasks]
    elif args.protocol == "leave_family_out":
        splits = [S.leave_family_out(sm)]
    else:
        splits = [S.largest_of_family(sm, min_members=3, k=args.k, rng_key=args.seed)]
    print(f"{args.protocol}: {len(splits)} split(s) of {sm}")
    table = evaluate_methods(methods, splits, rng_key=args.seed, settings=settings, progress=True)
    with np.printoptions(precision=4):
        print(table.to_string(float_format=lambda v: f"{v:.4g}"))
    print(METRIC_UNITS)
    if args.out is not None:
        path = Path(args.out) / "evaluation.csv"
        table.rename_axis("method").to_csv(path)
        print(f"table -> {path}")
    return 0


PLAN_FILES = ("plan.csv", "plan.png")
TARGETS = ("aggregate", "rank", "scores", "best")


def _plan_target(args, sm):
    """The planning target of the flags, every name checked against the table (before a fit)."""
    from cppjax import planning

    if args.budget is None and args.k is None:
        raise ValueError("give --budget (in the costs' unit; 1 per evaluation without --costs) "
                         "or --k (a number of evaluations)")
    if args.budget is not None and not args.budget > 0:
        raise ValueError(f"--budget must be a positive number; got {args.budget}")
    if args.k is not None and args.k < 1:
        raise ValueError(f"--k must be a positive integer; got {args.k}")
    if args.model is not None:
        sm.model_index(args.model)
    for t in args.task or ():
        sm.task_index(t)
    if args.target == "best":
        if not args.task or len(args.task) != 1:
            raise ValueError("--target best needs one --task")
        return planning.best(args.task[0])
    if args.model is None:
        raise ValueError(f"--target {args.target} needs --model NAME")
    make = {"aggregate": planning.aggregate, "rank": planning.rank}
    if args.target == "scores":
        return planning.scores(args.model, tasks=args.task)
    return make[args.target](args.model, args.task)


def cmd_plan(args) -> int:
    import jax
    import pandas as pd

    from cppjax import planning
    from cppjax.inference.keys import as_key

    check_common(args)
    refuse_overwrite(args, PLAN_FILES)
    spec, inference = _spec(args)
    sm = _load(args)
    target = _plan_target(args, sm)
    costs = planning.read_costs(args.costs, sep=args.sep) if args.costs else None
    planning.cost_matrix(sm, costs)  # bad costs fail here, before the fit
    k_fit, k_plan = jax.random.split(as_key(args.seed))
    post = _fit(args, sm, spec, inference, k_fit)
    p = planning.plan(post, target, rng_key=k_plan, budget=args.budget, k=args.k, costs=costs,
                      level=args.level)
    out = Path(args.out)
    df = p.to_frame()
    df.to_csv(out / "plan.csv", index=False)
    ax = p.plot()
    ax.figure.savefig(out / "plan.png", dpi=120, bbox_inches="tight")
    what = ("entropy (bits)" if p.unit == "bits" else
            f"{p.level:.0%} interval width ({p.unit})")
    print(f"\nplan for the {target.describe()} ({len(df) - 1} evaluation(s), "
          f"{df['spent'].iloc[-1]:g} of {args.budget if args.budget else 'no'} budget; "
          f"expected {what} after each):")
    with pd.option_context("display.width", 160):
        print(df[["step", "model", "task", "cost", "spent", "expected_width"]].to_string(
            index=False, float_format=lambda v: f"{v:.3g}"))
    print(f"table -> {out / 'plan.csv'}; figure -> {out / 'plan.png'}; run these, add the "
          f"scores to the table and plan again")
    return 0


METRIC_UNITS = (
    "metrics (means over the splits): mse, l1 in normalised units (per-task min-max, the CPP "
    "paper's); mae, rmse in the table's units; rank_acc, mae_at_2 (rank error at 2) in "
    "percent; spearman per task; coverage_XX: share of held-out scores inside the XX% "
    "interval; width_90 normalised; crps, lpd (log predictive density) per cell; fit_seconds "
    "per fit")


def _settings_for_eval(args) -> dict:
    return _flag_settings(args)


def cmd_methods(args) -> int:
    from cppjax.models.registry import describe_methods

    print("method names (model + inference; '--method NAME'):")
    print(describe_methods())
    print(f"  {'auto':<32s} candidates chosen, stacked and calibrated by backtesting on the "
          f"table's own frontier")
    print(f"  {'copy_sibling':<32s} the family's largest (a run's last checkpoint) score; baseline")
    print(f"  {'pc_sigmoid':<32s} observational scaling law on 3 principal components "
          f"(closed form; baseline)")
    return 0


def _method_names() -> str:
    from cppjax.models.registry import METHODS

    return ", ".join(METHODS)


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
        g.add_argument("--sep", default=None,
                       help="CSV delimiter (default: the first of , ; tab | in the header line)")
        g.add_argument("--models-as", choices=["auto", "rows", "columns"], default="auto",
                       help="each row of --scores is a model (rows) or each column is "
                       "(columns, e.g. HELM exports); auto (default): decided from the names "
                       "(model sizes, org/name, checkpoints against metric and benchmark "
                       "names), printed, and refused where they do not tell")
        g.add_argument("--scale", choices=["auto", "percent", "fraction", "unbounded", "mixed"],
                       default="auto",
                       help="unit of the scores: percent (0-100), fraction (0-1), unbounded, "
                       "mixed (each task's bounds from its own scores: [0, 1], [0, 100] or "
                       "none); auto (default): fraction or percent where every score fits, "
                       "else mixed")
        g.add_argument("--task-info", metavar="FILE",
                       help="CSV with one row per task and columns lower, upper, "
                       "higher_is_better, chance (any subset; blank: the default)")
        g.add_argument("--lower-is-better", nargs="+", metavar="TASK",
                       help="tasks whose best score is the lowest (error rates, perplexity, "
                       "bits-per-byte): ranked lowest first")
        g.add_argument("--model-factors", help="CSV of model factors (one row per model)")
        g.add_argument("--task-factors", help="CSV of task factors")
        g.add_argument("--task-factors-as", choices=["rows", "columns"], default="rows",
                       help="tasks as rows (default) or as columns in --task-factors")
        g.add_argument("--drop-empty", action="store_true",
                       help="drop models/tasks with no score instead of failing")

    def fit_args(sp):
        g = sp.add_argument_group("model")
        g.add_argument("--method", default=DEFAULT_METHOD,
                       help=f"predictor (default {DEFAULT_METHOD}): {_method_names()}; "
                       "'cppjax methods' says what each is")
        g.add_argument("--samples", type=int, help="posterior draws (NUTS: per chain; SVI)")
        g.add_argument("--warmup", type=int, help="NUTS warm-up iterations per chain")
        g.add_argument("--chains", type=int, help="NUTS chains")
        g.add_argument("--steps", type=int, help="SVI/MAP optimisation steps, or Adam steps "
                       "of a point model")
        add_normalization_arg(g)
        g.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
        g.add_argument("--level", type=float, default=0.9,
                       help="credible interval level, in (0, 1) (default 0.9)")
        g.add_argument("--out", default="cppjax-output",
                       help="output folder (default cppjax-output)")
        g.add_argument("--overwrite", action="store_true",
                       help="replace the files of an earlier run in --out (refused otherwise)")

    sp = sub.add_parser("predict", help="predict every unobserved cell (the main job)")
    data_args(sp)
    fit_args(sp)
    sp.add_argument("--cells", choices=["missing", "all"], default="missing",
                    help="missing (default): the unobserved cells; all: every cell, the "
                    "observed ones' fitted values too (with an 'observed' column)")
    sp.set_defaults(func=cmd_predict)

    sp = sub.add_parser("rank", help="each model's rank on a task, with credible intervals")
    sp.add_argument("--task", required=True)
    data_args(sp)
    fit_args(sp)
    sp.set_defaults(func=cmd_rank)

    sp = sub.add_parser("evaluate", help="run a protocol for a set of methods")
    data_args(sp)
    sp.add_argument("--protocol", default="random",
                    choices=["random", "kfold", "new_model", "new_task", "largest_of_family",
                             "compute_cutoff", "leave_family_out"],
                    help="random: --frac of the observed cells held out, --seeds times; kfold: "
                    "--folds folds of the cells; new_model / new_task: each model (task) "
                    "held out with --k of its scores revealed; largest_of_family: each "
                    "family's largest model held out; compute_cutoff: the top 20%% of models "
                    "by compute, one task hidden at a time; leave_family_out: each family "
                    "but its smallest model held out (default %(default)s)")
    sp.add_argument("--methods", default="mf,ncf_factors,pmf_svi",
                    help="comma-separated method names, see 'cppjax methods' "
                    "(default %(default)s)")
    sp.add_argument("--seeds", type=int, default=3,
                    help="random splits of the random protocol (default %(default)s)")
    sp.add_argument("--frac", type=float, default=0.05,
                    help="share of the observed cells held out per random split "
                    "(default %(default)s)")
    sp.add_argument("--folds", type=int, default=20, help="folds of kfold (default 20)")
    sp.add_argument("--k", type=int, default=0,
                    help="scores of a held-out model or task revealed to the methods "
                    "(new_model, new_task, largest_of_family; default 0)")
    sp.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    sp.add_argument("--out", default=None,
                    help="folder for evaluation.csv (default: print only)")
    sp.add_argument("--overwrite", action="store_true",
                    help="replace an earlier evaluation.csv in --out")
    sp.add_argument("--samples", type=int, help="posterior draws of the Bayesian methods")
    sp.add_argument("--steps", type=int, help="SVI/MAP steps of the Bayesian methods")
    sp.set_defaults(func=cmd_evaluate)

    sp = sub.add_parser("plan", help="which evaluations to run next, under a budget")
    sp.add_argument("--model", help="the model whose scores, rank or aggregate rank to settle")
    sp.add_argument("--task", nargs="+", metavar="TASK",
                    help="tasks of the target (--target best: the one task; default all)")
    sp.add_argument("--target", choices=TARGETS, default="aggregate",
                    help="aggregate (default): the model's rank on the mean over tasks; rank: "
                    "its rank on each task; scores: its scores; best: the best model on --task")
    sp.add_argument("--budget", type=float,
                    help="total cost of the evaluations (1 per evaluation without --costs)")
    sp.add_argument("--k", type=int, help="at most this many evaluations")
    sp.add_argument("--costs", metavar="FILE",
                    help="CSV of costs: columns task,cost or model,cost or model,task,cost, "
                    "or a models x tasks table (default: 1 per evaluation)")
    data_args(sp)
    fit_args(sp)
    sp.set_defaults(func=cmd_plan)

    def cod_common(sp):
        sp.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
        sp.add_argument("--level", type=float, default=0.9,
                        help="credible interval level, in (0, 1) (default 0.9)")
        sp.add_argument("--out", default="cppjax-output", help="output folder")
        sp.add_argument("--overwrite", action="store_true",
                        help="replace the files of an earlier run in --out")

    from cppjax.cli.cod import add_parser as add_cod

    add_cod(sub, cod_common)

    sp = sub.add_parser("methods", help="list the method names with one line each")
    sp.set_defaults(func=cmd_methods)
    return p


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv  # accepted before or after the subcommand
    args = build_parser().parse_args([a for a in argv if a != "--debug"])
    args.debug = debug
    import numpyro

    # NUTS chains run one per device when there are enough; make CPU cores 4 devices (no effect
    # once JAX has started, e.g. when main() is called from a notebook)
    numpyro.set_host_device_count(4)
    # compiled programs kept on disk between runs (CPPJAX_COMPILATION_CACHE=0: off)
    from cppjax.inference.cache import enable_compilation_cache

    enable_compilation_cache()
    try:
        return args.func(args)
    except (ValueError, KeyError, TypeError, FileNotFoundError) as e:
        if args.debug:
            raise
        msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        print(f"cppjax: error: {msg}\n(run with --debug for the traceback)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
