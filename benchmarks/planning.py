"""Simulated evaluation campaigns on held-out truth: which strategy for choosing the next
evaluations of a new model settles its leaderboard rank and its profile with the fewest of them.

    python benchmarks/planning.py                        # CPP and OSL, 20 campaigns each
    python benchmarks/planning.py --datasets osl --thin 0.3 --merge   # OSL 30%-observed
    python benchmarks/planning.py --datasets emergent --merge  # OSL base + emergent tasks
    python benchmarks/planning.py --datasets pythia --merge    # Pythia-v1 sizes x checkpoints
    python benchmarks/planning.py --datasets pythia --costs items --merge  # costs in items
    python benchmarks/planning.py --datasets pythia --normalization task_logit --merge
    python benchmarks/planning.py --quick --out planning-smoke  # smoke test

A campaign starts from a new model with 0 revealed scores (``splits.new_model``, k = 0): each
round reveals ``--per-round`` of its true scores chosen by a strategy, refits (PMF SVI, its
compiled programs reused; by default warm: ``--warm-steps`` steps from the previous fit's
guide, ``SVI(warm_steps=)``), and records the error of the targets and the coverage of their
intervals. 20 campaigns per dataset by default, each (``--task-sets random``) with its own
aggregate of 5-8 random tasks (so not the most observed ones) and its own new model among the
models with all of them; the budget each strategy needs to reach random's final error, as a
share of random's budget, comes with a 90% bootstrap interval over campaigns.
Strategies: ``random``; ``popular`` (the tasks most models have first);
``variance`` (largest predictive variance, in task units, first); ``vpc_aggregate`` and
``vpc_scores``: cppjax's value per cost (``cppjax.planning``) for the aggregate-rank target and
the profile target (uniform costs). Targets: the new model's rank on the leaderboard aggregate
(mean task units over the aggregate's tasks, among the models with every one of them) and its
profile (its held-out scores). Groups of the JSON: ``<dataset>/round_<r>``, strategy ->
``rank_error`` (|posterior mean rank - true rank|), ``rank_coverage_90``, ``rank_width_90``,
``mse`` (normalised), ``coverage_90`` (profile cells pooled, n = cells), ``width_90``;
``<dataset>/summary``: the budget each strategy needs to reach random's final error;
``<dataset>/widths``: the plans' expected widths against the widths after observing.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace

import jax
import matplotlib
import numpy as np
from common import RESULTS, fmt, summarise, write_results

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from cppjax import planning  # noqa: E402
from cppjax.datasets import load_cpp_crowdsource, load_obsscaling  # noqa: E402
from cppjax.inference.keys import as_key  # noqa: E402
from cppjax.models.registry import make_spec  # noqa: E402
from cppjax.posterior.ranks import ranks_from_scores, task_units  # noqa: E402
from cppjax.splits import new_model  # noqa: E402

STRATEGIES = ("random", "popular", "variance", "vpc_aggregate", "vpc_scores")
#: with costs (``--costs items``), uncertainty sampling per cost beside them: the cost-aware
#: form of the variance baseline (appended, so the others' keys and records are unchanged)
COST_STRATEGIES = (*STRATEGIES, "variance_per_cost")


def present(records) -> list[str]:
    """The strategies a run's records hold, in the order above."""
    have = {r["strategy"] for r in records}
    return [s for s in COST_STRATEGIES if s in have]


def setup(name: str, thin: float, key):
    """The full matrix (the truth), the matrix campaigns start from (``thin``: the share of the
    observed cells kept, and 2 per task at least), the aggregate's tasks, and the ranked models
    (every one of those tasks observed in the full matrix), among whom the campaign models are
    drawn."""
    if name == "emergent":  # OSL's 8 base + 7 emergent tasks of 84 models (benchmarks/suite.py)
        from suite import osl_emergent

        full = osl_emergent()
    elif name == "pythia":  # Pythia-v1 sizes x checkpoints on 8 tasks: a new checkpoint
        from suite import pythia_ladder

        full = pythia_ladder()
    else:
        full = load_cpp_crowdsource() if name == "cpp" else load_obsscaling()
    if name == "cpp":  # the 5 tasks 40+ models have; 30 models have all 5
        tasks = [full.tasks[j] for j in np.flatnonzero(full.mask.sum(axis=0) >= 40)]
    else:
        tasks = list(full.tasks)
    tj = [full.task_index(t) for t in tasks]
    ranked = [m for i, m in enumerate(full.models) if full.mask[i, tj].all()]
    base = full
    if thin < 1:
        u = np.asarray(jax.random.uniform(key, full.shape))
        keep = u < thin
        # every task keeps its 2 first-drawn observed cells at least: one beside a new model's,
        # so that no training table has a task with nothing to normalise on (CPP has tasks of
        # 5-10 models, which a 30% draw can empty)
        order = np.argsort(np.where(full.mask, u, np.inf), axis=0)[:2]
        for j in range(full.n_tasks):
            keep[order[:, j], j] |= full.mask[order[:, j], j]
        base = full.with_scores(np.where(keep, full.scores, np.nan))
    return full, base, tasks, ranked


