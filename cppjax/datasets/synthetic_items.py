"""A seeded generator of per-item results with known truth, for clustering on difficulty.

Each family's models sit on a compute ladder; a model's ability is linear in log compute (a
slope and an offset per family). Items have a difficulty and a discrimination (a 2PL item
response model above the task's chance floor); their difficulties come in a few clumps, so the
task-level accuracy rises in steps (irregular in compute) although every clump is regular. A
share of the items follows no smooth law: half are noise (a pass rate drawn afresh per model),
half U-shaped in compute (solved by small models, lost, then regained). Results are the share
of ``n_trials`` samples solved. Not real data: figures from it are labelled synthetic.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

from cppjax.inference.keys import numpy_rng


class SyntheticItems(NamedTuple):
    """``data`` (an :class:`~cppjax.data.items.ItemResponses` of every model, the largest too),
    ``p`` the true pass probabilities ``(n_models, n_items)``, ``regular`` (True for the
    items that follow the 2PL law), ``difficulty``, and ``task_truth`` (models x tasks: the
    expected task accuracy, the mean of ``p`` over the task's items)."""

    data: object
    p: np.ndarray
    regular: np.ndarray
    difficulty: np.ndarray
    task_truth: pd.DataFrame


def synthetic_items(rng_key, *, n_items: int = 300, n_tasks: int = 1, n_families: int = 2,
                    sizes: int = 8, compute_range: tuple[float, float] = (1e20, 1e24),
                    n_trials: int = 20, irregular: float = 0.15, clumps: int = 3,
                    chance: float = 0.0, difficulty: tuple[float, float] = (-2.0, 2.5)
                    ) -> SyntheticItems:
    """Generate per-item results from ``rng_key`` (the same key, the same data).

    ``difficulty``: the range of the clumps' centres on the ability scale (abilities run over
    about -2.4 to 2.4 along the compute range); a range such as ``(1.0, 3.5)`` saturates: most
    items stay at zero below a size and emerge above it, as Pythia's arithmetic does.

    Example:
        >>> s = synthetic_items(0, n_items=60, sizes=5)
        >>> s.data.n_models, s.data.n_items, round(float(s.regular.mean()), 2)
        (10, 60, 0.9)
    """
    from cppjax.data.items import ItemResponses

    if not 0.0 <= irregular < 1.0:
        raise ValueError(f"irregular must be in [0, 1); got {irregular}")
    if min(n_items, n_tasks, n_families, sizes, n_trials, clumps) < 1:
        raise ValueError("n_items, n_tasks, n_families, sizes, n_trials, clumps must be >= 1")
    if not 0.0 <= chance < 1.0:
        raise ValueError(f"chance must be in [0, 1); got {chance}")
    if not difficulty[0] <= difficulty[1]:
        raise ValueError(f"difficulty must be a (low, high) range; got {difficulty!r}")
    rng = numpy_rng(rng_key)
    lo, hi = np.log10(compute_range[0]), np.log10(compute_range[1])
    log_c = np.tile(np.linspace(lo, hi, sizes), n_families)
    fam = np.repeat(np.arange(n_families), sizes)
    slope = rng.normal(1.2, 0.15, n_families)
    offset = rng.normal(0.0, 0.25, n_families)
    theta = offset[fam] + slope[fam] * (log_c - (lo + hi) / 2)  # ability, per model
    centres = np.sort(rng.uniform(difficulty[0], difficulty[1], clumps))
    b = centres[rng.integers(0, clumps, n_items)] + rng.normal(0, 0.25, n_items)
    a = rng.lognormal(np.log(2.0), 0.3, n_items)
    p = chance + (1 - chance) / (1 + np.exp(-a[None, :] * (theta[:, None] - b[None, :])))
    regular = rng.random(n_items) >= irregular
    odd = np.flatnonzero(~regular)
    t = (log_c - lo) / max(hi - lo, 1e-9)  # 0 .. 1 along compute
    for k, j in enumerate(odd):
        if k % 2 == 0:  # noise: a pass rate drawn afresh for every model
            p[:, j] = rng.uniform(0.05, 0.7, p.shape[0])
        else:  # U-shaped: solved at small compute, lost, regained
            p[:, j] = np.clip(0.75 - 0.65 * np.sin(np.pi * t), 0.02, 0.98)
    results = rng.binomial(n_trials, p) / n_trials
    models = [f"fam{f}-{k}" for f, k in zip(fam, np.tile(np.arange(sizes), n_families),
                                            strict=True)]
    task = np.array([f"task{j % n_tasks}" for j in range(n_items)], dtype=object)
    items = [f"{task[j]}/item{j}" for j in range(n_items)]
    flops = 10.0 ** log_c
    params = np.sqrt(flops / 120.0)  # 20 tokens per parameter: C = 6 N (20 N)
    mf = pd.DataFrame({"family": [f"fam{f}" for f in fam], "parameters": params,
                       "tokens": 20 * params, "flops": flops}, index=models)
    data = ItemResponses(results, models, items, task, mf, {t: chance for t in set(task)},
                         "synthetic_items")
    truth = pd.DataFrame({t: p[:, task == t].mean(axis=1) for t in data.tasks},
                         index=pd.Index(models, name="model"))
    return SyntheticItems(data, p, regular, b, truth)
