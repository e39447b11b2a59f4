"""The stack's own choices judged pooled over the development suite: the prior on the stacking
weights, selection against stacking, the spread factor, and a recalibration of the predictive
distribution's shape by the backtest's PIT, each scored on every protocol of
``benchmarks/suite.py`` (the same splits and seeds) from one fit per split and seed.

    python benchmarks/stack_choices.py --seeds 3          # fit, cache, score every variant
    python benchmarks/stack_choices.py --seeds 3 --cached  # score again from the cache

How: each ``Stack().fit`` is run as the suite runs it, with what it computes on the backtest
recorded (the candidates' log predictive densities of the backtest cells, their residuals and
calibrated spreads on the cells that set the spread factor) and each candidate's calibrated
draws of the test cells kept. A variant recomputes the weights, the spread factor or the shape
from those and draws the stack as :meth:`cppjax.stacking.StackPosterior._draws` does; nothing
of a variant sees the test cells. Errors as shares of each task's range and in the peer's units
(``*_unit``), as in the suite; ``ratio_mae``: ``mae_unit`` over the best other row of the suite's
own results (``benchmarks/results/suite.json``: every candidate, the baselines and the peer).

Variants: ``current`` (the fitted stack: Dirichlet prior 0.5, spread by the backtest log score);
``prior=<p>`` (the weights again under a prior worth ``p`` of the evidence, the spread factor
recomputed); ``prior=cv`` (the prior strength chosen per table by 5-fold cross-validation over
the backtest's held-out models, on the mixture's log predictive density); ``select`` (the
backtest's best candidate alone); ``spread=1`` (no spread factor);
``pit_beta`` and ``pit_beta_sym`` (the current stack, its quantile levels mapped through a Beta
distribution fitted to the backtest PIT of the scaled mixture: free, or symmetric so that only
the shape moves, not the centre).
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
import time
from pathlib import Path

import jax
import numpy as np
from common import RESULTS, fmt, write_results
from scipy import optimize, special, stats
from suite import PROTOCOLS, cluster_se, splits_for, test_cells

import cppjax.stacking as stacking
from cppjax.stacking import Stack, _features, _in_backtest_terms

BANDS = {"coverage_50": (0.42, 0.58), "coverage_90": (0.85, 0.95)}
PRIORS = (0.0, 0.1, 0.25, 1.0)
CACHE = Path(__file__).resolve().parent / ".cache" / "stack_choices"


# -- one fit, recorded ------------------------------------------------------------------------
def fit_recorded(train, seed, mi, ti):
    """Fit the stack as the suite does; return what a variant needs (see the module docstring)."""
    rec = {}
    w0, s0 = stacking._weights, stacking._sharpness

    def weights(L, combine, groups, prior_weight, rng):
        rec["L"], rec["groups"] = L, groups
        return w0(L, combine, groups, prior_weight, rng)

    def sharpness(resid, w, rng, n_draws=300):
        rec["resid"] = resid
        return s0(resid, w, rng, n_draws)

    stacking._weights, stacking._sharpness = weights, sharpness
    try:
        t0 = time.perf_counter()
        post = Stack().fit(train, rng_key=seed, progress=False)
        secs = time.perf_counter() - t0
    finally:
        stacking._weights, stacking._sharpness = w0, s0
    names = list(post.fits)
    feats = _in_backtest_terms(_features(post.matrix, mi, ti), post._feats_bt)
    k_cand = jax.random.split(jax.random.PRNGKey(seed + 100))[1]
    rng = np.random.default_rng(seed)
    T = np.stack([post._calibrated(c, mi, ti, feats, jax.random.fold_in(k_cand, n), rng)
                  for n, c in enumerate(names)]).astype(np.float32)
    return {"names": names, "w": np.array([post.weights[c] for c in names]),
            "spread": post.spread, "T": T, "tr": post._tr, "secs": secs,
            "L": rec["L"], "groups": rec["groups"], "resid": rec["resid"]}


# -- variants ----------------------------------------------------------------------------------
def stack_draws(T, w, k, rng):
    """The stack's draws in the transformed space from candidates' calibrated draws ``T``
    (C, S, N), weights ``w`` and spread factor ``k`` (as ``StackPosterior._draws``)."""
    C, S, _ = T.shape
    use = np.flatnonzero(w > 0)
    choice = rng.choice(use, size=S, p=w[use] / w[use].sum())
    t = T[choice, np.arange(S)]
    for n in use[np.argsort(-w[use], kind="stable")]:
        t = np.where(np.isnan(t), T[n], t)
    centre = np.median(t, axis=0)
    return centre + k * (t - centre)


def cv_prior(L, groups, seed, grid=(0.1, 0.25, 0.5, 1.0), folds=5):
    """The prior strength whose weights, fitted on the other held-out models of the backtest,
    give the best log predictive density of the mixture on each fold's models."""
    names = np.unique(groups)
    fold = np.random.default_rng(seed).permutation(names.size) % min(folds, names.size)
    of = dict(zip(names, fold, strict=True))
    cell_fold = np.array([of[g] for g in groups])
    score = []
    for p in grid:
        total = 0.0
        for f in range(fold.max() + 1):
            tr, te = cell_fold != f, cell_fold == f
            w = stacking._weights(L[tr], "stacking", groups[tr], p, np.random.default_rng(seed))
            total += special.logsumexp(L[te] + np.log(np.maximum(w, 1e-300)), axis=1).sum()
        score.append(total)
    return grid[int(np.argmax(score))]


