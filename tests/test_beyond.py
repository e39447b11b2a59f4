"""Protocols beyond the table (compute cutoff, leave-family-out, top share of a family, no
leak of held-out scores into the normalisation), the scaling-aware MF, rank calibration, and
MAP's early stopping and noise-free mode."""

import numpy as np
import pandas as pd
import pytest

from cppjax import ScoreMatrix
from cppjax import metrics as M
from cppjax import splits as S
from cppjax.data.compute import model_compute
from cppjax.datasets import load_cpp_crowdsource, load_obsscaling
from cppjax.inference import MAP, SVI
from cppjax.models.registry import make_spec
from cppjax.models.scaling_mf import ScalingMF, compute_axis, task_bounds
from cppjax.posterior.base import _clip_to_scale
from cppjax.posterior.ranks import ranks_from_scores


@pytest.fixture(scope="module")
def osl():
    return load_obsscaling()


def test_new_model_normalises_on_training_cells_only(osl):
    top = osl.model_index("meta-llama/Meta-Llama-3.1-405B-FP8")
    s = S.new_model(osl, osl.models[top], rng_key=0)
    assert s.info["normalization"] == "train"
    train_max = np.nanmax(s.train.scores, axis=0)
    # the held-out model is the best on some task: the parent's normalisation maps its score
    # to 1, the split's maps the best *training* score to 1
    best = np.nanargmax(osl.scores, axis=0) == top
    assert best.any()
    j = np.flatnonzero(best)[0]
    assert np.isclose(s.train.normalize([train_max[j]], [0], [j])[0], 1.0)
    assert s.test.normalize([osl.scores[top, j]], [top], [j])[0] > 1.0
    assert s.test.normalization is s.train.normalization
    p = S.new_model(osl, osl.models[top], normalization="parent", rng_key=0)
    assert p.train.normalization is osl.normalization
    with pytest.raises(ValueError, match="normalization"):
        S.new_model(osl, osl.models[top], normalization="all", rng_key=0)


def test_largest_of_family_top_share_keeps_two_in_training(osl):
    s = S.largest_of_family(osl, share=0.5)
    for fam, h in s.info["held_out"].items():
        members = h["members"]
        assert 1 <= len(h["models"]) <= len(members) - 2
        x = osl.model_factors.loc[members]
        held_ok = all(osl.mask[osl.model_index(m)].sum() == s.test.mask[
            osl.model_index(m)].sum() for m in h["models"])
        assert held_ok and fam in set(x["family"])
    one = S.largest_of_family(osl)
    assert s.test.n_observed > one.test.n_observed
    with pytest.raises(ValueError, match="share"):
        S.largest_of_family(osl, share=1.5)


def test_compute_cutoff_hides_one_task_of_the_strongest_models(osl):
    s = S.compute_cutoff(osl, "GSM8K", share=0.2)
    j = osl.task_index("GSM8K")
    held = np.flatnonzero(s.test.mask.any(axis=1))
    assert (s.test.mask[:, [t for t in range(osl.n_tasks) if t != j]] == 0).all()
    comp = model_compute(osl.model_factors)
    c = comp["compute"].to_numpy()
    assert (c[held] >= s.info["cutoff"]).all()
    known = comp["source"].isin(["flops", "6ND"]).to_numpy()
    assert np.isclose(s.info["cutoff"], np.quantile(c[known], 0.8))
    # every held-out model keeps its other scores in training
    assert all(s.train.mask[i].sum() == osl.mask[i].sum() - 1 for i in held)
    assert set(osl.models[i] for i in held) <= set(s.info["test_models"])
    with pytest.raises(ValueError, match="no test"):
        S.compute_cutoff(osl, "GSM8K", cutoff=1e40)


def test_leave_family_out_keeps_each_familys_smallest(osl):
    s = S.leave_family_out(osl)
    for h in s.info["held_out"].values():
        k = osl.model_index(h["kept"])
        assert s.train.mask[k].sum() == osl.mask[k].sum()
        for m in h["models"]:
            i = osl.model_index(m)
            assert s.train.mask[i].sum() == 0 and s.test.mask[i].sum() == osl.mask[i].sum()


def ladder(seed=0, n_fam=6, sizes=5, n_tasks=6):
    """Families on a compute ladder; each task a sigmoid of ability (linear in log compute,
    family-specific slope and offset) from chance 0.25."""
    rng = np.random.default_rng(seed)
    rows, scores = [], []
    load = rng.uniform(0.6, 1.4, n_tasks)
    bias = rng.normal(0, 0.5, n_tasks)
    for f in range(n_fam):
        slope, off = rng.normal(1.2, 0.2), rng.normal(0, 0.4)
        for s in range(sizes):
            logc = 20 + s + rng.uniform(-0.2, 0.2)
            ability = off + slope * (logc - 22)
            p = 0.25 + 0.75 / (1 + np.exp(-(load * ability + bias)))
            scores.append(np.clip(p + rng.normal(0, 0.01, n_tasks), 0, 1))
            rows.append({"model": f"f{f}-{s}", "family": f"f{f}", "flops": 10.0**logc})
    mf = pd.DataFrame(rows).set_index("model")
    tasks = [f"t{j}" for j in range(n_tasks)]
    return ScoreMatrix(np.array(scores), list(mf.index), tasks, model_factors=mf,
                       task_info={t: {"chance": 0.25} for t in tasks})


