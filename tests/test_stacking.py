"""Stacking by backtest (cppjax.stacking) and the closed-form baselines (cppjax.models.baselines):
small candidate sets, so that each fit takes seconds; the full candidate set runs in
benchmarks/suite.py."""

import numpy as np
import pandas as pd
import pytest

import cppjax
from cppjax import planning
from cppjax import splits as S
from cppjax.backtest import backtest_split
from cppjax.data import ScoreMatrix
from cppjax.datasets import load_obsscaling
from cppjax.errors import DataError
from cppjax.models.baselines import CopySibling, PCSigmoid
from cppjax.posterior import NotSaveable
from cppjax.stacking import Stack

FAST = ("copy_sibling", "pc_sigmoid", "scaling_law_hierarchical_map")


@pytest.fixture(scope="module")
def osl():
    return load_obsscaling()


@pytest.fixture(scope="module")
def largest(osl):
    return S.largest_of_family(osl)


@pytest.fixture(scope="module")
def stacked(largest):
    return cppjax.fit("auto", largest.train, rng_key=0, candidates=FAST, progress=False)


def _ladder():
    """Two families of 5 sizes; the score grows with size (a known truth)."""
    rows, mf = [], {}
    for fam, shift in (("a", 0.0), ("b", 0.1)):
        for k in range(5):
            name = f"{fam}-{k}"
            mf[name] = {"family": fam, "parameters": 10.0 ** (8 + k), "tokens": 1e11,
                        "flops": 6e19 * 10 ** k}
            rows.append([0.3 + 0.1 * k + shift, 0.2 + 0.05 * k + shift, 0.25 + 0.08 * k])
    names = list(mf)
    return ScoreMatrix(np.array(rows), tuple(names), ("t1", "t2", "t3"),
                       model_factors=pd.DataFrame(mf).T.astype({"parameters": float,
                                                                "tokens": float,
                                                                "flops": float}),
                       scale="fraction")


def test_copy_sibling_copies_the_familys_largest_model(tmp_path):
    sm = _ladder()
    split = S.split_cells(sm, [4, 9], [0, 1], "top", normalization="parent")
    post = cppjax.fit("copy_sibling", split.train, rng_key=0)
    pred = post.predict(split.test)
    # a-4's t1 from a-3 (0.6), b-9's t2 from b-3 (0.2 + 0.15 + 0.1)
    np.testing.assert_allclose(pred.draws[0], [0.6, 0.45], atol=1e-6)
    assert post.diagnostics["copied_from"]["sibling"] == 2
    with pytest.raises(NotSaveable, match="refit"):
        post.save(tmp_path / "never.npz")
    with pytest.raises(TypeError, match="closed form"):
        CopySibling().fit(split.train, inference="svi")


def test_copy_sibling_copies_a_checkpoints_own_run_on_a_ladder():
    """Checkpoints of two sizes in one family: the small run's final checkpoint copies the small
    run's latest earlier checkpoint, not the larger size's (which would be the family's
    largest); with ``same_size=False`` it is the family's largest again."""
    mf, rows = {}, []
    for size, base in ((1e9, 0.3), (4e9, 0.5)):
        for step in (1, 2, 3):
            mf[f"m{size:.0e}@{step}"] = {"family": "a", "parameters": size, "tokens": 1e10 * step,
                                        "flops": 6 * size * 1e10 * step}
            rows.append([base + 0.02 * step, base + 0.01 * step])
    sm = ScoreMatrix(np.array(rows), tuple(mf), ("t1", "t2"),
                     model_factors=pd.DataFrame(mf).T.drop(columns="family").astype(float)
                     .assign(family="a"),
                     scale="fraction")
    split = S.split_cells(sm, [2, 2], [0, 1], "final", normalization="parent")
    post = CopySibling().fit(split.train)
    np.testing.assert_allclose(post.predict(split.test).draws[0], [0.34, 0.32], atol=1e-6)
    assert post.diagnostics["copied_from"]["checkpoint"] == 2  # m1e+09@2's scores
    old = CopySibling(same_size=False).fit(split.train).predict(split.test)
    np.testing.assert_allclose(old.draws[0], [0.56, 0.53], atol=1e-6)  # m4e+09@3's


