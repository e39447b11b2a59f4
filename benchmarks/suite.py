"""The development suite: every public table of ../shared/data, each protocol asking about models
stronger, larger or newer than the training ones, the stacked predictor (``fit("auto")``) beside
each of its candidates, the closed-form baselines and the peers' own code, per protocol and pooled.

    python benchmarks/suite.py                       # every protocol (about 45 min on 2 cores)
    python benchmarks/suite.py --protocols osl_emergent,pythia_largest --merge

Protocols (``<protocol>`` groups of the JSON; cells pooled over the protocol's splits):
* ``osl_cutoff``: Observational Scaling Laws base table (148 models x 8 benchmarks; Ruan et al.
  2024): the top 20% of models by training compute test, one benchmark hidden for them at a time
  (their other scores observed).
* ``osl_emergent``: the 84 models of the emergent-capability table joined with their 8 base
  benchmarks; models with FLOPs above a cutoff (84, 168, 336 x 1e21) hide the 7 emergent tasks
  (``ipa_transliterate_2_bleu`` left out: a BLEU score); the peer is the authors' PC-3 through
  ``../shared/peers/obsscaling/pc3_cutoff.py`` (their code, unchanged; ``pip install -e .[peers]``),
  scored on the same models in the same units (floor 0.25 on parsinlu_qa, 0 elsewhere).
* ``osl_largest_k0``, ``osl_largest_k2``: each family's largest model (families of 3+) held
  out with 0 or 2 of its scores revealed (k = 2: seeds 0-2).
* ``osl_family_out``: every family of 2+ keeps its smallest model; its larger models are held out.
* ``pythia_largest``: Pythia-v1 (Biderman et al. 2023; 0-shot harness accuracies, 15 variants x
  the checkpoints from step 3000): the final checkpoints of 6.9B and 12B (both data mixes) held out,
  every earlier checkpoint and smaller size observed. ``pythia_final``: each of 410M, 1.4B and
  2.8B's final checkpoint from its earlier checkpoints and the smaller sizes (larger sizes out).
* ``cpp_largest``: the CPP collaborative table (72 x 29; Zhang et al. 2024), each family's
  largest model held out.

Rows: ``auto`` (the stack), each candidate fitted on the same training table (``cand:<name>``;
point candidates have no interval: coverage left out; ``cand:copy_sibling`` copies a checkpoint's
own run on a ladder), ``base:copy_largest_sibling`` (the family's largest training model's
scores, always) and ``peer:obsscaling_pc3``. Coverage of
the central 50% and 90% intervals pooled over a protocol's cells; ``ratio_mae`` and ``ratio_mse``:
the stack's figure over the best other row of the protocol (below 1: the stack wins).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pandas as pd
from common import RESULTS, write_results

from cppjax.data import ScoreMatrix
from cppjax.datasets import load_cpp_crowdsource, load_obsscaling
from cppjax.models.baselines import CopySibling
from cppjax.splits import compute_cutoff, largest_of_family, leave_family_out, split_cells
from cppjax.stacking import Stack, candidate_draws

SHARED = Path(__file__).resolve().parents[2] / "shared"
PEER = SHARED / "peers" / "obsscaling" / "pc3_cutoff.py"
EMERGENT = ["parsinlu_qa_2_acc", "word_unscrambling_2_exact_match",
            "ipa_transliterate_2_exact_match", "arithmetic_3ds_2_acc", "arithmetic_3da_2_acc",
            "arithmetic_2dm_2_acc", "arithmetic_2da_2_acc"]
PYTHIA_TASKS = {"arc_easy": .25, "arc_challenge": .25, "lambada_openai": 0.0, "logiqa": .25,
                "piqa": .5, "sciq": .25, "winogrande": .5, "wsc": .5}


# -- tables ------------------------------------------------------------------------------------
def osl_emergent() -> ScoreMatrix:
    base = load_obsscaling()
    extra = pd.read_csv(SHARED / "data" / "obsscaling" / "base_llm_emergent_capability_eval.csv")
    extra = extra.set_index("Model")
    models = [m for m in base.models if m in extra.index]
    rows = [base.model_index(m) for m in models]
    scores = np.column_stack([base.scores[rows], extra.loc[models, EMERGENT].to_numpy(float)])
    info = pd.concat([base.task_info, pd.DataFrame(
        {"lower": 0.0, "upper": 1.0, "higher_is_better": True,
         "chance": [.25 if t.startswith("parsinlu") else 0.0 for t in EMERGENT]},
        index=pd.Index(EMERGENT, name="task"))])
    return ScoreMatrix(scores, tuple(models), tuple(base.tasks) + tuple(EMERGENT),
                       model_factors=base.model_factors.loc[models], scale="fraction",
                       task_info=info, source="obsscaling base + emergent")


def pythia_ladder(max_size: str | None = None) -> ScoreMatrix:
    root = SHARED / "data" / "pythia_v1_evals"
    meta = pd.read_csv(root / "models.csv")
    meta = meta[meta["variant_note"].isna() | (meta["variant_note"] == "deduped")]
    per_step = meta.groupby("step")["variant"].nunique()
    steps = per_step.index[(per_step >= per_step.max() - 1) & (per_step.index >= 3000)]
    meta = meta[meta["step"].isin(steps)].set_index("model")
    ev = pd.read_csv(root / "evals_long.csv.gz")
    ev = ev[(ev["shots"] == 0) & ev["task"].isin(list(PYTHIA_TASKS)) & (ev["metric"] == "acc")
            & ev["model"].isin(meta.index)]
    wide = ev.pivot_table(index="model", columns="task", values="value", aggfunc="first")
    wide = wide.loc[[m for m in meta.index if m in wide.index], list(PYTHIA_TASKS)]
    mf = pd.DataFrame({"family": meta.loc[wide.index, "data"],
                       "parameters": meta.loc[wide.index, "params"].astype(float),
                       "tokens": meta.loc[wide.index, "tokens"].astype(float),
                       "flops": meta.loc[wide.index, "flops"].astype(float)}, index=wide.index)
    info = pd.DataFrame({"lower": 0.0, "upper": 1.0, "higher_is_better": True,
                         "chance": list(PYTHIA_TASKS.values())},
                        index=pd.Index(list(PYTHIA_TASKS), name="task"))
    return ScoreMatrix(wide.to_numpy(float), tuple(wide.index), tuple(wide.columns),
                       model_factors=mf, scale="fraction", task_info=info,
                       source="pythia_v1_evals (0-shot acc)")


# -- protocols ---------------------------------------------------------------------------------
def hold_models(sm, models, name, tasks=None):
    cols = range(sm.n_tasks) if tasks is None else [sm.task_index(t) for t in tasks]
    mi, ti = [], []
    for m in models:
        i = sm.model_index(m)
        for j in cols:
            if sm.mask[i, j]:
                mi.append(i)
                ti.append(j)
    return split_cells(sm, mi, ti, name, {"models": list(models)}, "train")


def splits_for(protocol: str):
    """(split, peer arguments or None) for each split of a protocol."""
    if protocol == "osl_cutoff":
        sm = load_obsscaling()
        return [(compute_cutoff(sm, t), None) for t in sm.tasks]
    if protocol == "osl_emergent":
        sm = osl_emergent()
        flops = sm.model_factors["flops"].to_numpy(float) / 1e21
        out = []
        for cut in (84, 168, 336):  # the peer's own test models, per task
            res = peer_pc3(cut)
            cells = [(sm.model_index(m), sm.task_index(r["target"])) for r in res
                     for m in r["test"] if m in sm.models]
            mi, ti = np.array(cells).T
            keep = sm.mask[mi, ti]
            out.append((split_cells(sm, mi[keep], ti[keep], f"emergent(cutoff={cut})",
                                    {"cutoff": cut}, "train"), res))
        del flops
        return out
    if protocol == "osl_largest_k0":
        return [(largest_of_family(load_obsscaling()), None)]
    if protocol == "osl_largest_k2":
        sm = load_obsscaling()
        return [(largest_of_family(sm, k=2, rng_key=s), None) for s in range(3)]
    if protocol == "osl_family_out":
        return [(leave_family_out(load_obsscaling()), None)]
    if protocol == "pythia_largest":
        sm = pythia_ladder()
        test = [m for m in sm.models if m.split("@")[0].split("-")[1] in ("6.9b", "12b")
                and m.endswith("@step143000")]
        return [(hold_models(sm, test, "pythia_largest"), None)]
    if protocol == "pythia_final":
        sm = pythia_ladder()
        order = ["70m", "160m", "410m", "1b", "1.4b", "2.8b", "6.9b", "12b"]
        out = []
        for size in ("410m", "1.4b", "2.8b"):
            keep = [m for m in sm.models
                    if order.index(m.split("@")[0].split("-")[1]) <= order.index(size)]
            sub = sm.subset(models=keep)
            test = [m for m in keep if m.split("@")[0].split("-")[1] == size
                    and m.endswith("@step143000")]
            out.append((hold_models(sub, test, f"pythia_final({size})"), None))
        return out
    if protocol == "cpp_largest":
        return [(largest_of_family(load_cpp_crowdsource()), None)]
    raise ValueError(protocol)


PROTOCOLS = ("osl_cutoff", "osl_emergent", "osl_largest_k0", "osl_largest_k2", "osl_family_out",
             "pythia_largest", "pythia_final", "cpp_largest")


# -- the peer ----------------------------------------------------------------------------------
def peer_pc3(cutoff):
    """The authors' PC-3 through their code: per emergent task, its test predictions' errors
    in the peer's units, on the same test models."""
    floors = ",".join(f"{t}=0.25" for t in EMERGENT if t.startswith("parsinlu"))
    cmd = [sys.executable, str(PEER), "--targets", ",".join(EMERGENT), "--cutoff", str(cutoff),
           "--floor", floors + ",0"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


# -- scoring -----------------------------------------------------------------------------------
def cell_rows(draws, y, floor, groups=None):
    """Per-cell errors and interval hits of one predictor (draws in original units);
    ``groups`` names each cell's held-out model (its errors are shared: coverage's standard
    error is over these clusters)."""
    med = np.median(draws, axis=0)
    rec = {"err": med - y, "unit_err": (med - y) / (1 - floor),
           "group": np.arange(len(y)).astype(str) if groups is None else np.asarray(groups)}
    if draws.shape[0] > 1:
        for lev in (0.5, 0.9):
            lo, hi = np.quantile(draws, [(1 - lev) / 2, (1 + lev) / 2], axis=0)
            rec[f"hit_{int(lev * 100)}"] = (y >= lo) & (y <= hi)
            rec[f"width_{int(lev * 100)}"] = hi - lo
    return rec


def test_cells(split):
    """A split's held-out cells: index arrays, truths, each cell's task range and chance floor
    (as a share of the range) and held-out model (the cluster its errors share)."""
    test = split.test
    mi, ti = np.nonzero(test.mask)
    info = test.task_info
    span = (info["upper"] - info["lower"]).to_numpy(float)[ti]
    floor = np.nan_to_num((info["chance"].fillna(info["lower"]) - info["lower"])
                          .to_numpy(float)[ti] / span)
    groups = np.array([f"{split.name}/{test.models[i]}" for i in mi])
    return mi, ti, test.scores[mi, ti], span, floor, groups


def run_protocol(protocol, seeds, log):
    rows = {}
    for split, peer_arg in splits_for(protocol):
        test = split.test
        mi, ti, y, span, floor, groups = test_cells(split)
        with np.errstate(all="ignore"):
            fill = np.nanmedian(np.where(split.train.mask, split.train.scores, np.nan), axis=0)[ti]
        # the copy-the-largest-sibling, as defined there (the candidate copies a
        # checkpoint's own run on a ladder: decision 0016); deterministic: once per split
        base = CopySibling(same_size=False).fit(split.train)
        base_rows = cell_rows(candidate_draws(base, (mi.astype(np.int32), ti.astype(np.int32)),
                                              None), y, floor, groups)
        for seed in seeds:
            t0 = time.perf_counter()
            post = Stack().fit(split.train, rng_key=seed, progress=False)
            secs = time.perf_counter() - t0
            d = post.predict((mi.astype(np.int32), ti.astype(np.int32)), rng_key=seed + 100)
            add(rows, "auto", cell_rows(d.draws, y, floor, groups), span, secs, seed)
            for name, cand in post.fits.items():
                dr = candidate_draws(cand, (mi.astype(np.int32), ti.astype(np.int32)),
                                      jax.random.PRNGKey(seed))
                ok = np.isfinite(dr).all(axis=0)
                dr = np.where(ok, dr, fill)  # a cell it cannot place: the task's training median
                add(rows, f"cand:{name}", cell_rows(dr, y, floor, groups), span,
                    cand.fit_seconds, seed)
            add(rows, "base:copy_largest_sibling", base_rows, span, base.fit_seconds, seed)
            w = ", ".join(f"{c} {x:.2f}" for c, x in post.weights.items() if x > 0)
            log(f"{protocol} {split.name} seed {seed}: {len(y)} cells, {secs:.0f} s; {w}")
        if peer_arg is not None:
            for res in peer_arg:
                j = test.task_index(res["target"])
                sel = ti == j
                got = set(res["test"])
                mine = [test.models[i] for i in mi[sel]]
                if set(mine) != got:
                    log(f"  peer test models differ on {res['target']}: {len(got)} vs {len(mine)}")
                rows.setdefault("peer:obsscaling_pc3", []).append(
                    {"unit_abs": res["mae"] * len(got), "unit_sq": res["mse"] * len(got),
                     "n": len(got)})
    return rows


def add(rows, name, rec, span, secs, seed=0):
    rows.setdefault(name, []).append({**rec, "span": span, "secs": secs, "seed": seed})


ERRORS = ("mae", "mse", "mae_unit", "mse_unit")


def errors(parts) -> dict:
    """The :data:`ERRORS` of ``parts`` pooled, as shares of each task's range."""
    err = np.concatenate([p["err"] / p["span"] for p in parts])
    uerr = np.concatenate([p["unit_err"] / p["span"] for p in parts])
    return {"mae": float(np.abs(err).mean()), "mse": float((err ** 2).mean()),
            "mae_unit": float(np.abs(uerr).mean()), "mse_unit": float((uerr ** 2).mean())}


def per_seed(parts) -> list[dict]:
    """:func:`errors` within each stack seed (one entry where the row had one seed)."""
    seeds = sorted({p.get("seed", 0) for p in parts})
    return [errors([p for p in parts if p.get("seed", 0) == s]) for s in seeds]


def summarise_rows(rows):
    """Pooled figures per row; errors as shares of each task's range (every table in one
    unit, so that tables pool)."""
    out = {}
    for name, parts in rows.items():
        if name.startswith("peer:"):
            n = sum(p["n"] for p in parts)
            out[name] = {"mae_unit": {"mean": sum(p["unit_abs"] for p in parts) / n, "std": 0.0,
                                      "n": len(parts)},
                         "mse_unit": {"mean": sum(p["unit_sq"] for p in parts) / n, "std": 0.0,
                                      "n": len(parts)}}
            continue
        rec = {**errors(parts), "cells": int(sum(p["err"].size for p in parts)),
               "fit_seconds": float(np.mean([p["secs"] for p in parts]))}
        if "hit_90" in parts[0]:
            groups = np.concatenate([p["group"] for p in parts])
            for lev in (50, 90):
                hits = np.concatenate([p[f"hit_{lev}"] for p in parts])
                rec[f"coverage_{lev}"] = {"mean": float(hits.mean()),
                                          "std": cluster_se(hits, groups),
                                          "n": int(len(np.unique(groups)))}
            widths = np.concatenate([p["width_90"] / p["span"] for p in parts])
            rec["width_90"] = float(np.median(widths))
            rec["min_width_90"] = float(widths.min())
        out[name] = {k: ({"mean": v, "std": 0.0, "n": len(parts)} if not isinstance(v, dict)
                         else v) for k, v in rec.items()}
        seeds = per_seed(parts)
        if len(seeds) > 1:  # the spread over stack seeds (the pooled figure kept)
            for k in ERRORS:
                out[name][k].update(std=float(np.std([e[k] for e in seeds], ddof=1)),
                                    n=len(seeds))
    others = [r for n, r in out.items() if n != "auto"]
    if "auto" in out and others:
        for m, key in (("mae", "mae_unit"), ("mse", "mse_unit")):
            best = min(r[key]["mean"] for r in others)
            a = out["auto"][key]
            out["auto"][f"ratio_{m}"] = {"mean": a["mean"] / best, "std": a["std"] / best,
                                         "n": a["n"] if a["std"] > 0 else 1}
    return out


def cluster_se(hits, groups) -> float:
    """Standard error of a coverage over clusters of cells (a held-out model's cells share its
    errors, so they are not independent draws): the sandwich estimator with the G / (G - 1)
    correction."""
    hits = np.asarray(hits, float)
    _, g = np.unique(groups, return_inverse=True)
    n_g = g.max() + 1
    if n_g < 2:
        return float("nan")
    resid = np.bincount(g, weights=hits - hits.mean(), minlength=n_g)
    return float(np.sqrt((resid ** 2).sum() * n_g / (n_g - 1)) / hits.size)


BANDS = {"coverage_50": (0.42, 0.58), "coverage_90": (0.85, 0.95)}


def verdicts(groups):
    """The issue's targets per protocol: the stack's MAE and MSE at or below every other row,
    coverage in its band, and (coverage being an estimate from few held-out models) whether the
    band lies within two cluster standard errors of the figure."""
    lines = ["## Targets (the stack, per protocol)\n",
             "Coverage: the figure, its standard error over the held-out models (cells of one "
             "model share its errors), and, for a figure outside its band, whether the band is "
             "within two standard errors of it (``consistent``).\n",
             "| protocol | MAE <= best | MSE <= best | 50% in .42-.58 | 90% in .85-.95 |",
             "|---|---|---|---|---|"]
    for g, rows in groups.items():
        a = rows.get("auto")
        if g == "pooled" or a is None:
            continue
        cells = [("met" if a[k]["mean"] <= 1 else "not met") + f" ({a[k]['mean']:.2f}"
                 + (f" ± {a[k]['std']:.2f} over {a[k]['n']} seeds)" if a[k]["std"] > 0 else ")")
                 for k in ("ratio_mae", "ratio_mse") if k in a]
        for k, (lo, hi) in BANDS.items():
            m, se = a[k]["mean"], a[k]["std"]
            if lo <= m <= hi:
                verdict = "met"
            elif np.isfinite(se) and se > 0 and lo - 2 * se <= m <= hi + 2 * se:
                verdict = "not met, consistent"
            else:
                verdict = "not met"
            cells.append(f"{verdict} ({m:.2f} ± {se:.2f})")
        lines.append(f"| {g} | " + " | ".join(cells) + " |")
    return lines + [""]


COLS = ("mae", "mse", "mae_unit", "mse_unit", "ratio_mae", "ratio_mse", "coverage_50",
        "coverage_90", "width_90", "min_width_90", "cells", "fit_seconds")


def markdown(groups):
    lines = ["# Development suite: models beyond the training table\n", __doc__.split("\n\n", 2)[2],
             "Errors as shares of each task's range (``mae``, ``mse``) and in the peer's units "
             "``(y - floor) / (1 - floor)`` (``*_unit``); coverage ± its standard error over "
             "the held-out models (pooled: ± the spread over protocols); where a protocol ran "
             "several stack seeds (``--seeds``), errors and ratios are pooled over them, ± their "
             "standard deviation over the seeds.\n", *verdicts(groups)]
    for g, rows in groups.items():
        lines += [f"## {g}\n", "| row | " + " | ".join(COLS) + " |",
                  "|---|" + "---|" * len(COLS)]
        order = sorted(rows, key=lambda n: (n != "auto", rows[n].get("mae_unit", {})
                                           .get("mean", 9)))
        for n in order:
            cells = []
            for c in COLS:
                v = rows[n].get(c)
                if v is None:
                    cells.append("–")
                elif c in ("cells",):
                    cells.append(f"{int(v['mean'])}")
                elif c == "fit_seconds":
                    cells.append(f"{v['mean']:.1f}")
                elif c.startswith("coverage") and v.get("std", 0) > 0:
                    cells.append(f"{v['mean']:.2f} ± {v['std']:.2f}")
                elif c.startswith(("coverage", "ratio")):
                    cells.append(f"{v['mean']:.2f}")
                elif c in ERRORS and v.get("std", 0) >= 5e-5:  # ± the spread over seeds
                    cells.append(f"{v['mean']:.4f} ± {v['std']:.4f}")
                else:
                    cells.append(f"{v['mean']:.4f}")
            lines.append(f"| {n} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


CENSORED_NOTE = ("**Scores on a bound censored**: every Bayesian candidate fitted with "
                 "`censored=True` (decision 0031); the default fits are `suite.md`'s.\n\n")


def censor_candidates() -> None:
    """Every Bayesian method name fits with ``censored=True`` in this process (the stack's
    candidates are method names)."""
    from cppjax.models import registry
    from cppjax.models.base import BayesSpec

    for key, (cls, settings, inf, about) in list(registry.METHODS.items()):
        if issubclass(cls, BayesSpec):
            registry.METHODS[key] = (cls, {**settings, "censored": True}, inf, about)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--protocols", default=",".join(PROTOCOLS))
    p.add_argument("--seeds", type=int, default=1, help="stack seeds per split")
    p.add_argument("--merge", action="store_true", help="add to the existing results")
    p.add_argument("--out", default=str(RESULTS))
    p.add_argument("--censored", action="store_true",
                   help="the Bayesian candidates read a score on a bound as censored "
                        "(decision 0031); results in suite_censored.{json,md}, a first "
                        "--merge starting from suite.json's protocols")
    a = p.parse_args(argv)
    out = Path(a.out)
    name = "suite_censored" if a.censored else "suite"
    if a.censored:
        censor_candidates()
    groups, previous = {}, []
    source = out / f"{name}.json"
    if a.censored and not source.exists():
        source = out / "suite.json"
    if a.merge and source.exists():
        old = json.loads(source.read_text())
        groups, previous = old["groups"], [old["command"]]
        groups.pop("pooled", None)

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    for protocol in a.protocols.split(","):
        groups[protocol] = summarise_rows(run_protocol(protocol, list(range(a.seeds)), log))
        pooled = {}
        for rows in groups.values():
            for n, r in rows.items():
                if n == "auto":
                    for k in ("ratio_mae", "ratio_mse", "coverage_50", "coverage_90"):
                        if k in r:
                            pooled.setdefault(k, []).append(r[k]["mean"])
        groups["pooled"] = {"auto": {k: {"mean": float(np.mean(v)), "std": float(np.std(v)),
                                         "n": len(v)} for k, v in pooled.items()}}
        write_results(name, "development suite (see benchmarks/suite.py)"
                      + (", scores on a bound censored" if a.censored else ""), groups,
                      (CENSORED_NOTE if a.censored else "") + markdown(groups), out, previous)
        groups.pop("pooled")


if __name__ == "__main__":
    main()
