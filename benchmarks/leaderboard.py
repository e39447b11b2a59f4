"""Leaderboard-level planning on held-out truth: which strategy, choosing among every missing
cell of a leaderboard, settles the order of its top 10 with the fewest evaluations.

    python benchmarks/leaderboard.py                     # CPP, 20 campaigns
    python benchmarks/leaderboard.py --quick --out lb-smoke   # smoke test

The board: the tasks most models have (CPP: the 5 tasks 40+ models have; OSL: all 8) and the
models with every one of them in the full table (CPP: 30), so that the truth is known. A
campaign hides ``--hide`` of the board's cells at random (the leaderboard's missing cells; the
rest of the table stays as context), then each round reveals ``--per-round`` of them chosen by a
strategy and refits (PMF SVI, warm from the previous guide). Strategies: ``random``;
``variance`` (largest predictive variance in task units first); ``vpc_top``: cppjax's value per
cost for :func:`cppjax.planning.top` (the expected number of discordant pairs among the 2k
models of highest mean; uniform costs). Figures per round: ``discordant`` (pairs of the true
top 10 that the posterior-mean aggregate orders the wrong way; 0 to 45), ``kendall_tau`` among
the true top 10, ``top_k_overlap`` (share of the true top 10 in the predicted top 10).
``<dataset>/summary``: the cells each strategy needs to reach random's final figure, as a share
of random's budget and of the missing cells, with 90% bootstrap intervals over campaigns.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import numpy as np
from common import RESULTS, write_results
from planning import budget_to_reach
from scipy import stats

from cppjax import planning
from cppjax.datasets import load_cpp_crowdsource, load_obsscaling
from cppjax.inference.keys import as_key
from cppjax.models.registry import make_spec
from cppjax.posterior.ranks import task_units

STRATEGIES = ("random", "variance", "vpc_top")
METRICS = ("discordant", "kendall_tau", "top_k_overlap")


def board(name):
    full = load_cpp_crowdsource() if name == "cpp" else load_obsscaling()
    tj = (np.flatnonzero(full.mask.sum(axis=0) >= 40) if name == "cpp"
          else np.arange(full.n_tasks))
    mi = np.flatnonzero(full.mask[:, tj].all(axis=1))
    return full, mi, tj


def figures(post, full, mi, tj, k, key):
    """Order figures of the posterior-mean aggregate against the truth's."""
    cm, ct = (a.ravel() for a in np.meshgrid(mi, tj, indexing="ij"))
    x = task_units(post.matrix, post.joint_draws((cm, ct), rng_key=key), ct)
    pred = x.reshape(x.shape[0], mi.size, tj.size).mean(axis=2).mean(axis=0)
    true = task_units(post.matrix, full.scores[np.ix_(mi, tj)], tj[None, :]).mean(axis=1)
    top = np.argsort(-true, kind="stable")[:k]
    d = np.sign(pred[top][:, None] - pred[top][None, :]) * np.sign(
        true[top][:, None] - true[top][None, :])
    return {"discordant": float(np.triu(d < 0, 1).sum()),
            "kendall_tau": float(stats.kendalltau(pred[top], true[top]).statistic),
            "top_k_overlap": len(set(np.argsort(-pred, kind="stable")[:k]) & set(top)) / k}


def choose(strategy, post, cells, per_round, target, key):
    mi, ti = cells
    if strategy == "random":
        return np.asarray(jax.random.permutation(key, mi.size))[:per_round]
    if strategy == "variance":
        var = task_units(post.matrix, post.predict((mi, ti), rng_key=key).draws, ti).var(axis=0)
        return np.argsort(-var, kind="stable")[:per_round]
    sm = post.matrix
    p = planning.plan(post, target, rng_key=key, k=per_round,
                      candidates=([sm.models[i] for i in mi], [sm.tasks[j] for j in ti]))
    picked = {(sm.model_index(m), sm.task_index(t)) for m, t in p.cells}
    return np.array([n for n, c in enumerate(zip(mi, ti, strict=True)) if c in picked])


