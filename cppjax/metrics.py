"""Metrics of the CPP paper and of probabilistic prediction.

Point metrics take true and predicted values of the held-out cells (normalised units unless the
caller passes original units). Rank metrics need the whole matrix, because a rank is a position
among models.

**Rank of a held-out cell (our rule, the default).** For a held-out cell (model *i*, task *j*), take
every model with a score on task *j* (training or held out). Other models keep their true scores,
except held-out cells of task *j*, which take their predictions. The predicted rank of *i* is
1 + the number of those models whose value is strictly above *i*'s prediction; its true rank is
1 + the number of models whose true score is strictly above *i*'s true score (rank 1 = best; tied
models share the better rank). Rank accuracy is the percentage of held-out cells whose predicted
rank equals the true rank; MAE@2 the percentage within 2 of it.

**The paper's notebook rule** (``rule="heldout_only"``): rank only the held-out cells of each task
among themselves, by prediction and by truth. A task with a single held-out cell is always ranked
correctly, which inflates the figure; it is offered only to compare with published numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from scipy import stats  # scipy ships with jax

RankRule = Literal["all_models", "heldout_only"]


def mse(y_true, y_pred) -> float:
    """Mean squared error."""
    y_true, y_pred = np.asarray(y_true, float), np.asarray(y_pred, float)
    return float(np.mean((y_true - y_pred) ** 2))


def l1(y_true, y_pred) -> float:
    """Mean absolute error (the paper's "mean L1")."""
    y_true, y_pred = np.asarray(y_true, float), np.asarray(y_pred, float)
    return float(np.mean(np.abs(y_true - y_pred)))


def rmse(y_true, y_pred) -> float:
    return float(np.sqrt(mse(y_true, y_pred)))


def _rank_desc(values: np.ndarray, of: np.ndarray) -> np.ndarray:
    """1 + number of ``values`` strictly greater than each element of ``of``."""
    return 1 + (values[None, :] > of[:, None]).sum(axis=1)


def heldout_ranks(
    truth: np.ndarray,
    model_idx,
    task_idx,
    y_pred,
    rule: RankRule = "all_models",
) -> tuple[np.ndarray, np.ndarray]:
    """True and predicted ranks (1 = best) of held-out cells, see the module docstring.

    Args:
        truth: ``(n_models, n_tasks)`` true scores of train and held-out cells (NaN elsewhere), in
            the same units as ``y_pred``.
        model_idx, task_idx: the held-out cells.
        y_pred: their predictions.
        rule: ``"all_models"`` (ours) or ``"heldout_only"`` (the paper's notebook).

    Example (task with models scoring 0.9, 0.5 (held out), 0.3 (held out), 0.1):
        >>> truth = np.array([[0.9], [0.5], [0.3], [0.1]])
        >>> t, p = heldout_ranks(truth, [1, 2], [0, 0], [0.2, 0.4])
        >>> t.tolist(), p.tolist()
        ([2, 3], [3, 2])
        >>> t, p = heldout_ranks(truth, [1, 2], [0, 0], [0.2, 0.4], rule="heldout_only")
        >>> t.tolist(), p.tolist()
        ([1, 2], [2, 1])
    """
    truth = np.asarray(truth, float)
    mi = np.asarray(model_idx, int)
    ti = np.asarray(task_idx, int)
    y_pred = np.asarray(y_pred, float)
    if np.isnan(truth[mi, ti]).any():
        raise ValueError("every held-out cell must have a true score in `truth`")
    true_rank = np.empty(mi.size, int)
    pred_rank = np.empty(mi.size, int)
    for j in np.unique(ti):
        sel = np.flatnonzero(ti == j)
        if rule == "all_models":
            col = truth[:, j]
            obs = ~np.isnan(col)
            true_rank[sel] = _rank_desc(col[obs], col[mi[sel]])
            completed = col.copy()
            completed[mi[sel]] = y_pred[sel]
            pred_rank[sel] = _rank_desc(completed[obs], y_pred[sel])
        elif rule == "heldout_only":
            t = truth[mi[sel], j]
            true_rank[sel] = _rank_desc(t, t)
            pred_rank[sel] = _rank_desc(y_pred[sel], y_pred[sel])
        else:
            raise ValueError(f"rule must be 'all_models' or 'heldout_only'; got {rule!r}")
    return true_rank, pred_rank


def rank_accuracy(truth, model_idx, task_idx, y_pred, rule: RankRule = "all_models") -> float:
    """Percentage of held-out cells whose predicted rank equals the true rank."""
    t, p = heldout_ranks(truth, model_idx, task_idx, y_pred, rule)
    return float(100.0 * np.mean(t == p))


def mae_at_2(truth, model_idx, task_idx, y_pred, rule: RankRule = "all_models") -> float:
    """Percentage of held-out cells whose predicted rank is within 2 of the true rank."""
    t, p = heldout_ranks(truth, model_idx, task_idx, y_pred, rule)
    return float(100.0 * np.mean(np.abs(t - p) <= 2))


def spearman_per_task(task_idx, y_true, y_pred, min_cells: int = 3) -> dict[int, float]:
    """Spearman correlation of held-out cells, per task with at least ``min_cells`` cells whose true
    and predicted values are not all tied."""
    ti = np.asarray(task_idx, int)
    y_true, y_pred = np.asarray(y_true, float), np.asarray(y_pred, float)
    out = {}
    for j in np.unique(ti):
        sel = ti == j
        if sel.sum() >= min_cells and np.ptp(y_true[sel]) > 0 and np.ptp(y_pred[sel]) > 0:
            out[int(j)] = float(stats.spearmanr(y_true[sel], y_pred[sel]).statistic)
    return out


# ---------------------------------------------------------------------------------------------
# Probabilistic metrics on predictive draws (n_draws, n_cells)
# ---------------------------------------------------------------------------------------------
def central_interval(draws, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Equal-tailed interval of each column of ``draws`` at ``level`` (e.g. 0.9)."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1); got {level}")
    draws = np.asarray(draws, float)
    lo, hi = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2], axis=0)
    return lo, hi


