"""The contract every registered method keeps (dynamax's CONFIGS pattern): fit on a tiny table,
predict with finite draws of the right shape, the same key gives the same draws, joint draws keep
the observed cells, refit and save -> load round trips, ``to_arviz`` and ``diagnostics`` work,
and a setting the method does not take is an error naming it. Every method name the CLI
accepts is covered, COD's methods too, and every planning target runs on every posterior kind
with draws. A posterior class that skips part of the protocol cannot be instantiated, and one
that no test here covers fails :func:`test_every_posterior_kind_is_covered`."""

import importlib
import inspect
import pkgutil

import jax
import numpy as np
import pandas as pd
import pytest

import cppjax
from cppjax import cod, planning
from cppjax.datasets import synthetic_items
from cppjax.models.registry import METHODS, make_spec
from cppjax.posterior import NotSaveable, Posterior

#: every posterior kind and where this file exercises it
COVERED = {"BayesPosterior", "ScalingLawPosterior", "PointPosterior", "CODPosterior",
           "BaselinePosterior", "StackPosterior",
           "RenormalizedPosterior"}  # PMF on the fraction table below (decision 0024)

# tiny settings per inference: the contract, not the accuracy
TINY = {
    "nuts": {"num_warmup": 10, "num_samples": 10, "num_chains": 1},
    "svi": {"num_steps": 20, "num_samples": 10},
    "map": {"num_steps": 20},
    "adam": {"steps": 20},
}


@pytest.fixture(scope="module")
def table():
    """12 models of 3 families with sizes (so that scaling laws place them) x 5 tasks."""
    rng = np.random.default_rng(0)
    n, m = 12, 5
    params = np.geomspace(1e8, 1e11, n)
    fam = np.array(["a", "b", "c"])[np.arange(n) % 3]
    base = 0.15 * np.log10(params)[:, None] - 1.0 + 0.1 * rng.normal(size=(n, m))
    s = np.clip(base, 0.02, 0.98)
    s[rng.random((n, m)) < 0.25] = np.nan
    s[:, 0] = np.where(np.isnan(s[:, 0]), 0.5, s[:, 0])  # every model has a score
    mf = pd.DataFrame({"family": fam, "parameters": params, "tokens": 20 * params},
                      index=[f"m{i}" for i in range(n)])
    return cppjax.ScoreMatrix(s, list(mf.index), [f"t{j}" for j in range(m)], model_factors=mf,
                              scale="fraction")


@pytest.mark.filterwarnings("ignore::cppjax.CppjaxWarning")  # 10 NUTS draws: r-hat
@pytest.mark.parametrize("name", list(METHODS))
def test_method_contract(table, name, tmp_path):
    spec, inference = make_spec(name, **TINY[METHODS[name][2]])
    post = cppjax.fit(spec, table, rng_key=0, inference=inference, progress=False)
    assert post.method == name
    # PMF's SVI and MAP read the table's automatic min-max through the logit (decision 0024);
    # its NUTS fits the min-max (decision 0025)
    through = name.startswith("pmf") and METHODS[name][2] != "nuts"
    assert (type(post).__name__ == "RenormalizedPosterior") == through
    cells = post.placed_cells("missing")
    assert cells[0].size > 0
    pred = post.predict(cells, rng_key=1)
    assert pred.draws.shape == (post.n_draws, cells[0].size)
    assert np.isfinite(pred.draws).all()
    lo, hi = pred.interval(0.9)
    assert (lo <= hi).all()
    # the same key: the same fit and draws (and the second fit reuses the compiled programs)
    again = cppjax.fit(spec, table, rng_key=0, inference=inference, progress=False)
    np.testing.assert_array_equal(again.predict(cells, rng_key=1).draws, pred.draws)
    # save -> load: identical predictions, under the name given
    path = post.save(tmp_path / "posterior.bin")
    assert path.name == "posterior.bin" and path.exists()
    back = cppjax.load(path)
    assert type(back) is type(post) and back.method == name
    np.testing.assert_array_equal(back.predict(cells, rng_key=1).draws, pred.draws)
    # ArviZ data with the model's named dimensions; diagnostics a dict
    idata = post.to_arviz()
    assert "posterior" in idata.groups()
    assert isinstance(post.diagnostics, dict)
    _joint_draws_keep_the_observed_cells(post, table)
    # a setting this method does not take is an error naming it
    with pytest.raises(TypeError, match="'not_a_setting'"):
        make_spec(name, not_a_setting=1)
    if METHODS[name][2] != "nuts":  # refit: every posterior kind by its faster inferences
        # a table with one more score: the same kind and method, predictions of its shape
        more = table.add_scores(pd.DataFrame({"model": [table.models[cells[0][0]]],
                                              "task": [table.tasks[cells[1][0]]],
                                              "score": [0.5]}))
        again = post.refit(more, rng_key=2, progress=False)
        assert type(again) is type(post) and again.method == name
        assert again.matrix is more
        assert np.isfinite(again.predict("observed", rng_key=3).draws).all()