def campaign(full, mi, tj, hide, rounds, per_round, k, spec, inference, key):
    cm, ct = (a.ravel() for a in np.meshgrid(mi, tj, indexing="ij"))
    keys = jax.random.split(key, 2 + len(STRATEGIES) * rounds * 3)
    held = np.asarray(jax.random.permutation(keys[0], cm.size))[:int(round(hide * cm.size))]
    scores = np.array(full.scores)
    scores[cm[held], ct[held]] = np.nan
    start = full.with_scores(scores)
    target = planning.top(k, [full.tasks[j] for j in tj], [full.models[i] for i in mi])
    post0 = spec.fit(start, rng_key=keys[1], inference=inference, progress=False)
    first = figures(post0, full, mi, tj, k, keys[1])
    records = [{"strategy": s, "round": 0, "spent": 0, **first} for s in STRATEGIES]
    n = 2
    for s in STRATEGIES:
        post, left = post0, (cm[held], ct[held])
        revealed = {}
        for r in range(1, rounds + 1):
            t0 = time.perf_counter()
            pick = choose(s, post, left, per_round, target, keys[n])
            plan_s = time.perf_counter() - t0
            for p in pick:
                revealed[(full.models[left[0][p]], full.tasks[left[1][p]])] = float(
                    full.scores[left[0][p], left[1][p]])
            keep = np.setdiff1d(np.arange(left[0].size), pick)
            left = (left[0][keep], left[1][keep])
            post = post.refit(start.add_scores(revealed), rng_key=keys[n + 1], progress=False)
            records.append({"strategy": s, "round": r, "spent": len(revealed),
                            "plan_seconds": plan_s,
                            **figures(post, full, mi, tj, k, keys[n + 2])})
            n += 3
    return records, int(held.size)


def budget_shares(records, metric, rounds, missing, reps=1000, seed=0):
    """Cells each strategy needs to reach random's final mean ``metric`` (lower is better;
    tau and overlap are negated), as a share of random's budget and of the missing cells, with
    90% bootstrap intervals over campaigns."""
    sign = 1.0 if metric == "discordant" else -1.0
    camps = sorted({r["campaign"] for r in records})
    table = {(r["strategy"], r["campaign"], r["round"]): (r["spent"], sign * r[metric])
             for r in records}

    def shares(sample):
        curves = {s: [(np.mean([table[(s, c, rd)][0] for c in sample]),
                       np.mean([table[(s, c, rd)][1] for c in sample]))
                      for rd in range(rounds + 1)] for s in STRATEGIES}
        goal = curves["random"][-1]
        out = {}
        for s, pts in curves.items():
            b = budget_to_reach([p[0] for p in pts], [p[1] for p in pts], goal[1])
            out[s] = np.inf if b is None else b / goal[0]
        return out

    point = shares(camps)
    rng = np.random.default_rng(seed)
    boot = [shares(list(rng.choice(camps, size=len(camps)))) for _ in range(reps)]
    budget = np.mean([table[("random", c, rounds)][0] for c in camps])  # random's cells
    out = {}
    for s in STRATEGIES:
        lo, hi = (float(np.quantile([b[s] for b in boot], q, method="inverted_cdf"))
                  for q in (0.05, 0.95))
        out[s] = {"ratio": point[s], "low": lo, "high": hi,
                  "missing_share": point[s] * budget / missing, "n": len(camps)}
    return out