def test_scaling_mf_fits_a_table_without_families():
    """A table with compute and no family column: every model on the pooled law (a plate of
    size 0 was an AssertionError from NumPyro that stopped the whole stack)."""
    sm = ladder()
    bare = ScoreMatrix(sm.scores, sm.models, sm.tasks,
                       model_factors=sm.model_factors.drop(columns=["family"]),
                       task_info=sm.task_info)
    post = ScalingMF(rank=2).fit(bare, rng_key=0, progress=False,
                                 inference=SVI(num_steps=50, num_samples=20))
    assert not any(k.startswith(("family", "s_family")) for k in post.samples)
    assert np.isfinite(post.predict("missing", rng_key=1).draws).all()


def test_scaling_mf_extrapolates_a_family_law_within_the_bounds():
    sm = ladder()
    split = S.largest_of_family(sm)
    # the ladder's tasks are sigmoids of ability: the sigmoid link is the true one
    post = ScalingMF(rank=2, link="sigmoid").fit(split.train, rng_key=0, progress=False,
                                 inference=SVI(num_steps=2000, num_samples=200))
    pred = post.predict(split.test, rng_key=1)
    y = split.test.scores[pred.model_idx, pred.task_idx]
    mae = np.abs(pred.mean() - y).mean()
    # the held-out models are a decade of compute beyond their families' others
    flat = np.abs(np.nanmax(split.train.scores, axis=0)[pred.task_idx] - y).mean()
    assert mae < 0.05 and mae < flat / 2, (mae, flat)
    lo, hi = pred.interval(0.9)
    assert ((y >= lo) & (y <= hi)).mean() >= 0.6
    # every draw between chance and the upper bound (in normalised units, the task's floor)
    floor, ceiling, bounded = task_bounds(split.train)
    cm = post.cell_means(pred.model_idx, pred.task_idx)
    assert bounded.all() and (cm >= floor[pred.task_idx] - 1e-5).all()
    assert (cm <= ceiling[pred.task_idx] + 1e-5).all()


def test_compute_axis_imputes_tokens_from_the_family_and_flags_it():
    mf = pd.DataFrame({"family": ["a", "a", "a", "b"],
                       "parameters": [1e9, 2e9, 4e9, np.nan],
                       "tokens": [1e12, 1e12, np.nan, np.nan]}, index=list("wxyz"))
    sm = ScoreMatrix(np.full((4, 1), 0.5), list(mf.index), ["t"], model_factors=mf)
    z, placed, imputed = compute_axis(sm)
    assert placed.tolist() == [1, 1, 1, 0] and imputed.tolist() == [0, 0, 1, 0]
    # y: 6 x 4e9 x 1e12 (its family's tokens), two doublings above w
    step = z[1] - z[0]
    assert np.isclose(z[2] - z[0], 2 * step, atol=1e-5) and z[3] == 0


def test_a_table_with_sizes_only_is_placed_by_parameters():
    """A leaderboard that gives parameter counts but no token count or FLOPs anywhere (the Open
    LLM Leaderboard): compute taken as proportional to parameters, so that the frontier is
    found (decision 0028; the backtest read such a table as random cells: 90% coverage .84 on
    the largest models of the MATH-hard zoo, .96 since); a table with FLOPs is unchanged."""
    mf = pd.DataFrame({"family": ["a", "a", "b", "b"],
                       "parameters": [1e9, 4e9, 7e9, np.nan]}, index=list("wxyz"))
    sm = ScoreMatrix(np.full((4, 1), 0.5), list(mf.index), ["t"], model_factors=mf)
    z, placed, imputed = compute_axis(sm)
    assert placed.tolist() == [1, 1, 1, 0] and imputed.tolist() == [0, 0, 0, 0]
    assert z[0] < z[1] < z[2] and z[3] == 0
    assert np.isclose((z[1] - z[0]) / (z[2] - z[1]), np.log(4) / np.log(7 / 4), atol=1e-5)
    one = ScoreMatrix(np.full((4, 1), 0.5), list(mf.index), ["t"],
                      model_factors=mf.assign(parameters=[1e9, np.nan, np.nan, np.nan]))
    assert not compute_axis(one)[1].any()  # a single size places no one


