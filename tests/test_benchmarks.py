"""The calibration benchmark's results file: the BENCHMARKS.md shape, and ``--merge`` keeping the
other methods' figures (quick settings, one split)."""

import json
import os
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def calibration():
    # the benchmarks make 4 CPU devices through XLA_FLAGS; keep that from the tests after these
    flags = os.environ.get("XLA_FLAGS")
    sys.path.insert(0, str(BENCH))
    try:
        import calibration

        yield calibration
    finally:
        sys.path.remove(str(BENCH))
        if flags is None:
            os.environ.pop("XLA_FLAGS", None)
        else:
            os.environ["XLA_FLAGS"] = flags


def test_calibration_writes_and_merges(calibration, tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["benchmarks/calibration.py"])
    common = ["--seeds", "1", "--skip-cold", "--quick", "--out", str(tmp_path)]
    calibration.main(["--methods", "pmf_svi", *common])
    calibration.main(["--methods", "ncf", "--merge", *common])
    doc = json.loads((tmp_path / "calibration.json").read_text())
    assert set(doc) == {"benchmark", "command", "device", "versions", "protocol", "groups"}
    group = doc["groups"]["cpp_crowdsource/random"]
    assert set(group) == {"pmf_svi", "ncf"}  # the first run's figures are kept
    for stat in group["pmf_svi"].values():
        assert set(stat) == {"mean", "std", "n"}
    assert {"coverage_90", "crps", "lpd"} <= set(group["pmf_svi"])
    assert "coverage_90" not in group["ncf"]  # a metric that does not apply is left out
    # both commands are named, without the output folder (it changes no figure)
    assert doc["command"].count("python benchmarks/calibration.py") == 2
    assert " && " in doc["command"] and str(tmp_path) not in doc["command"]
    md = (tmp_path / "calibration.md").read_text()
    assert "| pmf_svi |" in md and "| ncf |" in md


def test_calibration_settings_and_seeds_are_recorded(calibration, tmp_path, monkeypatch):
    assert calibration.parse_settings(["likelihood=normal", "max_tree_depth=7", "lr=1e-3"]) == {
        "likelihood": "normal", "max_tree_depth": 7, "lr": 1e-3}
    with pytest.raises(SystemExit, match="KEY=VALUE"):
        calibration.parse_settings(["max_tree_depth"])
    monkeypatch.setattr(sys, "argv", ["benchmarks/calibration.py"])
    calibration.main(["--methods", "pmf_svi", "--seeds", "1", "--first-seed", "3", "--skip-cold",
                      "--quick", "--set", "guide=meanfield", "--out", str(tmp_path)])
    doc = json.loads((tmp_path / "calibration.json").read_text())
    assert "seeds 3-3" in doc["protocol"] and "'guide': 'meanfield'" in doc["protocol"]
    # coverage carries its standard error over the held-out models (cells share a model's errors)
    cov = doc["groups"]["cpp_crowdsource/random"]["pmf_svi"]["coverage_50"]
    assert 0 < cov["std"] < 0.2 and cov["n"] > 30


def test_cold_start_tuning_models_are_other_models(calibration):
    """``--cold-skip``: the reported protocol cold-starts the most-observed models, the tuning
    runs the next ones (no overlap), each model with all its observed cells held out."""
    import numpy as np

    from cppjax.datasets import load_cpp_crowdsource

    sm = load_cpp_crowdsource()
    by_count = [sm.models[i] for i in np.argsort(-sm.mask.sum(axis=1), kind="stable")]

    def held_out(splits):
        return [m["model"] for s in splits for m in s.info["models"]]

    reported = calibration.cold_model_splits(sm, 0, 8, 4, seed=0)
    tuning = calibration.cold_model_splits(sm, 0, 8, 4, seed=0, skip=8)
    assert held_out(reported) == by_count[:8] and held_out(tuning) == by_count[8:16]
    for split in tuning:
        rows = [sm.model_index(m["model"]) for m in split.info["models"]]
        assert (split.test.mask[rows] == sm.mask[rows]).all()
        assert not split.train.mask[rows].any()
    with pytest.raises(SystemExit, match="unknown"):
        calibration.main(["--cold", "cpp9", "--skip-random"])