def test_pc_sigmoid_beats_the_task_median_and_stays_in_bounds(largest):
    post = PCSigmoid().fit(largest.train)
    pred = post.predict(largest.test)
    y = largest.test.scores[largest.test.mask]
    med = np.nanmedian(np.where(largest.train.mask, largest.train.scores, np.nan), axis=0)
    base = np.abs(med[np.nonzero(largest.test.mask)[1]] - y).mean()
    assert np.abs(pred.draws[0] - y).mean() < base
    assert (pred.draws >= 0).all() and (pred.draws <= 1).all()


def test_backtest_rebuilds_the_protocol_asked(osl, largest):
    split, proto = backtest_split(largest.train, rng_key=0)
    assert proto["kind"] == "frontier" and proto["held_out"] == "family"
    assert proto["revealed_per_model"] == 0
    # only observed cells are held out, and the asked (missing) cells stay missing
    assert not (split.test.mask & ~largest.train.mask).any()
    cut = S.compute_cutoff(osl, "GSM8K")
    split, proto = backtest_split(cut.train, rng_key=0)
    assert proto["kind"] == "frontier" and proto["held_out"] == "top"
    held = np.bincount(np.nonzero(split.test.mask)[1], minlength=osl.n_tasks)
    # the task asked of the frontier models (their other missing cells too: XWinograd and
    # HumanEval are missing for several of them), never a task asked of no one
    assert held[osl.task_index("GSM8K")] > 10 and held[osl.task_index("MMLU")] == 0
    rand = S.random_cells(osl, 0.05, rng_key=0)
    assert backtest_split(rand.train, rng_key=0)[1]["kind"] == "random"


def test_the_frontier_of_a_table_with_sizes_only_is_backtested_as_a_frontier():
    """No FLOPs or token counts, parameters only: the largest models' missing cells are a
    frontier question (they were backtested as random cells: decision 0028)."""
    rng = np.random.default_rng(0)
    fams, sizes = ("a", "b", "c", "d"), (1e8, 4e8, 1e9, 4e9, 1e10)
    names = [f"{f}-{s:.0e}" for f in fams for s in sizes]
    params = np.array([s for _ in fams for s in sizes])
    scores = np.clip(0.1 * np.log10(params)[:, None] - 0.5 + rng.normal(0, 0.03, (20, 4)), 0, 1)
    scores[params == 1e10, 2:] = np.nan  # each family's largest: two tasks asked
    mf = pd.DataFrame({"family": [n.split("-")[0] for n in names], "parameters": params},
                      index=names)
    sm = ScoreMatrix(scores, names, ["t1", "t2", "t3", "t4"], model_factors=mf,
                     scale="fraction")
    split, proto = backtest_split(sm, rng_key=0)
    assert proto["kind"] == "frontier"
    held = {sm.models[i] for i in np.nonzero(split.test.mask)[0]}
    assert held == {f"{f}-4e+09" for f in fams}  # each family's largest with scores


def _checkpoints():
    """Two families x 4 sizes x 4 checkpoints; the score grows with log compute."""
    mf, rows = {}, []
    for fam in ("a", "b"):
        for size in (1e8, 4e8, 1e9, 4e9):
            for step in (1, 2, 3, 4):
                c = 6 * size * 2e9 * step
                mf[f"{fam}-{size:.0e}@{step}"] = {"family": fam, "parameters": size,
                                                 "tokens": 2e9 * step, "flops": c}
                rows.append([0.1 * np.log10(c) - 1.5, 0.08 * np.log10(c) - 1.2])
    return ScoreMatrix(np.clip(rows, 0, 1), tuple(mf), ("t1", "t2"),
                       model_factors=pd.DataFrame(mf).T.drop(columns="family").astype(float)
                       .assign(family=[v["family"] for v in mf.values()]), scale="fraction")