def coverage(draws, y_true, levels: Sequence[float] = (0.5, 0.8, 0.9, 0.95)) -> dict[float, float]:
    """Share of cells whose true value lies in the central interval, per level."""
    y_true = np.asarray(y_true, float)
    out = {}
    for lev in levels:
        lo, hi = central_interval(draws, lev)
        out[lev] = float(np.mean((y_true >= lo) & (y_true <= hi)))
    return out


def coverage_se(draws, y_true, groups, levels: Sequence[float] = (0.5, 0.8, 0.9, 0.95), *,
                n_boot: int = 2000, seed: int = 0) -> dict[float, float]:
    """Standard error of :func:`coverage` from a bootstrap over ``groups`` of cells (one label
    per cell, e.g. the held-out model of each cell). Cells of one model or task share its
    errors, so they are not independent draws: the error of a pooled coverage shrinks with the
    number of groups more than with the number of cells.

    Example:
        >>> draws = np.random.default_rng(0).normal(size=(500, 4))
        >>> y = np.array([0.0, 0.0, 9.0, 9.0])  # two groups: one always covered, one never
        >>> round(coverage_se(draws, y, ["a", "a", "b", "b"], [0.9])[0.9], 1)
        0.4
    """
    y_true = np.asarray(y_true, float)
    groups = np.asarray(groups)
    if groups.shape != y_true.shape:
        raise ValueError(f"groups has shape {groups.shape}; one label per cell of y_true "
                         f"{y_true.shape} is needed")
    _, g = np.unique(groups, return_inverse=True)
    n_groups = int(g.max()) + 1
    # how often each group is drawn in each bootstrap resample
    counts = np.random.default_rng(seed).multinomial(
        n_groups, np.full(n_groups, 1.0 / n_groups), size=n_boot)
    cells = counts @ np.bincount(g, minlength=n_groups)
    out = {}
    for lev in levels:
        lo, hi = central_interval(draws, lev)
        hits = np.bincount(g, weights=(y_true >= lo) & (y_true <= hi), minlength=n_groups)
        out[lev] = float(np.std(counts @ hits / cells, ddof=1))
    return out


def interval_width(draws, level: float = 0.9) -> float:
    """Mean width of the central interval."""
    lo, hi = central_interval(draws, level)
    return float(np.mean(hi - lo))


def crps(draws, y_true) -> float:
    """Mean continuous ranked probability score of the empirical predictive distribution.

    Uses CRPS = E|X - y| - E|X - X'| / 2 with the exact sorted-sample form of the second term.
    With a single draw it reduces to the absolute error.

    Example:
        >>> float(round(crps(np.array([[0.0], [1.0]]), np.array([0.0])), 6))
        0.25
    """
    x = np.sort(np.asarray(draws, float), axis=0)
    y = np.asarray(y_true, float)
    m = x.shape[0]
    term1 = np.mean(np.abs(x - y[None, :]), axis=0)
    w = (2 * np.arange(1, m + 1) - m - 1)[:, None]
    term2 = np.sum(w * x, axis=0) / (m * m)  # = E|X - X'| / 2
    return float(np.mean(term1 - term2))