def test_readme_table_rows_come_from_the_results(calibration):
    import readme_table  # benchmarks/ is on the path while the fixture is active

    def stat(x):
        return {"mean": x, "std": 0.03, "n": 5}

    bayes = {"mse": stat(0.0123), "crps": stat(0.05), "lpd": stat(1.0), "max_rhat": stat(1.01),
             "fit_seconds": stat(30.0), "fit_seconds_first": stat(40.0),
             "fit_seconds_later": stat(27.5),
             **{f"coverage_{c}": stat(c / 100) for c in (50, 80, 90, 95)}}
    point = {"mse": stat(0.0150), "fit_seconds": stat(2.0), "fit_seconds_first": stat(2.0)}
    rows = readme_table.rows({"cpp_crowdsource/random": {"pmf_nuts": bayes, "ncf": point}})
    assert rows[0] == ("| random | pmf_nuts | **0.0123** | 0.50 / 0.80 / 0.90 / 0.95 | 0.03 / 0.03 "
                       "| 0.050 | 1.00 | 30 (40 / 28) | 1.01 |")
    assert rows[1].startswith("| random | ncf (point) | 0.0150 | – | – |")


def test_benchmarks_readme_is_generated_from_the_results(calibration):
    """benchmarks/README.md is exactly what readme_table.py makes of the committed results
    files: every figure it shows comes from a results file."""
    import readme_table

    committed = (Path(readme_table.__file__).parent / "README.md").read_text()
    assert committed == readme_table.page(), "run: python benchmarks/readme_table.py --write"
    assert "| random | pmf_nuts |" in committed


def test_beyond_and_importance_write_their_results(calibration, tmp_path, monkeypatch):
    """``benchmarks/beyond.py`` (peers beside the Bayesian methods, rank calibration, one group
    per benchmark, ``--merge``) and ``benchmarks/importance.py``, with quick settings."""
    import beyond
    import importance

    monkeypatch.setattr(sys, "argv", ["benchmarks/beyond.py"])
    out = ["--quick", "--out", str(tmp_path), "--datasets", "obsscaling",
           "--methods", "scaling_mf_svi"]
    beyond.main([*out, "--protocols", "c"])
    beyond.main([*out, "--protocols", "a", "--tasks-a", "1", "--merge"])
    doc = json.loads((tmp_path / "beyond.json").read_text())
    g = doc["groups"]
    assert {"obsscaling/a", "obsscaling/c"} <= set(g)
    assert set(g["obsscaling/c"]) == {"scaling_mf_svi", "compute_sigmoid_family",
                                      "pca3_sigmoid"}
    bayes, peer = g["obsscaling/c"]["scaling_mf_svi"], g["obsscaling/c"]["pca3_sigmoid"]
    assert {"coverage_50", "coverage_95", "crps", "rank_coverage_90", "beats_right"} <= set(bayes)
    assert "coverage_90" not in peer and peer["mae"]["mean"] > 0
    assert any(k.startswith("obsscaling/c/") for k in g)  # per benchmark
    assert " && " in doc["command"]
    monkeypatch.setattr(sys, "argv", ["benchmarks/importance.py"])
    importance.main(["--datasets", "obsscaling", "--seeds", "2", "--steps", "20",
                     "--out", str(tmp_path)])
    imp = json.loads((tmp_path / "importance.json").read_text())["groups"]["obsscaling"]
    assert {"family", "size", "tokens", "compute"} <= set(imp)
    assert (tmp_path / "figures" / "importance_obsscaling.png").exists()