def item_costs(name: str, full) -> dict:
    """The cost model ``--costs items``: a task costs its number of items (a new model's
    parameters are the same on every task, so items x parameters orders its cells as items
    do). Pythia's harness files give each score's standard error, so the count is read from
    the data: ``n = p (1 - p) / se^2 + 1``, the median over the table's models (the tasks' test
    sets: arc_challenge 1172, arc_easy 2376, piqa 1838, ...). The other tables record no
    items."""
    if name != "pythia":
        raise SystemExit(f"--costs items: the {name} table records no item counts (only the "
                         f"pythia setting has them, from the harness's standard errors); run "
                         f"{name} with --costs uniform")
    import pandas as pd
    from suite import SHARED

    ev = pd.read_csv(SHARED / "data" / "pythia_v1_evals" / "evals_long.csv.gz")
    ev = ev[(ev["shots"] == 0) & (ev["metric"] == "acc") & ev["task"].isin(full.tasks)
            & (ev["stderr"] > 0)]
    n = (ev["value"] * (1 - ev["value"]) / ev["stderr"] ** 2 + 1).groupby(ev["task"]).median()
    missing = [t for t in full.tasks if t not in n.index]
    if missing:
        raise SystemExit(f"--costs items: no standard errors for {missing}")
    return {t: float(round(n[t])) for t in full.tasks}


def random_task_set(full, key, min_ranked: int = 10):
    """A random aggregate of 5-8 tasks (not the most observed ones by construction) with at
    least ``min_ranked`` models that have every one of them in the full matrix, and those
    models; drawn again until it has them (the sparse tables have few such sets)."""
    rng = np.random.default_rng(int(jax.random.randint(key, (), 0, 2**31 - 1)))
    for _ in range(2000):
        size = int(rng.integers(5, 9))
        tj = np.sort(rng.choice(full.n_tasks, size=size, replace=False))
        ranked = [m for i, m in enumerate(full.models) if full.mask[i, tj].all()]
        if len(ranked) >= min_ranked:
            return [full.tasks[j] for j in tj], ranked
    raise SystemExit(f"no set of 5-8 tasks with {min_ranked} models having all of them")


def true_rank(post, full, model, tasks, ranked):
    tj = np.array([full.task_index(t) for t in tasks])
    mi = np.array([full.model_index(m) for m in ranked])
    x = task_units(post.matrix, full.scores[np.ix_(mi, tj)], tj[None, :]).mean(axis=1)
    return int(ranks_from_scores(x[None, :])[0, ranked.index(model)])


def choose(strategy, post, model, remaining, per_round, tasks, ranked, key, costs=None):
    """The next cells (task indices of ``model``) of a strategy, and the plan's expected width
    (value-per-cost strategies). ``costs``: by task name (the value-per-cost strategies divide
    by them; the others do not read them)."""
    sm = post.matrix
    i = sm.model_index(model)
    rem = np.asarray(remaining)
    if strategy == "random":
        return list(np.asarray(jax.random.permutation(key, rem))[:per_round]), None
    if strategy == "popular":
        order = np.lexsort((rem, -sm.mask[:, rem].sum(axis=0)))
        return list(rem[order][:per_round]), None
    if strategy in ("variance", "variance_per_cost"):
        pred = post.predict((np.full(rem.size, i), rem), rng_key=key)
        var = task_units(sm, pred.draws, rem).var(axis=0)
        if strategy == "variance_per_cost":
            var = var / np.array([costs[sm.tasks[j]] for j in rem])
        return list(rem[np.argsort(-var, kind="stable")][:per_round]), None
    target = (planning.aggregate(model, tasks, ranked) if strategy == "vpc_aggregate"
              else planning.scores(cells=[(model, sm.tasks[j]) for j in rem]))
    cand = ([model] * rem.size, [sm.tasks[j] for j in rem])
    p = planning.plan(post, target, rng_key=key, k=per_round, candidates=cand, costs=costs)
    picks = [sm.task_index(t) for _, t in p.cells]
    return picks, float(p.steps["expected_width"].iloc[-1])


