import jax
import numpy as np
import pandas as pd
import pytest

from cppjax import ScoreMatrix
from cppjax import metrics as M
from cppjax import splits as S
from cppjax.data.compute import family_scale, model_compute
from cppjax.datasets import load_cpp_crowdsource, load_obsscaling


@pytest.fixture(scope="module")
def cpp():
    return load_cpp_crowdsource()


def _no_leak(split, sm):
    assert not (split.train.mask & split.test.mask).any()
    np.testing.assert_array_equal(split.train.mask | split.test.mask, sm.mask)
    assert split.test.normalization is split.train.normalization
    if split.info["normalization"] == "parent":
        assert split.train.normalization is sm.normalization
    else:  # fitted on the training cells alone: a held-out score changes nothing
        fitted = type(sm)(split.train.scores, sm.models, sm.tasks, sm.model_factors,
                          sm.task_factors, sm.scale, sm.normalization.kind,
                          task_info=sm.task_info).normalization
        empty = ~split.train.mask.any(axis=0)  # tasks without training cells: the parent's
        np.testing.assert_allclose(split.train.normalization.loc[:, ~empty],
                                   fitted.loc[:, ~empty])
        np.testing.assert_allclose(split.train.normalization.scale[:, ~empty],
                                   fitted.scale[:, ~empty])
    assert split.test.models == sm.models and split.test.tasks == sm.tasks


def test_random_cells_reproducible_and_disjoint(cpp):
    a = S.random_cells(cpp, 0.05, rng_key=jax.random.PRNGKey(3))
    b = S.random_cells(cpp, 0.05, rng_key=3)
    c = S.random_cells(cpp, 0.05, rng_key=4)
    np.testing.assert_array_equal(a.test.mask, b.test.mask)
    assert not np.array_equal(a.test.mask, c.test.mask)
    assert a.test.n_observed == round(0.05 * 878) == 44
    _no_leak(a, cpp)
    np.testing.assert_array_equal(a.full.scores, cpp.scores)


def test_kfold_covers_every_cell_once(cpp):
    folds = S.kfold_cells(cpp, 20, rng_key=0)
    count = sum(f.test.mask.astype(int) for f in folds)
    np.testing.assert_array_equal(count, cpp.mask.astype(int))
    for f in folds:
        _no_leak(f, cpp)


def test_new_model_and_task(cpp):
    s0 = S.new_model(cpp, "LLama-2-7B", k=0, rng_key=0)
    i = cpp.model_index("LLama-2-7B")
    assert s0.train.mask[i].sum() == 0 and s0.test.mask[i].sum() == cpp.mask[i].sum()
    s2 = S.new_model(cpp, "LLama-2-7B", k=2, rng_key=1)
    assert s2.train.mask[i].sum() == 2 and len(s2.info["revealed"]) == 2
    assert s2.test.n_observed == cpp.mask[i].sum() - 2
    np.testing.assert_array_equal(
        s2.train.mask[i], S.new_model(cpp, "LLama-2-7B", 2, rng_key=1).train.mask[i]
    )
    _no_leak(s2, cpp)
    t2 = S.new_task(cpp, "BoolQ(0-shot)", k=2, rng_key=0)
    j = cpp.task_index("BoolQ(0-shot)")
    assert t2.train.mask[:, j].sum() == 2
    _no_leak(t2, cpp)
    assert len(list(S.each_new_model(cpp, k=2, models=["GPT-4", "LLama-2-7B"], rng_key=0))) == 2


def test_largest_of_family_uses_compute_then_parameters():
    osl = load_obsscaling()
    s = S.largest_of_family(osl, min_members=3)
    held = s.info["held_out"]
    assert held["Llama-2"]["model"] == "meta-llama/Llama-2-70b-hf"
    assert held["Pythia"]["axis"] == "compute"
    for fam, h in held.items():
        members = osl.model_factors.loc[h["members"]]
        assert members["family"].eq(fam).all() and len(members) >= 3
    _no_leak(s, osl)
    cpp = load_cpp_crowdsource()
    s = S.largest_of_family(cpp, min_members=3)
    assert s.info["held_out"]["pythia"]["model"] == "Pythia-12B"
    assert s.info["held_out"]["LLama"]["model"] == "LLaMA-65B"


