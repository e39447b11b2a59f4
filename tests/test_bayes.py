import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

import cppjax
from cppjax import splits as S
from cppjax.inference import NUTS, SVI
from cppjax.models import BNCF, PMF, BayesPosterior
from cppjax.posterior.ranks import ranks_from_scores


@pytest.fixture(scope="module")
def planted():
    rng = np.random.default_rng(1)
    n, m = 40, 12
    u, v = rng.normal(size=(n, 2)), rng.normal(size=(m, 2))
    mean = 0.5 + 0.12 * (u @ v.T) + 0.1 * u[:, :1]
    s = mean + rng.normal(scale=0.04, size=(n, m))
    s[rng.random((n, m)) < 0.3] = np.nan
    mf = pd.DataFrame({"size": np.exp(u[:, 0] + 3)}, index=[f"m{i}" for i in range(n)])
    return cppjax.ScoreMatrix(
        np.clip(s, 0, 1),
        list(mf.index),
        [f"t{j}" for j in range(m)],
        model_factors=mf,
        scale="fraction",
    )


@pytest.fixture(scope="module")
def pmf_svi(planted):
    split = S.random_cells(planted, 0.25, rng_key=0)
    post = PMF(rank=3).fit(
        split.train, rng_key=0, inference=SVI(num_steps=5000, num_samples=400), progress=False
    )
    return split, post


def test_pmf_svi_intervals_cover_planted_cells(pmf_svi):
    split, post = pmf_svi
    pred = post.predict(split.test, rng_key=1)
    y = split.test.scores[pred.model_idx, pred.task_idx]
    lo, hi = pred.interval(0.9)
    cov = np.mean((y >= lo) & (y <= hi))
    assert 0.8 <= cov <= 0.99, cov
    assert pred.draws.shape == (400, split.test.n_observed)
    assert pred.n_draws == post.n_draws


def test_rank_rhat_is_arviz_and_sees_what_the_classic_one_misses():
    """The fits' r-hat is ArviZ's rank-normalised one (so a warning and ``az.summary`` agree),
    ties averaged; it flags chains that agree in the mean but not in the spread, which the
    classic split r-hat passes."""
    import arviz as az
    from numpyro.diagnostics import split_gelman_rubin

    from cppjax.inference import rank_rhat

    rng = np.random.default_rng(0)
    x = rng.standard_t(3, size=(4, 600, 6))
    x[2, :, 1] += 2.0  # one chain elsewhere
    x[:, :300, 2] = 0.25  # ties: every chain stood still for a while
    x[0, :, 3] *= 4.0  # one chain as wide as four: same centre, other tails
    x[:, :, 4] = 1.0  # a constant
    ours = rank_rhat(x)
    theirs = az.rhat(az.convert_to_dataset(x), method="rank")["x"].values
    np.testing.assert_allclose(ours[:4], theirs[:4], rtol=1e-10)
    assert np.isnan(ours[4])
    assert ours[1] > 1.05 and ours[3] > 1.05 and ours[0] < 1.01
    assert split_gelman_rubin(x)[3] < 1.05  # the classic one passes the wide chain
    with pytest.raises(ValueError, match="draws >= 4"):
        rank_rhat(np.zeros((2, 3)))