def evaluate(post, full, model, held, tasks, ranked, key, plan_cells=None):
    """Aggregate-rank and profile figures of the current fit."""
    sm = post.matrix
    i = sm.model_index(model)
    k1, k2 = jax.random.split(key)
    rp = post.aggregate_rank(tasks, rng_key=k1, models=ranked)
    pos = ranked.index(model)
    lo, hi = rp.interval(0.9)
    r_true = true_rank(post, full, model, tasks, ranked)
    out = {"rank_error": abs(float(rp.draws[:, pos].mean()) - r_true),
           "rank_covered": float(lo[pos] <= r_true <= hi[pos]),
           "rank_width_90": float(hi[pos] - lo[pos])}
    held = np.asarray(held)
    if held.size:
        pred = post.predict((np.full(held.size, i), held), rng_key=k2)
        y = full.scores[i, held]
        # errors in the table's own normalisation, whichever the planner's fit read
        # (``--normalization``), so that the settings compare
        mi = np.full(held.size, i)
        yn = full.normalize(y, mi, held)
        dn = full.normalize(pred.draws, mi, held)
        plo, phi = pred.interval(0.9)
        nlo, nhi = np.quantile(dn, [(1 - 0.9) / 2, (1 + 0.9) / 2], axis=0)  # as pred.interval
        sq = (dn.mean(axis=0) - yn) ** 2
        out["sq_mean"] = float(sq.mean())
        out.update(sq=sq.tolist(),
                   covered=((y >= plo) & (y <= phi)).astype(float).tolist(),
                   width=(nhi - nlo).tolist())
        if plan_cells is not None:  # the scores plan's target: its cells' widths in task units
            wid = dict(zip(held.tolist(), np.subtract(*np.quantile(
                task_units(sm, pred.draws, held), [0.95, 0.05], axis=0)).tolist(), strict=True))
            out["scores_width"] = float(np.mean([wid.get(j, 0.0) for j in plan_cells]))
    return out


def campaign(full, base, model, tasks, ranked, inference, spec, rounds, per_round, key, log,
             costs=None, normalization=None):
    """One new model's campaign; ``spent`` counts evaluations, or their cost where ``costs``
    (by task name) is given; ``normalization``: the one the planner's fits read (None: the
    table's)."""
    i = full.model_index(model)
    scores = np.array(base.scores)
    scores[i] = np.nan  # a new model: none of its scores revealed
    start = base.with_scores(scores)
    # None: the table's min-max as it is, pinned (PMF would read an automatic one through the
    # logit since decision 0024; these campaigns measured min-max, --normalization the other)
    start = (replace(start, normalization=replace(start.normalization, auto=False))
             if normalization is None else start.renormalized(normalization))
    truth_tasks = list(np.flatnonzero(full.mask[i]))
    strategies = STRATEGIES if costs is None else COST_STRATEGIES
    keys = jax.random.split(key, 2 + len(strategies) * rounds * 3)
    post0 = spec.fit(start, rng_key=keys[0], inference=inference, progress=False)
    first = evaluate(post0, full, model, truth_tasks, tasks, ranked, keys[1])
    records = [{"strategy": s, "round": 0, "spent": 0, **first} for s in strategies]
    k = 2
    for s in strategies:
        post, revealed = post0, []
        for r in range(1, rounds + 1):
            remaining = [j for j in truth_tasks if j not in revealed]
            if not remaining:
                break
            t0 = time.perf_counter()
            picks, expected = choose(s, post, model, remaining, per_round, tasks, ranked,
                                     keys[k], costs)
            plan_s = time.perf_counter() - t0
            revealed += [int(j) for j in picks]
            train = start.add_scores({(model, full.tasks[j]): full.scores[i, j]
                                      for j in revealed})
            post = post.refit(train, rng_key=keys[k + 1], progress=False)
            held = [j for j in truth_tasks if j not in revealed]
            rec = evaluate(post, full, model, held, tasks, ranked, keys[k + 2],
                           plan_cells=remaining if s == "vpc_scores" else None)
            spent = (len(revealed) if costs is None
                     else float(sum(costs[full.tasks[j]] for j in revealed)))
            rec.update(strategy=s, round=r, spent=spent, plan_seconds=plan_s,
                       expected_width=expected)
            records.append(rec)
            k += 3
        log(f"  {model}: {s} done")
    return records


