"""The paths that make large tables affordable: PMF's factor regressions in a thin basis, cells
split over devices, minibatches, predictions in chunks. Their speed is measured by
``benchmarks/scale.py``; these tests check that they compute the same thing."""

import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro import handlers
from numpyro.infer.util import log_density

from cppjax import PMF
from cppjax.datasets import synthetic
from cppjax.inference import SVI
from cppjax.models.likelihood import pad_cells
from cppjax.models.regression import ConditionalBasis, conditional_basis, regressed


def dense_basis(X):
    """cppjax 0.2's basis: every eigenvector of X X' (n x n)."""
    X = np.asarray(X, np.float64)
    if X.shape[1] == 0:
        return np.eye(X.shape[0], dtype=np.float32), np.zeros(X.shape[0], np.float32)
    ev, Q = np.linalg.eigh(X @ X.T)
    return Q.astype(np.float32), np.clip(ev, 0.0, None).astype(np.float32)


def test_thin_basis_is_the_dense_symmetric_root():
    X = np.random.default_rng(0).normal(size=(12, 3)).astype(np.float32)
    z = jnp.asarray(np.random.default_rng(1).normal(size=(12, 4)), jnp.float32)
    Q, ev = dense_basis(X)
    d = np.sqrt(0.3**2 + 0.8**2 * ev)
    old = Q @ (d[:, None] * (Q.T @ np.asarray(z)))  # 0.2's map, written out
    thin = conditional_basis(X, np.ones(12, bool))
    assert thin[0].shape == (12, 3)  # n x (design columns), not n x n
    np.testing.assert_allclose(np.asarray(regressed(z, thin, 0.3, 0.8)), old, atol=1e-5)


@pytest.fixture(scope="module")
def small():
    # a table with design factors, families and two models without any score (cold rows)
    sm = synthetic(3, n_models=40, n_tasks=8, observed=0.4).matrix
    scores = sm.scores.copy()
    scores[[5, 17]] = np.nan
    return sm.with_scores(scores)


def _log_density(spec, sm, bases_fn):
    model, data = spec.model_parts(sm, data_cells=True)
    Xm, Xt = spec.design(sm)
    data["bases"] = tuple(bases_fn(X, obs) for X, obs in
                          ((Xm, sm.mask.any(1)), (Xt, sm.mask.any(0))))
    o = sm.observed()
    mi, ti, y, mask = pad_cells(o.model_idx, o.task_idx, o.values)
    args = (jnp.asarray(Xm), jnp.asarray(Xt), jnp.asarray(mi), jnp.asarray(ti))
    kw = {**data, "y": jnp.asarray(y), "mask": jnp.asarray(mask)}
    return model, args, kw


def test_weight_space_pmf_has_the_old_log_density(small):
    """The fit's log density with the thin bases equals the one with 0.2's n x n bases at the
    same parameters (rows without data drop out of both)."""
    spec = PMF(rank=3)

    def old(X, observed):
        b = conditional_basis(X, observed)
        if isinstance(b, ConditionalBasis):
            return b._replace(observed_basis=dense_basis(X[b.observed]))
        return dense_basis(X)

    model, args, kw = _log_density(spec, small, conditional_basis)
    _, args_old, kw_old = _log_density(spec, small, old)
    tr = handlers.trace(handlers.seed(model, 0)).get_trace(*args, **kw)
    values = {k: v["value"] for k, v in tr.items()
              if v["type"] == "sample" and not v["is_observed"]}
    ld = jax.jit(lambda a, k: log_density(model, a, k, values)[0])
    new_ld, old_ld = float(ld(args, kw)), float(ld(args_old, kw_old))
    assert np.isfinite(new_ld)
    np.testing.assert_allclose(new_ld, old_ld, rtol=1e-5)


def test_chunked_prediction_equals_unchunked(small):
    post = PMF(rank=2).fit(small, rng_key=0, inference=SVI(num_steps=50, num_samples=30))
    mi, ti = small.missing()
    whole = post.cell_means(mi, ti)
    chunked = post.cell_means(mi, ti, max_values=7 * mi.size)  # 5 chunks, the last padded
    np.testing.assert_allclose(chunked, whole, rtol=1e-6, atol=1e-6)
    a, b = post.predict("missing", rng_key=4), post.predict("missing", rng_key=4)
    np.testing.assert_array_equal(a.draws, b.draws)
    assert not np.array_equal(a.draws, post.predict("missing", rng_key=5).draws)


def test_minibatch_svi(small):
    """SVI on minibatches of 32 cells fits the training cells better than their mean."""
    mini = PMF(rank=2).fit(small, rng_key=0,
                           inference=SVI(num_steps=300, num_samples=50, subsample_size=32))
    pred = mini.predict(small, rng_key=1)  # the training cells
    err = np.mean((pred.mean() - small.scores[small.mask]) ** 2)
    assert err < np.var(small.scores[small.mask])
    with pytest.raises(ValueError, match="subsample_size"):
        SVI(subsample_size=0)


SHARDED = textwrap.dedent("""
    import json, os, sys
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
    import jax, numpy as np
    from cppjax import PMF
    from cppjax.datasets import synthetic
    from cppjax.inference import SVI
    sm = synthetic(1, n_models=30, n_tasks=6, observed=0.5).matrix
    out = {}
    for d in (1, 4):
        post = PMF(rank=2).fit(sm, rng_key=0, inference=SVI(num_steps=40, num_samples=5,
                                                           devices=d))
        out[d] = {k: np.asarray(v).tolist() for k, v in post.samples.items()}
    print(json.dumps({"devices": jax.device_count(), "one": out[1], "four": out[4]}))
""")


def test_sharded_fit_equals_single_device():
    """The cells split over 4 host devices give the single-device result (floating point)."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    res = subprocess.run([sys.executable, "-c", SHARDED], capture_output=True, text=True,
                         env=env, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["devices"] == 4
    for k, v in out["one"].items():
        np.testing.assert_allclose(np.asarray(out["four"][k]), np.asarray(v), rtol=1e-4,
                                   atol=1e-4, err_msg=k)


def test_too_many_devices_is_named():
    with pytest.raises(ValueError, match="devices=64 but JAX sees"):
        PMF(rank=1).fit(synthetic(0, n_models=10, n_tasks=3).matrix, rng_key=0,
                        inference=SVI(num_steps=5, num_samples=2, devices=64))