def test_backtest_of_a_checkpoint_ladder_holds_out_each_runs_latest():
    """Asked: the final checkpoints of the largest size. The backtest asks the same of every
    run: each (family, size)'s latest checkpoint, not only each family's largest model; the
    runs nearest the asked ones in compute (the nearer half) are named, for the stack's spread
    (decision 0026: a small run's checkpoints move more from one to the next)."""
    sm = _checkpoints()
    finals = [m for m in sm.models if m.endswith("4e+09@4")]
    split = S.split_cells(sm, [sm.model_index(m) for m in finals for _ in (0, 1)],
                          [0, 1] * len(finals), "finals", normalization="parent")
    bt, proto = backtest_split(split.train, rng_key=0)
    assert proto["held_out"] == "run"
    assert sorted(proto["models"]) == sorted(
        [f"{f}-{s}@4" for f in "ab" for s in ("1e+08", "4e+08", "1e+09")] + ["a-4e+09@3",
                                                                                "b-4e+09@3"])
    assert sorted(proto["nearest"]) == ["a-1e+09@4", "a-4e+09@3", "b-1e+09@4", "b-4e+09@3"]
    # a middle run asked: its neighbours on both sides, not the top of the ladder
    mid = [m for m in sm.models if m.endswith("4e+08@4")]
    middle = S.split_cells(sm, [sm.model_index(m) for m in mid for _ in (0, 1)],
                           [0, 1] * len(mid), "mid", normalization="parent")
    near = backtest_split(middle.train, rng_key=0)[1]["nearest"]
    assert "a-4e+08@3" in near and not any(m.startswith(("a-4e+09", "b-4e+09")) for m in near)
    # distance beyond the family's own frontier on the task: the asked final checkpoint is
    # beyond its family's step-3 checkpoint of the same size
    from cppjax.stacking import _features
    i = split.train.model_index(finals[0])
    f = _features(split.train, np.array([i]), np.array([0]))
    assert f[0, 0] > 0 and f[0, 1] == 0 and f[0, 2] == 1 and f[0, 3] == 1


def test_a_distance_from_a_reference_the_backtest_never_saw_gets_its_mean():
    """Leave-family-out: every backtest cell measures its distance from the task's frontier
    (no family member trained), every test cell from its family's smallest model. The distance
    term was fitted on the first: the test cells get the backtest's mean distance, not theirs."""
    from cppjax.stacking import _in_backtest_terms
    bt = np.array([[0.1, 1, 1, 0], [0.3, 1, 1, 0]], float)
    test = np.array([[2.5, 0, 1, 1], [0.0, 0, 1, 1]], float)
    out = _in_backtest_terms(test, bt)
    np.testing.assert_allclose(out[:, 0], [0.2, 0.2])
    np.testing.assert_array_equal(out[:, 1:], test[:, 1:])
    assert test[0, 0] == 2.5  # the caller's array is not altered
    seen = np.array([[0.7, 0, 0, 0], [1.5, 1, 1, 1]], float)
    np.testing.assert_array_equal(_in_backtest_terms(seen, np.vstack([bt, [[0.4, 0, 1, 1]]])),
                                  seen)  # both references seen: distances kept


def test_stacking_weights_pool_towards_equal_and_the_spread_is_set_by_the_log_score():
    """Known truth: candidate 0's density is the truth's, candidate 1's is off by 2 sd. Plain
    stacking puts (nearly) all the weight on 0; the Dirichlet prior moves the weights towards
    equal ones in proportion to its strength; a mixture of two calibrated candidates that
    disagree is narrowed (factor < 1), a single calibrated one is left alone (about 1), one
    whose spread is half the truth's is widened (about 2)."""
    from scipy import stats

    from cppjax.stacking import _sharpness, _weights
    rng = np.random.default_rng(0)
    y = rng.normal(size=400)
    L = np.column_stack([stats.norm.logpdf(y), stats.norm.logpdf(y - 2.0)])
    groups = np.repeat(np.arange(40), 10)
    plain = _weights(L, "stacking", groups, 0.0, rng)
    assert plain[0] > 0.9
    pooled = _weights(L, "stacking", groups, 1.0, rng)
    assert 0.5 < pooled[0] < plain[0] and abs(pooled.sum() - 1) < 1e-9
    assert _weights(L, "select", groups, 1.0, rng).tolist() == [1.0, 0.0]
    one = (y, np.ones_like(y), 30.0)
    assert 0.85 <= _sharpness([one], np.array([1.0]), rng) <= 1.15
    apart = [(y - 1.5, np.ones_like(y), 30.0), (y + 1.5, np.ones_like(y), 30.0)]
    assert _sharpness(apart, np.array([0.5, 0.5]), rng) < 1.0
    narrow = (y, np.full_like(y, 0.5), 30.0)
    assert 1.8 <= _sharpness([narrow], np.array([1.0]), rng) <= 2.0
    with pytest.raises(ValueError, match="prior_weight"):
        Stack(prior_weight=-1)


