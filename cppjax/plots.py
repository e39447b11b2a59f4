"""Figures (matplotlib). Every function takes an optional ``ax`` and returns it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

_UNIT = {"percent": "score (%)", "fraction": "score (0-1)", "unbounded": "score",
         "mixed": "score"}
#: tick labels longer than this are shortened (a 500-character name made a 5,700-pixel figure)
LABEL_CHARS = 40


def _short(names) -> list[str]:
    return [n if len(n) <= LABEL_CHARS else n[:LABEL_CHARS - 1] + "\u2026" for n in names]


def _ax(ax, size=(6, 5)):
    if ax is None:
        _, ax = plt.subplots(figsize=size)
    return ax


def observed_vs_predicted(pred, y_true, *, level: float = 0.9, ax=None):
    """Held-out truth (x) against predictive mean (y) with ``level`` interval bars, in original
    units, and the identity line."""
    ax = _ax(ax)
    y_true = np.asarray(y_true, float)
    mean = pred.mean()
    lo, hi = pred.interval(level)
    inside = (y_true >= lo) & (y_true <= hi)
    for mask, color, label in (
        (inside, "tab:blue", "truth inside interval"),
        (~inside, "tab:red", "truth outside interval"),
    ):
        if mask.any():
            ax.errorbar(
                y_true[mask],
                mean[mask],
                yerr=[mean[mask] - lo[mask], hi[mask] - mean[mask]],
                fmt="o",
                ms=3,
                lw=0.8,
                alpha=0.7,
                color=color,
                label=label,
            )
    lim = [min(y_true.min(), lo.min()), max(y_true.max(), hi.max())]
    ax.plot(lim, lim, color="0.4", lw=1, ls="--")
    unit = _UNIT[pred.matrix.scale]
    ax.set_xlabel(f"observed {unit}")
    ax.set_ylabel(f"predicted {unit} (mean, {level:.0%} interval)")
    ax.set_title(f"{pred.method}: held-out cells ({inside.mean():.0%} covered)")
    ax.legend(loc="upper left", fontsize=8)
    return ax


def rank_forest(rank_posterior, *, level: float = 0.9, top: int | None = 40, ax=None):
    """Forest plot of each model's rank on a task: posterior median and ``level`` interval;
    models whose score is observed are drawn as filled squares."""
    df = rank_posterior.to_frame(level)
    if top is not None:
        df = df.head(top)
    ax = _ax(ax, (7, max(3.0, 0.22 * len(df) + 1)))
    y = np.arange(len(df))[::-1]
    obs = df["observed"].to_numpy()
    ax.hlines(y, df["rank_lower"], df["rank_upper"], color="tab:blue", lw=2, alpha=0.6)
    ax.plot(df["rank_median"][~obs], y[~obs], "o", color="tab:blue", ms=4, label="predicted")
    ax.plot(df["rank_median"][obs], y[obs], "s", color="black", ms=4, label="observed score")
    ax.set_yticks(y)
    ax.set_yticklabels(_short(df["model"]), fontsize=7)
    ax.set_xlabel(f"rank on {rank_posterior.task} (1 = best; {level:.0%} credible interval)")
    ax.set_xlim(0.5, len(rank_posterior.models) + 0.5)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    shown = (
        f" (top {len(df)} of {len(rank_posterior.models)})"
        if top and len(rank_posterior.models) > len(df)
        else ""
    )
    ax.set_title(f"Rank posterior: {rank_posterior.task}{shown}")
    return ax


def calibration_curve(
    draws, y_true, *, levels: Sequence[float] | None = None, ax=None, label: str | None = None
):
    """Nominal against empirical coverage of central intervals (on the diagonal = calibrated)."""
    from cppjax.metrics import coverage

    ax = _ax(ax, (5, 5))
    levels = list(levels) if levels is not None else list(np.linspace(0.05, 0.95, 19))
    cov = coverage(draws, y_true, levels)
    ax.plot([0, 1], [0, 1], color="0.5", ls="--", lw=1)
    ax.plot(levels, [cov[lev] for lev in levels], "o-", ms=3, label=label)
    ax.set_xlabel("nominal coverage of central interval")
    ax.set_ylabel("empirical coverage (held-out cells)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal")
    if label:
        ax.legend(loc="upper left", fontsize=8)
    ax.set_title("Calibration")
    return ax


def completed_heatmap(pred, *, stat: str = "mean", level: float = 0.9, ax=None):
    """Models x tasks heatmap of the completed matrix: observed scores as given, predicted cells
    as their posterior ``stat`` (``"mean"``) or interval width (``"width"``); predicted cells are
    hatched-free but outlined, observed ones marked with a dot."""
    sm = pred.matrix
    mat = np.where(sm.mask, sm.scores, np.nan) if stat == "mean" else np.full(sm.shape, np.nan)
    if stat == "mean":
        mat[pred.model_idx, pred.task_idx] = pred.mean()
        title, cbar = "Completed score matrix (dots: observed)", _UNIT[sm.scale]
        cmap = "viridis"
    elif stat == "width":
        lo, hi = pred.interval(level)
        mat[pred.model_idx, pred.task_idx] = hi - lo
        title = f"Width of the {level:.0%} interval (blank: observed)"
        cbar, cmap = f"interval width ({_UNIT[sm.scale]})", "magma_r"
    else:
        raise ValueError("stat must be 'mean' or 'width'")
    if sm.scale == "mixed":  # metrics in different units: one colour scale per task
        with np.errstate(invalid="ignore", divide="ignore"):
            span = np.nanmax(sm.scores, 0) - np.nanmin(sm.scores, 0)
            span = np.where(span > 0, span, 1.0)
            if stat == "mean":
                mat = (mat - np.nanmin(mat, 0)) / np.where(
                    np.nanmax(mat, 0) > np.nanmin(mat, 0), np.nanmax(mat, 0) - np.nanmin(mat, 0),
                    1.0)
                worse_high = ~sm.task_info["higher_is_better"].to_numpy()
                mat[:, worse_high] = 1.0 - mat[:, worse_high]
                cbar = "per task: 0 = worst, 1 = best score in the table"
            else:
                mat = mat / span
                cbar = "interval width / the task's observed range"
    ax = _ax(ax, (0.28 * sm.n_tasks + 4, 0.16 * sm.n_models + 2))
    im = ax.imshow(mat, aspect="auto", cmap=cmap, interpolation="nearest")
    if stat == "mean":
        oi, oj = np.nonzero(sm.mask)
        ax.plot(oj, oi, ".", color="white", ms=1.5)
    ax.set_xticks(range(sm.n_tasks))
    ax.set_xticklabels(_short(sm.tasks), rotation=90, fontsize=6)
    ax.set_yticks(range(sm.n_models))
    ax.set_yticklabels(_short(sm.models), fontsize=5)
    ax.figure.colorbar(im, ax=ax, label=cbar, fraction=0.03)
    ax.set_title(title)
    return ax


def save_prediction_figures(post, pred, out: Path, *, rng_key, level: float = 0.9):
    """The figures of ``cppjax predict``: completed matrix, interval widths, and the rank
    posterior on the most-reported task that has unreported models (its draws from
    ``rng_key``). Returns the paths written."""
    out = Path(out)
    written = []
    for stat in ("mean", "width"):
        ax = completed_heatmap(pred, stat=stat, level=level)
        path = out / f"heatmap_{stat}.png"
        ax.figure.savefig(path, dpi=130, bbox_inches="tight")
        plt.close(ax.figure)
        written.append(path)
    sm = post.matrix
    missing = (~sm.mask).sum(axis=0)
    observed = sm.mask.sum(axis=0)
    # the most-reported task that still has unreported models: the ranking users ask about
    j = int(np.argmax(np.where(missing > 0, observed, -1)))
    models = [m for m in sm.models if m not in set(post.unplaced_models)]
    rp = post.rank(sm.tasks[j], rng_key=rng_key, models=models)
    ax = rank_forest(rp, level=level)
    path = out / "rank_forest.png"
    ax.figure.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(ax.figure)
    written.append(path)
    return written


def scaling_curve(
    post,
    family: str,
    task: str,
    *,
    level: float = 0.9,
    rng_key,
    truth=None,
    others: dict | None = None,
    color: str = "tab:blue",
    show_data: bool = True,
    legend: bool = True,
    ax=None,
):
    """A family's scores on a task against training compute (or parameters), with the scaling
    law's posterior-median curve and ``level`` predictive band.

    Args:
        post: a fitted :class:`cppjax.models.ScalingLawPosterior`.
        truth: optional ``{model: score}`` of held-out models, marked with stars.
        others: optional ``{label: Predictive}`` of other methods; their ``level`` intervals for
            this family's cells on ``task`` are drawn as bars at the models' sizes.
        color: colour of the band; ``show_data=False`` draws the band alone (to overlay a
            second scaling law on the same axes).
    """
    ax = _ax(ax, (5, 4))
    sm, lay = post.matrix, post.layout
    j = sm.task_index(task)
    f = post.families.index(family)
    members = np.flatnonzero(lay["model_family"] == f)
    axis = post.family_axis(family)
    size = lay["scale"]["x"].to_numpy(float)
    obs = members[sm.mask[members, j]]
    truth = dict(truth or {})
    xs = [size[i] for i in members]
    grid = np.geomspace(min(xs) / 2, max(xs) * 2, 60)
    draws = post.curve(family, task, grid, rng_key=rng_key)
    lo, hi = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2], axis=0)
    ax.fill_between(grid, lo, hi, color=color, alpha=0.15,
                    label=f"{post.method} {level:.0%} band")
    ax.plot(grid, np.median(draws, axis=0), color=color, lw=1.2)
    if not show_data:
        return ax
    ax.scatter(size[obs], sm.scores[obs, j], color="k", s=18, zorder=3, label="training scores")
    colors = ["tab:orange", "tab:green", "tab:purple", "tab:brown", "tab:pink"]
    for n, (label, pred) in enumerate((others or {}).items()):
        sel = (np.isin(pred.model_idx, members)) & (pred.task_idx == j)
        if not sel.any():
            continue
        mean = pred.mean()[sel]
        plo, phi = pred.interval(level)
        x = size[pred.model_idx[sel]] * 1.12 ** (n + 1)
        yerr = np.maximum(0.0, [mean - plo[sel], phi[sel] - mean])  # rounding with one draw
        ax.errorbar(x, mean, yerr=yerr, fmt="s", ms=4, lw=1,
                    capsize=2, color=colors[n % len(colors)], label=label, zorder=4)
    for m, v in truth.items():
        i = sm.model_index(m)
        if np.isfinite(v):
            ax.scatter([size[i]], [v], marker="*", s=140, color="tab:red", zorder=5,
                       label="held-out truth" if m == next(iter(truth)) else None)
    ax.set_xscale("log")
    ax.set_xlabel("training compute (FLOPs)" if axis == "compute" else "parameters")
    ax.set_ylabel(f"{task} {_UNIT[sm.scale]}")
    ax.set_title(f"{family}: {task}", fontsize=10)
    if legend:
        ax.legend(fontsize=7)
    return ax


def plan_curve(plan, *, ax=None):
    """A plan's expected uncertainty (interval width, or entropy in bits) after each pick
    against the budget spent, each pick labelled with its cell."""
    ax = _ax(ax, (7, 4.5))
    s = plan.steps
    ax.step(s["spent"], s["expected_width"], where="post", color="tab:blue", marker="o")
    for _, r in s.iloc[1:].iterrows():
        ax.annotate(_short([f"{r['task']}"])[0], (r["spent"], r["expected_width"]),
                    textcoords="offset points", xytext=(3, 4), fontsize=7, rotation=30)
    bits = plan.unit == "bits"
    ax.set_xlabel("budget spent")
    ax.set_ylabel("expected entropy (bits)" if bits else
                  f"expected {plan.level:.0%} interval width ({plan.unit})")
    ax.set_title(f"plan: {plan.target.describe()}", fontsize=9)
    ax.set_ylim(bottom=0)
    return ax


def cod_clusters(post, task: str, *, level: float = 0.9, ax=None):
    """COD on one task: each cluster's accuracy against compute (the training models' dots)
    with its law's ``level`` band out to the largest placed model; clusters left out of the
    predictable subset dashed."""
    ax = _ax(ax, (7, 4.5))
    comp = post._compute
    train = np.isfinite(post.matrix.scores[:, post.matrix.task_index(task)])
    grid = np.geomspace(comp.min(), comp.max() * 1.05, 60)
    draws, kept, acc = post.group_draws(grid, task)
    lo, hi = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2], axis=0)
    colors = plt.cm.viridis(np.linspace(0, 0.9, draws.shape[2]))
    for k in range(draws.shape[2]):
        ls = "-" if kept[k] else "--"
        ax.plot(grid, draws[:, :, k].mean(axis=0), ls, color=colors[k], lw=1.2)
        ax.fill_between(grid, lo[:, k], hi[:, k], color=colors[k], alpha=0.15 if kept[k] else 0.05)
        n = len(acc)
        ax.scatter(comp[:n][train[:n]], acc[train[:n], k], s=10, color=colors[k])
    ax.set_xscale("log")
    ax.set_xlabel("training compute (FLOPs)")
    ax.set_ylabel("cluster accuracy")
    ax.set_title(f"{task}: clusters (solid: predictable subset; band {level:.0%})", fontsize=9)
    return ax


def cod_prediction(posts: dict, task: str, *, truth=None, level: float = 0.9, ax=None):
    """The task's accuracy against compute: the training models (dots), each method's
    predictive band and its prediction for the blank rows (``posts``: name -> posterior of
    :func:`cppjax.cod.fit`; ``truth``: optional model -> true accuracy, crosses)."""
    ax = _ax(ax, (7, 4.5))
    for n, (name, post) in enumerate(posts.items()):
        sm, comp = post.matrix, post._compute
        j = sm.task_index(task)
        obs = np.isfinite(sm.scores[:, j])
        if n == 0:
            ax.scatter(comp[obs], sm.scores[obs, j], s=12, color="k", label="training models")
        grid = np.geomspace(comp.min(), comp.max() * 1.05, 60)
        d = post.accuracy_draws(grid, task, rng_key=n)
        lo, hi = np.quantile(d, [(1 - level) / 2, (1 + level) / 2], axis=0)
        line, = ax.plot(grid, d.mean(axis=0), label=name)
        ax.fill_between(grid, lo, hi, color=line.get_color(), alpha=0.15)
        for i in np.flatnonzero(~obs):
            di = post.accuracy_draws(comp[i:i + 1], task, rng_key=n)[:, 0]
            a, b = np.quantile(di, [(1 - level) / 2, (1 + level) / 2])
            m = di.mean()
            ax.errorbar(comp[i] * (1 + 0.04 * n), m, yerr=[[m - a], [b - m]], fmt="o",
                        color=line.get_color(), capsize=3)
    for model, value in (truth or {}).items():
        post = next(iter(posts.values()))
        i = post.matrix.model_index(model)
        ax.scatter([post._compute[i]], [value], marker="x", s=60, color="red",
                   label="truth" if model == next(iter(truth)) else None, zorder=5)
    ax.set_xscale("log")
    ax.set_xlabel("training compute (FLOPs)")
    ax.set_ylabel("task accuracy")
    ax.set_title(f"{task}: predictions with {level:.0%} intervals", fontsize=9)
    ax.legend(fontsize=7)
    return ax


def factor_importance(result, ax=None, title: str | None = None):
    """Shapley values of factor groups (:func:`cppjax.importance.shapley`): a bar per group,
    its spread over seeds as an error bar, model and task groups in two colours."""
    import matplotlib.pyplot as plt

    t = result.table.iloc[::-1]
    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 0.35 * len(t) + 1.2))
    colours = ["tab:blue" if s == "model" else "tab:orange" for s in t["side"]]
    ax.barh(t["group"], t["shapley"], xerr=t["shapley_sd"], color=colours, alpha=0.85)
    ax.axvline(0, color="k", lw=0.8)
    ax.set_xlabel("reduction of held-out squared error (normalised units)")
    ax.set_title(title or f"factor importance (error {result.v_empty:.4f} without factors, "
                 f"{result.v_full:.4f} with all)", fontsize=9)
    from matplotlib.patches import Patch

    ax.legend(handles=[Patch(color="tab:blue", label="model factors"),
                       Patch(color="tab:orange", label="task factors")], fontsize=8,
              loc="lower right")
    ax.figure.tight_layout()
    return ax