def _joint_draws_keep_the_observed_cells(post, sm):
    mi, ti = np.indices(sm.shape)
    keep = ~np.isin(mi.ravel(), [sm.model_index(m) for m in post.unplaced_models])
    cells = (mi.ravel()[keep], ti.ravel()[keep])
    x = post.joint_draws(cells, rng_key=4)
    assert x.shape == (post.n_draws, cells[0].size)
    obs = sm.mask[cells]
    np.testing.assert_array_equal(x[:, obs], np.broadcast_to(sm.scores[cells][obs],
                                                             x[:, obs].shape))
    assert np.isfinite(x).all()


@pytest.fixture(scope="module")
def items():
    s = synthetic_items(0, n_items=60, sizes=6, n_families=1, n_tasks=2)
    return s.data, [m for m in s.data.models if m.endswith("-5")]


@pytest.mark.filterwarnings("ignore::cppjax.CppjaxWarning")
@pytest.mark.parametrize("method", cod.CHOICES)
def test_cod_contract(items, method, tmp_path):
    data, target = items
    settings = cod.COD(num_steps=200, num_samples=30)
    post = cod.fit(data, targets=target, rng_key=0, method=method, settings=settings)
    assert isinstance(post, Posterior) and post.method == method
    pred = post.predict("missing", rng_key=1)
    assert pred.draws.shape == (post.n_draws, post.matrix.n_tasks)
    assert np.isfinite(pred.draws).all()
    np.testing.assert_array_equal(post.predict("missing", rng_key=1).draws, pred.draws)
    assert "law" in post.diagnostics and "posterior" in post.to_arviz().groups()
    _joint_draws_keep_the_observed_cells(post, post.matrix)
    # refit: the same method, settings and targets; the settings' compiled programs reused
    n_programs = len(settings.inference.programs)
    again = post.refit(data, rng_key=0)
    assert type(again) is cod.CODPosterior and again.targets == post.targets
    assert len(settings.inference.programs) == n_programs
    np.testing.assert_allclose(again.predict("missing", rng_key=1).draws, pred.draws, atol=1e-5)
    with pytest.raises(TypeError, match="ItemResponses"):
        post.refit(post.matrix, rng_key=0)
    # save: the protocol's typed refusal, before anything is written
    with pytest.raises(NotSaveable, match="refit"):
        post.save(tmp_path / "cod.npz")
    assert not (tmp_path / "cod.npz").exists()