def test_stack_weights_calibration_and_intervals(stacked, largest, tmp_path):
    d = stacked.diagnostics
    w = d["weights"]
    assert set(w) == set(FAST) and abs(sum(w.values()) - 1) < 1e-9
    assert all(v >= 0 for v in w.values())
    for name, cal in d["calibration"].items():
        assert cal["tau"] > 0, name  # a point candidate gets a spread from its residuals
    assert d["backtest"]["cells"] > 20
    pred = stacked.predict(largest.test, rng_key=1)
    assert pred.draws.shape[0] == stacked.n_draws and np.isfinite(pred.draws).all()
    lo, hi = np.quantile(pred.draws, [0.05, 0.95], axis=0)
    assert (hi - lo).min() > 0  # no interval of zero width
    assert (lo >= 0).all() and (hi <= 1).all()
    y = largest.test.scores[largest.test.mask]
    assert 0.6 <= ((y >= lo) & (y <= hi)).mean() <= 1.0
    # same key, same draws; the joint draws serve ranks and planning
    again = stacked.predict(largest.test, rng_key=1)
    np.testing.assert_array_equal(pred.draws, again.draws)
    rank = stacked.rank("MMLU", rng_key=0)
    assert rank is not None
    # a plan for a held-out model beyond the table, from the stack's joint draws
    model = largest.train.models[int(np.flatnonzero(~largest.train.mask.any(axis=1))[0])]
    plan = planning.plan(stacked, planning.scores(model), rng_key=0, k=2)
    assert [m for m, _ in plan.cells] == [model, model]
    widths = plan.steps["expected_width"].to_numpy()
    assert widths[-1] < widths[0]
    with pytest.raises(NotSaveable):
        stacked.save(tmp_path / "never.npz")
    with pytest.raises(TypeError, match="noise"):
        stacked.predict(largest.test, noise=False)


def test_a_candidate_reads_the_table_in_the_normalisation_its_model_prefers(largest):
    from cppjax.inference import SVI
    from cppjax.models import PMF

    pmf = ("pmf_svi", PMF(rank=2), SVI(num_steps=200, num_samples=50))
    post = Stack(candidates=("copy_sibling", pmf)).fit(largest.train, rng_key=0, progress=False)
    assert largest.train.normalization.kind == "task_minmax"
    assert post.fits["pmf_svi"].matrix.normalization.kind == "task_logit"  # decision 0023
    assert post.fits["copy_sibling"].matrix is largest.train
    pred = post.predict(largest.test, rng_key=1)  # the stack's draws in the table's units
    assert pred.matrix is largest.train
    assert np.isfinite(pred.draws).all() and (pred.draws >= 0).all() and (pred.draws <= 1).all()
    np.testing.assert_allclose(pred.draws_normalized,
                               largest.train.normalize(pred.draws, pred.model_idx, pred.task_idx),
                               atol=1e-6)


def test_select_keeps_one_candidate(largest):
    post = Stack(candidates=FAST[:2], combine="select").fit(largest.train, rng_key=0,
                                                           progress=False)
    assert sorted(post.weights.values()) == [0.0, 1.0]


