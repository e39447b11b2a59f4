import jax
import numpy as np
import pytest

import cppjax
from cppjax import splits as S
from cppjax.datasets import load_cpp_crowdsource
from cppjax.inference import Adam
from cppjax.models import MF, NCF, FactorsOnly


@pytest.fixture(scope="module")
def planted():
    """A rank-2 matrix with model and task factors that explain the latent factors."""
    rng = np.random.default_rng(0)
    n, m = 40, 12
    u, v = rng.normal(size=(n, 2)), rng.normal(size=(m, 2))
    s = 50 + 10 * (u @ v.T) + rng.normal(scale=1.0, size=(n, m))
    s[rng.random((n, m)) < 0.3] = np.nan
    import pandas as pd

    mf = pd.DataFrame(
        {"size": np.exp(u[:, 0] + 3), "kind": np.where(u[:, 1] > 0, "a", "b")},
        index=[f"m{i}" for i in range(n)],
    )
    tf = pd.DataFrame({"shots": np.round(np.exp(v[:, 0] + 1))}, index=[f"t{j}" for j in range(m)])
    return cppjax.ScoreMatrix(
        np.clip(s, 0, 100), list(mf.index), list(tf.index), mf, tf, scale="percent"
    )


@pytest.mark.parametrize(
    "spec",
    [
        (MF(rank=2), {"steps": 600}),
        (NCF(), {"steps": 600}),
        (NCF(use_factors=True), {"steps": 600}),
        (FactorsOnly(), {"steps": 1500, "lr": 0.01}),
    ],
)
def test_point_predictors_beat_the_mean(planted, spec):
    spec, settings = spec
    inf = Adam(**{**spec.default_inference().settings(), **settings})
    split = S.random_cells(planted, 0.2, rng_key=0)
    post = spec.fit(split.train, rng_key=0, inference=inf)
    pred = post.predict(split.test)
    y = split.test.observed().values
    mse = np.mean((pred.mean(normalized=True) - y) ** 2)
    base = np.mean((y - split.train.observed().values.mean()) ** 2)
    # one draw per initialisation (MF: an ensemble of 5)
    assert pred.n_draws == post.inference.n_inits == spec.default_inference().n_inits
    assert mse < 0.8 * base, (spec.kind, mse, base)
    # original units round-trip
    np.testing.assert_allclose(
        pred.mean(),
        split.test.denormalize(pred.mean(normalized=True), pred.model_idx, pred.task_idx),
    )


def test_reproducible_from_seed_and_fit_many_matches_fit(planted):
    spec = MF(rank=2)
    inf = Adam(**{**spec.default_inference().settings(), "steps": 300})
    a = spec.fit(planted, rng_key=3, inference=inf).predict("missing").draws
    b = spec.fit(planted, rng_key=jax.random.PRNGKey(3), inference=inf).predict("missing").draws
    np.testing.assert_array_equal(a, b)
    splits = [S.random_cells(planted, 0.1, rng_key=k) for k in range(3)]
    many = spec.fit_many([s.train for s in splits], rng_key=0, inference=inf)
    assert len(many) == 3 and all(p.pred.shape == (inf.n_inits, 40, 12) for p in many)


def test_training_never_sees_test_cells(planted):
    """Changing the held-out scores changes neither the training matrix nor the fit."""
    split = S.random_cells(planted, 0.2, rng_key=0)
    altered = np.where(split.test.mask, 100.0 - planted.scores, planted.scores)
    other = cppjax.ScoreMatrix(altered, planted.models, planted.tasks, planted.model_factors,
                               planted.task_factors, scale="percent",
                               normalization=planted.normalization)
    split2 = S.random_cells(other, 0.2, rng_key=0)
    np.testing.assert_array_equal(split2.test.mask, split.test.mask)
    np.testing.assert_array_equal(split2.train.scores, split.train.scores)
    spec = MF(rank=2)
    inf = Adam(**{**spec.default_inference().settings(), "steps": 200})
    p1 = spec.fit(split.train, rng_key=0, inference=inf).predict(split.test).draws
    p2 = spec.fit(split2.train, rng_key=0, inference=inf).predict(split2.test).draws
    np.testing.assert_array_equal(p1, p2)


def test_fit_by_name_and_interface():
    sm = load_cpp_crowdsource()
    post = cppjax.fit("ncf_factors", sm, rng_key=0, steps=50)
    assert post.method == "ncf_factors"
    df = post.predict("missing").to_frame()
    assert len(df) == sm.n_models * sm.n_tasks - sm.n_observed
    assert df["observed"].isna().all()
    # predictions stay inside the declared scale
    assert df["mean"].between(0, 100).all()
    with pytest.raises(ValueError, match="unknown method 'pmf_nut'.*closest: 'pmf_nuts'"):
        cppjax.fit("pmf_nut", sm, rng_key=0)


@pytest.mark.parametrize("use_ids,use_factors,hidden",
                         [(True, True, (16, 8)), (False, True, (8,)), (True, False, ())])
def test_ncf_net_is_the_per_cell_architecture(planted, use_ids, use_factors, hidden):
    """NCFNet computes per model / task and gathers; its output must equal the architecture
    written per cell: GMF product, MLP over the concatenated embeddings and factors, output."""
    import flax.linen as nn
    import jax.numpy as jnp

    from cppjax.data.features import encode_factors
    from cppjax.models.nets import NCFNet, factor_arrays

    mf, tf = encode_factors(planted.model_factors), encode_factors(planted.task_factors)
    fa = factor_arrays(mf, tf)
    net = NCFNet(planted.n_models, planted.n_tasks, dim=3, hidden=hidden, use_ids=use_ids,
                 use_factors=use_factors, model_cards=mf.cardinalities,
                 task_cards=tf.cardinalities)
    mi, ti = np.nonzero(planted.mask)
    params = net.init(jax.random.PRNGKey(0), mi, ti, *fa)["params"]

    def encode(p, dense, codes):
        out = dense @ p["numeric"]["kernel"] + p["numeric"]["bias"]
        return out + sum(p[f"cat{k}"]["embedding"][codes[:, k]] for k in range(codes.shape[1]))

    mlp_in, u, v = [], [], []
    if use_ids:
        u.append(params["gmf_model"]["embedding"][mi])
        v.append(params["gmf_task"]["embedding"][ti])
        mlp_in += [params["mlp_model"]["embedding"][mi], params["mlp_task"]["embedding"][ti]]
    if use_factors:
        fm = encode(params["model_factors"], fa[0][mi], fa[1][mi])
        ft = encode(params["task_factors"], fa[2][ti], fa[3][ti])
        mlp_in += [fm, ft]
        if not use_ids:
            u, v = [fm], [ft]
    h = jnp.concatenate(mlp_in, axis=-1)
    for k in range(len(hidden)):
        h = nn.relu(h @ params[f"mlp{k}"]["kernel"] + params[f"mlp{k}"]["bias"])
    z = jnp.concatenate([sum(u) * sum(v), h], axis=-1)
    expected = (z @ params["out"]["kernel"] + params["out"]["bias"])[:, 0]
    got = net.apply({"params": params}, mi, ti, *fa)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
