"""Scores on a task's bound read as censored (decision 0031): the tail mass of the likelihood,
which cells are on which side, and what a fit does with them."""

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from scipy import stats

import cppjax
from cppjax.inference import SVI
from cppjax.models.likelihood import bound_sides, log_tail


@pytest.mark.parametrize("df", [None, 2.0, 5.0, 30.0])
def test_log_tail_is_the_log_cdf_with_finite_gradients(df):
    for y in (-30.0, -5.0, -0.5, -0.004, 0.0, 0.004, 0.5, 5.0):
        ref = stats.norm if df is None else stats.t(df)
        lower = float(log_tail(jnp.float32(y), 0.0, 1.0, -1, df))
        upper = float(log_tail(jnp.float32(y), 0.0, 1.0, 1, df))
        assert lower == pytest.approx(ref.logcdf(y), abs=2e-3, rel=1e-4)
        assert upper == pytest.approx(ref.logsf(y), abs=2e-3, rel=1e-4)
        for side in (-1, 1):  # the centre's expansion: no 0 x inf where the beta's slope is
            g = jax.grad(lambda loc, s=side, v=y: log_tail(jnp.float32(v), loc, 1.0, s, df))(0.0)
            assert np.isfinite(g)
    # location and scale: P(Y >= 3) of N(1, 2) is P(Z >= 1)
    assert float(log_tail(3.0, 1.0, 2.0, 1)) == pytest.approx(stats.norm.logsf(1.0), rel=1e-5)


def _table(normalization="auto"):
    scores = np.array([[0.0, 0.9, 12.0], [0.4, 1.0, 30.0], [1.0, 0.5, 0.0], [0.7, np.nan, 7.0]])
    info = pd.DataFrame({"lower": [0.0, 0.0, 0.0], "upper": [1.0, 1.0, np.inf],
                         "higher_is_better": [True, False, True]},
                        index=pd.Index(["acc", "error", "count"], name="task"))
    return cppjax.ScoreMatrix(scores, ["a", "b", "c", "d"], ["acc", "error", "count"],
                              task_info=info, normalization=normalization)


@pytest.mark.parametrize("normalization", ["auto", "task_minmax", "task_logit"])
def test_bound_sides_mark_the_ends_of_each_tasks_normalised_range(normalization):
    sm = _table(normalization)
    obs = sm.observed()
    sides = bound_sides(sm)
    raw = sm.scores[obs.model_idx, obs.task_idx]
    on = (raw == 0.0) | ((raw == 1.0) & (obs.task_idx < 2))
    assert (sides != 0).tolist() == on.tolist()  # 0 of acc, 1 of acc, 1.0 error, 0 count
    for k in np.flatnonzero(sides):  # +1: the top of its task's normalised values, -1: bottom
        same = obs.values[obs.task_idx == obs.task_idx[k]]
        assert obs.values[k] == (same.max() if sides[k] > 0 else same.min())


def test_bound_sides_of_a_table_without_bounds_are_all_zero():
    sm = cppjax.ScoreMatrix(np.array([[0.0, 1.0], [2.0, 3.0]]), ["a", "b"], ["x", "y"],
                            scale="unbounded")
    assert not bound_sides(sm).any()


def _saturated():
    rng = np.random.default_rng(0)
    n = 30
    skill = np.sort(rng.normal(size=n))
    scores = 1 / (1 + np.exp(-(skill[:, None] + rng.normal(0, 0.3, (n, 4)))))
    scores[:, 3] = np.where(skill > 0, 1.0, 1 / (1 + np.exp(-3 * skill - 2)))
    return cppjax.ScoreMatrix(scores, [f"m{i}" for i in range(n)], list("abcd"),
                              scale="fraction")


def test_a_censored_fit_puts_the_scores_on_a_bound_at_or_beyond_it():
    """Half the models at 100% on a task: read as exact values at the logit's edge, about a
    third of the draws of those cells reach the bound (measured: 0.27-0.51); read as
    censored, most do (0.66-0.91): the latent sits beyond the edge, as a plateau says."""
    sm = _saturated()
    at = np.flatnonzero(sm.scores[:, 3] == 1.0)
    share = {}
    for censored in (False, True):
        post = cppjax.fit("pmf_svi", sm, rng_key=0, progress=False, censored=censored,
                          inference=SVI(num_steps=1500, num_samples=400))
        draws = post.predict((at, np.full(at.size, 3)), rng_key=2).draws
        share[censored] = (draws == 1.0).mean()
        assert np.isfinite(post.diagnostics["final_loss"])
    assert share[False] < 0.55 < 0.6 < share[True]
