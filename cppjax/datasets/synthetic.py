"""A seeded generator of score matrices with known truth, for tests and the scale benchmark.

Every figure computed on it says so: it is not real data. The generating model is the one the
collaborative models assume, with families and a size factor::

    log size_i ~ Uniform(log 1e8, log 1e11),   z_i = standardised log size
    u_i = z_i w + s_f h_family(i) + e_i            (rank-k model factors, e ~ N(0, 0.5))
    v_j ~ N(0, 1)                                 (rank-k task factors), b_j ~ N(0, 0.5)
    truth_ij = sigmoid(b_j + 0.8 z_i + u_i . v_j / sqrt(k))                  (fraction)
    score_ij = clip(truth_ij + N(0, noise), 0, 1)

Cells are observed *not at random*: larger models are evaluated on more tasks (the odds of a
cell being observed grow with ``mnar`` x the model's standardised log size), with the overall
share ``observed``; every model and task keeps at least one score.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import numpy as np
import pandas as pd

from cppjax.data import ScoreMatrix
from cppjax.inference.keys import as_key


class Synthetic(NamedTuple):
    """A generated table: ``matrix`` (the observed cells, as a user would have them), ``full``
    (every cell's noisy score) and ``truth`` (the noise-free means, ``(n_models, n_tasks)``)."""

    matrix: ScoreMatrix
    full: ScoreMatrix
    truth: np.ndarray


def synthetic(rng_key, *, n_models: int = 200, n_tasks: int = 20, rank: int = 3,
              n_families: int = 10, observed: float = 0.3, noise: float = 0.03,
              mnar: float = 1.0, family_scale: float = 0.7) -> Synthetic:
    """Generate a :class:`Synthetic` table from ``rng_key`` (a key or an int seed): the same key
    gives the same table.

    Example:
        >>> data = synthetic(0, n_models=50, n_tasks=8)
        >>> data.matrix.shape, round(data.matrix.n_observed / 400, 1)
        ((50, 8), 0.3)
    """
    for name, v in (("n_models", n_models), ("n_tasks", n_tasks), ("rank", rank),
                    ("n_families", n_families)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive integer; got {v!r}")
    if not 0.0 < observed <= 1.0:
        raise ValueError(f"observed must be in (0, 1]; got {observed}")
    if noise < 0:
        raise ValueError(f"noise must be >= 0; got {noise}")
    keys = jax.random.split(as_key(rng_key), 9)

    def normal(k, shape, scale=1.0):
        return scale * np.asarray(jax.random.normal(k, shape), float)

    log_size = np.asarray(jax.random.uniform(keys[0], (n_models,), minval=np.log(1e8),
                                             maxval=np.log(1e11)), float)
    z = (log_size - log_size.mean()) / max(log_size.std(), 1e-9)
    family = np.asarray(jax.random.randint(keys[1], (n_models,), 0, n_families))
    h = normal(keys[2], (n_families, rank), family_scale)
    u = z[:, None] * normal(keys[3], (1, rank)) + h[family] + normal(keys[4], (n_models, rank),
                                                                        0.5)
    v = normal(keys[5], (n_tasks, rank))
    b = normal(keys[6], (n_tasks,), 0.5)
    logits = b[None, :] + 0.8 * z[:, None] + u @ v.T / np.sqrt(rank)
    truth = 1.0 / (1.0 + np.exp(-logits))
    full = np.clip(truth + normal(keys[7], truth.shape, noise), 0.0, 1.0)
    # missing not at random: observation odds grow with size; the offset hits the share
    score = mnar * z[:, None] + np.asarray(jax.random.logistic(keys[8], truth.shape), float)
    cut = np.quantile(score, 1.0 - observed) if observed < 1 else -np.inf
    mask = score >= cut
    mask[np.arange(n_models), np.argmax(score, axis=1)] = True  # every model has a score
    mask[np.argmax(score, axis=0), np.arange(n_tasks)] = True  # and every task
    models = [f"model_{i:0{len(str(n_models))}d}" for i in range(n_models)]
    tasks = [f"task_{j:0{len(str(n_tasks))}d}" for j in range(n_tasks)]
    factors = pd.DataFrame({"family": [f"family_{f}" for f in family],
                            "parameters": np.exp(log_size)}, index=models)
    make = dict(model_factors=factors, scale="fraction", source="synthetic")
    return Synthetic(ScoreMatrix(np.where(mask, full, np.nan), models, tasks, **make),
                     ScoreMatrix(full, models, tasks, **make), truth)