def test_model_compute_rules():
    f = pd.DataFrame(
        {
            "flops": [5e23, 7120.0, np.nan, np.nan, np.nan],
            "parameters": [7e10, 1.4e9, 1e9, 2e9, np.nan],
            "tokens": [1.4e12, 3e11, 2e10, np.nan, np.nan],
            "family": ["a", "a", "a", "b", "b"],
        },
        index=list("pqrst"),
    )
    c = model_compute(f)
    assert c["source"].tolist() == ["flops", "6ND", "6ND", "parameters", "none"]
    assert c.loc["q", "compute"] == pytest.approx(6 * 1.4e9 * 3e11)
    assert "rejected" in c.loc["q", "note"]
    fs = family_scale(f)
    assert fs.loc[["p", "q", "r"], "axis"].eq("compute").all()
    assert fs.loc["s", "axis"] == "parameters" and fs.loc["t", "axis"] == "none"


# ----------------------------------------------------------------------------------- metrics
def test_rank_rules_on_hand_made_example():
    # task 0: five models; models 1 and 3 held out. task 1: one held-out cell only.
    truth = np.array([[0.9, 0.2], [0.7, np.nan], [0.6, 0.8], [0.4, 0.5], [0.1, np.nan]])
    mi, ti = np.array([1, 3, 3]), np.array([0, 0, 1])
    pred = np.array([0.5, 0.65, 0.1])
    t, p = M.heldout_ranks(truth, mi, ti, pred)
    # truth ranks: model1 on t0 -> 2, model3 on t0 -> 4, model3 on t1 -> 2 (below 0.8 only)
    # predicted column t0: [0.9, 0.5, 0.6, 0.65, 0.1] -> model1 rank 4, model3 rank 2;
    # t1: 0.1 is below 0.2 and 0.8 -> rank 3
    assert t.tolist() == [2, 4, 2] and p.tolist() == [4, 2, 3]
    assert M.rank_accuracy(truth, mi, ti, pred) == 0.0
    assert M.mae_at_2(truth, mi, ti, pred) == pytest.approx(100.0)
    t, p = M.heldout_ranks(truth, mi, ti, pred, rule="heldout_only")
    assert t.tolist() == [1, 2, 1] and p.tolist() == [2, 1, 1]  # single cell: always right
    assert M.rank_accuracy(truth, mi, ti, pred, rule="heldout_only") == pytest.approx(100 / 3)


def test_point_metrics_by_hand():
    y, yhat = np.array([0.0, 1.0, 0.5]), np.array([0.5, 1.0, 0.0])
    assert M.mse(y, yhat) == pytest.approx((0.25 + 0 + 0.25) / 3)
    assert M.l1(y, yhat) == pytest.approx(1 / 3)
    assert M.spearman_per_task([0, 0, 0], [1, 2, 3], [1, 3, 2])[0] == pytest.approx(0.5)


def test_probabilistic_metrics():
    rng = np.random.default_rng(0)
    draws = rng.normal(size=(4000, 2000))
    y = rng.normal(size=2000)
    cov = M.coverage(draws, y)
    for lev, c in cov.items():
        assert abs(c - lev) < 0.03
    assert M.interval_width(draws, 0.9) == pytest.approx(2 * 1.6449, rel=0.02)
    # CRPS of N(0,1) at y: closed form
    from scipy.stats import norm

    y1 = np.array([0.3])
    exact = y1 * (2 * norm.cdf(y1) - 1) + 2 * norm.pdf(y1) - 1 / np.sqrt(np.pi)
    d1 = rng.normal(size=(20000, 1))
    assert M.crps(d1, y1) == pytest.approx(float(exact[0]), abs=0.01)
    assert M.crps(np.array([[0.2]]), np.array([0.5])) == pytest.approx(0.3)
    ll = norm.logpdf(y[None, :], loc=0, scale=1) * np.ones((3, 1))
    assert M.log_predictive_density(ll) == pytest.approx(norm.logpdf(y).mean())
    assert M.log_predictive_density_kde(draws[:, :200], y[:200]) == pytest.approx(
        norm.logpdf(y[:200]).mean(), abs=0.05
    )


