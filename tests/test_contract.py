"""The contract every registered method keeps (dynamax's CONFIGS pattern): fit on a tiny table,
predict with finite draws of the right shape, the same key gives the same draws, save -> load
gives identical predictions, ``to_arviz`` works, and a setting the method does not take is an
error naming it. Every method name the CLI accepts is covered."""

import numpy as np
import pandas as pd
import pytest

import cppjax
from cppjax.models.registry import METHODS, make_spec

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
    # ArviZ data with the model's named dimensions
    idata = post.to_arviz()
    assert "posterior" in idata.groups()
    # a setting this method does not take is an error naming it
    with pytest.raises(TypeError, match="'not_a_setting'"):
        make_spec(name, not_a_setting=1)
