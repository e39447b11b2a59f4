"""The per-family power-law baseline: recovery of planted slopes, the common interface, errors."""

import numpy as np
import pandas as pd
import pytest

import cppjax
from cppjax import splits as S
from cppjax.inference import NUTS
from cppjax.models.scaling import ScalingLaw, ScalingLawPosterior

FAMILIES = {"A": 6, "B": 5, "C": 4, "D": 1}
TASKS = ["t0", "t1", "t2"]


def synthetic(seed=0, noise=0.03):
    """Families of models whose task errors follow known power laws in compute."""
    rng = np.random.default_rng(seed)
    slope = {(f, t): -rng.uniform(0.1, 0.3) for f in FAMILIES for t in TASKS}
    inter = {(f, t): rng.uniform(-1.5, -0.8) for f in FAMILIES for t in TASKS}
    rows, fac = [], []
    for f, n in FAMILIES.items():
        for i, lc in enumerate(np.linspace(20.0, 23.0, n) if n > 1 else [21.5]):
            name = f"{f}-{i}"
            flops = 10.0 ** lc
            fac.append({"model": name, "family": f, "flops": flops})
            err = {t: np.exp(inter[f, t] + slope[f, t] * (lc - 21.5) + noise * rng.normal())
                   for t in TASKS}
            rows.append({"model": name, **{t: 100 * (1 - err[t]) for t in TASKS}})
    fac.append({"model": "mystery", "family": None, "flops": np.nan})
    rows.append({"model": "mystery", **{t: 50.0 for t in TASKS}})
    scores = pd.DataFrame(rows).set_index("model")
    factors = pd.DataFrame(fac).set_index("model")
    sm = cppjax.ScoreMatrix.from_wide(scores, models_as="rows", scale="percent",
                                      model_factors=factors)
    return sm, slope


@pytest.fixture(scope="module")
def synth():
    return synthetic()


@pytest.fixture(scope="module")
def unpooled(synth):
    sm, _ = synth
    split = S.largest_of_family(sm)
    post = ScalingLaw(pooling="unpooled").fit(
        split.train, rng_key=0, progress=False,
        inference=NUTS(num_warmup=300, num_samples=300, num_chains=2))
    return split, post


def test_unpooled_recovers_planted_slopes(synth, unpooled):
    _, truth = synth
    _, post = unpooled
    df = post.slopes(level=0.95)
    assert isinstance(post, ScalingLawPosterior)
    for f in ("A", "B", "C"):
        for t in TASKS:
            row = df[(df.family == f) & (df.task == t)].iloc[0]
            assert row["lower"] <= truth[f, t] <= row["upper"], (f, t, row.to_dict())
            assert row["upper"] - row["lower"] < 0.5  # informed by the data, not the prior
    # family D has one member: its slope is the prior's, and wide
    d = df[df.family == "D"]
    assert (d["upper"] - d["lower"] > 2.0).all()
    assert post.unplaced_models == ["mystery"]


def test_extrapolation_to_largest_member_is_covered(unpooled):
    split, post = unpooled
    assert sorted(v["model"] for v in split.info["held_out"].values()) == ["A-5", "B-4", "C-3"]
    pred = post.predict(split.test, rng_key=1)
    truth = split.test.scores[pred.model_idx, pred.task_idx]
    lo, hi = pred.interval(0.95)
    assert np.mean((truth >= lo) & (truth <= hi)) >= 0.75
    assert np.mean(np.abs(pred.mean() - truth)) < 3.0  # percent points
    assert post.method == "scaling_law_unpooled"


def test_hierarchical_pools_a_one_member_family(synth):
    sm, truth = synth
    post = cppjax.fit("scaling_law_hierarchical", sm, rng_key=0, inference="svi",
                      num_steps=2000, num_samples=300, progress=False)
    df = post.slopes(level=0.9)
    d = df[df.family == "D"]
    # shrunk towards the other families' slopes, far narrower than the unpooled prior
    assert ((d["upper"] - d["lower"]) < 1.5).all()
    assert (d["mean"] < 0).all()
    assert post.method == "scaling_law_hierarchical_svi"