@pytest.mark.parametrize("name", ["copy_sibling", "pc_sigmoid", "auto"])
def test_closed_form_and_stack_contract(table, name, tmp_path):
    extra = ({"candidates": ("copy_sibling", "pc_sigmoid", "scaling_law_hierarchical_map"),
              "progress": False} if name == "auto" else {})
    post = cppjax.fit(name, table, rng_key=0, **extra)
    assert isinstance(post, Posterior)
    pred = post.predict("missing", rng_key=1)
    assert pred.draws.shape == (post.n_draws, int((~table.mask).sum()))
    assert np.isfinite(pred.draws).all()
    np.testing.assert_array_equal(post.predict("missing", rng_key=1).draws, pred.draws)
    _joint_draws_keep_the_observed_cells(post, table)
    assert "posterior" in post.to_arviz().groups()
    assert isinstance(post.diagnostics, dict)
    again = post.refit(table, rng_key=0)
    assert type(again) is type(post)
    np.testing.assert_allclose(again.predict("missing", rng_key=1).draws, pred.draws)
    with pytest.raises(NotSaveable, match="refit"):
        post.save(tmp_path / "p.npz")
    assert not (tmp_path / "p.npz").exists()
    if name == "auto":  # enough draws to plan on, one per candidate choice
        assert post.n_draws >= planning.MIN_DRAWS
        p = planning.plan(post, planning.scores(table.models[1]), rng_key=5, k=1,
                          n_scenarios=4)
        assert np.isfinite(p.to_frame()["criterion"]).all()


def _targets(sm):
    m, t = sm.models, sm.tasks
    t1 = t[-1]
    return [planning.scores(m[0]), planning.scores(cells=[(m[1], t1), (m[-1], t[0])]),
            planning.rank(m[0], tasks=t[:2]), planning.aggregate(m[0]),
            planning.best(t1), planning.beats(m[0], m[1], t1)]


@pytest.fixture(scope="module")
def kinds_with_draws(table, items):
    """One posterior of each kind with enough draws to plan on."""
    posts = {}
    for name in ("pmf_svi", "scaling_law_hierarchical_svi"):
        spec, inf = make_spec(name, num_steps=30, num_samples=planning.MIN_DRAWS)
        posts[name] = cppjax.fit(spec, table, rng_key=0, inference=inf, progress=False)
    data, target = items
    posts["cod"] = cod.fit(data, targets=target, rng_key=0, settings=cod.COD(
        num_steps=200, num_samples=planning.MIN_DRAWS))
    return posts


@pytest.mark.filterwarnings("ignore::cppjax.CppjaxWarning")
@pytest.mark.parametrize("kind", ["pmf_svi", "scaling_law_hierarchical_svi", "cod"])
def test_every_planning_target_on_every_posterior_kind(kinds_with_draws, kind):
    post = kinds_with_draws[kind]
    sm = post.matrix
    keep = [m for m in sm.models if m not in post.unplaced_models]
    sub_models = tuple(keep[:4])
    for target in _targets(sm):
        if target.models is None and target.kind in ("aggregate", "best"):
            target = type(target)(target.model, target.tasks, sub_models, target.cells)
        if target.kind == "beats":
            target = planning.beats(keep[0], keep[1], sm.tasks[0])
        if target.model is not None and target.model not in keep:
            continue
        cand = sm.missing()
        ok = ~np.isin(cand[0], [sm.model_index(m) for m in post.unplaced_models])
        p = planning.plan(post, target, rng_key=jax.random.PRNGKey(5), k=2, n_scenarios=4,
                          candidates=(cand[0][ok], cand[1][ok]))
        steps = p.to_frame()
        assert len(steps) >= 2 and np.isfinite(steps["criterion"]).all(), target
        assert steps["expected_uncertainty"].iloc[0] >= 0


def test_every_posterior_kind_is_covered():
    for mod in pkgutil.walk_packages(cppjax.__path__, "cppjax."):
        if not mod.name.endswith(".__main__"):  # runs the CLI when imported
            importlib.import_module(mod.name)

    def subclasses(c):
        for s in c.__subclasses__():
            yield s
            yield from subclasses(s)

    concrete = {c.__name__ for c in subclasses(Posterior)
                if c.__module__.startswith("cppjax") and not inspect.isabstract(c)}
    assert concrete - COVERED == set(), "posterior kinds no contract test covers"
    assert COVERED <= concrete


def test_a_posterior_that_skips_the_protocol_cannot_be_made(table):
    class Partial(Posterior):
        n_draws = 1

        def _draws(self, mi, ti, key, noise):
            return np.zeros((1, len(mi)))

    with pytest.raises(TypeError, match="abstract"):
        Partial(table, None, None, 0.0, method="partial")