def backtest_pit(resid, w, k, rng, n_draws=400):
    """PIT of the backtest truths under the scaled mixture (``resid``: per candidate
    ``(e, sd, df)``, ``e`` the truth minus the centre), randomised over ties."""
    pick = rng.choice(len(w), size=n_draws, p=w)
    x = np.stack([-resid[c][0] + resid[c][1] * stats.t.rvs(resid[c][2], size=resid[c][0].size,
                                                            random_state=rng) for c in pick])
    c = np.median(x, axis=0)
    x = c + k * (x - c)  # draws of prediction - truth
    below, tie = (x < 0).mean(0), (x == 0).mean(0)
    return below + tie * rng.uniform(size=below.size)


def fit_beta(u, symmetric):
    u = np.clip(u, 1e-3, 1 - 1e-3)

    def nll(p):
        a, b = np.exp(p[0]), np.exp(p[-1])
        return -stats.beta.logpdf(u, a, b).sum() + 0.5 * (p ** 2).sum()  # shrunk to uniform

    res = optimize.minimize(nll, np.zeros(1 if symmetric else 2), method="L-BFGS-B",
                            bounds=[(-3, 3)] * (1 if symmetric else 2))
    return np.exp(res.x[0]), np.exp(res.x[-1])


def requantile(t, a, b):
    """Each cell's draws mapped through the Beta(a, b) quantile of their level (ranks kept,
    so joint draws stay joint): the recalibrated forecast ``R(F)``, R the Beta CDF."""
    S = t.shape[0]
    order = np.argsort(t, axis=0)
    ts = np.take_along_axis(t, order, axis=0)
    pos = stats.beta.ppf((np.arange(S) + 0.5) / S, a, b) * (S - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, S - 1)
    frac = (pos - lo)[:, None]
    new = ts[lo] * (1 - frac) + ts[hi] * frac
    out = np.empty_like(t)
    np.put_along_axis(out, order, new, axis=0)
    return out


def variants(r, seed):
    """name -> the stack's test draws in the transformed space."""
    rng = np.random.default_rng(seed)
    out = {"current": stack_draws(r["T"], r["w"], r["spread"], rng)}
    out["spread=1"] = stack_draws(r["T"], r["w"], 1.0, np.random.default_rng(seed))
    resid, L, groups = r["resid"], r["L"], r["groups"]
    for p in PRIORS:
        w = stacking._weights(L, "stacking", groups, p, np.random.default_rng(seed))
        k = stacking._sharpness(resid, w, np.random.default_rng(seed))
        out[f"prior={p:g}"] = stack_draws(r["T"], w, k, np.random.default_rng(seed))
    p_cv = cv_prior(L, groups, seed)
    w = stacking._weights(L, "stacking", groups, p_cv, np.random.default_rng(seed))
    k = stacking._sharpness(resid, w, np.random.default_rng(seed))
    out["prior=cv"] = stack_draws(r["T"], w, k, np.random.default_rng(seed))
    w = stacking._weights(L, "select", groups, 0.0, None)
    k = stacking._sharpness(resid, w, np.random.default_rng(seed))
    out["select"] = stack_draws(r["T"], w, k, np.random.default_rng(seed))
    u = backtest_pit(resid, r["w"], r["spread"], np.random.default_rng(seed))
    for name, sym in (("pit_beta", False), ("pit_beta_sym", True)):
        a, b = fit_beta(u, sym)
        out[name] = requantile(out["current"], a, b)
    return out


# -- scoring ----------------------------------------------------------------------------------
def cells(draws, y, span, floor, groups):
    med = np.median(draws, axis=0)
    rec = {"err": (med - y) / span, "uerr": (med - y) / (1 - floor) / span, "group": groups}
    for lev in (0.5, 0.9):
        lo, hi = np.quantile(draws, [(1 - lev) / 2, (1 + lev) / 2], axis=0)
        rec[f"hit_{int(lev * 100)}"] = (y >= lo) & (y <= hi)
    lo, hi = np.quantile(draws, [0.05, 0.95], axis=0)
    rec["width"] = (hi - lo) / span
    return rec


def summarise(parts, best_unit):
    cat = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    out = {"mae": float(np.abs(cat["err"]).mean()), "mse": float((cat["err"] ** 2).mean()),
           "mae_unit": float(np.abs(cat["uerr"]).mean()),
           "mse_unit": float((cat["uerr"] ** 2).mean()),
           "width_90": float(np.median(cat["width"]))}
    if best_unit:
        out["ratio_mae"] = out["mae_unit"] / best_unit["mae_unit"]
        out["ratio_mse"] = out["mse_unit"] / best_unit["mse_unit"]
    for lev in (50, 90):
        out[f"coverage_{lev}"] = {"mean": float(cat[f"hit_{lev}"].mean()),
                                  "std": cluster_se(cat[f"hit_{lev}"], cat["group"]),
                                  "n": int(np.unique(cat["group"]).size)}
    return {k: v if isinstance(v, dict) else {"mean": v, "std": 0.0, "n": len(parts)}
            for k, v in out.items()}


