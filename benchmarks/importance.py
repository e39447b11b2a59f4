"""Factor importance (the CPP paper's analysis): Shapley values of groups of design factors for
the held-out error of new models and new tasks, all subsets fitted in vmapped calls.

    python benchmarks/importance.py                 # CPP and OSL, 3 seeds, figures
    python benchmarks/importance.py --seeds 1 --steps 100 --datasets obsscaling   # smoke test

Value of a set of factor groups: the squared error (normalised units) on 5 folds of held-out
models and (CPP: tasks have factors) 5 folds of held-out tasks, equally weighted, of a small
matrix model that sees only those factors (``cppjax.importance``). A group's Shapley value is
its mean reduction of that error over the orders of adding groups (exact: every subset); mean
± sd over the seeds (initialisations). ``share``: of the total reduction from no factors to all.
Figures: ``results/figures/importance_<dataset>.png``.
"""

from __future__ import annotations

import argparse
import time

import matplotlib

matplotlib.use("Agg")
from common import RESULTS, write_results  # noqa: E402

from cppjax.datasets import load_cpp_crowdsource, load_obsscaling  # noqa: E402
from cppjax.importance import shapley  # noqa: E402

DATASETS = {"cpp_crowdsource": (load_cpp_crowdsource, "both"),
            "obsscaling": (load_obsscaling, "models")}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)
    from pathlib import Path

    out = Path(args.out)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    groups, lines = {}, ["# Factor importance: Shapley values of design-factor groups", "",
                         __doc__.split("\n\n", 2)[2].strip(), ""]
    for name in args.datasets.split(","):
        loader, protocol = DATASETS[name]
        t0 = time.perf_counter()
        r = shapley(loader(), rng_key=0, protocol=protocol, n_seeds=args.seeds,
                    steps=args.steps)
        secs = time.perf_counter() - t0
        ax = r.plot(title=f"{name}: factor importance ({r.n_fits} fits, {secs:.0f} s)")
        ax.figure.savefig(out / "figures" / f"importance_{name}.png", dpi=120)
        g = {}
        for row in r.table.itertuples():
            g[row.group] = {"shapley": {"mean": float(row.shapley),
                                        "std": float(row.shapley_sd), "n": args.seeds},
                            "share": {"mean": float(row.share), "std": 0.0, "n": args.seeds}}
        g["(no factors)"] = {"mse": {"mean": r.v_empty, "std": 0.0, "n": args.seeds}}
        g["(all factors)"] = {"mse": {"mean": r.v_full, "std": 0.0, "n": args.seeds}}
        groups[name] = g
        lines += [f"## {name} ({protocol} folds; {r.n_fits} fits in {secs:.0f} s, "
                  f"{'exact' if r.exact else 'sampled orders'})", "",
                  f"Held-out error without factors {r.v_empty:.4f}, with all {r.v_full:.4f}.",
                  "", "| group | side | columns | Shapley (error reduction) | share |",
                  "|---|---|---|---|---|"]
        for row in r.table.itertuples():
            lines.append(f"| {row.group} | {row.side} | {row.columns} | {row.shapley:.5f} ± "
                         f"{row.shapley_sd:.5f} | {row.share:.2f} |")
        lines += ["", f"![{name}](figures/importance_{name}.png)", ""]
        print(r.table.to_string(), flush=True)
    write_results("importance", "Shapley values of factor groups for the error on held-out "
                  "models and tasks", groups, "\n".join(lines), out_dir=out)


if __name__ == "__main__":
    main()