def test_metrics_under_jit_inputs():
    """Metrics accept JAX arrays as well as numpy."""
    import jax.numpy as jnp

    assert M.mse(jnp.array([0.0, 1.0]), jnp.array([0.0, 0.0])) == pytest.approx(0.5)


def test_heldout_requires_truth():
    truth = np.array([[np.nan], [0.5]])
    with pytest.raises(ValueError, match="true score"):
        M.heldout_ranks(truth, [0], [0], [0.3])


def test_splits_on_small_matrix_keep_names():
    sm = ScoreMatrix(np.arange(12.0).reshape(4, 3), list("abcd"), list("xyz"), scale="unbounded")
    s = S.random_cells(sm, 0.25, rng_key=0)
    assert s.test.n_observed == 3 and s.train.n_observed == 9


def test_coverage_se_follows_the_number_of_groups():
    from cppjax.metrics import coverage_se

    rng = np.random.default_rng(1)
    draws, y = rng.normal(size=(1000, 400)), rng.normal(size=400)
    # one group per cell: the binomial standard error of a proportion
    se = coverage_se(draws, y, np.arange(400), [0.5, 0.9])
    assert abs(se[0.5] - np.sqrt(0.25 / 400)) < 0.005
    assert abs(se[0.9] - np.sqrt(0.09 / 400)) < 0.005
    # the same cells in 8 groups whose cells share one shift: 8 draws, not 400
    shift = np.repeat(rng.normal(scale=1.5, size=8), 50)
    grouped = coverage_se(draws, y + shift, np.repeat(np.arange(8), 50), [0.5])
    assert grouped[0.5] > 2 * coverage_se(draws, y + shift, np.arange(400), [0.5])[0.5]
    with pytest.raises(ValueError, match="one label per cell"):
        coverage_se(draws, y, np.arange(399))


def test_sorted_ranks_equal_the_pairwise_rule():
    """Ranks by sorting equal 1 + the number of strictly higher scores (ties share the better
    rank), the rule the pairwise comparison defines, with ties and a single model."""
    from cppjax.posterior.ranks import ranks_from_scores

    rng = np.random.default_rng(0)
    s = rng.integers(0, 6, size=(30, 25)).astype(float)  # many ties
    pairwise = 1 + (s[..., None, :] > s[..., :, None]).sum(axis=-1)
    np.testing.assert_array_equal(ranks_from_scores(s), pairwise)
    assert ranks_from_scores(np.array([[0.3]])).tolist() == [[1]]
    assert ranks_from_scores(np.array([0.1, 0.5, 0.5])).tolist() == [3, 1, 1]


def test_splits_take_the_data_first_and_the_key_by_name(cpp):
    a = S.random_cells(cpp, 0.05, rng_key=3)
    with pytest.warns(DeprecationWarning, match="rng_key=..."):
        old = S.random_cells(3, cpp, 0.05)  # the key-first form of 0.5, for one release
    np.testing.assert_array_equal(a.test.mask, old.test.mask)
    with pytest.raises(ValueError, match="rng_key is required"):
        S.new_model(cpp, "LLama-2-7B", k=2)
    with pytest.warns(DeprecationWarning, match="normalization="):
        S.new_model(cpp, "LLama-2-7B", normalise="parent")