def timing(full, tasks, ranked, inference, spec, key):
    """Seconds to choose the next 10 evaluations of a new model after its fit (cold: the
    first plan of a process, compilation included; warm: the next)."""
    model = ranked[0]
    post = spec.fit(new_model(full, model, 0, rng_key=0).train, rng_key=key, inference=inference,
                    progress=False)
    out = {}
    for when in ("cold", "warm"):
        t0 = time.perf_counter()
        planning.plan(post, planning.aggregate(model, tasks, ranked), rng_key=key, k=10)
        out[when] = time.perf_counter() - t0
    return out


def budget_to_reach(curve_spent, curve_err, goal):
    """The smallest budget whose mean error is at or below ``goal`` (None: never)."""
    for b, e in zip(curve_spent, curve_err, strict=True):
        if e <= goal + 1e-12:
            return int(b)
    return None


def budget_ratios(records, metric, rounds, reps: int = 1000, seed: int = 0) -> dict:
    """Each strategy's budget to reach random's final mean error, as a share of random's full
    budget: the point value on the campaigns' mean curves and a 90% bootstrap interval over
    campaigns (resampled with replacement; ``inf`` where the strategy's mean curve never
    reaches the goal within the budget)."""
    camps = sorted({r["campaign"] for r in records})
    table = {}  # (strategy, campaign) -> [(spent, error) by round]
    for r in records:
        if metric in r:
            table.setdefault((r["strategy"], r["campaign"]), {})[r["round"]] = (r["spent"],
                                                                                r[metric])

    def ratios(sample):
        out = {}
        curves = {}
        for st in present(records):
            rows = [table.get((st, c), {}) for c in sample]
            pts = []
            for rd in range(rounds + 1):
                vals = [row[rd] for row in rows if rd in row]
                if len(vals) == len(rows):
                    pts.append((np.mean([v[0] for v in vals]), np.mean([v[1] for v in vals])))
            curves[st] = pts
        full = curves["random"][-1]
        for st, pts in curves.items():
            b = budget_to_reach([p[0] for p in pts], [p[1] for p in pts], full[1])
            out[st] = (b / full[0]) if b is not None and full[0] > 0 else np.inf
        return out

    point = ratios(camps)
    rng = np.random.default_rng(seed)
    boot = [ratios(list(rng.choice(camps, size=len(camps), replace=True))) for _ in range(reps)]
    return {st: {"ratio": point[st],
                 # (no interpolation: a bootstrap value may be inf, never reached)
                 "low": float(np.quantile([b[st] for b in boot], 0.05, method="inverted_cdf")),
                 "high": float(np.quantile([b[st] for b in boot], 0.95,
                                           method="inverted_cdf")),
                 "n": len(camps)} for st in point}


