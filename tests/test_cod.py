"""Clustering on difficulty: the item container and its errors, the clusterings, the generator,
a COD fit end to end (small settings), the bundled Pythia data, the CLI."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cppjax import clustering, cod
from cppjax.data.items import ItemResponses
from cppjax.datasets import load_pythia_arithmetic, synthetic_items
from cppjax.errors import DataError, FactorMismatchError

TINY = cod.COD(num_steps=300, num_samples=60)


def long_table():
    rows = [{"model": m, "item": f"i{j}", "task": "t", "correct": float((j + k) % 2)}
            for k, m in enumerate(["a", "b", "c"]) for j in range(4)]
    models = pd.DataFrame({"model": ["a", "b", "c"], "flops": [1e20, 1e21, 1e22]})
    return pd.DataFrame(rows), models


def test_item_responses_from_long_and_its_errors(tmp_path):
    df, models = long_table()
    d = ItemResponses.from_long(df, models)
    assert (d.n_models, d.n_items, d.tasks) == (3, 4, ("t",))
    assert d.task_accuracy().loc["a", "t"] == 0.5
    assert d.compute()["c"] == 1e22
    path = tmp_path / "items.csv"
    bad = df.astype({"correct": object})
    bad.loc[5, "correct"] = "yes"
    bad.to_csv(path, index=False)
    with pytest.raises(DataError, match=r"items.csv: row 7, column 'correct'"):
        ItemResponses.from_long(path, models)
    dup = pd.concat([df, df.iloc[[2]]])
    with pytest.raises(DataError, match="appears twice"):
        ItemResponses.from_long(dup, models)
    two = df.copy()
    two.loc[0, "task"] = "u"
    with pytest.raises(DataError, match="more than one task"):
        ItemResponses.from_long(two, models)
    out = df.copy()
    out.loc[0, "correct"] = 1.5
    with pytest.raises(DataError, match="outside"):
        ItemResponses.from_long(out, models)
    with pytest.raises(FactorMismatchError, match="no model factors for 'c'"):
        ItemResponses.from_long(df, models.iloc[:2])
    with pytest.raises(DataError, match="cannot be placed"):
        ItemResponses.from_long(df, models.assign(flops=[1e20, np.nan, 1e22])).compute()
    with pytest.raises(DataError, match="no column 'correct'"):
        ItemResponses.from_long(df.rename(columns={"correct": "ok"}), models)


def test_clusterings_separate_items_of_different_difficulty():
    rng = np.random.default_rng(0)
    easy = np.clip(np.linspace(0.2, 1.0, 8) + rng.normal(0, 0.02, (30, 8)), 0, 1)
    hard = np.clip(np.linspace(0.0, 0.3, 8) + rng.normal(0, 0.02, (30, 8)), 0, 1)
    odd = rng.random((2, 8))
    X = np.vstack([easy, hard, odd])
    truth = np.r_[np.ones(30), np.zeros(30)]
    ms = clustering.meanshift(X, min_size=5)
    assert set(ms[:60]) == {0, 1} and (ms[:60] == truth).all()  # 0 = the hardest
    assert (ms[60:] == -1).all()  # two stray items form no cluster of 5
    km = clustering.kmeans(X[:60], 2, rng_key=0)
    assert (km == truth).all()
    assert (clustering.irt_groups(X[:60], 2, steps=500) == truth).all()
    # a wide cluster is split again until its members are within max_distance of its centre
    wide = np.vstack([hard, easy])
    tight = clustering.meanshift(wide, bandwidth=1.0, max_distance=0.1, min_size=5)
    assert len(set(tight)) == 2


def test_synthetic_items_are_reproducible_and_know_their_truth():
    a, b = synthetic_items(3, n_items=50, sizes=4), synthetic_items(3, n_items=50, sizes=4)
    np.testing.assert_array_equal(a.data.results, b.data.results)
    assert not np.array_equal(a.data.results, synthetic_items(4, n_items=50, sizes=4).data.results)
    assert a.task_truth.shape == (8, 1)
    np.testing.assert_allclose(a.task_truth.iloc[:, 0], a.p.mean(axis=1))
    # regular items get easier with compute within each family
    reg = a.p[:4, a.regular]
    assert (np.diff(reg, axis=0) >= -1e-12).all()


def test_cod_fit_predicts_the_largest_model_with_intervals():
    s = synthetic_items(0, n_items=120, sizes=8, n_families=1)
    target = [m for m in s.data.models if m.endswith("-7")]
    post = cod.fit(s.data, targets=target, rng_key=0, settings=TINY,
                   target_compute={"next": 3e24})
    pred = post.predict("missing", rng_key=1)
    assert pred.n_cells == 2 and pred.n_draws == 60
    lo, hi = pred.interval(0.9)
    assert ((lo >= 0) & (hi <= 1) & (lo < hi)).all()
    df = pred.to_frame()
    assert set(df["model"]) == {target[0], "next"}
    assert abs(df.set_index("model").loc[target[0], "mean"]
               - s.task_truth.loc[target[0], "task0"]) < 0.2
    assert post.summary.loc["task0", "kept_clusters"] >= 1
    assert set(post.clusters.columns) == {"task", "item", "cluster", "kept"}
    # the target's results were hidden: its row is blank in the posterior's matrix
    assert np.isnan(post.matrix.scores[post.matrix.model_index(target[0])]).all()
    base = cod.fit(s.data, targets=target, rng_key=0, settings=TINY, method="task_sigmoid")
    assert base.predict("missing", rng_key=1).n_cells == 1
    with pytest.raises(KeyError, match="unknown target"):
        cod.fit(s.data, targets=["nope"], rng_key=0, settings=TINY)
    with pytest.raises(ValueError, match="method must be"):
        cod.fit(s.data, targets=target, rng_key=0, method="cods")


def test_bundled_pythia_arithmetic():
    d = load_pythia_arithmetic()
    assert (d.n_models, d.n_items, len(d.tasks)) == (42, 1000, 10)
    acc = d.task_accuracy()
    # the README's non-monotone figures: at step 143000, 6.9B below 2.8B (mean over tasks)
    final = acc.loc[[m for m in d.models if m.endswith("@step143000")]].mean(axis=1)
    assert final["pythia-6.9b-deduped-v0@step143000"] < final["pythia-2.8b-deduped-v0@step143000"]
    assert round(final["pythia-12b-deduped-v0@step143000"], 3) == 0.498
    assert d.compute().min() > 1e19


def test_cli_cod_checks_then_writes_predictions_and_figures(tmp_path, capsys):
    from cppjax.cli import main

    assert main(["cod", "--target-model", "nope", "--out", str(tmp_path)]) == 2
    assert "nope" in capsys.readouterr().err
    assert main(["cod", "--target-compute", "-1", "--out", str(tmp_path)]) == 2
    s = synthetic_items(1, n_items=60, sizes=6)
    items = tmp_path / "items.csv"
    models = tmp_path / "models.csv"
    d = s.data
    pd.DataFrame([{"model": m, "item": it, "task": d.item_task[j], "correct": d.results[i, j]}
                  for i, m in enumerate(d.models) for j, it in enumerate(d.items)]).to_csv(
        items, index=False)
    d.model_factors.rename_axis("model").reset_index().to_csv(models, index=False)
    # your own items with no target: what to predict is asked (the bundled data's default is
    # its largest model)
    assert main(["cod", "--items", str(items), "--models", str(models), "--out",
                 str(tmp_path)]) == 2
    assert "--target-compute" in capsys.readouterr().err
    rc = main(["cod", "--items", str(items), "--models", str(models), "--target-compute",
               "1e25", "--methods", "cod,task_law", "--steps", "200", "--samples", "40",
               "--out", str(tmp_path / "o")])
    assert rc == 0
    df = pd.read_csv(tmp_path / "o" / "cod_predictions.csv")
    assert set(df["method"]) == {"cod", "task_law"} and (df["model"] == "target@1e+25").all()
    assert (tmp_path / "o" / "cod_task0.png").stat().st_size > 10_000


def test_extrapolation_term_recovers_a_known_spread_and_widens_in_logit_space():
    from cppjax.cod_laws import fit_extrapolation, widen

    rng = np.random.default_rng(0)
    gap = rng.uniform(0, 2, 4000)
    var = np.full(gap.size, 0.04)
    resid = rng.normal(0, np.sqrt(0.04 + 0.3 ** 2 + (0.5 * gap) ** 2))
    cal = fit_extrapolation(resid, var, gap)
    assert abs(cal["s0"] - 0.3) < 0.1 and abs(cal["s1"] - 0.5) < 0.1
    assert 0.9 < cal["kappa_lo"] < 1.1 and 0.9 < cal["kappa_hi"] < 1.1 and cal["n"] == 4000
    # most residuals near 0, 10% far below: the Normal's 90% band misses them and the
    # conformal factor of the lower side widens it, that of the upper side narrows it
    spiky = np.where(rng.random(4000) < 0.1, -1.5, 0.0) + rng.normal(0, 0.05, 4000)
    heavy = fit_extrapolation(spiky, var, gap)
    assert heavy["kappa_lo"] > 1.2 and heavy["kappa_hi"] < 1.0
    z = spiky / np.sqrt(var + heavy["s0"] ** 2 + (heavy["s1"] * gap) ** 2) / 1.645
    assert 0.04 < np.mean(z < -heavy["kappa_lo"]) <= 0.05
    # a degenerate predictive (every draw equal, at 1) gets a band of nonzero width in (0, 1)
    out = widen(np.ones((200, 3)), np.array([0.0, 1.0, 2.0]), cal, np.random.default_rng(1))
    assert ((out > 0) & (out < 1)).all()
    w = np.quantile(out, 0.95, axis=0) - np.quantile(out, 0.05, axis=0)
    assert (w > 0).all() and w[2] > w[0]  # wider further beyond the frontier


def test_backtest_calibration_is_in_diagnostics_and_sets_the_bands():
    s = synthetic_items(2, n_items=120, sizes=10, n_families=1)
    target = [m for m in s.data.models if m.endswith("-9")]
    post = cod.fit(s.data, targets=target, rng_key=0, settings=TINY, method="task_sigmoid")
    cal = post.diagnostics["calibration"]
    assert {"s0", "s1", "kappa_lo", "kappa_hi", "n", "backtests"} <= set(cal) and cal["n"] > 0
    raw = cod.fit(s.data, targets=target, rng_key=0, method="task_sigmoid",
                  settings=cod.COD(num_steps=300, num_samples=60, calibrate=False))
    assert "calibration" not in raw.diagnostics
    w = [np.subtract(*p.predict("missing", rng_key=1).interval(0.9)[::-1])[0]
         for p in (post, raw)]
    # the backtest sets the band: wider or narrower than the raw law's, never of zero width
    assert min(w) > 0 and abs(w[0] - w[1]) > 0.01
    # too few models below every backtest's cut: said in the diagnostics, the raw band kept
    few = s.data.subset(s.data.models[5:])
    small = cod.fit(few, targets=target, rng_key=0, settings=TINY, method="task_sigmoid")
    assert "no backtest" in small.diagnostics["calibration"]["message"]
    # "auto": the method of least backtest error answers, every candidate's error recorded
    auto = cod.fit(s.data, targets=target, rng_key=0, settings=TINY, method="auto")
    errs = auto.diagnostics["auto"]["backtest_mae"]
    assert set(errs) == set(cod.CHOICES) and auto.method == min(errs, key=errs.get)
    assert auto.diagnostics["auto"]["chosen"] == auto.method
    assert auto.predict("missing", rng_key=1).n_cells == 1
    with pytest.raises(ValueError, match="needs calibrate=True"):
        cod.fit(s.data, targets=target, rng_key=0, method="auto",
                settings=cod.COD(calibrate=False))
    with pytest.raises(ValueError, match="backtests must be compute ratios"):
        cod.COD(backtests=(0.5,))
    with pytest.raises(ValueError, match="inference must be"):
        cod.COD(inference="mcmc")


def test_saturating_synthetic_items_stay_at_zero_below_a_size():
    s = synthetic_items(0, n_items=200, sizes=10, n_families=1, difficulty=(1.0, 3.5))
    assert (s.data.results[:4] == 0).mean() > 0.6
    assert s.task_truth.iloc[-1, 0] > 3 * s.task_truth.iloc[0, 0]
    with pytest.raises(ValueError, match="difficulty"):
        synthetic_items(0, difficulty=(2.0, 1.0))