def log_predictive_density(log_lik) -> float:
    """Mean over cells of log (1/S) sum_s p(y | theta_s), from pointwise log-likelihoods
    ``log_lik`` of shape ``(n_draws, n_cells)``."""
    ll = np.asarray(log_lik, float)
    m = ll.max(axis=0)
    return float(np.mean(m + np.log(np.mean(np.exp(ll - m), axis=0))))


def log_predictive_density_kde(draws, y_true) -> float:
    """Mean log density of ``y_true`` under a Gaussian kernel estimate of each cell's draws
    (Silverman bandwidth); for predictors that give draws but no likelihood."""
    x = np.asarray(draws, float)
    y = np.asarray(y_true, float)
    m = x.shape[0]
    sd = x.std(axis=0, ddof=1) if m > 1 else np.zeros(x.shape[1])
    iqr = np.subtract(*np.quantile(x, [0.75, 0.25], axis=0))
    h = 0.9 * np.minimum(sd, iqr / 1.34) * m ** (-0.2)
    h = np.where(h > 0, h, np.maximum(sd, 1e-3) * m ** (-0.2) + 1e-6)
    z = (y[None, :] - x) / h[None, :]
    logk = -0.5 * z**2 - np.log(h)[None, :] - 0.5 * np.log(2 * np.pi)
    mx = logk.max(axis=0)
    return float(np.mean(mx + np.log(np.mean(np.exp(logk - mx), axis=0))))


def point_metrics(truth, model_idx, task_idx, y_true, y_pred) -> dict[str, float]:
    """MSE, L1, rank accuracy and MAE@2 (our rule) and mean per-task Spearman, in one dict."""
    out = {
        "mse": mse(y_true, y_pred),
        "l1": l1(y_true, y_pred),
        "rank_acc": rank_accuracy(truth, model_idx, task_idx, y_pred),
        "mae_at_2": mae_at_2(truth, model_idx, task_idx, y_pred),
    }
    rho = spearman_per_task(task_idx, y_true, y_pred)
    if rho:
        out["spearman"] = float(np.mean(list(rho.values())))
    return out


def draw_metrics(
    draws, y_true, log_lik=None, levels: Sequence[float] = (0.5, 0.8, 0.9, 0.95)
) -> dict[str, float]:
    """Coverage at ``levels``, 90% width, CRPS and log predictive density (from ``log_lik`` when
    given, else a kernel estimate), in one dict with the BENCHMARKS.md names."""
    out = {
        f"coverage_{int(round(100 * lev))}": c for lev, c in coverage(draws, y_true, levels).items()
    }
    out["width_90"] = interval_width(draws, 0.9)
    out["crps"] = crps(draws, y_true)
    out["lpd"] = (
        log_predictive_density(log_lik)
        if log_lik is not None
        else log_predictive_density_kde(draws, y_true)
    )
    return out


