"""The speed targets of cppjax with its defaults, each measured in a fresh process.

    python benchmarks/speed.py                  # every target below
    python benchmarks/speed.py --only cli,svi_1000x50

Targets (2 CPU cores; defaults; compile included unless said):

* ``svi_1000x50``: ``cppjax.fit("pmf_svi", ...)`` on a synthetic 1000 x 50 table, 30% observed
  (:func:`cppjax.datasets.synthetic`, seed 0; not real data), then ``predict("missing")``: the
  first run in a process with an empty persistent compilation cache ("cold") and a second
  process on the same cache ("warm"). Target: < 10 s.
* ``svi_5000x200``: the same on 5000 x 200, 20% observed (200k cells); target < 30 s; and
  its prediction of every missing cell alone (``predict_seconds``): target < 10 s.
* ``cli``: ``cppjax predict`` (the README's command: the default model on the bundled CPP
  table) twice in fresh processes on one empty cache folder; the second's wall time, the
  interpreter's start included. Target < 5 s.
* ``nuts_cpp`` / ``nuts_osl``: ``pmf_nuts`` on the CPP table and ``scaling_mf_nuts`` on the
  OSL base table (every observed cell), the defaults (4 chains over 4 host devices): fit
  seconds, the largest r-hat of the fitted cell means, divergences. Target < 30 s, r-hat
  <= 1.05.

Each figure is one run (n = 1): the machine's load moves it by 10-30%.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

TARGETS = {"svi_1000x50": 10.0, "svi_5000x200": 30.0, "predict_5000x200": 10.0, "cli": 5.0,
           "nuts_cpp": 30.0, "nuts_osl": 30.0}
JOBS = ("svi_1000x50", "svi_5000x200", "cli", "nuts_cpp", "nuts_osl")


def child(job: str) -> dict:
    """Run one measurement in this process (a fresh one: see :func:`run`)."""
    import numpyro

    numpyro.set_host_device_count(4)
    import numpy as np

    import cppjax
    from cppjax.datasets import load_cpp_crowdsource, load_obsscaling, synthetic

    cppjax.enable_compilation_cache()  # the folder: $CPPJAX_CACHE_DIR (set by the parent)
    if job.startswith("svi_"):
        shape = (1000, 50, 0.3) if job == "svi_1000x50" else (5000, 200, 0.2)
        syn = synthetic(0, n_models=shape[0], n_tasks=shape[1], rank=3, n_families=20,
                        observed=shape[2])
        t0 = time.perf_counter()
        post = cppjax.fit("pmf_svi", syn.matrix, rng_key=0, progress=False)
        t1 = time.perf_counter()
        pred = post.predict("missing", rng_key=1)
        t2 = time.perf_counter()
        mi, ti = pred.model_idx, pred.task_idx
        return {"seconds": t2 - t0, "fit_seconds": t1 - t0, "predict_seconds": t2 - t1,
                "cells": int(syn.matrix.n_observed), "predicted_cells": int(mi.size),
                "draws": int(pred.draws.shape[0]),
                "guide": post.diagnostics.get("guide"),
                "mse": float(np.mean((pred.mean() - syn.truth[mi, ti]) ** 2))}
    if job.startswith("nuts_"):
        sm, method = ((load_cpp_crowdsource(), "pmf_nuts") if job == "nuts_cpp"
                      else (load_obsscaling(), "scaling_mf_nuts"))
        t0 = time.perf_counter()
        post = cppjax.fit(method, sm, rng_key=0, progress=False)
        d = post.diagnostics
        return {"seconds": time.perf_counter() - t0, "method": method,
                "max_rhat": d.get("max_rhat"), "min_ess": d.get("min_ess"),
                "divergences": d.get("divergences"),
                "max_tree_depth_hits": d.get("max_tree_depth_hits")}
    raise SystemExit(f"unknown job {job!r}")


def run(job: str, cache: str, timeout: float) -> dict:
    env = {**os.environ, "CPPJAX_CACHE_DIR": cache}
    res = subprocess.run([sys.executable, __file__, "--child", job], capture_output=True,
                         text=True, timeout=timeout, env=env)
    if res.returncode != 0:
        raise RuntimeError(f"{job} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def cli(cache: str, timeout: float) -> list[float]:
    """Wall times of two ``cppjax predict`` runs on one cache folder."""
    env = {**os.environ, "CPPJAX_CACHE_DIR": cache}
    out = []
    with tempfile.TemporaryDirectory() as work:
        for _ in range(2):
            t0 = time.perf_counter()
            # the interpreter running this script (its cppjax), not whichever is first on PATH
            res = subprocess.run([sys.executable, "-m", "cppjax.cli", "predict", "--out",
                                  f"{work}/out", "--overwrite"],
                                 capture_output=True, text=True, timeout=timeout, env=env)
            if res.returncode != 0:
                raise RuntimeError(f"cppjax predict failed:\n{res.stderr[-3000:]}")
            out.append(time.perf_counter() - t0)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", default=",".join(JOBS), help="comma-separated of " + ", ".join(JOBS))
    ap.add_argument("--timeout", type=float, default=1200)
    ap.add_argument("--merge", action="store_true",
                    help="keep the other targets' rows of results/speed.{json,md}")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child)))
        return
    sys.path.insert(0, os.path.dirname(__file__))
    import jax
    from common import RESULTS, write_results

    # the targets are for 2 CPU cores; on an accelerator the same jobs go to their own file
    name = "speed" if jax.default_backend() == "cpu" else f"speed_{jax.default_backend()}"
    groups, rows, previous = {}, [], ()
    rerun = {t for j in args.only.split(",") for t in TARGETS if t.endswith(j.split("_", 1)[-1])
             or t == j}
    if args.merge and (RESULTS / f"{name}.json").exists():  # the other targets' rows kept
        old = json.loads((RESULTS / f"{name}.json").read_text())
        previous = (old["command"],)
        groups = {k: v for k, v in old["groups"].items() if k not in rerun}
        rows = [line for line in (RESULTS / f"{name}.md").read_text().splitlines()
                if line.startswith("| ") and line.split("|")[1].strip() in groups]

    def add(target, method, seconds, extra=""):
        limit = TARGETS[target]
        met = seconds < limit
        groups.setdefault(target, {})[method] = {"fit_seconds": {"mean": seconds, "std": 0.0,
                                                                 "n": 1}}
        rows.append(f"| {target} | {method} | {seconds:.1f} | < {limit:g} | "
                    f"{'met' if met else 'not met'} | {extra} |")
        print(rows[-1], flush=True)

    for job in args.only.split(","):
        with tempfile.TemporaryDirectory() as cache:
            if job == "cli":
                cold, warm = cli(cache, args.timeout)
                add("cli", "cppjax predict (second run)", warm, f"first run {cold:.1f} s")
                continue
            if job.startswith("svi_"):
                cold = run(job, cache, args.timeout)
                warm = run(job, cache, args.timeout)
                info = (f"{cold['cells']:,} cells observed, {cold['predicted_cells']:,} "
                        f"predicted x {cold['draws']} draws; guide {cold['guide']}; MSE "
                        f"{cold['mse']:.4f}")
                add(job, "pmf_svi cold cache", cold["seconds"],
                    f"fit {cold['fit_seconds']:.1f} s + predict "
                    f"{cold['predict_seconds']:.1f} s; {info}")
                add(job, "pmf_svi warm cache", warm["seconds"],
                    f"fit {warm['fit_seconds']:.1f} s + predict "
                    f"{warm['predict_seconds']:.1f} s")
                if job == "svi_5000x200":
                    add("predict_5000x200", "pmf_svi warm cache", warm["predict_seconds"],
                        "predict('missing') alone")
                continue
            r = run(job, cache, args.timeout)
            ok = r["max_rhat"] is not None and r["max_rhat"] <= 1.05
            add(job, r["method"], r["seconds"],
                f"r-hat {r['max_rhat']:.3f} ({'converged' if ok else 'NOT converged'}), "
                f"ESS {r['min_ess']:.0f}, {r['divergences']} divergences, "
                f"{r['max_tree_depth_hits']:.0%} steps at max tree depth")
            groups[job][r["method"]].update(
                {k: {"mean": float(r[k]), "std": 0.0, "n": 1}
                 for k in ("max_rhat", "min_ess", "divergences") if r[k] is not None})
    order = list(TARGETS)
    rows.sort(key=lambda line: order.index(line.split("|")[1].strip()))
    md = ("# Speed targets (defaults, fresh processes)\n\n"
          "One run each (n = 1). Synthetic tables: `cppjax.datasets.synthetic`, seed 0 (not real "
          "data). 'cold': an empty persistent compilation cache; 'warm': a second process on "
          "the same cache.\n\n"
          "| target | run | seconds | target | met | notes |\n|---|---|---|---|---|---|\n"
          + "\n".join(rows) + "\n")
    write_results(name, "the issue-34 speed targets, defaults, fresh processes (see "
                  "benchmarks/speed.py)", groups, md, previous_commands=previous)
    print(md)


if __name__ == "__main__":
    main()