def test_unplaced_models_are_reported_not_guessed(unpooled):
    _, post = unpooled
    with pytest.raises(ValueError, match="mystery"):
        post.predict("all", rng_key=0)
    mi, ti = post.placed_cells("all")
    assert "mystery" not in {post.matrix.models[i] for i in mi}
    pred = post.predict((mi, ti), rng_key=0)
    assert np.isfinite(pred.draws).all()
    assert (pred.draws >= 0).all() and (pred.draws <= 100).all()


def test_curve_and_rank_through_the_common_interface(unpooled):
    split, post = unpooled
    draws = post.curve("A", "t0", [1e20, 1e22, 1e24], rng_key=0)
    assert draws.shape == (600, 3)
    med = np.median(draws, axis=0)
    assert med[0] < med[1] < med[2]  # error falls with compute
    with pytest.raises(KeyError, match="family 'Z'"):
        post.curve("Z", "t0", [1e20], rng_key=0)


def test_scaling_law_input_errors(synth):
    sm, _ = synth
    with pytest.raises(ValueError, match="pooling"):
        ScalingLaw(pooling="partial")
    unb = cppjax.ScoreMatrix(sm.scores / 100, sm.models, sm.tasks,
                             model_factors=sm.model_factors, scale="unbounded")
    with pytest.raises(ValueError, match="bounded scale"):
        ScalingLaw().fit(unb, rng_key=0, inference="map", progress=False)
    nofam = cppjax.ScoreMatrix(sm.scores, sm.models, sm.tasks,
                               model_factors=sm.model_factors.drop(columns="family"),
                               scale="percent")
    with pytest.raises(KeyError, match="family"):
        ScalingLaw().fit(nofam, rng_key=0, inference="map", progress=False)


def test_a_law_of_a_mixed_table_reads_each_task_on_its_own_terms(synth):
    """A perplexity beside percents: the law of its excess over the floor (log perplexity
    linear in log compute), lower is better; the percents as before. It gave non-finite draws
    (one scale for the whole table) and stopped the stack (decision 0027)."""
    sm, _ = synth
    placed = [m for m in sm.models if m != "mystery"]
    x = np.log10(sm.model_factors.loc[placed, "flops"].to_numpy(float))
    ppl = 1.0 + np.exp(3.0 - 0.4 * (x - 20.0))  # falls with compute towards its floor
    wide = pd.DataFrame(sm.scores[[sm.model_index(m) for m in placed]] / 100, index=placed,
                        columns=sm.tasks).assign(lambada_ppl=ppl)
    mixed = cppjax.ScoreMatrix.from_wide(wide, models_as="rows",
                                         model_factors=sm.model_factors.loc[placed])
    assert mixed.scale == "mixed"
    assert tuple(mixed.task_info.loc["lambada_ppl", ["lower", "upper"]]) == (0.0, np.inf)
    split = S.largest_of_family(mixed)
    post = ScalingLaw(pooling="hierarchical").fit(split.train, rng_key=0, inference="map",
                                                  progress=False)
    pred = post.predict(split.test, rng_key=1)
    mi, ti = np.nonzero(split.test.mask)
    y = split.test.scores[mi, ti]
    med = np.median(pred.draws, axis=0)
    assert np.isfinite(pred.draws).all()
    on_ppl = ti == mixed.task_index("lambada_ppl")
    assert (med[on_ppl] > 0).all()
    np.testing.assert_allclose(med[on_ppl], y[on_ppl], rtol=0.25)  # a power law, recovered
    assert np.abs(med[~on_ppl] - y[~on_ppl]).max() < 0.1
    # a law of the error needs the good side bounded: a signed score says so, by name
    signed = mixed.subset(tasks=["t0"])
    signed = cppjax.ScoreMatrix(signed.scores - 0.5, signed.models, signed.tasks,
                                model_factors=signed.model_factors, scale="unbounded")
    with pytest.raises(ValueError, match="'t0'"):
        ScalingLaw().fit(signed, rng_key=0, inference="map", progress=False)