def summarise(name, records, rounds, missing, per_round, k):
    groups, md = {}, [f"## {name}\n"]
    for r in range(rounds + 1):
        g = groups[f"{name}/round_{r}"] = {}
        for s in STRATEGIES:
            recs = [x for x in records if x["strategy"] == s and x["round"] == r]
            g[s] = {m: {"mean": float(np.mean([x[m] for x in recs])),
                        "std": float(np.std([x[m] for x in recs])), "n": len(recs)}
                    for m in METRICS}
    md.append(f"{len(set(x['campaign'] for x in records))} campaigns; {missing} missing cells "
              f"per campaign; {rounds} rounds of {per_round}; top {k}.\n")
    md.append("| strategy | " + " | ".join(f"round {r}" for r in range(rounds + 1)) + " |")
    md.append("|---|" + "---|" * (rounds + 1))
    for s in STRATEGIES:
        md.append(f"| {s} | " + " | ".join(
            f"{groups[f'{name}/round_{r}'][s]['discordant']['mean']:.1f}"
            for r in range(rounds + 1)) + " |")
    md.append("\n(Discordant pairs of the true top 10 under the posterior-mean aggregate, mean "
              "over campaigns; 0 is the true order.)\n")
    summ = groups[f"{name}/summary"] = {}
    md.append("| figure | strategy | share of random's budget [90% CI] | share of the missing "
              "cells |\n|---|---|---|---|")
    for m in METRICS:
        for s, v in budget_shares(records, m, rounds, missing).items():
            summ.setdefault(s, {})[f"{m}_budget_ratio"] = {"mean": v["ratio"], "low": v["low"],
                                                           "high": v["high"], "n": v["n"]}
            summ[s][f"{m}_missing_share"] = {"mean": v["missing_share"], "std": 0.0,
                                             "n": v["n"]}
            md.append(f"| {m} | {s} | {v['ratio']:.2f} [{v['low']:.2f}, {v['high']:.2f}] | "
                      f"{v['missing_share']:.2f} |")
    plan_s = [x["plan_seconds"] for x in records if x["strategy"] == "vpc_top" and x["round"]]
    md.append(f"\nPlanning a round of vpc_top: {np.mean(plan_s):.2f} s (mean).\n")
    return groups, md


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--datasets", default="cpp")
    p.add_argument("--campaigns", type=int, default=20)
    p.add_argument("--hide", type=float, default=0.5, help="share of the board's cells hidden")
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--per-round", type=int, default=5)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--warm-steps", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", default=None)
    p.add_argument("--merge", action="store_true")
    a = p.parse_args(argv)
    out_dir = RESULTS if a.out is None else Path(a.out)
    settings = dict(num_steps=300, num_samples=100) if a.quick else {}
    if a.quick:
        a.campaigns, a.rounds = 2, 2
    settings["warm_steps"] = min(a.warm_steps, settings.get("num_steps", a.warm_steps))
    spec, inference = make_spec("pmf_svi", **settings)
    groups, md, commands = {}, [], []
    jp = out_dir / "leaderboard.json"
    if a.merge and jp.exists():
        old = json.loads(jp.read_text())
        groups, commands = old["groups"], [old["command"]]
    key = as_key(a.seed)
    for name in a.datasets.split(","):
        full, mi, tj = board(name)
        print(f"{name}: board of {mi.size} models x {tj.size} tasks; {a.campaigns} campaigns",
              flush=True)
        records, missing = [], 0
        for n in range(a.campaigns):
            t0 = time.perf_counter()
            recs, missing = campaign(full, mi, tj, a.hide, a.rounds, a.per_round, a.k, spec,
                                     inference, jax.random.fold_in(key, n))
            for r in recs:
                r["campaign"] = n
            records += recs
            print(f" campaign {n + 1}/{a.campaigns} {time.perf_counter() - t0:.0f}s", flush=True)
        g, m = summarise(name, records, a.rounds, missing, a.per_round, a.k)
        groups.update(g)
        md += m
    head = ["# Leaderboard-level planning: the order of the top 10\n",
            "Strategies: " + ", ".join(STRATEGIES) + ". Uniform costs. Real data (held-out "
            "true scores), not a generator.\n"]
    write_results("leaderboard", "simulated campaigns over a leaderboard's missing cells",
                  groups, "\n".join(head + md) + "\n", out_dir=out_dir,
                  previous_commands=commands)


if __name__ == "__main__":
    main()