def best_other(protocol):
    """The suite's best other row of a protocol (``mae_unit``, ``mse_unit``)."""
    path = RESULTS / "suite.json"
    if not path.exists():
        return None
    rows = json.loads(path.read_text())["groups"].get(protocol, {})
    others = [r for n, r in rows.items() if n != "auto"]
    return {k: min(r[k]["mean"] for r in others) for k in ("mae_unit", "mse_unit")}


def run_protocol(protocol, seeds, cached, log):
    parts = {}
    for s_i, (split, _) in enumerate(splits_for(protocol)):
        mi, ti, y, span, floor, groups = test_cells(split)
        mi, ti = mi.astype(np.int32), ti.astype(np.int32)
        for seed in seeds:
            path = CACHE / f"{protocol}-{s_i}-{seed}.pkl"
            if cached and path.exists():
                r = pickle.loads(path.read_bytes())
            else:
                r = fit_recorded(split.train, seed, mi, ti)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(pickle.dumps(r))
            for name, t in variants(r, seed).items():
                draws = r["tr"].inverse(t, ti[None, :])
                parts.setdefault(name, []).append(cells(draws, y, span, floor, groups))
            log(f"{protocol} {split.name} seed {seed}: {len(y)} cells, {r['secs']:.0f} s")
    best = best_other(protocol)
    return {name: summarise(p, best) for name, p in parts.items()}


def pooled(groups):
    out = {}
    for name in next(iter(groups.values())):
        rows = [g[name] for g in groups.values()]
        rec = {}
        for k in ("ratio_mae", "ratio_mse", "coverage_50", "coverage_90", "width_90"):
            v = [r[k]["mean"] for r in rows if k in r]
            rec[k] = {"mean": float(np.mean(v)), "std": float(np.std(v)), "n": len(v)}
        for k, (lo, hi) in BANDS.items():
            v = [r[k]["mean"] for r in rows]
            rec[f"{k}_in_band"] = {"mean": float(np.sum([lo <= x <= hi for x in v])),
                                   "std": 0.0, "n": len(v)}
        rec["mae_le_best"] = {"mean": float(np.sum([r["ratio_mae"]["mean"] <= 1.0
                                                    for r in rows if "ratio_mae" in r])),
                              "std": 0.0, "n": len(rows)}
        out[name] = rec
    return out


def markdown(groups):
    cols = ("ratio_mae", "ratio_mse", "coverage_50", "coverage_90", "width_90")
    lines = ["# The stack's choices, pooled over the development suite\n",
             "Each variant from the same fits (see `benchmarks/stack_choices.py`). Pooled: the "
             "mean over protocols (± their spread), the count of protocols with coverage in "
             "its band (50%: .42-.58; 90%: .85-.95) and with the MAE at or below the suite's "
             "best other row.\n",
             "## pooled\n",
             "| variant | ratio_mae | ratio_mse | coverage_50 | coverage_90 | width_90 | "
             "50% in band | 90% in band | MAE <= best |", "|---" * 9 + "|"]
    for name, r in groups["pooled"].items():
        lines.append(f"| {name} | " + " | ".join(fmt(r[c], 3) for c in cols)
                     + f" | {r['coverage_50_in_band']['mean']:.0f}/"
                     f"{r['coverage_50_in_band']['n']} | "
                     f"{r['coverage_90_in_band']['mean']:.0f}/"
                     f"{r['coverage_90_in_band']['n']} | {r['mae_le_best']['mean']:.0f}/"
                     f"{r['mae_le_best']['n']} |")
    for protocol, rows in groups.items():
        if protocol == "pooled":
            continue
        lines += [f"\n## {protocol}\n", "| variant | mae | mse | mae_unit | " + " | ".join(cols)
                  + " |", "|---" * (5 + len(cols) - 1) + "|"]
        for name, r in rows.items():
            lines.append(f"| {name} | " + " | ".join(fmt(r.get(c), 4) for c in
                                                     ("mae", "mse", "mae_unit", *cols)) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--protocols", default=",".join(PROTOCOLS))
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--cached", action="store_true", help="reuse cached fits where present")
    p.add_argument("--out", default=str(RESULTS))
    a = p.parse_args(argv)

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    groups = {}
    for protocol in a.protocols.split(","):
        groups[protocol] = run_protocol(protocol, list(range(a.seeds)), a.cached, log)
        groups["pooled"] = pooled({k: v for k, v in groups.items() if k != "pooled"})
        write_results("stack_choices", "the stack's choices over the development suite "
                      "(see benchmarks/stack_choices.py)", groups, markdown(groups), Path(a.out))
        groups = {k: v for k, v in groups.items() if k != "pooled"}


if __name__ == "__main__":
    main()
