"""Fits of changing shapes in one process, run by tests/test_memory.py: ``python fit_loop.py N``
runs N fits (point models mostly, and each Bayesian inference path) and prints the number of
memory maps of the process after the 10th and the last fit. The test runs 16 of them, and a
shorter loop with ``JAX_CHECK_TRACER_LEAKS=1`` (which makes every trace slow)."""

import sys

import numpy as np

import cppjax
from cppjax.models.registry import METHODS, make_spec

TINY = {"nuts": {"num_warmup": 4, "num_samples": 4, "num_chains": 1},
        "svi": {"num_steps": 4, "num_samples": 4}, "map": {"num_steps": 4},
        "adam": {"steps": 3, "val_frac": 0.0, "n_inits": 1}}
def table(n, m, rng):
    s = rng.random((n, m))
    s[rng.random((n, m)) < 0.3] = np.nan
    s[:, 0] = 0.5
    mf = {"family": [f"f{i % 3}" for i in range(n)], "parameters": np.geomspace(1e8, 1e10, n)}
    import pandas as pd

    return cppjax.ScoreMatrix(s, [f"m{i}" for i in range(n)], [f"t{j}" for j in range(m)],
                              model_factors=pd.DataFrame(mf, index=[f"m{i}" for i in range(n)]),
                              scale="fraction")


def maps() -> int:
    with open("/proc/self/maps") as fh:
        return sum(1 for _ in fh)


def main(n: int) -> None:
    N = n  # noqa: N806
    bayes = {1: "pmf_map", 2: "pmf_svi", 3: "pmf_nuts"} if N < 10 else {
        5: "pmf_map", 15: "pmf_svi", 25: "pmf_nuts", 35: "bncf_svi",
        45: "scaling_law_unpooled_map"}
    rng = np.random.default_rng(0)
    counts = {}
    for i in range(N):
        name = bayes.get(i, "mf")  # the point model that compiles fastest (~2 s a shape)
        sm = table(6 + i, 3 + i % 4, rng)  # a new shape every fit
        spec, inf = make_spec(name, **TINY[METHODS[name][2]])
        post = spec.fit(sm, rng_key=i, inference=inf, progress=False)
        post.predict(post.placed_cells("missing"), rng_key=i)
        if i in (min(9, N - 1), N - 1):
            counts[i] = maps()
    print(f"fits {N} maps_after_10 {counts[min(9, N - 1)]} maps_after_{N} {counts[N - 1]}",
          flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 50)
