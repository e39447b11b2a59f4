"""Min-max against logit normalisation of bounded tasks, on every public table of the suite: the
same splits, methods and seeds under each normalisation, back to back, pooled over tables.

    python benchmarks/normalization.py                      # every protocol (about 40 min, 2 cores)
    python benchmarks/normalization.py --protocols cpp_random,osl_random --merge
    python benchmarks/normalization.py --combine other/normalization.json  # merge, no fit

Issue 33 (item 4: every bounded task through a bounded link by default, no interval of zero
width) asks whether the logit should be the default of percent and fraction tables; decision
0022 measured it on the CPP table alone. Protocols: the suite's (``benchmarks/suite.py``: OSL
compute cutoff, emergent tasks, largest of family k = 0 and 2, family out, Pythia ladder, CPP
largest of family) and random held-out cells (5%, seeds 0-2) of the CPP and OSL tables. For each
split the training table is normalised anew on its own observed cells (``task_minmax`` or
``task_logit``), the method fitted with its defaults, and the held-out cells scored in the
table's units: errors as shares of each task's range (``mae``, ``mse``), coverage of the central
50%, 80% and 90% intervals (± the standard error over held-out models; random cells: over
cells), the median 90% width (share of the range), and the shares of held-out cells whose 90%
interval has zero width (``zero_width_90``) or touches a bound of the task (``at_bound_90``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from common import RESULTS, write_results
from suite import PROTOCOLS, cluster_se, splits_for

import cppjax
from cppjax.datasets import load_cpp_crowdsource, load_obsscaling
from cppjax.splits import random_cells

KINDS = ("task_minmax", "task_logit")
LEVELS = (50, 80, 90)


def splits(protocol):
    if protocol in ("cpp_random", "osl_random"):
        sm = load_cpp_crowdsource() if protocol == "cpp_random" else load_obsscaling()
        return [random_cells(sm, 0.05, rng_key=s) for s in range(3)]
    return [s for s, _ in splits_for(protocol)]


def score(draws, split, mi, ti, by_model, k):
    """Per-cell records of one fit, in the table's units."""
    y = split.test.scores[mi, ti]
    info = split.test.task_info
    lower, upper = (info[c].to_numpy(float)[ti] for c in ("lower", "upper"))
    span = upper - lower
    med = np.median(draws, axis=0)
    rec = {"err": (med - y) / span}
    if by_model:  # a held-out model's cells share its errors
        rec["group"] = np.array([f"{split.name}/{split.test.models[i]}" for i in mi])
    else:
        rec["group"] = np.array([f"{k}/{i}/{j}" for i, j in zip(mi, ti, strict=True)])
    for lev in LEVELS:
        lo, hi = np.quantile(draws, [(1 - lev / 100) / 2, (1 + lev / 100) / 2], axis=0)
        rec[f"hit_{lev}"] = (y >= lo) & (y <= hi)
        if lev == 90:
            rec["width_90"] = (hi - lo) / span
            rec["zero_width_90"] = hi - lo <= 1e-9 * span
            with np.errstate(invalid="ignore"):
                rec["at_bound_90"] = (lo <= lower + 1e-9 * span) | (hi >= upper - 1e-9 * span)
    return rec


def summarise(parts):
    cat = {k: np.concatenate([p[k] for p in parts]) for k in parts[0] if k != "secs"}
    out = {"mae": float(np.abs(cat["err"]).mean()), "mse": float((cat["err"] ** 2).mean()),
           "width_90": float(np.median(cat["width_90"])),
           "zero_width_90": float(cat["zero_width_90"].mean()),
           "at_bound_90": float(cat["at_bound_90"].mean()),
           "cells": int(cat["err"].size),
           "fit_seconds": float(np.mean([p["secs"] for p in parts]))}
    stats = {k: {"mean": v, "std": 0.0, "n": len(parts)} for k, v in out.items()}
    for lev in LEVELS:
        h = cat[f"hit_{lev}"]
        stats[f"coverage_{lev}"] = {"mean": float(h.mean()), "std": cluster_se(h, cat["group"]),
                                    "n": int(len(np.unique(cat["group"])))}
    return stats