def summarise_dataset(name, records, rounds, unit: str = "evaluations"):
    """``unit``: what ``spent`` counts (``"items"``: the cost model of :func:`item_costs`)."""
    groups, md = {}, [f"## {name}\n"]
    if unit != "evaluations":
        md.append(f"Costs: each evaluation costs its task's {unit} (`--costs items`); budgets "
                  f"below are in {unit}; the value-per-cost strategies and variance_per_cost "
                  f"(uncertainty sampling per cost) divide by them, the others do not.\n")
    by = {}
    for rec in records:
        by.setdefault((rec["strategy"], rec["round"]), []).append(rec)
    curves = {}
    for r in range(rounds + 1):
        g = groups[f"{name}/round_{r}"] = {}
        for s in present(records):
            recs = by.get((s, r), [])
            if not recs:
                continue
            sq = [v for x in recs for v in x.get("sq", [])]
            cov = [v for x in recs for v in x.get("covered", [])]
            wid = [v for x in recs for v in x.get("width", [])]
            g[s] = {"rank_error": summarise([x["rank_error"] for x in recs]),
                    "rank_coverage_90": summarise([x["rank_covered"] for x in recs]),
                    "rank_width_90": summarise([x["rank_width_90"] for x in recs]),
                    "spent": summarise([x["spent"] for x in recs])}
            if sq:
                g[s].update(mse=summarise(sq), coverage_90=summarise(cov),
                            width_90=summarise(wid))
            curves.setdefault(s, []).append((np.mean([x["spent"] for x in recs]), g[s]))
    summary = groups[f"{name}/summary"] = {}
    final = curves["random"][-1][1]
    md.append(f"Budget ({unit}) each strategy needs to reach the error random reaches with "
              f"its full budget ({int(curves['random'][-1][0])}); '>' = not within it:\n")
    md.append("| strategy | rank error: budget | final rank error | profile MSE: budget | "
              "final MSE |\n|---|---|---|---|---|")
    for s, c in curves.items():
        spent = [b for b, _ in c]
        b_rank = budget_to_reach(spent, [x["rank_error"]["mean"] for _, x in c],
                                 final["rank_error"]["mean"])
        b_mse = budget_to_reach(spent, [x.get("mse", {"mean": np.inf})["mean"] for _, x in c],
                                final.get("mse", {"mean": -np.inf})["mean"])
        summary[s] = {"budget_rank_error": {"mean": float(b_rank if b_rank is not None
                                                          else np.nan), "std": 0.0, "n": 1},
                      "budget_mse": {"mean": float(b_mse if b_mse is not None else np.nan),
                                     "std": 0.0, "n": 1}}
        md.append(f"| {s} | {b_rank if b_rank is not None else '> ' + str(int(spent[-1]))} | "
                  f"{fmt(c[-1][1]['rank_error'], 2)} | "
                  f"{b_mse if b_mse is not None else '> ' + str(int(spent[-1]))} | "
                  f"{fmt(c[-1][1].get('mse'), 4)} |")
    if any("campaign" in r for r in records):
        md.append("\nBudget to reach random's final mean error, as a share of random's full "
                  "budget (the target: <= 1/3), with a 90% bootstrap interval over "
                  "campaigns:\n")
        md.append("| strategy | rank error | profile MSE |\n|---|---|---|")
        ratio = {m: budget_ratios(records, m, rounds) for m in ("rank_error", "sq_mean")}
        for s in present(records):
            cells = []
            for m in ("rank_error", "sq_mean"):
                r = ratio[m][s]
                cells.append(f"{r['ratio']:.2f} [{r['low']:.2f}, {r['high']:.2f}]")
                summary.setdefault(s, {})[f"budget_ratio_{m}"] = {
                    "mean": float(r["ratio"]) if np.isfinite(r["ratio"]) else float("nan"),
                    "std": 0.0, "n": r["n"], "ci90": [r["low"], r["high"]]}
            md.append(f"| {s} | " + " | ".join(cells).replace("inf", "∞") + " |")
    for metric, digits in (("rank_error", 2), ("rank_coverage_90", 2), ("mse", 4),
                           ("coverage_90", 3), ("width_90", 3)):
        md.append(f"\n**{metric}** by round (budget spent = round x per-round"
                  + ("" if unit == "evaluations" else f"; in {unit}: the 'spent' of the JSON")
                  + "):\n")
        md.append("| strategy | " + " | ".join(f"r{r}" for r in range(rounds + 1)) + " |")
        md.append("|---|" + "---|" * (rounds + 1))
        for s, c in curves.items():
            md.append(f"| {s} | " + " | ".join(fmt(x.get(metric), digits) for _, x in c) + " |")
    pooled = {}
    for r in range(1, rounds + 1):
        for s in present(records):
            pooled.setdefault(r, []).extend(by.get((s, r), []))
    md.append("\nCoverage of the profile's 90% intervals pooled over every strategy and "
              "campaign, by round: " + ", ".join(
                  f"r{r} {np.mean([v for x in pooled[r] for v in x.get('covered', [])]):.3f}"
                  for r in pooled if any(x.get("covered") for x in pooled[r])))
    widths = groups[f"{name}/widths"] = {}
    md.append("\nExpected width of the plan (at the start of the round) against the width "
              "after observing its picks and refitting, means over campaigns and rounds:\n")
    md.append("| strategy | expected | after observing | ratio |\n|---|---|---|---|")
    for s, key in (("vpc_aggregate", "rank_width_90"), ("vpc_scores", "scores_width")):
        recs = [x for x in records if x["strategy"] == s and x["round"] > 0
                and x.get("expected_width") is not None and key in x]
        if not recs:
            continue
        e = np.mean([x["expected_width"] for x in recs])
        a = np.mean([x[key] for x in recs])
        widths[s] = {"expected_width": summarise([x["expected_width"] for x in recs]),
                     "actual_width": summarise([x[key] for x in recs]),
                     "ratio": {"mean": float(e / a), "std": 0.0, "n": len(recs)}}
        md.append(f"| {s} | {e:.3f} | {a:.3f} | {e / a:.2f} |")
    plan_s = [x["plan_seconds"] for x in records if x["strategy"].startswith("vpc")
              and "plan_seconds" in x]
    if plan_s:
        md.append(f"\nPlanning a round (value per cost) took {np.median(plan_s):.2f} s "
                  f"(median; max {np.max(plan_s):.2f} s).")
    return groups, md, curves