def test_rank_calibration_matches_rank_posteriors():
    rng = np.random.default_rng(0)
    truth = rng.uniform(size=(12, 2))
    mi, ti = np.array([0, 3, 5, 7]), np.array([0, 0, 1, 1])
    draws = truth[mi, ti] + rng.normal(0, 0.15, size=(400, 4))
    r = M.rank_calibration(truth, mi, ti, draws, levels=(0.8,))
    # brute force: complete each task's column per draw, rank, take intervals
    hits = []
    for i, j in zip(mi, ti, strict=True):
        col = np.tile(truth[:, j], (400, 1))
        for c2 in np.flatnonzero(ti == j):
            col[:, mi[c2]] = draws[:, c2]
        ranks = ranks_from_scores(col)[:, i]
        lo, hi = np.quantile(ranks, [0.1, 0.9], method="inverted_cdf")
        true = 1 + (truth[:, j] > truth[i, j]).sum()
        hits.append(lo <= true <= hi)
    assert r["rank_coverage_80"] == np.mean(hits)
    assert 0 <= r["beats_right"] <= 1 and r["beats_pairs"] > 0
    lower = M.rank_calibration(-truth, mi, ti, -draws, higher_is_better=[False, False],
                               levels=(0.8,))
    assert lower["rank_coverage_80"] == r["rank_coverage_80"]


def test_randomised_rank_pit_is_nominal_where_integer_intervals_over_cover():
    # a calibrated forecast: each task's held-out score and its draws come from one Uniform(0,
    # 10), nine fixed models at 1..9, so the rank distribution is right and integer-valued
    rng = np.random.default_rng(1)
    n_tasks = 600
    truth = np.vstack([np.tile(np.arange(1.0, 10.0)[:, None], (1, n_tasks)),
                       rng.uniform(0, 10, (1, n_tasks))])
    mi, ti = np.full(n_tasks, 9), np.arange(n_tasks)
    draws = rng.uniform(0, 10, (2000, n_tasks))
    r = M.rank_calibration(truth, mi, ti, draws, levels=(0.5, 0.8, 0.9))
    for lev in (50, 80, 90):  # nominal within 3 binomial s.e. of 600 cells
        se = np.sqrt(lev / 100 * (1 - lev / 100) / n_tasks)
        assert abs(r[f"rank_pit_coverage_{lev}"] - lev / 100) < 3 * se + 0.01
    assert r["rank_coverage_50"] > 0.6  # the integer intervals include both end ranks


def test_map_predicts_its_mode_and_stops_early():
    sm = load_cpp_crowdsource("task_minmax")  # named, so the one fitted (decision 0024)
    split = S.kfold_cells(sm, 20, rng_key=0)[0]
    spec, _ = make_spec("pmf_map")
    post = spec.fit(split.train, rng_key=0, progress=False,
                    inference=MAP(num_steps=600, lr=0.01))
    assert 0 < post.diagnostics["early_stop_steps"] <= 600
    pred = post.predict(split.test, rng_key=1)
    # the mode, clipped to each task's bounds as every prediction is (a mode may fall below 0)
    mode = _clip_to_scale(post.matrix, np.asarray(post.cell_means(pred.model_idx, pred.task_idx)),
                          pred.model_idx, pred.task_idx)
    np.testing.assert_allclose(pred.draws_normalized, mode, atol=1e-5)
    noisy = post.predict(split.test, rng_key=1, noise=True)
    assert not np.allclose(noisy.draws, pred.draws)
    with pytest.raises(ValueError, match="link"):
        ScalingMF(link="probit")
    with pytest.raises(ValueError, match="val_frac"):
        MAP(val_frac=1.0)
    mf, inf = make_spec("mf", steps=50)
    with pytest.raises(TypeError, match="noise"):
        mf.fit(split.train, rng_key=0, inference=inf).predict(split.test, noise=False)


def test_shapley_finds_the_planted_factor_and_sums_to_the_total():
    from cppjax.importance import shapley

    rng = np.random.default_rng(0)
    n_m, n_t = 40, 6
    good = rng.normal(size=n_m)
    load = rng.uniform(0.5, 1.5, n_t)
    scores = 0.5 + 0.15 * good[:, None] * load[None] + rng.normal(0, 0.01, (n_m, n_t))
    mf = pd.DataFrame({"good": good, "junk": rng.normal(size=n_m),
                       "family": rng.choice(["a", "b"], n_m)},
                      index=[f"m{i}" for i in range(n_m)])
    sm = ScoreMatrix(np.clip(scores, 0, 1), list(mf.index), [f"t{j}" for j in range(n_t)],
                     model_factors=mf)
    r = shapley(sm, rng_key=0, protocol="models", n_seeds=2, steps=150, rank=2)
    t = r.table.set_index("group")
    assert r.exact and r.n_fits == 2 * 2**3 * 5
    assert t["shapley"].idxmax() == "good" and t.loc["good", "share"] > 0.8
    assert np.isclose(t["shapley"].sum(), r.v_empty - r.v_full, rtol=1e-4)
    ax = r.plot()
    assert len(ax.patches) == 3
    with pytest.raises(ValueError, match="protocol"):
        shapley(sm, rng_key=0, protocol="cells")