def run(protocol, methods, seed, log):
    parts = {}
    for k, split in enumerate(splits(protocol)):
        mi, ti = (a.astype(np.int32) for a in np.nonzero(split.test.mask))
        for method in methods:
            for kind in KINDS:
                train = replace(split.train, normalization=kind, _index=None)
                t0 = time.perf_counter()
                post = cppjax.fit(method, train, rng_key=seed, progress=False)
                secs = time.perf_counter() - t0
                draws = np.asarray(post.predict((mi, ti), rng_key=seed + 1).draws, float)
                rec = score(draws, split, mi, ti, not protocol.endswith("_random"), k)
                parts.setdefault(f"{method}/{kind}", []).append({**rec, "secs": secs})
                log(f"{protocol} {split.name} {method} {kind}: {len(mi)} cells, {secs:.0f} s, "
                    f"MAE {np.abs(rec['err']).mean():.4f}, cov90 {rec['hit_90'].mean():.2f}, "
                    f"zero-width {int(rec['zero_width_90'].sum())}")
    return {row: summarise(p) for row, p in parts.items()}


def pooled(groups):
    """Per row, the mean over protocols of each figure (each protocol counts once)."""
    rows = {}
    for g, res in groups.items():
        if g == "pooled":
            continue
        for row, stats in res.items():
            for k, v in stats.items():
                rows.setdefault(row, {}).setdefault(k, []).append(v["mean"])
    return {row: {k: {"mean": float(np.mean(v)), "std": float(np.std(v)), "n": len(v)}
                  for k, v in ks.items()} for row, ks in rows.items()}


COLS = ("mae", "mse", "coverage_50", "coverage_80", "coverage_90", "width_90", "zero_width_90",
        "at_bound_90", "cells", "fit_seconds")
FORMATS = {"cells": "{:.0f}", "fit_seconds": "{:.1f}"}


def markdown(groups):
    lines = ["# Min-max or logit normalisation of bounded tasks\n", __doc__.split("\n\n", 2)[2],
             "Pooled: the mean over protocols ± their spread (each protocol counts once).\n"]
    for g in ["pooled", *[k for k in groups if k != "pooled"]]:
        lines += [f"## {g}\n", "| row | " + " | ".join(COLS) + " |", "|---|" + "---|" * len(COLS)]
        for row in sorted(groups[g]):
            r = groups[g][row]
            cells = [f"{r[c]['mean']:.2f} ± {r[c]['std']:.2f}" if c.startswith("coverage")
                     else FORMATS.get(c, "{:.4f}").format(r[c]["mean"]) for c in COLS]
            lines.append(f"| {row} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--protocols", default=",".join(("cpp_random", "osl_random", *PROTOCOLS)))
    p.add_argument("--methods", default="pmf_svi,scaling_mf_svi")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--merge", action="store_true", help="add to the existing results")
    p.add_argument("--combine", nargs="*", default=[],
                   help="results files of other runs (other methods or protocols) to merge in")
    p.add_argument("--out", default=str(RESULTS))
    a = p.parse_args(argv)
    out = Path(a.out)
    groups, previous = {}, []
    olds = [out / "normalization.json"] if a.merge and (out / "normalization.json").exists() else []
    for path in [*olds, *map(Path, a.combine)]:  # rows of a protocol merged, not replaced
        old = json.loads(path.read_text())
        previous.append(old["command"])
        for g, rows in old["groups"].items():
            groups.setdefault(g, {}).update(rows)
    if a.combine:  # merging finished runs only: no fit
        groups["pooled"] = pooled(groups)
        write_results("normalization", "min-max against logit (see benchmarks/normalization.py)",
                      groups, markdown(groups), out, previous)
        return
    for protocol in a.protocols.split(","):
        groups.setdefault(protocol, {})
        groups[protocol].update(run(protocol, a.methods.split(","), a.seed,
                                   lambda m: print(m, file=sys.stderr, flush=True)))
        groups["pooled"] = pooled(groups)
        write_results("normalization", "min-max against logit (see benchmarks/normalization.py)",
                      groups, markdown(groups), out, previous)


if __name__ == "__main__":
    main()
