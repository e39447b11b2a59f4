"""Evaluation planning: values against the exact Gaussian update, plans, costs, the loop, CLI."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import cppjax
from cppjax import planning
from cppjax.data import ScoreMatrix
from cppjax.errors import DataError
from cppjax.inference import numpy_rng
from cppjax.posterior import NotSaveable, Posterior

N_MODELS, N_TASKS, NOISE = 5, 3, 0.1


class GaussianPosterior(Posterior):
    """A conjugate case: the cells jointly Normal(mean, cov), each observed with Normal noise;
    its refit after observing cells is Gaussian conditioning, known exactly. It implements the
    whole Posterior protocol (an abstract method left out could not be instantiated)."""

    def __init__(self, sm, mean, cov, n_draws=20_000):
        super().__init__(sm, None, None, 0.0, method="gaussian")
        self.mean, self.cov, self._n = mean, cov, n_draws

    @property
    def n_draws(self):
        return self._n

    @property
    def diagnostics(self):
        return {}

    def _draws(self, mi, ti, key, noise):
        self._no_noise(noise)
        flat = mi * N_TASKS + ti
        rng = numpy_rng(key)
        L = np.linalg.cholesky(self.cov[np.ix_(flat, flat)])
        z = rng.standard_normal((self.n_draws, flat.size))
        return (self.mean[flat] + z @ L.T
                + NOISE * rng.standard_normal((self.n_draws, flat.size)))

    def refit(self, train, *, rng_key, progress=None):
        return GaussianPosterior(train, self.mean, self.cov, self._n)

    def to_arviz(self):
        raise NotImplementedError

    def _arrays(self):
        raise NotSaveable("a test posterior")

    _meta = _arrays

    @classmethod
    def _restore(cls, *args):
        raise NotSaveable("a test posterior")


@pytest.fixture(scope="module")
def gauss():
    # observed scores 0 and 1 on every task: each task's observed range is [0, 1], so the
    # planner's task units are the scores themselves
    scores = np.full((N_MODELS, N_TASKS), np.nan)
    scores[0], scores[1] = 0.0, 1.0
    sm = ScoreMatrix(scores, [f"m{i}" for i in range(N_MODELS)],
                     [f"t{j}" for j in range(N_TASKS)], scale="unbounded")
    rng = np.random.default_rng(0)
    B = rng.normal(size=(N_MODELS * N_TASKS, 3)) * 0.3
    cov = B @ B.T + 0.01 * np.eye(N_MODELS * N_TASKS)
    return GaussianPosterior(sm, np.full(N_MODELS * N_TASKS, 0.5), cov)


def exact_after(cov, targets, observed):
    """Mean predictive variance of the noisy target cells after observing ``observed``."""
    P = cov + NOISE**2 * np.eye(len(cov))
    o, t = list(observed), list(targets)
    cond = P[np.ix_(t, t)] - P[np.ix_(t, o)] @ np.linalg.solve(P[np.ix_(o, o)], P[np.ix_(o, t)])
    return float(np.mean(np.diag(cond)))


def flat(sm, model, task):
    return sm.model_index(model) * N_TASKS + sm.task_index(task)


def test_values_match_the_exact_gaussian_update(gauss):
    sm = gauss.matrix
    target = planning.scores(cells=[("m2", "t0"), ("m3", "t1")])
    cand = (["m2", "m2", "m4", "m4", "m3"], ["t1", "t2", "t0", "t1", "t1"])
    v = planning.values(gauss, target, rng_key=0, candidates=cand)
    t = [flat(sm, "m2", "t0"), flat(sm, "m3", "t1")]
    before = exact_after(gauss.cov, t, [])
    for _, r in v.iterrows():
        exact = before - exact_after(gauss.cov, t, [flat(sm, r["model"], r["task"])])
        assert r["value"] == pytest.approx(exact, rel=0.06, abs=2e-3)
    # the first pick of a plan with equal costs is the cell the exact update ranks first
    best = max(zip(*cand, strict=True), key=lambda c: before - exact_after(
        gauss.cov, t, [flat(sm, *c)]))
    p = planning.plan(gauss, target, rng_key=0, candidates=cand, k=2)
    assert p.cells[0] == best
    # the second pick is conditioned on the first: the expected variance after both is the
    # exact conditional variance given both
    both = [flat(sm, *c) for c in p.cells]
    assert p.steps["expected_uncertainty"].iloc[2] == pytest.approx(
        exact_after(gauss.cov, t, both), rel=0.06)


def test_observed_cells_have_no_value_and_plans_respect_the_budget(gauss):
    target = planning.scores(cells=[("m2", "t0"), ("m3", "t1"), ("m4", "t2")])
    cand = (["m0", "m2", "m3", "m4"], ["t0", "t0", "t1", "t2"])  # m0 t0 is observed
    v = planning.values(gauss, target, rng_key=1, candidates=cand).set_index(["model", "task"])
    assert v.loc[("m0", "t0"), "value"] == 0.0
    assert (v.drop(("m0", "t0"))["value"] > 0).all()
    costs = pd.Series({"t0": 3.0, "t1": 2.0, "t2": 1.5})
    for budget in (1.0, 3.6, 5.0, 100.0):
        p = planning.plan(gauss, target, rng_key=1, candidates=cand, costs=costs, budget=budget)
        spent = sum(costs[t] for _, t in p.cells)
        assert spent <= budget + 1e-9
        assert p.steps["spent"].iloc[-1] == pytest.approx(spent)
        assert ("m0", "t0") not in p.cells
        assert len(set(p.cells)) == len(p.cells)
        # the expected uncertainty never rises along a plan
        assert np.all(np.diff(p.steps["expected_uncertainty"]) <= 1e-6)
    assert planning.plan(gauss, target, rng_key=1, candidates=cand, costs=costs,
                         budget=1.0).cells == []


def test_rank_best_and_beats_targets_shrink_as_their_cells_are_observed(gauss):
    for target in (planning.aggregate("m2"), planning.rank("m3", ["t1"]),
                   planning.best("t0"), planning.beats("m2", "m3", "t2")):
        p = planning.plan(gauss, target, rng_key=2, k=3)
        s = p.steps
        # beats on t2 has two candidates (m2 and m3 on t2); the others more than three
        assert len(s) == (3 if target.kind == "beats" else 4)
        assert s["spent"].iloc[-1] == len(s) - 1
        assert s["criterion"].iloc[-1] < s["criterion"].iloc[0]
        assert s["expected_width"].iloc[-1] <= s["expected_width"].iloc[0] + 1e-9
        assert p.template().columns.tolist() == ["model", "task", "score"]
    # beats on one task: observing both cells settles it
    p = planning.plan(gauss, planning.beats("m2", "m3", "t2"), rng_key=2, k=2)
    assert set(p.cells) == {("m2", "t2"), ("m3", "t2")}
    assert p.steps["expected_width"].iloc[-1] == pytest.approx(0.0, abs=1e-6)


def test_top_k_target_counts_discordant_pairs_and_shrinks_over_every_missing_cell(gauss):
    """The leaderboard-level target: candidates are every missing cell of the board (not one
    model's); its uncertainty is the expected number of discordant pairs among the 2k models
    of highest mean, and the report matches that count from the draws."""
    t = planning.top(2)
    assert t.kind == "top" and "top 2" in t.describe()
    r = t.resolve(gauss.matrix)
    assert r.default_candidates[0].size == int((~gauss.matrix.mask).sum())
    p = planning.plan(gauss, t, rng_key=3, k=4)
    s = p.steps
    assert s["criterion"].iloc[-1] < s["criterion"].iloc[0]
    assert len({m for m, _ in p.cells}) >= 2  # picks spread over the board's models
    # the report: sum of p (1 - p) over the pairs of the top 2k = 4 models that involve the top
    # k = 2, from the draws
    draws = gauss.joint_draws("all", rng_key=0).reshape(-1, N_MODELS, N_TASKS)
    agg = draws.mean(axis=2)  # each model's mean over the tasks (task units: the scores)
    top4 = np.argsort(-agg.mean(axis=0))[:4]
    pab = (agg[:, top4, None] > agg[:, None, top4]).mean(axis=0)
    expect = np.triu(pab * (1 - pab), 1)[:2].sum()  # pairs with one of the top 2 above
    assert s["expected_uncertainty"].iloc[0] == pytest.approx(expect, abs=0.15)
    with pytest.raises(ValueError, match="2 <= k"):
        planning.plan(gauss, planning.top(9), rng_key=0, k=1)
    with pytest.raises(TypeError, match="integer"):
        planning.top(2.5)


def test_costs_by_name_long_and_wide_and_their_errors(gauss, tmp_path):
    sm = gauss.matrix
    assert planning.cost_matrix(sm).sum() == sm.n_models * sm.n_tasks
    by_model = planning.cost_matrix(sm, {f"m{i}": i + 1 for i in range(N_MODELS)})
    assert by_model[3, 1] == 4
    long = pd.DataFrame({"model": ["m2"], "task": ["t1"], "cost": [7.0]})
    assert planning.cost_matrix(sm, long)[2, 1] == 7 and planning.cost_matrix(
        sm, long)[2, 0] == 1  # a cell no cost names: one evaluation
    wide = pd.DataFrame([[1.0, 2.0, 3.0]], index=["m4"], columns=["t0", "t1", "t2"])
    assert planning.cost_matrix(sm, wide)[4, 2] == 3
    with pytest.raises(DataError, match="positive"):
        planning.cost_matrix(sm, {"t0": 0.0, "t1": 1.0})
    with pytest.raises(DataError, match="neither"):
        planning.cost_matrix(sm, {"nope": 1.0})
    planner = planning.Planner(gauss, planning.scores("m2"), rng_key=0, costs=long)
    assert sorted(set(planner.cost.tolist())) == [1.0, 7.0]
    f = tmp_path / "costs.csv"
    f.write_text("task,cost\nt0,2\nt1,abc\n")
    with pytest.raises(DataError, match=r"costs.csv: row 3, column 'cost'"):
        planning.read_costs(f)
    f.write_text("Task,Cost\nt0,2\nt1,1\nt2,5\n")
    assert planning.cost_matrix(sm, planning.read_costs(f))[0, 2] == 5


def test_bad_requests_are_refused(gauss):
    with pytest.raises(ValueError, match="budget"):
        planning.plan(gauss, planning.scores("m2"), rng_key=0, budget=-1)
    with pytest.raises(ValueError, match="budget, a number"):
        planning.plan(gauss, planning.scores("m2"), rng_key=0)
    with pytest.raises(KeyError, match="nope"):
        planning.plan(gauss, planning.aggregate("nope"), rng_key=0, k=1)
    point = cppjax.fit("factors_only", gauss.matrix, rng_key=0, steps=20)
    with pytest.raises(TypeError, match="at least 50 draws"):
        planning.plan(point, planning.scores("m2"), rng_key=0, k=1)


def test_aggregate_rank_is_the_mean_of_task_units_and_follows_direction():
    scores = np.array([[0.0, 10.0], [1.0, 30.0], [0.5, 20.0]])
    sm = ScoreMatrix(scores, ["a", "b", "c"], ["acc", "err"], scale="unbounded",
                     task_info={"err": {"higher_is_better": False}})
    post = GaussianPosterior(sm, np.zeros(6), np.eye(6))
    rp = post.aggregate_rank(rng_key=0)
    # task units: acc (0, 1, 0.5); err flipped (1, 0, 0.5): means 0.5, 0.5, 0.5 -> all tied
    assert rp.draws[0].tolist() == [1, 1, 1]
    rp = post.aggregate_rank(["acc"], rng_key=0)
    assert rp.draws[0].tolist() == [3, 1, 2] and rp.observed.all()


def test_add_scores_checks_what_it_adds(gauss):
    sm = gauss.matrix
    new = sm.add_scores(pd.DataFrame({"model": ["m2"], "task": ["t1"], "score": [0.4]}))
    assert new.scores[2, 1] == 0.4 and np.isnan(sm.scores[2, 1])
    assert new.normalization is sm.normalization
    assert sm.add_scores({("m0", "t0"): 0.0}).n_observed == sm.n_observed  # same value
    with pytest.raises(DataError, match="already observed"):
        sm.add_scores({("m0", "t0"): 0.5})
    with pytest.raises(DataError, match="not a number"):
        sm.add_scores({("m2", "t0"): float("nan")})
    with pytest.raises(KeyError, match="m9"):
        sm.add_scores({("m9", "t0"): 0.1})
    with pytest.raises(DataError, match="columns model, task, score"):
        sm.add_scores(pd.DataFrame({"model": ["m2"]}))


def test_the_loop_plan_observe_refit_reuses_compiled_programs():
    from cppjax.datasets.synthetic import synthetic
    from cppjax.models.registry import make_spec

    data = synthetic(0, n_models=30, n_tasks=8, observed=0.5)
    observed, truth = data.matrix, data.full
    spec, inf = make_spec("pmf_svi", rank=2, num_steps=300, num_samples=200,
                                 guide="meanfield")
    post = spec.fit(observed, rng_key=0, inference=inf, progress=False)
    model = observed.models[int(np.argmax(observed.mask.sum(axis=1) < 8))]
    p = planning.plan(post, planning.aggregate(model), rng_key=1, k=2)
    filled = p.template()
    filled["score"] = [truth.scores[truth.model_index(m), truth.task_index(t)]
                       for m, t in p.cells]
    n_programs = len(inf.programs)
    post2 = post.refit(observed.add_scores(filled), rng_key=2, progress=False)
    assert len(inf.programs) == n_programs  # no new compilation
    assert post2.matrix.n_observed == observed.n_observed + 2


@pytest.mark.parametrize("argv, message", [
    (["--model", "Nope-7B", "--budget", "5"], "Nope-7B"),
    (["--model", "LLama-2-7B", "--task", "NoTask", "--budget", "5"], "NoTask"),
    (["--model", "LLama-2-7B", "--budget", "0"], "--budget must be a positive"),
    (["--model", "LLama-2-7B"], "give --budget"),
    (["--target", "best", "--budget", "3"], "one --task"),
    (["--target", "scores", "--budget", "3"], "needs --model"),
])
def test_cli_plan_refuses_bad_requests_before_fitting(tmp_path, capsys, argv, message):
    from cppjax.cli import main

    assert main(["plan", *argv, "--out", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert message in captured.err and "fitting" not in captured.out


def test_cli_plan_writes_the_plan_and_its_figure(tmp_path, capsys):
    from cppjax.cli import main

    costs = tmp_path / "costs.csv"
    costs.write_text("task,cost\n" + "\n".join(
        f"{t},{1 + (k % 3)}" for k, t in enumerate(cppjax.datasets.load_cpp_crowdsource().tasks)))
    rc = main(["plan", "--model", "LLama-2-7B", "--budget", "6", "--costs", str(costs),
               "--steps", "300", "--samples", "100", "--out", str(tmp_path / "o")])
    assert rc == 0
    df = pd.read_csv(tmp_path / "o" / "plan.csv")
    assert df["spent"].iloc[-1] <= 6 and len(df) >= 3
    assert (df["model"].iloc[1:] == "LLama-2-7B").all()
    assert (tmp_path / "o" / "plan.png").stat().st_size > 10_000
    assert "plan for the aggregate rank of LLama-2-7B" in capsys.readouterr().out