def figure(all_curves, path):
    fig, axes = plt.subplots(len(all_curves), 2, figsize=(10, 3.6 * len(all_curves)),
                             squeeze=False)
    for row, (name, curves) in enumerate(all_curves.items()):
        for col, metric in enumerate(("rank_error", "mse")):
            ax = axes[row, col]
            for s, c in curves.items():
                pts = [(b, x[metric]["mean"]) for b, x in c if metric in x]
                ax.plot(*zip(*pts, strict=True), marker="o", label=s)
            ax.set_xlabel("items evaluated" if name.endswith("_items")
                          else "evaluations revealed")
            ax.set_ylabel({"rank_error": "aggregate rank error", "mse": "profile MSE"}[metric])
            ax.set_title(name, fontsize=9)
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def drop_sections(md: str, labels) -> str:
    """``md`` without the ``## <label>`` sections of ``labels`` (a setting run again)."""
    parts = md.split("\n## ")
    keep = [parts[0]] + [x for x in parts[1:] if x.split("\n", 1)[0].strip() not in labels]
    return "\n## ".join(keep)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--datasets", default="cpp,osl",
                   help="cpp, osl, emergent, pythia (comma-separated)")
    p.add_argument("--campaigns", type=int, default=20, help="new models per dataset")
    p.add_argument("--task-sets", choices=["fixed", "random"], default="random",
                   help="the aggregate's tasks: random sets of 5-8 tasks per campaign "
                   "(default), or fixed (CPP: the 5 tasks 40+ models have; OSL: all 8)")
    p.add_argument("--warm-steps", type=int, default=1000,
                   help="SVI steps of a refit from the previous fit's guide (0: every refit "
                   "from the start, 5000 steps)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--per-round", type=int, default=0,
                   help="evaluations per round (default: 2 on CPP, 1 on OSL)")
    p.add_argument("--thin", type=float, default=1.0,
                   help="share of the other models' cells kept (0.3: a 30%%-observed matrix)")
    p.add_argument("--costs", choices=["uniform", "items"], default="uniform",
                   help="uniform: one per evaluation; items: a task's number of items (pythia: "
                   "read from the harness's standard errors); budgets are then in items")
    p.add_argument("--normalization", choices=["table", "task_logit"], default="table",
                   help="what the planner's PMF fits read: the table's min-max (default) or "
                   "its bounded tasks through the logit, as `cppjax plan` does (label suffix "
                   "_logit); errors are in the table's units either way")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", default=None)
    p.add_argument("--merge", action="store_true")
    a = p.parse_args(argv)
    out_dir = RESULTS if a.out is None else __import__("pathlib").Path(a.out)
    settings = dict(num_steps=300, num_samples=100) if a.quick else {}
    if a.quick:
        a.campaigns, a.rounds = 1, 2
    if a.warm_steps:
        settings["warm_steps"] = min(a.warm_steps, settings.get("num_steps", a.warm_steps))
    spec, inference = make_spec("pmf_svi", **settings)
    spec_note = (f"warm, {inference.warm_steps} steps from the previous guide" if a.warm_steps
                 else f"from the start, {inference.num_steps} steps")
    key = as_key(a.seed)
    groups, md, all_curves, commands = {}, [], {}, []
    jp = out_dir / "planning.json"
    if a.merge and jp.exists():
        old = json.loads(jp.read_text())
        groups, commands = old["groups"], [old["command"]]
    for name in a.datasets.split(","):
        label = name if a.thin >= 1 else f"{name}_thin{a.thin:g}"
        label += "_items" if a.costs == "items" else ""
        relink = None if a.normalization == "table" else a.normalization  # renormalized()'s
        label += "_logit" if relink else ""
        k_set, k_run, k_time, key = jax.random.split(key, 4)
        full, base, tasks, ranked = setup(name, a.thin, k_set)
        costs = item_costs(name, full) if a.costs == "items" else None
        per_round = a.per_round or (2 if name == "cpp" else 1)
        order = np.asarray(jax.random.permutation(k_run, len(ranked)))[:a.campaigns]
        sets = "random sets of 5-8 tasks" if a.task_sets == "random" else f"{len(tasks)} tasks"
        print(f"{label}: {full}; aggregate over {sets}; {a.campaigns} campaigns x {a.rounds} "
              f"rounds of {per_round}; refits {spec_note}"
              + ("" if costs is None else f"; costs in items {costs}"), flush=True)
        records = []
        for n in range(a.campaigns):
            t0 = time.perf_counter()
            k_c = jax.random.fold_in(k_run, n)
            if a.task_sets == "random":  # each campaign its own aggregate and new model
                c_tasks, c_ranked = random_task_set(full, jax.random.fold_in(k_c, 1))
                model = c_ranked[int(jax.random.randint(jax.random.fold_in(k_c, 2), (), 0,
                                                        len(c_ranked)))]
            else:
                c_tasks, c_ranked = tasks, ranked
                model = ranked[order[n % len(order)]]
            recs = campaign(full, base, model, c_tasks, c_ranked, inference, spec, a.rounds,
                            per_round, k_c, lambda _m: None, costs, relink)
            for r in recs:
                r["campaign"] = n
            records += recs
            print(f" campaign {n + 1}/{a.campaigns} ({model}, {len(c_tasks)} tasks) "
                  f"{time.perf_counter() - t0:.0f}s", flush=True)
        g, m, curves = summarise_dataset(label, records, a.rounds,
                                         unit="evaluations" if costs is None else "items")
        if relink:
            m.insert(1, "The planner's PMF fits read the bounded tasks through the logit "
                     "(`--normalization task_logit`, as `cppjax plan` does; decision 0023); "
                     "errors and widths in the table's min-max units, as in the other "
                     "settings.\n")
        if name == "cpp":
            t = timing(base, tasks, ranked, inference, spec, k_time)
            g[f"{label}/summary"]["plan_10_seconds"] = {
                "cold": {"mean": t["cold"], "std": 0.0, "n": 1},
                "warm": {"mean": t["warm"], "std": 0.0, "n": 1}}
            m.append(f"\nChoosing the next 10 evaluations of a new model (aggregate rank over "
                     f"{len(tasks)} tasks) after its fit: {t['cold']:.2f} s in a fresh process "
                     f"(compilation included), {t['warm']:.2f} s after.")
        groups.update(g)
        md += m + [""]
        all_curves[label] = curves
    for label, curves in all_curves.items():  # one figure per dataset (merged runs keep theirs)
        fig = out_dir / "figures" / f"planning_{label}.png"
        fig.parent.mkdir(parents=True, exist_ok=True)
        figure({label: curves}, fig)
        md.append(f"![{label} campaign curves](figures/{fig.name})\n")
    protocol = ("simulated campaigns: a new model from 0 revealed scores, true scores revealed "
                "per round by each strategy, PMF SVI refitted; aggregate = mean task units "
                "over the aggregate's tasks among the models with all of them")
    head = ["# Evaluation planning: simulated campaigns\n",
            "Strategies: " + ", ".join(STRATEGIES) + ". Uniform costs (one per evaluation). "
            "Error and coverage are on held-out true scores (real data, not a generator).\n"]
    if a.merge and (out_dir / "planning.md").exists():
        prev = (out_dir / "planning.md").read_text().split("-->", 1)[-1].lstrip("\n")
        prev = prev.split("\n", 1)[-1] if prev.startswith("Device") else prev
        head = [drop_sections(prev, list(all_curves)).strip(), ""]
        # a setting run again replaces its earlier run: its command is named once
        this = "python " + " ".join(["benchmarks/planning.py", *(argv or sys.argv[1:])])
        commands = [c for c in " && ".join(commands).split(" && ") if c and c != this]
    write_results("planning", protocol, groups, "\n".join(head + md) + "\n", out_dir=out_dir,
                  previous_commands=commands)


if __name__ == "__main__":
    main()