def test_suite_tables_and_pooling(calibration):
    import numpy as np
    import suite

    if not (suite.SHARED / "data" / "pythia_v1_evals").exists():
        pytest.skip("../shared/data is not beside the repository")
    ladder = suite.pythia_ladder()
    assert ladder.n_tasks == len(suite.PYTHIA_TASKS) and ladder.n_models > 100
    assert set(ladder.model_factors["family"]) == {"pile", "deduped"}
    assert ladder.task_info.loc["piqa", "chance"] == 0.5
    emergent = suite.osl_emergent()
    assert emergent.n_tasks == 8 + len(suite.EMERGENT) and emergent.n_models >= 80
    split, _ = suite.splits_for("pythia_largest")[0]
    held = {split.test.models[i] for i in np.flatnonzero(split.test.mask.any(axis=1))}
    assert held == {f"pythia-{s}{d}@step143000" for s in ("6.9b", "12b") for d in ("", "-deduped")}
    # pooling: the stack's ratio is over the best other row, errors as shares of the range
    y = np.array([0.5, 0.6])
    span = np.ones(2)
    rows = {}
    draws = np.stack([y + 0.01, y - 0.01, y + 0.03])
    suite.add(rows, "auto", suite.cell_rows(draws, y, np.zeros(2)), span, 1.0)
    suite.add(rows, "cand:x", suite.cell_rows(y[None] + 0.02, y, np.zeros(2)), span, 1.0)
    out = suite.summarise_rows(rows)
    assert out["auto"]["mae"]["mean"] == pytest.approx(0.01)
    assert out["auto"]["ratio_mae"]["mean"] == pytest.approx(0.5)
    assert "coverage_90" in out["auto"] and "coverage_90" not in out["cand:x"]
    # coverage's standard error is over held-out models: two models, one covered, one not
    assert suite.cluster_se(np.array([1.0, 1.0, 0.0, 0.0]), np.array(list("aabb"))) == \
        pytest.approx(0.5)
    assert suite.cluster_se(np.array([1.0, 0.0, 1.0, 0.0]), np.array(list("aabb"))) == 0.0
    assert "| p | met (0.50) |" in suite.markdown({"p": out})
    # several stack seeds: the figures pooled over them, ± their spread over the seeds
    rows = {}
    for seed, off in ((0, 0.01), (1, 0.03)):
        suite.add(rows, "auto", suite.cell_rows(np.stack([y + off] * 2), y, np.zeros(2)), span,
                  1.0, seed)
        suite.add(rows, "cand:x", suite.cell_rows(y[None] + 0.02, y, np.zeros(2)), span, 1.0,
                  seed)
    out = suite.summarise_rows(rows)
    assert out["auto"]["mae"]["mean"] == pytest.approx(0.02)
    assert out["auto"]["mae"]["std"] == pytest.approx(0.02 ** 0.5 / 10) and \
        out["auto"]["mae"]["n"] == 2
    assert out["cand:x"]["mae"]["std"] == 0.0
    assert "over 2 seeds" in suite.markdown({"p": out})


def test_leaderboard_budget_shares_on_known_curves(calibration):
    """``benchmarks/leaderboard.py``'s summary on made-up campaign curves: a strategy that
    reaches random's final figure after one of four rounds needs a quarter of its budget."""
    import leaderboard

    recs = []
    for c in range(3):
        for s, curve in (("random", [8, 6, 4, 3, 2]), ("variance", [8, 7, 6, 5, 4]),
                         ("vpc_top", [8, 2, 1, 1, 1])):
            for r, d in enumerate(curve):
                recs.append({"strategy": s, "round": r, "spent": 5 * r, "campaign": c,
                             "discordant": float(d), "kendall_tau": 1 - d / 22.5,
                             "top_k_overlap": 1.0})
    out = leaderboard.budget_shares(recs, "discordant", 4, missing=40, reps=50)
    assert out["random"]["ratio"] == 1.0 and out["vpc_top"]["ratio"] == 0.25
    assert out["variance"]["ratio"] == float("inf")
    assert out["vpc_top"]["missing_share"] == 5 / 40
    tau = leaderboard.budget_shares(recs, "kendall_tau", 4, missing=40, reps=50)
    assert tau["vpc_top"]["ratio"] == 0.25