def rank_calibration(truth, model_idx, task_idx, draws, higher_is_better=None,
                     levels: Sequence[float] = (0.5, 0.8, 0.9), threshold: float = 0.9
                     ) -> dict[str, float]:
    """Calibration of the rank intervals of held-out cells, with the rank rule of
    :func:`heldout_ranks` (``"all_models"``: a cell's rank among every model with a score on
    the task, the other held-out cells drawn jointly with it).

    Returns ``rank_coverage_<level>``: the share of held-out cells whose true rank lies in the
    central ``level`` interval of its rank draws (integer quantiles, as
    :meth:`cppjax.posterior.ranks.RankPosterior.interval`); ``beats_right``: among the pairs of a
    held-out cell and another model's cell on its task whose ``prob_beats`` exceeds
    ``threshold`` (either way round), the share where the favoured model truly scores better
    (ties count as wrong), and ``beats_pairs``, their number. ``rank_pit_coverage_<level>``: the
    same with the randomised PIT of the integer ranks (Czado, Gneiting and Held 2009): a cell
    counts by the share of ``[P(rank < true), P(rank <= true)]`` inside the central ``level``
    band, the expectation of the randomised PIT falling there. It is nominal for a calibrated
    rank distribution, where the integer intervals over-cover by construction (both end ranks
    included; decision 0012): it judges the rank probabilities, the other the intervals shown.

    ``truth``: ``(n_models, n_tasks)`` true scores of train and held-out cells (NaN elsewhere);
    ``draws``: ``(n_draws, n_cells)`` in the same units; ``higher_is_better``: one bool per
    task (default: all True).

    Example (one task: a fixed model at 0.5, two held-out cells):
        >>> truth = np.array([[0.9], [0.1], [0.5]])
        >>> d = np.array([[0.8, 0.2], [0.7, 0.3], [0.6, 0.0], [0.95, 0.4]])
        >>> r = rank_calibration(truth, [0, 1], [0, 0], d)
        >>> r["rank_coverage_90"], r["beats_right"], r["beats_pairs"]
        (1.0, 1.0, 3)
        >>> r["rank_pit_coverage_50"]  # each rank certain and right: the PIT uniform on [0, 1]
        0.5
    """
    truth = np.asarray(truth, float)
    mi, ti = np.asarray(model_idx, int), np.asarray(task_idx, int)
    d = np.asarray(draws, float)
    hib = (np.ones(truth.shape[1], bool) if higher_is_better is None
           else np.asarray(higher_is_better, bool))
    covered = {lev: np.zeros(mi.size, bool) for lev in levels}
    pit = {lev: np.zeros(mi.size) for lev in levels}
    right = n_pairs = 0
    for j in np.unique(ti):
        sel = np.flatnonzero(ti == j)
        sign = 1.0 if hib[j] else -1.0
        col = sign * truth[:, j]
        held = np.zeros(truth.shape[0], bool)
        held[mi[sel]] = True
        fixed = np.sort(col[~np.isnan(col) & ~held])
        x = sign * d[:, sel]  # (n_draws, n_sel)
        above_fixed = fixed.size - np.searchsorted(fixed, x, side="right")
        above_held = (x[:, None, :] > x[:, :, None]).sum(axis=2)
        ranks = 1 + above_fixed + above_held
        true = 1 + (col[~np.isnan(col)][None, :] > col[mi[sel]][:, None]).sum(axis=1)
        for lev in levels:
            lo, hi = np.quantile(ranks, [(1 - lev) / 2, (1 + lev) / 2], axis=0,
                                 method="inverted_cdf")
            covered[lev][sel] = (true >= lo) & (true <= hi)
        f_lt, f_le = (ranks < true).mean(axis=0), (ranks <= true).mean(axis=0)
        mass = f_le - f_lt
        for lev in levels:
            a, b = (1 - lev) / 2, (1 + lev) / 2
            inside = np.clip(np.minimum(f_le, b) - np.maximum(f_lt, a), 0.0, None)
            pit[lev][sel] = np.where(mass > 0, inside / np.where(mass > 0, mass, 1.0),
                                     (f_le >= a) & (f_le <= b))
        # pairs: each held-out cell against every fixed model, and against each other
        p_fixed = (x[:, :, None] > fixed[None, None, :]).mean(axis=0)
        p_lose = (x[:, :, None] < fixed[None, None, :]).mean(axis=0)  # ties: neither way
        t_fixed = col[mi[sel]][:, None] > fixed[None, :]
        t_lose = col[mi[sel]][:, None] < fixed[None, :]
        right += int(((p_fixed > threshold) & t_fixed).sum()
                     + ((p_lose > threshold) & t_lose).sum())
        n_pairs += int((p_fixed > threshold).sum() + (p_lose > threshold).sum())
        p_held = (x[:, :, None] > x[:, None, :]).mean(axis=0)
        upper = np.triu(np.ones_like(p_held, bool), 1)
        t_held = col[mi[sel]][:, None] > col[mi[sel]][None, :]
        fav = upper & ((p_held > threshold) | (p_held.T > threshold))
        a_fav = p_held > threshold
        right += int((fav & np.where(a_fav, t_held, t_held.T)).sum())
        n_pairs += int(fav.sum())
    out = {f"rank_coverage_{int(round(100 * lev))}": float(covered[lev].mean())
           for lev in levels}
    out.update({f"rank_pit_coverage_{int(round(100 * lev))}": float(pit[lev].mean())
                for lev in levels})
    out["beats_right"] = float(right / n_pairs) if n_pairs else float("nan")
    out["beats_pairs"] = n_pairs
    return out