def test_no_compute_skips_the_compute_candidates_with_a_message(largest):
    train = largest.train
    mf = train.model_factors.drop(columns=["flops", "parameters", "tokens"])
    bare = ScoreMatrix(train.scores, train.models, train.tasks, model_factors=mf,
                       scale="fraction", task_info=train.task_info)
    post = Stack(candidates=("copy_sibling", "pc_sigmoid", "scaling_law_hierarchical_map")).fit(
        bare, rng_key=0, progress=False)
    assert "size axis" in post.diagnostics["skipped"]["scaling_law_hierarchical_map"]
    assert set(post.weights) == {"copy_sibling", "pc_sigmoid"}


def test_too_small_a_table_is_a_clear_error():
    sm = _ladder().subset(models=["a-0", "a-1", "b-0", "b-1"])
    with pytest.raises(DataError, match="at least 8 models"):
        Stack(candidates=("copy_sibling",)).fit(sm, rng_key=0, progress=False)


def test_a_small_table_gets_a_backtest_big_enough_to_calibrate_or_a_clear_error():
    """Asked models missing one score each make a rebuilt frontier of too few cells to
    calibrate on (4 < MIN_BACKTEST_CELLS), so more models down the compute axis join it, up to
    MIN_CELLS (said in the protocol); a table that cannot give MIN_BACKTEST_CELLS is refused
    before any fit."""
    from cppjax.backtest import MIN_BACKTEST_CELLS, MIN_CELLS, backtest_split

    rng = np.random.default_rng(0)
    n, m = 20, 6
    size = np.geomspace(1e8, 7e10, n)
    s = np.clip(0.1 * np.log10(size)[:, None] - 0.5 + 0.05 * rng.normal(size=(n, m)), 0, 1)
    s[[17, 19], [1, 4]] = np.nan  # the two largest models miss one score each
    mf = pd.DataFrame({"family": np.array(list("abcd"))[np.arange(n) % 4],
                       "parameters": size, "tokens": 20 * size},
                      index=[f"m{i}" for i in range(n)])
    sm = ScoreMatrix(s, list(mf.index), [f"t{j}" for j in range(m)], model_factors=mf,
                     scale="fraction")
    split, protocol = backtest_split(sm, "auto", 0.2, 0)
    assert protocol["kind"] == "frontier"
    held = int(split.test.mask.sum())
    assert held >= min(MIN_CELLS, 18) and "more models down the compute axis" in protocol["why"]
    assert (split.test.mask.sum(axis=1) <= 1).all()  # each keeps 5 scores, as the asked do
    tiny = sm.subset(models=[f"m{i}" for i in range(8)], tasks=["t0", "t1"])
    tiny = ScoreMatrix(tiny.scores, tiny.models, tiny.tasks, model_factors=tiny.model_factors,
                       scale="fraction")
    with pytest.raises(DataError, match=f"at least {MIN_BACKTEST_CELLS} are needed"):
        Stack(candidates=("copy_sibling",)).fit(tiny, rng_key=0, progress=False)


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="unknown candidate"):
        Stack(candidates=("nope",))
    with pytest.raises(ValueError, match="combine"):
        Stack(combine="average")
    with pytest.raises(TypeError, match="takes no inference"):
        cppjax.fit("auto", _ladder(), rng_key=0, inference="svi")


def test_a_candidate_that_fails_is_skipped_with_its_reason(largest, monkeypatch):
    """Non-finite draws of one candidate (a law on a table it cannot read) leave the others to
    stack, the reason in ``diagnostics["skipped"]`` (it stopped the whole fit; decision 0027)."""
    import cppjax.stacking as stacking

    real = stacking.candidate_draws

    def failing(post, cells, key):
        if post.method.startswith("pc_sigmoid"):
            raise FloatingPointError("pc_sigmoid: non-finite predictive draws; the fit failed")
        return real(post, cells, key)

    monkeypatch.setattr(stacking, "candidate_draws", failing)
    post = cppjax.fit("auto", largest.train, rng_key=0, candidates=FAST, progress=False)
    assert "pc_sigmoid" in post.diagnostics["skipped"]
    assert "FloatingPointError" in post.diagnostics["skipped"]["pc_sigmoid"]
    assert set(post.diagnostics["weights"]) == {"copy_sibling", "scaling_law_hierarchical_map"}