def test_planning_item_costs_from_the_standard_errors(calibration):
    """``benchmarks/planning.py --costs items``: a Pythia task costs its test set's items, read
    from the harness's standard errors; a table without them is refused; budgets in items."""
    import planning
    import suite

    if not (suite.SHARED / "data" / "pythia_v1_evals").exists():
        pytest.skip("../shared/data is not beside the repository")
    costs = planning.item_costs("pythia", suite.pythia_ladder())
    assert costs["arc_challenge"] == 1172 and costs["piqa"] == 1838  # the published sizes
    assert costs["arc_easy"] == 2376 and costs["winogrande"] == 1267
    with pytest.raises(SystemExit, match="no item counts"):
        planning.item_costs("cpp", None)
    # a strategy spending 100 items reaches what random reaches with its full 1000
    recs = [{"strategy": s, "round": r, "spent": float(sp), "campaign": c, "rank_error": e}
            for c in range(2)
            for s, pts in (("random", [(0, 4.0), (500, 3.0), (1000, 2.0)]),
                           ("vpc_aggregate", [(0, 4.0), (100, 2.0), (300, 1.0)]))
            for r, (sp, e) in enumerate(pts)]
    out = planning.budget_ratios(recs, "rank_error", 2, reps=20)
    assert out["random"]["ratio"] == 1.0 and out["vpc_aggregate"]["ratio"] == 0.1
    assert planning.present(recs) == ["random", "vpc_aggregate"]
    # a setting run again with --merge replaces its section (and its figure) of the page
    md = "head\n\n## cpp\n\nx\n\n## pythia_items\n\nold\n\n![p](f.png)\n\n## emergent\n\ny\n"
    assert planning.drop_sections(md, ["pythia_items"]) == \
        "head\n\n## cpp\n\nx\n\n## emergent\n\ny\n"


def test_normalization_scores_bounds_and_combines_runs(calibration, tmp_path):
    """``benchmarks/normalization.py``: zero-width and at-bound intervals counted in the
    table's units, coverage per level, and ``--combine`` merging the rows of two runs (other
    methods on the same protocol) without fitting."""
    import normalization
    import numpy as np

    from cppjax import ScoreMatrix
    from cppjax.splits import split_cells

    sm = ScoreMatrix(np.array([[0.2, 0.9], [0.5, 1.0]]), ["a", "b"], ["x", "y"],
                     scale="fraction")
    split = split_cells(sm, [0, 1], [1, 1], "t", {}, "train")
    mi, ti = np.array([0, 1]), np.array([1, 1])
    draws = np.stack([np.array([0.8, 1.0])] * 3 + [np.array([0.95, 1.0])])  # b's draws all 1
    rec = normalization.score(draws, split, mi, ti, True, 0)
    assert rec["zero_width_90"].tolist() == [False, True]
    assert rec["at_bound_90"].tolist() == [False, True]
    assert rec["hit_90"].tolist() == [True, True] and rec["hit_50"].tolist() == [False, True]
    assert set(rec["group"]) == {"t/a", "t/b"}
    stats = normalization.summarise([{**rec, "secs": 1.0}])
    assert stats["zero_width_90"]["mean"] == 0.5 and stats["coverage_90"]["n"] == 2
    for name, row in (("a", "m1/task_minmax"), ("b", "m2/task_logit")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "normalization.json").write_text(json.dumps(
            {"command": f"run {name}", "groups": {"p": {row: stats}}}))
    normalization.main(["--out", str(tmp_path / "a"), "--merge",
                        "--combine", str(tmp_path / "b" / "normalization.json")])
    doc = json.loads((tmp_path / "a" / "normalization.json").read_text())
    assert set(doc["groups"]["p"]) == set(doc["groups"]["pooled"]) == {"m1/task_minmax",
                                                                       "m2/task_logit"}
    assert "run a && run b" in doc["command"]