def test_pmf_nuts_small(planted):
    import warnings

    split = S.random_cells(planted, 0.25, rng_key=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        post = PMF(rank=2).fit(
            split.train, rng_key=0, progress=False,
            inference=NUTS(num_warmup=200, num_samples=200, num_chains=2, max_tree_depth=6)
        )
    d = post.diagnostics
    assert set(d) >= {"divergences", "max_rhat", "min_ess"}
    # a fit that fails the r-hat / divergence / tree-depth checks must say so
    flagged = (d["max_rhat"] > 1.05 or d["divergences"] > 0
               or d["max_tree_depth_hits"] > 0.10)
    assert flagged == any(issubclass(w.category, cppjax.CppjaxWarning) for w in caught)
    pred = post.predict(split.test, rng_key=1)
    y = split.test.scores[pred.model_idx, pred.task_idx]
    lo, hi = pred.interval(0.9)
    assert np.mean((y >= lo) & (y <= hi)) >= 0.75
    idata = post.to_arviz()
    assert idata.posterior["model_offset"].dims == ("chain", "draw", "models")
    assert list(idata.posterior["model_offset"].coords["models"].values) == list(planted.models)


def test_outputs_frames_and_hpd(pmf_svi):
    split, post = pmf_svi
    pred = post.predict("missing", rng_key=0)
    df = pred.to_frame(0.8)
    assert list(df.columns) == ["model", "task", "mean", "median", "lower", "upper", "observed"]
    assert (df["lower"] <= df["median"]).all() and (df["median"] <= df["upper"]).all()
    lo, hi = pred.interval(0.8, kind="hpd")
    clo, chi = pred.interval(0.8)
    assert np.all(hi - lo <= chi - clo + 1e-9)  # HPD is never wider than the central interval
    idata = pred.to_arviz()
    assert idata.posterior_predictive["score"].shape == (1, pred.n_draws, pred.n_cells)


def test_save_load_round_trip(pmf_svi, tmp_path):
    split, post = pmf_svi
    path = post.save(tmp_path / "post")
    back = BayesPosterior.load(path)
    a = post.predict("missing", rng_key=5).draws
    b = back.predict("missing", rng_key=5).draws
    np.testing.assert_array_equal(a, b)
    assert back.matrix.models == post.matrix.models
    np.testing.assert_array_equal(back.matrix.scores, post.matrix.scores)


def test_rank_draws_match_direct_computation(pmf_svi):
    split, post = pmf_svi
    task = split.train.tasks[0]
    rp = post.rank(task, rng_key=3)
    j = split.train.task_index(task)
    obs = split.train.mask[:, j]
    # observed models keep their score in every draw
    np.testing.assert_array_equal(
        rp.score_draws[:, obs],
        np.broadcast_to(split.train.scores[obs, j], rp.score_draws[:, obs].shape),
    )
    # missing models: the same predictive draws as predict() with the same key
    mi = np.flatnonzero(~obs)
    pred = post.predict((mi, np.full(mi.size, j)), rng_key=3)
    np.testing.assert_allclose(rp.score_draws[:, ~obs], pred.draws)
    # ranks by direct counting in one draw
    d = rp.score_draws[7]
    direct = [1 + sum(d[k] > d[i] for k in range(d.size)) for i in range(d.size)]
    assert rp.draws[7].tolist() == direct
    lo, hi = rp.interval(0.9)
    assert (lo <= hi).all() and lo.min() >= 1 and hi.max() <= split.train.n_models
    a, b = rp.models[0], rp.models[1]
    assert rp.prob_beats(a, b) + rp.prob_beats(b, a) <= 1.0 + 1e-12
    assert rp.to_frame()["rank_mean"].is_monotonic_increasing


def test_ranks_hand_made():
    scores = np.array([[3.0, 1.0, 2.0], [1.0, 3.0, 3.0]])
    assert ranks_from_scores(scores).tolist() == [[1, 3, 2], [3, 1, 1]]


def test_bncf_svi_runs(planted):
    post = BNCF(dim=2, hidden=(8,)).fit(
        planted, rng_key=0, inference=SVI(num_steps=300, num_samples=50, guide_rank=20, lr=0.005),
        progress=False
    )
    pred = post.predict("missing", rng_key=0)
    assert pred.draws.shape == (50, int((~planted.mask).sum()))
    assert np.isfinite(pred.draws).all()


def test_bayes_predict_requires_key(pmf_svi):
    with pytest.raises(ValueError, match="rng_key"):
        pmf_svi[1].predict("missing")


def test_pmf_noise_floor_and_svi_deterministic_sites(planted):
    post = PMF(rank=2, noise_floor=0.03).fit(
        planted, rng_key=0, inference=SVI(num_steps=200, num_samples=30), progress=False)
    # SVI draws carry the model's deterministic sites too (offsets, noise), for to_arviz
    assert {"sigma", "model_offset", "task_offset"} <= set(post.samples)
    assert post.samples["sigma"].shape == (30, planted.n_tasks)
    assert (post.samples["sigma"] >= 0.03).all()
    idata = post.to_arviz()
    assert list(idata.posterior["sigma"].coords["tasks"].values) == list(planted.tasks)


def test_svi_draws_are_reproducible_and_deterministic_sites_follow_latent_ones(planted):
    from cppjax.inference import predict_sites

    spec, inf = PMF(rank=2), SVI(num_steps=200, num_samples=20)
    post = spec.fit(planted, rng_key=3, inference=inf, progress=False)
    again = spec.fit(planted, rng_key=3, inference=inf, progress=False)
    assert set(post.samples) == set(again.samples)
    for k in post.samples:  # the same key gives the same draws
        np.testing.assert_array_equal(post.samples[k], again.samples[k])
    # the offsets and noise drawn with the latent sites are those the latent draws imply
    determ = ("sigma", "model_offset", "task_offset")
    latent = {k: v for k, v in post.samples.items() if k not in determ}
    mi, ti = np.nonzero(planted.mask)
    implied = predict_sites(post._model, latent, post._args(mi, ti), determ,
                            jax.random.PRNGKey(0))
    for k in determ:
        np.testing.assert_allclose(implied[k], post.samples[k], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("likelihood", ["normal", "student_t"])
def test_likelihoods(planted, likelihood):
    post = PMF(rank=2, likelihood=likelihood).fit(
        planted, rng_key=0, inference=SVI(num_steps=300, num_samples=40), progress=False)
    assert ("nu" in post.samples) == (likelihood == "student_t")
    pred = post.predict("missing", rng_key=2)
    assert np.isfinite(pred.draws).all()
    # the log predictive density of observed cells is finite under either likelihood
    obs = post.predict("observed", rng_key=3)
    assert np.isfinite(obs.log_lik(planted.normalized[obs.model_idx, obs.task_idx])).all()


def test_bad_likelihood_is_named(planted):
    with pytest.raises(ValueError, match="likelihood must be 'normal' or 'student_t'"):
        PMF(likelihood="beta")
    with pytest.raises(ValueError, match="noise_floor must be >= 0"):
        BNCF(noise_floor=-0.1)


def test_prior_basis_square_root_is_the_regression_covariance():
    """K^(1/2) K^(1/2)' = s0^2 I + s1^2 X X' (the factor regression with its coefficients
    integrated out), and a design without columns gives s0 * I."""
    from cppjax.models.regression import prior_basis, regressed

    X = np.random.default_rng(0).normal(size=(7, 3)).astype(np.float32)
    X[:, 2] = X[:, 1]  # a repeated direction: eigenvectors not unique, the square root is
    root = np.asarray(regressed(jnp.eye(7), prior_basis(X), 0.4, 0.7))
    np.testing.assert_allclose(root, root.T, atol=1e-5)
    np.testing.assert_allclose(root @ root.T, 0.16 * np.eye(7) + 0.49 * X @ X.T, atol=1e-4)
    empty = np.asarray(regressed(jnp.eye(4), prior_basis(np.zeros((4, 0))), 0.4, 0.7))
    np.testing.assert_allclose(empty, 0.4 * np.eye(4), atol=1e-6)


def test_conditional_basis_keeps_the_prior_and_isolates_cold_rows():
    """Rows without data drawn given the observed rows: the joint covariance is still
    s0^2 I + s1^2 X X' and the observed rows do not depend on the cold rows' variables."""
    from cppjax.models.regression import ConditionalBasis, conditional_basis, regressed

    rng = np.random.default_rng(1)
    X = rng.normal(size=(9, 4)).astype(np.float32)
    X[:, 3] = X[:, 2]  # a direction the observed rows leave undetermined in weight space
    observed = np.array([1, 1, 0, 1, 1, 1, 0, 1, 1], bool)
    basis = conditional_basis(X, observed)
    assert isinstance(basis, ConditionalBasis)
    L = np.asarray(regressed(jnp.eye(9), basis, 0.4, 0.7))
    np.testing.assert_allclose(L @ L.T, 0.16 * np.eye(9) + 0.49 * X @ X.T, atol=2e-4)
    np.testing.assert_allclose(L[np.ix_(observed, ~observed)], 0.0, atol=1e-7)
    # a vector of variables (one column) maps like the identity's columns
    z = jnp.asarray(rng.normal(size=9), jnp.float32)
    np.testing.assert_allclose(np.asarray(regressed(z, basis, 0.4, 0.7)), L @ np.asarray(z),
                               atol=1e-5)
    # every row observed: the symmetric square root of prior_basis
    assert not isinstance(conditional_basis(X, np.ones(9, bool)), ConditionalBasis)


def test_guide_rank_is_checked():
    with pytest.raises(ValueError, match="guide_rank"):
        SVI(guide_rank=0)
    with pytest.raises(ValueError, match="guide_rank"), pytest.warns(DeprecationWarning):
        BNCF(guide_rank=0).default_inference("svi")  # the first form: checked when used


def test_low_rank_guide_rank_capped_by_default(planted):
    from cppjax.inference.objects import GUIDE_RANK_CAP

    def fit(**kw):
        return PMF(rank=2).fit(planted, rng_key=0, progress=False,
                               inference=SVI(num_steps=20, num_samples=4, guide="lowrank", **kw))

    capped, chosen = fit(), fit(guide_rank=3)
    # the guide's own factor matrix has the rank the diagnostics report
    assert capped.diagnostics["guide_rank"] == GUIDE_RANK_CAP  # sqrt(latent values) > the cap
    assert capped.result.params["auto_cov_factor"].shape[1] == GUIDE_RANK_CAP
    assert chosen.diagnostics["guide_rank"] == 3
    assert chosen.result.params["auto_cov_factor"].shape[1] == 3


def test_padding_cells_leaves_the_density_unchanged(planted):
    from numpyro import handlers
    from numpyro.infer.util import log_density

    from cppjax.models.likelihood import pad_cells

    spec = PMF(rank=2)
    model, data = spec.model_parts(planted)
    Xm, Xt = (jnp.asarray(x) for x in spec.design(planted))
    obs = planted.observed()
    mi, ti, y, mask = pad_cells(obs.model_idx, obs.task_idx, obs.values)
    n = len(obs.values)
    assert len(mi) > n and mask.sum() == n and (mi[:n] == obs.model_idx).all()
    tr = handlers.trace(handlers.seed(model, 0)).get_trace(Xm, Xt, mi, ti, y=None, **data)
    params = {k: s["value"] for k, s in tr.items() if s["type"] == "sample" and k != "y"}
    padded, _ = log_density(model, (Xm, Xt, mi, ti), {"y": y, "mask": mask, **data}, params)
    plain, _ = log_density(model, (Xm, Xt, obs.model_idx, obs.task_idx),
                           {"y": obs.values, **data}, params)
    np.testing.assert_allclose(padded, plain, rtol=1e-5)


def _fit_and_full_models(sm):
    """PMF's fit model (``data_cells=True``) and full model of ``sm``, their arguments, a draw
    of the prior's variables, and the masked log-likelihood of a model at given variables;
    checks that the two models' log densities agree there."""
    from numpyro import handlers
    from numpyro.infer.util import log_density

    from cppjax.models.likelihood import pad_cells

    spec = PMF(rank=2)
    fit_model, data = spec.model_parts(sm, data_cells=True)
    full_model, _ = spec.model_parts(sm)
    Xm, Xt = (jnp.asarray(x) for x in spec.design(sm))
    obs = sm.observed()
    mi, ti, y, mask = pad_cells(obs.model_idx, obs.task_idx, obs.values)
    args, kw = (Xm, Xt, mi, ti), {"y": y, "mask": mask, **data}
    tr = handlers.trace(handlers.seed(full_model, 0)).get_trace(*args, **kw)
    params = {k: s["value"] for k, s in tr.items() if s["type"] == "sample" and k != "y"}
    np.testing.assert_allclose(log_density(fit_model, args, kw, params)[0],
                               log_density(full_model, args, kw, params)[0], rtol=1e-6)

    def likelihood(model, p):
        site = handlers.trace(handlers.substitute(model, p)).get_trace(*args, **kw)["y"]
        return jnp.sum(jnp.where(mask, site["fn"].log_prob(site["value"]), 0.0))

    return fit_model, full_model, args, kw, params, likelihood


def test_fit_density_leaves_rows_without_data_out(planted):
    """A fit's model (``data_cells=True``) gives the training cells the means and the density
    of the full model, and neither depends on the models and tasks without data."""
    from numpyro import handlers

    scores = planted.scores.copy()
    scores[[0, 5], :] = np.nan  # two new models
    scores[:, 3] = np.nan  # a new task
    fit_model, full_model, args, kw, params, likelihood = _fit_and_full_models(
        planted.with_scores(scores))
    mi, ti, mask = args[2], args[3], kw["mask"]
    assert mi[0] != 0 and (mi[mask.sum():] == mi[0]).all() and (ti[mask.sum():] == ti[0]).all()
    tr = handlers.trace(handlers.substitute(full_model, params)).get_trace(*args, **kw)
    fit_tr = handlers.trace(handlers.substitute(fit_model, params)).get_trace(*args, **kw)
    for site in ("cell_mean", "model_offset", "task_offset"):
        np.testing.assert_allclose(fit_tr[site]["value"], tr[site]["value"], atol=1e-6)
    grad = jax.grad(lambda p: likelihood(fit_model, p))(params)
    for site, rows in (("a_z", [0, 5]), ("U_z", [0, 5]), ("b_z", [3]), ("V_z", [3])):
        g = np.asarray(grad[site])
        assert np.all(g[rows] == 0) and np.any(g != 0), site
    moved = {**params, "a_z": params["a_z"].at[jnp.array([0, 5])].add(1.0),
             "V_z": params["V_z"].at[3].add(1.0)}
    np.testing.assert_allclose(likelihood(fit_model, moved), likelihood(fit_model, params),
                               rtol=1e-6)
    assert not np.isclose(likelihood(full_model, {**params, "mu": params["mu"] + 0.1}),
                          likelihood(full_model, params))


def test_pmf_predicts_new_models_from_their_factors(planted):
    """Cold start end to end: fitted without the new models, the posterior predicts them from
    their design factor, with wider intervals than the models with data."""
    new = [i for i in range(planted.n_models) if planted.mask[i].sum() >= 6][:4]
    mi, ti = np.nonzero(planted.mask[new])
    split = S.split_cells(planted, np.asarray(new)[mi], ti, "new models")
    warm = S.random_cells(split.train, 0.2, rng_key=0)  # held-out cells of models with data
    post = PMF(rank=2).fit(
        warm.train, rng_key=0, inference=SVI(num_steps=2000, num_samples=300), progress=False)
    pred_new = post.predict(split.test, rng_key=1)
    pred_warm = post.predict(warm.test, rng_key=1)
    y = split.test.scores[pred_new.model_idx, pred_new.task_idx]
    assert np.isfinite(pred_new.draws).all()
    lo, hi = pred_new.interval(0.9)
    assert np.mean((y >= lo) & (y <= hi)) >= 0.75
    w_new = np.mean(np.subtract(*pred_new.interval(0.9)[::-1]))
    w_warm = np.mean(np.subtract(*pred_warm.interval(0.9)[::-1]))
    assert w_new > 1.3 * w_warm, (w_new, w_warm)
    # the new models' offsets follow their factor (the planted offset is 0.1 u_0 + ...)
    offsets = post.samples["model_offset"].mean(0)[new]
    assert np.corrcoef(offsets, np.log(planted.model_factors["size"].to_numpy()[new]))[0, 1] > 0


@pytest.mark.filterwarnings("ignore::cppjax.CppjaxWarning")  # 20 warm-up draws: r-hat
@pytest.mark.parametrize("make", [lambda: SVI(num_steps=200, num_samples=20)], ids=["svi"])
def test_compiled_programs_are_reused_without_carrying_data_over(planted, make):
    """An inference object keeps its compiled programs: a fit on other cells (as many) reuses
    them and gives what a fresh object gives; dropping the object drops them."""
    spec = PMF(rank=2)
    a = S.random_cells(planted, 0.25, rng_key=0).train
    b = S.random_cells(planted, 0.25, rng_key=1).train  # other cells, as many
    inference = make()
    fit_a = spec.fit(a, rng_key=0, inference=inference, progress=False)
    programs = list(inference.programs._programs.values())
    assert len(programs) == 1
    fit_b = spec.fit(b, rng_key=0, inference=inference, progress=False)
    assert list(inference.programs._programs.values()) == programs  # b ran a's programs
    fresh = make()
    assert fresh == inference and len(fresh.programs) == 0  # equal settings, own programs
    fresh_b = spec.fit(b, rng_key=0, inference=fresh, progress=False)  # compiled for b
    assert list(fresh.programs._programs.values()) != programs
    for k in fresh_b.samples:
        np.testing.assert_allclose(fit_b.samples[k], fresh_b.samples[k], rtol=1e-5, atol=1e-6)
    assert not np.allclose(fit_a.samples["model_offset"], fit_b.samples["model_offset"])
    assert fit_b.refit(a, rng_key=0, progress=False).inference is inference


def test_nuts_chains_start_apart_from_prior_medians_reproducibly(planted):
    """Each chain's starting point is its own prior-median draw (not one point for all chains),
    the same for the same keys."""
    from cppjax.inference import programs
    from cppjax.models.likelihood import pad_cells

    spec = PMF(rank=2)
    model, data = spec.model_parts(planted)
    obs = planted.observed()
    mi, ti, y, mask = pad_cells(obs.model_idx, obs.task_idx, obs.values)
    args = (*(jnp.asarray(x) for x in spec.design(planted)), jnp.asarray(mi), jnp.asarray(ti))
    kw = {"y": jnp.asarray(y), "mask": jnp.asarray(mask), **data}
    progs = programs.Programs(model, NUTS(num_warmup=20, num_samples=20, num_chains=3,
                                            max_tree_depth=5), args, kw)
    keys = jax.random.split(jax.random.PRNGKey(0), 3)
    z = progs._init(keys, args, kw, None).z
    a = np.asarray(z["a_z"])  # (chains, models): standard normal priors' medians of 15
    assert np.isfinite(a).all() and not np.allclose(a[0], a[1]) and 0.15 < a.std() < 0.6
    again = progs._init(keys, args, kw, None).z
    for k in z:
        np.testing.assert_array_equal(np.asarray(z[k]), np.asarray(again[k]))
    # given starting values (NUTS(init="svi")), chain c starts exactly at its own
    start = {k: np.asarray(v) + np.arange(3.0).reshape((3,) + (1,) * (v.ndim - 1))
             for k, v in z.items()}
    z2 = progs._init(keys, args, kw, {k: jnp.asarray(v) for k, v in start.items()}).z
    np.testing.assert_allclose(np.asarray(z2["a_z"]), start["a_z"], rtol=1e-6)


def test_nuts_started_from_svi_draws(planted):
    """NUTS(init="svi"): a mean-field SVI fit first, each chain from its own draw; the
    diagnostics say so, and the same key gives the same draws."""
    inf = NUTS(num_warmup=10, num_samples=10, num_chains=2, max_tree_depth=3, init="svi",
               init_steps=50)
    import warnings

    with warnings.catch_warnings():  # a run this short may be flagged: not what is tested
        warnings.simplefilter("ignore", cppjax.CppjaxWarning)
        a = PMF(rank=2).fit(planted, rng_key=3, inference=inf, progress=False)
        b = PMF(rank=2).fit(planted, rng_key=3, inference=inf, progress=False)
    assert a.diagnostics["init"] == "svi" and a.diagnostics["init_seconds"] > 0
    np.testing.assert_array_equal(a.samples["a_z"], b.samples["a_z"])
    with pytest.raises(ValueError, match="NUTS.init must be 'prior' or 'svi'"):
        NUTS(init="map")


def test_prior_median_init_matches_numpyro_init_to_median():
    """The SVI set-up's initial values: distributed as NumPyro's init_to_median (the median of 15
    prior draws) for Normal, half-normal and inverse-CDF priors; at the prior mean plus a small
    jitter for a prior without an inverse CDF (the Gamma); reproducible from the key."""
    import numpyro
    import numpyro.distributions as dist
    from numpyro import handlers
    from numpyro.infer import init_to_median

    from cppjax.inference.initialization import init_to_prior_median, prior_medians, site_offsets
    from cppjax.inference.programs import abstract_sites as _abstract_sites

    n = 20_000

    def model():
        numpyro.sample("w", dist.Normal(1.0, 2.0).expand([n]).to_event(1))
        with numpyro.plate("p", n):
            numpyro.sample("s", dist.HalfNormal(0.5))
            numpyro.sample("c", dist.Cauchy(-1.0, 0.5))  # inverse CDF, no mean
        numpyro.sample("g", dist.Gamma(2.0, 0.1))  # no inverse CDF without TFP
        numpyro.sample("y", dist.Normal(0.0, 1.0), obs=0.3)

    names, sizes = _abstract_sites(model, (), {})
    assert sizes == {"w": n, "s": n, "c": n, "g": 1} and "y" not in names
    offsets = site_offsets(sizes)
    assert offsets == {"w": 0, "s": n, "c": 2 * n, "g": 3 * n}

    def init_values(strategy):
        tr = handlers.trace(handlers.substitute(handlers.seed(model, 0), substitute_fn=strategy)
                            ).get_trace()
        return {k: np.asarray(v["value"]) for k, v in tr.items()
                if v["type"] == "sample" and not v["is_observed"]}

    ours = init_values(init_to_prior_median(
        medians=prior_medians(jax.random.PRNGKey(3), sum(sizes.values())), offsets=offsets))
    ref = init_values(init_to_median(num_samples=15))
    for site, scale in (("w", 2.0), ("s", 0.5), ("c", 0.5)):
        q_ours = np.quantile(ours[site], [0.1, 0.25, 0.5, 0.75, 0.9])
        q_ref = np.quantile(ref[site], [0.1, 0.25, 0.5, 0.75, 0.9])
        np.testing.assert_allclose(q_ours, q_ref, atol=0.03 * scale)
    assert ours["s"].min() > 0
    # the Gamma's mean is 20: within exp(+-0.2) of it
    assert 20 * np.exp(-0.2) <= float(ours["g"]) <= 20 * np.exp(0.2)
    again = init_values(init_to_prior_median(
        medians=prior_medians(jax.random.PRNGKey(3), sum(sizes.values())), offsets=offsets))
    for k in ours:
        np.testing.assert_array_equal(ours[k], again[k])


@pytest.fixture(scope="module")
def families():
    """Planted scores with family shifts: 10 families of 4 models, each family 0.15 x a
    standard normal above or below what the models' size predicts (no family effect on the
    interactions)."""
    rng = np.random.default_rng(3)
    n_fam, per, m = 10, 4, 12
    n = n_fam * per
    fam = np.repeat(np.arange(n_fam), per)
    shift = 0.15 * rng.normal(size=n_fam)
    size = rng.normal(size=n)
    u, v = rng.normal(size=(n, 2)), rng.normal(size=(m, 2))
    mean = 0.5 + shift[fam][:, None] + 0.05 * size[:, None] + 0.05 * (u @ v.T)
    s = np.clip(mean + rng.normal(scale=0.03, size=(n, m)), 0, 1)
    mf = pd.DataFrame({"size": np.exp(size + 3), "family": [f"f{g}" for g in fam]},
                      index=[f"m{i}" for i in range(n)])

    def matrix(columns):
        return cppjax.ScoreMatrix(s, list(mf.index), [f"t{j}" for j in range(m)],
                                  model_factors=mf[columns], scale="fraction")

    return matrix(["size", "family"]), matrix(["size"]), fam, shift


def test_pmf_family_effects(families, tmp_path):
    """Held-out models of families with data are predicted from their family's effect; a new
    family's effect is a draw from the learned family prior (wider intervals); the learned
    scales follow the planted family shifts; a saved fit predicts the same after loading."""
    sm, sm_nofam, fam, shift = families
    spec, inf = PMF(rank=2), SVI(num_steps=3000, num_samples=400)
    assert spec.design(sm)[0].shape[1] == 1  # size only: the family left the regression
    F = spec.families(sm)
    assert F.shape == (40, 10) and (F.sum(1) == 1).all() and (F.argmax(1) == fam).all()
    assert spec.family_names(sm) == [f"f{g}" for g in range(10)]
    assert spec.families(sm_nofam) is None and PMF(family=None).families(sm) is None
    seen = [0, 4, 8, 12, 16, 20, 24]  # one model of each of families 0-6
    new_family = np.flatnonzero(fam == 7)  # none of its models has a score in the fit
    held = np.concatenate([seen, new_family])
    out = {}
    for name, matrix in (("family", sm), ("no family factor", sm_nofam)):
        mi, ti = np.nonzero(matrix.mask[held])
        split = S.split_cells(matrix, held[mi], ti, "new models")
        post = spec.fit(split.train, rng_key=0, inference=inf, progress=False)
        pred = post.predict(split.test, rng_key=1)
        y = split.test.scores[pred.model_idx, pred.task_idx]
        lo, hi = pred.interval(0.9)
        is_seen = np.isin(pred.model_idx, seen)
        out[name] = {"mse_seen": np.mean((pred.mean() - y)[is_seen] ** 2),
                     "coverage": np.mean((y >= lo) & (y <= hi)),
                     "width_seen": np.mean((hi - lo)[is_seen]),
                     "width_new": np.mean((hi - lo)[~is_seen]), "post": post,
                     "split": split, "draws": pred.draws}
    fit = out["family"]
    assert fit["coverage"] >= 0.8, fit
    assert fit["mse_seen"] < 0.25 * out["no family factor"]["mse_seen"], out
    assert fit["width_new"] > 2 * fit["width_seen"], fit
    s_fa = np.median(fit["post"].samples["s_family_offset"])
    assert 0.5 * shift.std() < s_fa < 2 * shift.std(), (s_fa, shift.std())
    assert np.median(fit["post"].samples["s_family_latent"]) < 0.2  # prior median 0.67
    posterior = fit["post"].to_arviz().posterior
    assert list(posterior["family_offset_z"].coords["families"].values) == [
        f"f{g}" for g in range(10)]
    loaded = BayesPosterior.load(fit["post"].save(tmp_path / "families"))
    assert loaded.spec.family == "family"
    np.testing.assert_array_equal(loaded.predict(fit["split"].test, rng_key=1).draws,
                                  fit["draws"])


def test_pmf_fit_density_with_families(families):
    """With family effects, a fit's density still equals the full model's (checked by
    ``_fit_and_full_models``), and a family without data does not reach the likelihood."""
    sm, _, fam, _ = families
    scores = sm.scores.copy()
    scores[fam == 9] = np.nan
    fit_model, _, _, _, params, likelihood = _fit_and_full_models(sm.with_scores(scores))
    grad = jax.grad(lambda p: likelihood(fit_model, p))(params)
    for site in ("family_offset_z", "family_latent_z"):
        g = np.asarray(grad[site])
        assert np.all(g[9] == 0) and np.any(g[:9] != 0), site


def test_warm_refit_starts_from_the_fitted_guide(planted):
    """SVI(warm_steps=): a refit on a table of the same shape starts from the fit's guide and
    runs warm_steps steps; its predictions agree with a fresh fit's; a table of another shape
    starts afresh (and says so)."""
    inf = SVI(num_steps=3000, num_samples=200, warm_steps=300)
    post = PMF(rank=2).fit(planted, rng_key=0, inference=inf, progress=False)
    assert post.diagnostics["warm_start"] is False and post.result.params is not None
    i, j = map(int, np.argwhere(~planted.mask)[0])
    more = planted.add_scores({(planted.models[i], planted.tasks[j]): 0.5})
    warm = post.refit(more, rng_key=1, progress=False)
    assert warm.diagnostics["warm_start"] is True
    assert len(warm.result.losses) == 300 and warm.inference is inf
    # a fresh fit of the same inference object: its programs, compiled for this shape, serve
    cold = PMF(rank=2).fit(more, rng_key=1, inference=inf, progress=False)
    assert cold.diagnostics["warm_start"] is False
    a = warm.predict("missing", rng_key=2)
    b = cold.predict("missing", rng_key=2)
    # two fresh fits of other keys differ by 0.005-0.016 (measured over keys 1, 5, 9)
    assert np.mean(np.abs(a.mean() - b.mean())) < 0.03
    np.testing.assert_allclose(a.draws.std(axis=0).mean(), b.draws.std(axis=0).mean(), rtol=0.2)
    # another shape (a model fewer): a fresh fit of num_steps, said
    smaller = cppjax.ScoreMatrix(planted.scores[1:], planted.models[1:], planted.tasks,
                                 scale="fraction")
    fresh = warm.refit(smaller, rng_key=3, progress=False)
    assert fresh.diagnostics["warm_start"] is False and len(fresh.result.losses) == 3000
    with pytest.raises(ValueError, match="warm_steps must be a positive integer"):
        SVI(warm_steps=0)


def test_predict_draws_are_bounded_and_chosen(pmf_svi, monkeypatch):
    """predict(draws=) uses that many evenly spaced posterior draws; by default every draw up
    to MAX_PREDICT_VALUES values in all (never under MIN_PREDICT_DRAWS draws)."""
    from cppjax.posterior import sampled

    _, post = pmf_svi
    assert post.predict("missing", rng_key=0).n_draws == post.n_draws == 400
    some = post.predict("missing", rng_key=0, draws=100)
    assert some.n_draws == 100 and post.n_draws == 400  # the posterior itself is unchanged
    monkeypatch.setattr(sampled, "MAX_PREDICT_VALUES", 1000)
    assert post.predict("missing", rng_key=0).n_draws == sampled.MIN_PREDICT_DRAWS
    assert post.predict("missing", rng_key=0, draws=300).n_draws == 300  # asked: as asked
    with pytest.raises(ValueError, match="draws must be a positive integer"):
        post.predict("missing", rng_key=0, draws=0)


def test_draws_of_a_saturated_task_reach_its_bound():
    """Decision 0028: on a saturated task (half the models at 100%) the predictive of a cell
    observed at 100% covers 100% (the logit read 100% as 99% and mapped every draw back below
    the bound: 0 of 11 such cells covered, their upper ends at most 99.6%), held-out cells pass
    the old 99%, and no interval has zero width."""
    rng = np.random.default_rng(0)
    n = 30
    skill = np.sort(rng.normal(size=n))
    scores = 1 / (1 + np.exp(-(skill[:, None] + rng.normal(0, 0.3, (n, 4)))))
    scores[:, 3] = np.where(skill > 0, 1.0, 1 / (1 + np.exp(-3 * skill - 2)))
    held = [n - 1, n - 2, n - 3]
    train = scores.copy()
    train[held, 3] = np.nan
    sm = cppjax.ScoreMatrix(train, [f"m{i}" for i in range(n)], list("abcd"), scale="fraction")
    post = cppjax.fit("pmf_svi", sm, rng_key=0, progress=False,
                      inference=SVI(num_steps=1500, num_samples=400))
    at = np.flatnonzero(train[:, 3] == 1.0)
    seen = post.predict((at, np.full(at.size, 3)), rng_key=2)
    lo, hi = seen.interval(0.9)
    assert at.size >= 10 and (hi == 1.0).all() and (seen.draws == 1.0).any()
    top = post.predict((held, [3, 3, 3]), rng_key=1)
    lo, hi = top.interval(0.9)
    # past the old cap of 99% (PMF's Gaussian latent still shrinks a plateau of 100%s: their
    # upper ends are 99.5-99.8%, not 100%; decision 0028)
    assert (hi > 0.99).all() and (lo < hi).all()
    pred = post.predict("missing", rng_key=1)
    lo, hi = pred.interval(0.9)
    assert (hi - lo > 0).all() and (lo >= 0).all() and (hi <= 1).all()


@pytest.mark.parametrize("likelihood", ["normal", "student_t"])
def test_predictive_noise_is_the_same_on_one_thread_or_many(monkeypatch, likelihood):
    # blocks of draws have their own spawned generators: the thread count cannot change a draw
    from cppjax.models import likelihood as L

    rng = np.random.default_rng(0)
    n_draws, n_cells, n_tasks = 40, 2**15, 7  # 1.3M values: the threaded path
    mean = rng.normal(size=(n_draws, n_cells)).astype(np.float32)
    samples = {"sigma": rng.uniform(0.1, 0.3, (n_draws, n_tasks)),
               "nu": rng.uniform(1.0, 9.0, n_draws)}
    ti = rng.integers(0, n_tasks, n_cells)
    many = L.predictive_noise(mean.copy(), samples, ti, likelihood, 3)
    monkeypatch.setattr(L.os, "cpu_count", lambda: 1)
    one = L.predictive_noise(mean.copy(), samples, ti, likelihood, 3)
    np.testing.assert_array_equal(many, one)
    assert not np.array_equal(many, mean)  # noise was added
    again = L.predictive_noise(mean.copy(), samples, ti, likelihood, 4)
    assert not np.array_equal(many, again)  # another key, other draws


def test_pmf_reads_an_automatic_normalisation_through_the_logit(pmf_svi, tmp_path):
    """Decision 0024: a table whose min-max cppjax chose is fitted through the logit, the
    posterior presented on the user's table; a named normalisation is the one fitted."""
    from cppjax.posterior.renormalized import RenormalizedPosterior

    split, post = pmf_svi
    assert split.train.normalization.auto  # the split kept "chosen by cppjax"
    # SVI and MAP read it through the logit; NUTS keeps the min-max (decision 0025)
    assert [PMF().normalization_for(n) for n in ("svi", "map", "nuts")] == [
        "task_logit", "task_logit", None]
    assert isinstance(post, RenormalizedPosterior) and post.matrix is split.train
    assert post.diagnostics["normalization"] == "task_logit"
    assert post.inner.matrix.normalization.kind == "task_logit"
    assert set(post.samples) == set(post.inner.samples)  # the fit's own attributes reachable
    pred = post.predict(split.test, rng_key=1)
    direct = post.inner.predict(split.test, rng_key=1)
    # the same draws in original units; normalised ones in the user's table's units
    np.testing.assert_allclose(pred.draws, direct.draws, atol=1e-5)
    y = split.test.observed().values
    np.testing.assert_allclose(split.test.normalize(pred.draws, pred.model_idx, pred.task_idx),
                               pred.draws_normalized, atol=1e-4)
    # within the bounds, no interval of zero width
    lo, hi = pred.interval(0.9)
    assert (hi - lo > 0).all() and (lo >= 0).all() and (hi <= 1).all()
    # the log density is of the user's normalised units: the change of variables integrates
    j = int(np.argmin(np.abs(y - 0.5)))
    mi, ti = pred.model_idx[j:j + 1], pred.task_idx[j:j + 1]
    grid = np.linspace(*split.test.normalize(np.array([0.0, 1.0]), mi, ti), 2001)
    ll = post._log_lik(np.repeat(mi, grid.size), np.repeat(ti, grid.size))
    assert abs(np.trapezoid(np.exp(np.asarray(ll(grid))).mean(axis=0), grid) - 1) < 0.02
    # refit and save/load keep the presentation
    again = post.refit(split.train, rng_key=2)
    assert isinstance(again, RenormalizedPosterior) and again.matrix is split.train
    back = BayesPosterior.load(post.save(tmp_path / "post"))
    assert isinstance(back, RenormalizedPosterior) and back.matrix.normalization.auto
    np.testing.assert_array_equal(back.predict("missing", rng_key=5).draws,
                                  post.predict("missing", rng_key=5).draws)
    # a normalisation the user named is fitted as it is
    named = split.train.subset()
    pinned = cppjax.ScoreMatrix(named.scores, named.models, named.tasks, scale="fraction",
                                normalization="task_minmax")
    fit = PMF(rank=2).fit(pinned, rng_key=0, inference=SVI(num_steps=50, num_samples=20),
                          progress=False)
    assert isinstance(fit, BayesPosterior) and fit.matrix is pinned


def test_optimised_draws_of_a_large_table_are_the_same_draws(planted, monkeypatch):
    """Above DRAW_OPTIMISED_ABOVE cells x draws SVI's draws are compiled with XLA's
    optimisations (decision 0013's addendum): the same draws as unoptimised, to float
    rounding. The threshold is lowered to reach that path on a small table."""
    from cppjax.inference import programs

    draws, flags = [], []
    for limit in (programs.DRAW_OPTIMISED_ABOVE, 0):
        monkeypatch.setattr(programs, "DRAW_OPTIMISED_ABOVE", limit)
        inference = SVI(num_steps=300, num_samples=50)  # its own programs
        post = cppjax.fit("pmf_svi", planted, rng_key=0, progress=False, inference=inference)
        flags += [p.draws_optimised for p in inference.programs._programs.values()]
        draws.append(post.predict("missing", rng_key=1).draws)
    assert flags == [False, True]
    np.testing.assert_allclose(draws[0], draws[1], rtol=1e-4, atol=1e-5)
