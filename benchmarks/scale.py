"""Cost against size: a ladder of synthetic tables from 10^3 observed cells upwards.

    python benchmarks/scale.py                               # the CPU ladder (1e3 .. 1e6 cells)
    python benchmarks/scale.py --gpu                         # a GPU: 1e5, 1e6, 1e7 cells
                                                             # (results/scale_gpu.{json,md})
    python benchmarks/scale.py --nuts                        # + PMF NUTS 4 x 1000 at 1000 x 50

Every table comes from :func:`cppjax.datasets.synthetic` (seeded, known truth; not real data):
20% of the cells observed, missing not at random, 200 tasks (50 below 10^4 cells), rank 3, 20
families. Each (size, method) runs in a fresh process, so that its peak memory (resident set,
or the device's peak bytes on a GPU) and its compile time are its own. For each: seconds per
step (the median compiled chunk of SVI steps, compile excluded; for the point models the warm
training time over its steps), cells per second per step, the first fit + predict of every
missing cell (compile included), and, against the known truth on the missing cells, the MSE of
the predictive mean (fraction units) and the 90% interval's coverage of the noisy scores.
The growth exponent is the slope of log(seconds per step) on log(cells), fitted on the sizes
from 10^4 to 10^6.

Methods: ``pmf_svi`` (PMF, SVI with the default guide: low-rank up to 2,000 latent values,
mean-field above; before 0.6 always low-rank), ``pmf_svi_meanfield`` (the
mean-field guide), ``pmf_svi_minibatch`` (mean-field, minibatches of 2^16 cells), ``mf`` (the
point model's defaults: 5 initialisations, validation split and refit), ``mf_single`` (one
initialisation, no refit). SVI runs ``--steps`` steps (2,000) and ``--draws`` draws (100).
Beyond 10^6 missing cells a random 10^6 of them are predicted (``predicted_cells`` says how
many were).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

METHODS = ("pmf_svi", "pmf_svi_meanfield", "pmf_svi_minibatch", "mf", "mf_single")
#: the largest table each method runs on by default (beyond: minutes per rung on 2 CPU cores)
MAX_CELLS = {"pmf_svi": 1e5, "pmf_svi_meanfield": 1e6, "pmf_svi_minibatch": 1e6, "mf": 2e5,
             "mf_single": 1e6}
#: the table of the NUTS target (models, tasks), 30% observed
NUTS_SHAPE = (1000, 50)
#: beyond this many missing cells, a random sample of this many is predicted (and scored)
PREDICT_CELLS = 10**6
#: cells per minibatch of ``pmf_svi_minibatch``
MINIBATCH = 2**16
#: issue 34's accelerator target: observed cells per second per SVI step at 10^7 cells
GPU_TARGET = 1e8


def table_shape(cells: float) -> tuple[int, int]:
    n_tasks = 50 if cells <= 1e4 else 200
    return max(10, round(cells / (0.2 * n_tasks))), n_tasks


def one(cells: float, method: str, steps: int, draws: int, seed: int = 0) -> dict:
    """Fit ``method`` on the synthetic table of ``cells`` observed cells; its figures."""
    import jax

    from cppjax import MF, PMF
    from cppjax.datasets import synthetic
    from cppjax.inference import NUTS, SVI, Adam

    n_models, n_tasks = table_shape(cells)
    syn = synthetic(seed, n_models=n_models, n_tasks=n_tasks, rank=3, n_families=20,
                    observed=0.2)
    sm = syn.matrix
    if method == "pmf_nuts":
        spec, inf = PMF(), NUTS(num_warmup=1000, num_samples=1000, num_chains=4)
    elif method.startswith("pmf_svi"):
        kw = {} if method == "pmf_svi" else {"guide": "meanfield"}
        if method == "pmf_svi_minibatch":
            kw["subsample_size"] = MINIBATCH
        spec, inf = PMF(), SVI(num_steps=steps, num_samples=draws, **kw)
    elif method in ("mf", "mf_single"):
        kw = {} if method == "mf" else {"n_inits": 1, "refit": False}
        spec = MF()
        inf = spec.default_inference("adam")
        inf = Adam(**{**inf.settings(), **kw})
    else:
        raise SystemExit(f"unknown method {method!r}")
    t0 = time.perf_counter()
    post = spec.fit(sm, rng_key=seed, inference=inf, progress=False)
    fit_s = time.perf_counter() - t0
    mi, ti = sm.missing()
    if mi.size > PREDICT_CELLS:
        pick = np.random.default_rng(seed).choice(mi.size, PREDICT_CELLS, replace=False)
        mi, ti = mi[pick], ti[pick]
    pred = post.predict((mi, ti), rng_key=seed + 1)
    total = time.perf_counter() - t0
    if method.startswith("mf"):  # the warm training time over its steps
        t1 = time.perf_counter()
        spec.fit(sm, rng_key=seed, inference=inf, progress=False)
        per_step = (time.perf_counter() - t1) / (inf.steps * (2 if inf.refit else 1))
    elif method == "pmf_nuts":
        per_step = float("nan")
    else:
        per_step = post.diagnostics.get("seconds_per_step", float("nan"))
    lo, hi = pred.interval(0.9)
    noisy = syn.full.scores[mi, ti]
    dev = jax.devices()[0]
    if dev.platform == "cpu":
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    else:
        peak = (dev.memory_stats() or {}).get("peak_bytes_in_use", float("nan"))
    out = {"cells": int(sm.n_observed), "shape": [n_models, n_tasks], "method": method,
           "seconds_per_step": per_step, "cells_per_second": sm.n_observed / per_step,
           "fit_seconds": fit_s, "fit_predict_seconds": total,
           "predicted_cells": int(mi.size), "peak_bytes": float(peak),
           "mse": float(np.mean((pred.mean() - syn.truth[mi, ti]) ** 2)),
           "coverage_90": float(np.mean((noisy >= lo) & (noisy <= hi)))}
    if method == "pmf_nuts":
        out["max_rhat"] = post.diagnostics.get("max_rhat", float("nan"))
    return out


METRICS = ("seconds_per_step", "cells_per_second", "fit_seconds", "fit_predict_seconds",
           "predicted_cells", "peak_bytes", "mse", "coverage_90", "max_rhat")


def earlier_rows(path, keep) -> tuple[list[dict], str | None]:
    """The rows of an earlier results file whose method ``keep`` accepts, and its command."""
    if not path.exists():
        return [], None
    doc = json.loads(path.read_text())
    rows = []
    for group, entries in doc["groups"].items():
        method = group.split("/", 1)[1]
        if not keep(method):
            continue
        for key, r in entries.items():
            if not key.endswith("_cells"):
                continue
            row = {k: v["mean"] for k, v in r.items()}
            cells = int(key.split("_")[0])
            shape = [row.pop("n_models", None), row.pop("n_tasks", None)]
            if method == "pmf_nuts":
                shape = list(NUTS_SHAPE)
            elif None in shape:  # written before the shape was recorded: the nominal one
                shape = list(table_shape(float(f"{cells:.1g}")))
            row.update(cells=cells, method=method, shape=[int(v) for v in shape])
            # files written before it was recorded: every missing cell, up to PREDICT_CELLS
            if "predicted_cells" not in row or method == "pmf_nuts":
                row["predicted_cells"] = min(PREDICT_CELLS,
                                             row["shape"][0] * row["shape"][1] - cells)
            rows.append(row)
    return rows, doc["command"]


def run_child(cells, method, args) -> dict | None:
    cmd = [sys.executable, __file__, "--one", f"{cells:g}", method, "--steps", str(args.steps),
           "--draws", str(args.draws)]
    t0 = time.perf_counter()
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        print(f"  {method} at {cells:g} cells: stopped after --timeout {args.timeout:g} s",
              flush=True)
        return None
    if res.returncode != 0:
        print(f"  {method} at {cells:g} cells failed after {time.perf_counter() - t0:.0f} s:\n"
              + res.stderr[-2000:], flush=True)
        return None
    return json.loads(res.stdout.strip().splitlines()[-1])


def _num(v, factor, spec) -> str:
    return "–" if v is None or not np.isfinite(v) else format(v * factor, spec)


def growth(rows: list[dict]) -> float | None:
    pts = [(r["cells"], r["seconds_per_step"]) for r in rows
           if 1e4 * 0.9 <= r["cells"] <= 1e6 * 1.1
           and np.isfinite(r.get("seconds_per_step", np.nan))]
    if len(pts) < 2:
        return None
    x, y = np.log([p[0] for p in pts]), np.log([p[1] for p in pts])
    return float(np.polyfit(x, y, 1)[0])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cells", default="1e3,1e4,1e5,2e5,1e6",
                    help="observed cells of each rung, comma-separated (default %(default)s)")
    ap.add_argument("--methods", default=",".join(METHODS),
                    help="comma-separated, of " + ", ".join(METHODS) + " (default: all)")
    ap.add_argument("--steps", type=int, default=2000, help="SVI steps (default %(default)s)")
    ap.add_argument("--draws", type=int, default=100, help="SVI draws (default %(default)s)")
    ap.add_argument("--all-sizes", action="store_true",
                    help="run every method at every size (default: each up to its MAX_CELLS)")
    ap.add_argument("--nuts", action="store_true",
                    help="also PMF NUTS 4 x 1000 on 1000 x 50, 30%% observed (15k cells)")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per run")
    ap.add_argument("--merge", action="store_true",
                    help="keep the other methods' rows of results/scale.json")
    ap.add_argument("--gpu", action="store_true",
                    help="the accelerator ladder in one command: 1e5, 1e6, 1e7 cells, mean-field "
                         "and minibatch SVI, every size (steps/s, cells/s, device memory)")
    ap.add_argument("--one", nargs=2, metavar=("CELLS", "METHOD"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.gpu:
        import jax

        if jax.default_backend() == "cpu":
            raise SystemExit("--gpu: JAX sees no accelerator here (jax.devices() is "
                             f"{jax.devices()}); install jax[cuda12] on the GPU machine")
        args.cells, args.all_sizes = "1e5,1e6,1e7", True
        args.methods = "pmf_svi_meanfield,pmf_svi_minibatch"
    if args.one:
        print(json.dumps(one(float(args.one[0]), args.one[1], args.steps, args.draws)))
        return

    sys.path.insert(0, os.path.dirname(__file__))
    from common import RESULTS, write_results

    methods = [m for m in args.methods.split(",") if m]
    rows, previous = [], ()
    if args.merge:  # the other methods' rows of the last run are kept
        rerun = set(methods) | ({"pmf_nuts"} if args.nuts else set())
        rows, cmd = earlier_rows(RESULTS / "scale.json", lambda m: m not in rerun)
        previous = (cmd,) if cmd else ()
        methods = [m for m in METHODS if m in set(methods) | {r["method"] for r in rows}]
    todo = [m for m in args.methods.split(",") if m]
    for cells in (float(c) for c in args.cells.split(",")):
        for m in todo:
            if not args.all_sizes and cells > MAX_CELLS[m] * 1.01:
                continue
            print(f"{m} at {cells:g} cells ...", flush=True)
            r = run_child(cells, m, args)
            if r:
                rows.append(r)
                print(f"  {r['seconds_per_step'] * 1e3:.2f} ms/step, fit+predict "
                      f"{r['fit_predict_seconds']:.1f} s, MSE {r['mse']:.4f}, cov90 "
                      f"{r['coverage_90']:.2f}, peak {r['peak_bytes'] / 2**30:.2f} GiB",
                      flush=True)
    if args.nuts:
        print("pmf_nuts at 1000 x 50 ...", flush=True)
        cmd = [sys.executable, "-c", "import sys; sys.path.insert(0, 'benchmarks'); "
               "import json, scale; "
               "print(json.dumps(scale.nuts_1000x50()))"]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
        if res.returncode == 0:
            rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
        else:
            print(res.stderr[-2000:])
    groups, lines = {}, []
    if args.gpu:  # the target, met or not, stated with its figure
        lines += gpu_verdicts(rows)
    for m in [*methods, "pmf_nuts"]:
        mine = sorted((r for r in rows if r["method"] == m), key=lambda r: r["cells"])
        if not mine:
            continue
        g = groups.setdefault(f"synthetic/{m}", {})
        for r in mine:
            g[f"{r['cells']}_cells"] = {
                k: {"mean": r[k], "std": 0.0, "n": 1}
                for k in METRICS if k in r and np.isfinite(r[k])}  # n/a: left out
            g[f"{r['cells']}_cells"]["n_models"] = {"mean": r["shape"][0], "std": 0.0, "n": 1}
            g[f"{r['cells']}_cells"]["n_tasks"] = {"mean": r["shape"][1], "std": 0.0, "n": 1}
        if (e := growth(mine)) is not None:
            g["growth_exponent"] = {"value": {"mean": e, "std": 0.0, "n": 1}}
        lines.append(f"\n### {m}\n\ngrowth exponent of time per step (1e4 to 1e6 cells): "
                     + (f"{e:.2f}" if e is not None else "–") + "\n\n"
                     "| cells | models x tasks | ms / step | cells / s | fit + predict s "
                     "| predicted cells | peak GiB | MSE | 90% coverage |\n"
                     "|---|---|---|---|---|---|---|---|---|")
        for r in mine:
            lines.append(f"| {r['cells']:,} | {r['shape'][0]:,} x {r['shape'][1]} | "
                         f"{_num(r.get('seconds_per_step'), 1e3, '.2f')} | "
                         f"{_num(r.get('cells_per_second'), 1, '.3g')} | "
                         f"{r['fit_predict_seconds']:.1f} | {r['predicted_cells']:,} | "
                         f"{r['peak_bytes'] / 2**30:.2f} | "
                         f"{r['mse']:.4f} | {r['coverage_90']:.2f} |")
    md = ("Synthetic tables (cppjax.datasets.synthetic, seed 0; not real data), 20% observed, "
          f"SVI {args.steps} steps and {args.draws} draws; fit + predict includes compiling "
          "and predicting every missing cell.\n" + "\n".join(lines) + "\n")
    write_results("scale_gpu" if args.gpu else "scale",
                  "synthetic ladder of observed cells (see benchmarks/scale.py)",
                  groups, md, previous_commands=previous)
    print(md)


def gpu_verdicts(rows: list[dict]) -> list[str]:
    """Issue 34's accelerator target at 10^7 cells, met or not, one line per method: full-batch
    mean-field is judged; a minibatch step sees MINIBATCH cells, so its figure is shown, not
    judged."""
    out = []
    for r in rows:
        if r["cells"] < 0.99e7 or not np.isfinite(r.get("cells_per_second", np.nan)):
            continue
        if r["method"] == "pmf_svi_minibatch":
            verdict = f"minibatches of {MINIBATCH:,} cells: not judged"
        else:
            verdict = "met" if r["cells_per_second"] >= GPU_TARGET else "NOT met"
        out.append(f"\n{r['method']} at {r['cells']:,} observed cells: "
                   f"{r['cells_per_second']:.3g} cells/s per SVI step (target >= "
                   f"{GPU_TARGET:.0e}: {verdict})")
    return out


def nuts_1000x50() -> dict:
    """PMF NUTS 4 x 1000 on 1000 models x 50 tasks, 30% observed."""
    import numpyro

    numpyro.set_host_device_count(4)
    from cppjax import PMF
    from cppjax.datasets import synthetic
    from cppjax.inference import NUTS

    syn = synthetic(0, n_models=NUTS_SHAPE[0], n_tasks=NUTS_SHAPE[1], rank=3, n_families=20,
                    observed=0.3)
    t0 = time.perf_counter()
    post = PMF().fit(syn.matrix, rng_key=0, inference=NUTS(num_warmup=1000, num_samples=1000),
                     progress=False)
    fit_s = time.perf_counter() - t0
    pred = post.predict("missing", rng_key=1)
    total = time.perf_counter() - t0
    mi, ti = pred.model_idx, pred.task_idx
    lo, hi = pred.interval(0.9)
    noisy = syn.full.scores[mi, ti]
    return {"cells": int(syn.matrix.n_observed), "shape": list(NUTS_SHAPE), "method": "pmf_nuts",
            "predicted_cells": int(mi.size),
            "seconds_per_step": float("nan"), "cells_per_second": float("nan"),
            "fit_seconds": fit_s, "fit_predict_seconds": total,
            "peak_bytes": float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024),
            "mse": float(np.mean((pred.mean() - syn.truth[mi, ti]) ** 2)),
            "coverage_90": float(np.mean((noisy >= lo) & (noisy <= hi))),
            "max_rhat": post.diagnostics.get("max_rhat", float("nan"))}


if __name__ == "__main__":
    main()
