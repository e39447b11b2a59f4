"""Beyond the table: test models stronger or newer than the training ones, every method on the
same splits, the published peers re-implemented beside them (``benchmarks/peers.py``).

    python benchmarks/beyond.py                                  # OSL and CPP, all protocols
    python benchmarks/beyond.py --datasets cpp_crowdsource --merge   # add to the results
    python benchmarks/beyond.py --datasets obsscaling --protocols c --quick   # smoke test

Protocols (``<dataset>/<protocol>`` groups of the JSON):
* ``a``: compute cutoff (Ruan et al. 2024): the models with the top 20% of training compute are
  the test models; one benchmark hidden for them at a time (their other scores in training),
  one fit per benchmark; peer ``pca3_sigmoid``;
* ``b_k0``, ``b_k2``: the largest model of each family with >= 3 sized members held out, 0 or
  2 of its scores revealed; peers the unpooled and hierarchical per-family scaling laws;
* ``c``: leave-family-out (Polo et al. 2025): each family's smallest model in training, its
  larger models held out with no score revealed; peers ``compute_sigmoid_family`` and
  ``pca3_sigmoid`` (components from log compute and family).
Every split fits its normalisation on the training cells only. MSE, MAE, width and CRPS in the
dataset's units (OSL: fraction; CPP: percent points); coverage of the central intervals pooled
over the held-out cells of a protocol, ± binomial standard error; ``rank_coverage_*``: the share
of held-out cells whose true rank among every model with a score on the task lies in the rank
interval; ``rank_pit_coverage_*``: the same judged by the randomised PIT of the integer rank
draws (nominal for a calibrated rank distribution; ``metrics.rank_calibration``);
``beats_right``: pairs with ``prob_beats`` > 0.9 that were right. Per benchmark:
``<dataset>/<protocol>/<task>`` groups (MSE, MAE, 90% coverage).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import numpy as np
from common import RESULTS, fmt, write_results
from peers import PEERS

from cppjax import metrics as M
from cppjax import splits as S
from cppjax.datasets import load_cpp_crowdsource, load_obsscaling
from cppjax.evaluation import fit_splits

DATASETS = {"obsscaling": load_obsscaling, "cpp_crowdsource": load_cpp_crowdsource}
BAYES = ("scaling_mf_svi", "pmf_svi")
PROTOCOL_PEERS = {"a": ("pca3_sigmoid",), "b_k0": ("scaling_law_unpooled",
                                                  "scaling_law_hierarchical"),
                  "b_k2": ("scaling_law_unpooled", "scaling_law_hierarchical"),
                  "c": ("compute_sigmoid_family", "pca3_sigmoid")}
LEVELS = (0.5, 0.8, 0.9, 0.95)
#: the rank-calibration figures of each protocol (metrics.rank_calibration), pooled over cells
RANK_KEYS = tuple(f"rank_{kind}coverage_{lev}" for kind in ("", "pit_") for lev in (50, 80, 90))


def parse_value(v: str):
    """A ``--set`` value: a bool, an int, a float or a string."""
    if v in ("True", "False"):
        return v == "True"
    for kind in (int, float):
        try:
            return kind(v)
        except ValueError:
            pass
    return v


def protocol_splits(sm, protocol, n_tasks):
    if protocol == "a":
        counts = sm.mask.sum(axis=0)
        tasks = [sm.tasks[j] for j in np.argsort(-counts, kind="stable")[:n_tasks]]
        return [S.compute_cutoff(sm, t) for t in tasks]
    if protocol.startswith("b_k"):
        k = int(protocol[3:])
        return [S.largest_of_family(sm, k=k, rng_key=0 if k else None)]
    return [S.leave_family_out(sm)]


def collect(method, splits, settings, seed):
    """Per held-out cell: truth, mean prediction, draws (None for a point method), task."""
    rows = []
    if method in PEERS:
        for sp in splits:
            mi, ti = np.nonzero(sp.test.mask)
            rows.append((sp, mi, ti, PEERS[method](sp)[None, :], None))
        return rows, 0.0
    k_fit, k_pred = jax.random.split(jax.random.PRNGKey(seed))
    posts = fit_splits(method, splits, rng_key=k_fit, settings=settings, progress=False)
    for post, sp in zip(posts, splits, strict=True):
        pred = post.predict(sp.test, rng_key=k_pred)
        rows.append((sp, pred.model_idx, pred.task_idx, pred.draws, post))
    return rows, float(np.mean([p.fit_seconds for p in posts]))


def score(rows, sm):
    y, mean, tasks, draws, rank = [], [], [], [], []
    for sp, mi, ti, d, _ in rows:
        y.append(sp.test.scores[mi, ti])
        mean.append(d.mean(axis=0))
        tasks.append(ti)
        if d.shape[0] > 1:
            draws.append(d)
            rank.append((M.rank_calibration(
                sp.full.scores, mi, ti, d, sp.full.task_info["higher_is_better"].to_numpy()),
                mi.size))
    y, mean, tasks = np.concatenate(y), np.concatenate(mean), np.concatenate(tasks)
    ok = ~np.isnan(mean)
    out = {"mse": {"mean": M.mse(y[ok], mean[ok]), "std": 0.0, "n": int(ok.sum())},
           "mae": {"mean": M.l1(y[ok], mean[ok]), "std": 0.0, "n": int(ok.sum())}}
    per_task = {}
    d = None
    if draws:
        n = min(x.shape[0] for x in draws)
        d = np.concatenate([x[:n] for x in draws], axis=1)
        for lev, c in M.coverage(d, y, LEVELS).items():
            out[f"coverage_{int(lev * 100)}"] = {
                "mean": c, "std": float(np.sqrt(c * (1 - c) / y.size)), "n": int(y.size)}
        out["width_90"] = {"mean": M.interval_width(d, 0.9), "std": 0.0, "n": int(y.size)}
        out["crps"] = {"mean": M.crps(d, y), "std": 0.0, "n": int(y.size)}
        cells = sum(c for _, c in rank)
        for key in RANK_KEYS:
            out[key] = {"mean": float(sum(r[key] * c for r, c in rank) / cells), "std": 0.0,
                        "n": int(cells)}
        pairs = sum(r["beats_pairs"] for r, _ in rank)
        if pairs:
            right = sum(r["beats_right"] * r["beats_pairs"] for r, _ in rank
                        if r["beats_pairs"])
            out["beats_right"] = {"mean": float(right / pairs), "std": 0.0, "n": int(pairs)}
    for j in np.unique(tasks):
        sel = (tasks == j) & ok
        if not sel.any():
            continue
        row = {"mse": {"mean": M.mse(y[sel], mean[sel]), "std": 0.0, "n": int(sel.sum())},
               "mae": {"mean": M.l1(y[sel], mean[sel]), "std": 0.0, "n": int(sel.sum())}}
        if d is not None:
            c = M.coverage(d[:, sel], y[sel], (0.9,))[0.9]
            row["coverage_90"] = {"mean": c, "std": 0.0, "n": int(sel.sum())}
        per_task[sm.tasks[j]] = row
    return out, per_task


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--protocols", default="a,b_k0,b_k2,c")
    ap.add_argument("--methods", default=",".join(BAYES), help="Bayesian methods (peers added)")
    ap.add_argument("--tasks-a", type=int, default=8, help="benchmarks hidden in protocol a")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--merge", action="store_true", help="add to the existing results")
    ap.add_argument("--quick", action="store_true", help="small inference settings")
    ap.add_argument("--no-peers", action="store_true", help="the Bayesian methods only")
    ap.add_argument("--out", default=str(RESULTS))
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a setting of the Bayesian methods (repeatable), e.g. --set link=sigmoid")
    args = ap.parse_args(argv)
    settings = {"svi_steps": 300, "num_samples": 100} if args.quick else {}
    for kv in args.set:
        k, v = kv.split("=", 1)
        settings[k] = parse_value(v)
    groups, previous = {}, []
    out_dir = Path(args.out)
    path = out_dir / "beyond.json"
    if args.merge and path.exists():
        doc = json.loads(path.read_text())
        groups, previous = doc["groups"], [doc["command"]]
    for name in args.datasets.split(","):
        sm = DATASETS[name]()
        for protocol in args.protocols.split(","):
            splits = protocol_splits(sm, protocol, args.tasks_a)
            g = groups.get(f"{name}/{protocol}", {})  # --merge: other methods' figures kept
            peers = [] if args.no_peers else PROTOCOL_PEERS[protocol]
            for method in (*args.methods.split(","), *peers):
                t0 = time.perf_counter()
                rows, fit_s = collect(method, splits, settings, args.seed)
                out, per_task = score(rows, sm)
                if fit_s:
                    out["fit_seconds"] = {"mean": fit_s, "std": 0.0, "n": len(splits)}
                g[method] = out
                for task, row in per_task.items():
                    groups.setdefault(f"{name}/{protocol}/{task}", {})[method] = row
                cov = out.get("coverage_90", {}).get("mean", float("nan"))
                print(f"{name}/{protocol} {method}: mse {out['mse']['mean']:.5f} mae "
                      f"{out['mae']['mean']:.4f} cov90 {cov:.2f} "
                      f"({time.perf_counter() - t0:.0f}s)", flush=True)
            groups[f"{name}/{protocol}"] = g
    md = markdown(groups)
    write_results("beyond", "test models beyond the training ones: compute cutoff, largest of "
                  "family, leave-family-out; normalisation fitted on training cells",
                  groups, md, out_dir=out_dir,
                  previous_commands=previous)
    print(md)


def markdown(groups) -> str:
    cols = ("mse", "mae", "coverage_50", "coverage_80", "coverage_90", "coverage_95",
            "width_90", "crps", *RANK_KEYS, "beats_right", "fit_seconds")
    lines = ["# Beyond the table: stronger and newer models than the training ones", "",
             __doc__.split("\n\n", 2)[2].strip(), ""]
    for key, g in groups.items():
        if key.count("/") != 1:
            continue
        n = max(r["mae"]["n"] for r in g.values())
        lines += [f"## {key} ({n} held-out cells)", "",
                  "| method | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
        for m, r in g.items():
            cells = []
            for c in cols:
                if c not in r:
                    cells.append("–")
                elif c.startswith(("coverage", "rank_cov", "rank_pit", "beats")):
                    cells.append(f"{r[c]['mean']:.2f}")
                elif c == "fit_seconds":
                    cells.append(f"{r[c]['mean']:.1f}")
                else:
                    cells.append(fmt(r[c], 5 if c == "mse" else 4).split(" ±")[0])
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
        tasks = [k.split("/")[2] for k in groups if k.startswith(key + "/")]
        if tasks:
            methods = list(g)
            lines += ["", "Per benchmark: MSE (90% coverage)", "",
                      "| benchmark | " + " | ".join(methods) + " |",
                      "|---" * (len(methods) + 1) + "|"]
            for t in tasks:
                row = groups[f"{key}/{t}"]
                cells = [(f"{row[m]['mse']['mean']:.5f}"
                          + (f" ({row[m]['coverage_90']['mean']:.2f})"
                             if "coverage_90" in row[m] else "")) if m in row else "–"
                         for m in methods]
                lines.append(f"| {t} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
