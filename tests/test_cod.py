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

TINY = cod.COD(num_warmup=60, num_samples=60, num_chains=1)


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
               "1e25", "--methods", "cod,task_law", "--warmup", "40", "--samples", "40",
               "--out", str(tmp_path / "o")])
    assert rc == 0
    df = pd.read_csv(tmp_path / "o" / "cod_predictions.csv")
    assert set(df["method"]) == {"cod", "task_law"} and (df["model"] == "target@1e+25").all()
    assert (tmp_path / "o" / "cod_task0.png").stat().st_size > 10_000
