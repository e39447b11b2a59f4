"""The training table's own version of the question its missing cells ask: the backtest split
of :func:`cppjax.fit("auto") <cppjax.stacking.Stack>` (rules and measurements:
``docs/decisions/0014-stacking-by-backtest.md``)."""

from __future__ import annotations

import jax
import numpy as np
import pandas as pd

from cppjax.data import ScoreMatrix
from cppjax.errors import DataError
from cppjax.inference.keys import as_key
from cppjax.models.scaling_mf import compute_axis
from cppjax.splits import Split, split_cells

MIN_MODELS = 8  # fewer models with a score cannot be backtested
#: a backtest aims at this many held-out cells: the calibration fits a few global terms and a
#: scale per task on them; a rebuilt frontier with fewer holds out all of its models' tasks,
#: a random backtest up to a quarter of the table
MIN_CELLS = 20
#: fewer held-out cells than this cannot calibrate anything: a rebuilt frontier then takes the
#: next models down the compute axis too (up to MIN_CELLS cells, said in the protocol); a
#: table that still cannot give them is refused by the stack (DataError)
MIN_BACKTEST_CELLS = 5


def backtest_split(sm: ScoreMatrix, kind: str = "auto", share: float = 0.2, rng_key=0):
    """The training table's own version of the question asked by its missing cells.

    Returns ``(split, protocol)``: a :class:`cppjax.splits.Split` of the observed cells and a
    dict (``kind``, the held-out ``models``, ``revealed`` scores kept per model and why)."""
    if kind not in ("auto", "frontier", "random", "new_task"):
        raise ValueError(f"kind must be 'auto', 'frontier', 'random' or 'new_task'; got "
                         f"{kind!r}")
    n_obs = sm.mask.sum(axis=1)
    if (n_obs > 0).sum() < MIN_MODELS:
        raise DataError(f"backtesting needs at least {MIN_MODELS} models with a score; the "
                        f"table has {int((n_obs > 0).sum())}: fit one method instead "
                        f"(e.g. cppjax.fit('pmf_svi', train, rng_key=0))")
    rng = np.random.default_rng(np.asarray(jax.random.key_data(as_key(rng_key))).ravel())
    mi, ti = sm.missing()
    asked = np.unique(mi)
    z, placed, _ = compute_axis(sm)
    placed = placed > 0
    pool = np.flatnonzero((n_obs > 0) & ~np.isin(np.arange(sm.n_models), asked))
    if pool.size < MIN_MODELS:  # every model has a missing cell: draw from all with scores
        pool = np.flatnonzero(n_obs > 1)
    top, largest = _beyond(sm, asked, pool, z, placed, share)
    run = runs(sm)
    latest = _latest_of_run(asked, pool, z, placed, run)
    beyond = top | largest | latest
    # each asked model counts by its asked cells: a stray missing cell is not the question
    n_asked = np.bincount(mi, minlength=sm.n_models)[asked].astype(float)
    wt = n_asked / max(n_asked.sum(), 1.0)
    empty = ~sm.mask.any(axis=0)  # a task without scores is in the table to be predicted:
    if kind == "new_task" or kind == "auto" and empty.any():  # the hardest question it asks
        return _new_task_split(sm, empty, rng)
    if kind == "auto":
        kind = "frontier" if asked.size and wt @ beyond >= 0.5 else "random"
    far = np.isin(mi, asked[beyond])  # the tasks asked of the models beyond the frontier
    per_task = np.bincount(ti[far] if far.any() else ti, minlength=sm.n_tasks)
    tasks_asked = per_task >= 0.25 * per_task.max() if ti.size else np.zeros(sm.n_tasks, bool)
    if not tasks_asked.any():
        tasks_asked[:] = True
    if kind == "random":
        obs_i, obs_j = np.nonzero(sm.mask)
        n_hold = max(1, int(round(0.1 * obs_i.size)))
        if n_hold < MIN_CELLS:  # a small table: up to a quarter of it
            n_hold = max(n_hold, min(MIN_CELLS, int(round(0.25 * obs_i.size))))
        held = rng.permutation(obs_i.size)[:n_hold]
        held_i, held_j = obs_i[held], obs_j[held]
        models = sorted({sm.models[i] for i in held_i})
        why = (f"the asked cells sit inside the table: {n_hold / obs_i.size:.0%} of the "
               f"observed cells at random")
        keep = _keep_tasks_alive(sm, held_i, held_j)
        split = split_cells(sm, held_i[keep], held_j[keep], "backtest(random)", {}, "train")
        return split, {"kind": "random", "models": models, "why": why}
    chosen, how = (_run_latest(pool, z, placed, run) if wt @ latest >= 0.5 else (None, None))
    if chosen is None:
        chosen, how = _frontier_models(sm, pool, z, placed, share,
                                       by_family=bool(wt @ largest >= 0.75
                                                      or wt @ largest > wt @ top))
    k_keep = (int(np.median(np.repeat(sm.mask[asked].sum(axis=1), n_asked.astype(int))))
              if asked.size else 0)
    held_i, held_j, keep = _held_cells(sm, chosen, tasks_asked, k_keep, rng)
    widened = ""
    if keep.sum() < MIN_CELLS and not tasks_asked[sm.mask[chosen].any(axis=0)].all():
        # the asked tasks give too few cells to calibrate on: every task of those models
        widened = (f"; every task of those models (the asked tasks gave {int(keep.sum())} "
                   f"cells, fewer than {MIN_CELLS})")
        tasks_asked = np.ones(sm.n_tasks, bool)
        held_i, held_j, keep = _held_cells(sm, chosen, tasks_asked, k_keep, rng)
    if keep.sum() < MIN_BACKTEST_CELLS:
        # too few to calibrate on at all (the asked models miss one or two scores each): the
        # next models down the compute axis too, one at a time, until there are enough cells
        n0, chosen = len(chosen), list(chosen)
        down = pool[np.argsort(-np.where(placed[pool], z[pool], -np.inf), kind="stable")]
        taken = set(chosen)
        rest = [i for i in down if i not in taken]
        while keep.sum() < MIN_CELLS and rest:
            chosen.append(rest.pop(0))
            held_i, held_j, keep = _held_cells(sm, chosen, tasks_asked, k_keep, rng)
        widened += (f"; {len(chosen) - n0} more models down the compute axis (for "
                    f"{int(keep.sum())} cells)")
    split = split_cells(sm, held_i[keep], held_j[keep], "backtest(frontier)", {}, "train")
    why = (f"of the asked cells, {wt @ top:.0%} are of models in the top {share:.0%} by compute, "
           f"{wt @ largest:.0%} of their family's largest (no score: both) and {wt @ latest:.0%} "
           f"of a run's next checkpoint; held out: "
           + {"family": "each family's largest", "run": "each run's latest checkpoint"}.get(
               how, f"the top {share:.0%}") + widened)
    # the held-out models that resemble the asked ones most: the stack sets its spread on them
    near = (nearest_runs(np.asarray(chosen, int), z, asked[latest & placed[asked]])
            if how == "run" else chosen)
    return split, {"kind": "frontier", "held_out": how,
                   "models": [sm.models[i] for i in chosen],
                   "nearest": [sm.models[i] for i in near],
                   "revealed_per_model": k_keep, "why": why}


def _beyond(sm, asked, pool, z, placed, share):
    """For each asked model: ``(top, largest)``: among the pool's top compute ``share``, and
    above every placed member of its family in the pool (a model with no score counts as both)."""
    top = np.zeros(asked.size, bool)
    largest = np.zeros(asked.size, bool)
    if asked.size == 0:
        return top, largest
    cold = sm.mask[asked].sum(axis=1) == 0
    pz = z[pool][placed[pool]]
    if pz.size:
        top |= placed[asked] & (z[asked] >= np.quantile(pz, 1.0 - share))
    fam = families(sm)
    if fam is not None:
        for n, i in enumerate(asked):
            sib = pool[(fam[pool] == fam[i]) & placed[pool]]
            largest[n] = bool(placed[i] and sib.size and z[i] > z[sib].max())
    return top | cold, largest | cold


def runs(sm):
    """Each model's training run on a ladder of checkpoints: its family and parameter count,
    where some model shares both with another (None where no two do, or no parameters)."""
    mf = sm.model_factors
    if "parameters" not in mf:
        return None
    fam = families(sm)
    par = np.asarray(pd.to_numeric(mf["parameters"], errors="coerce"), float)
    label = np.array([f"{'' if fam is None else fam[i]}|{par[i]:.6g}" if np.isfinite(par[i])
                      else "" for i in range(sm.n_models)], dtype=object)
    _, counts = np.unique(label[label != ""], return_counts=True)
    return label if counts.size and counts.max() > 1 else None


def _latest_of_run(asked, pool, z, placed, run):
    """For each asked model: a later checkpoint of a run with placed checkpoints in the pool
    (beyond every one of them in compute)."""
    latest = np.zeros(asked.size, bool)
    if run is None:
        return latest
    for n, i in enumerate(asked):
        sib = pool[(run[pool] == run[i]) & placed[pool]] if run[i] else pool[:0]
        latest[n] = bool(placed[i] and sib.size and z[i] > z[sib].max())
    return latest


def _run_latest(pool, z, placed, run):
    """Each run's latest placed checkpoint in the pool (runs of 3 or more placed checkpoints),
    or ``(None, None)`` when fewer than 2 runs qualify."""
    chosen = _largest_per_group(pool, z, placed, run)
    return (chosen, "run") if chosen.size >= 2 else (None, None)


def nearest_runs(chosen, z, asked):
    """Of the held-out latest checkpoints ``chosen``, those of the runs nearest in compute to
    the ``asked`` checkpoints: the nearer half (ties at the cut kept, at least 2). A small
    run's checkpoints move more from one to the next than a large run's; on Pythia the ladder
    backtest's error over every run was 1.7x the asked frontier's, and the stack's spread set
    on them over-covered (decision 0026)."""
    if asked.size == 0 or chosen.size <= 2:
        return chosen
    gap = np.min(np.abs(z[chosen][:, None] - z[asked][None, :]), axis=1)
    cut = np.sort(gap)[max(2, -(-chosen.size // 2)) - 1]
    return chosen[gap <= cut + 1e-9]


def _largest_per_group(pool, z, placed, labels):
    """The largest-compute placed member in the pool of each named group (``labels``) with 3 or
    more placed members there: the one held out, two left to extrapolate from."""
    chosen = []
    for g in np.unique(labels[pool]):
        members = pool[(labels[pool] == g) & placed[pool]]
        if g not in ("", "nan") and members.size >= 3:
            chosen.append(int(members[np.argmax(z[members])]))
    return np.array(sorted(chosen), int)


def families(sm):
    """Each model's family (strings), or None where the table has no family factor."""
    f = sm.model_factors.get("family")
    return None if f is None else f.astype(str).to_numpy()


def _frontier_models(sm, pool, z, placed, share, by_family):
    """Each family's largest placed model (families with 3 or more placed members in the pool)
    when ``by_family``, else (or when fewer than 2 such families) the pool's top ``share`` by
    compute (by mean share of the range where no compute is known)."""
    fam = families(sm)
    if by_family and fam is not None:
        chosen = _largest_per_group(pool, z, placed, fam)
        if chosen.size >= 2:
            return chosen, "family"
    if placed[pool].sum() >= 4:
        cand = pool[placed[pool]]
        strength = z[cand]
    else:
        cand = pool
        with np.errstate(all="ignore"):
            strength = np.nanmean(_shares(sm)[cand], axis=1)
    n_top = int(np.clip(round(share * cand.size), 2, max(2, cand.size // 2)))
    return np.sort(cand[np.argsort(-strength, kind="stable")[:n_top]]), "top"


def _shares(sm):
    lo, hi = sm.task_info["lower"].to_numpy(float), sm.task_info["upper"].to_numpy(float)
    obs = np.where(sm.mask, sm.scores, np.nan)
    with np.errstate(all="ignore"):
        lo = np.where(np.isfinite(lo), lo, np.nanmin(obs, axis=0))
        hi = np.where(np.isfinite(hi), hi, np.nanmax(obs, axis=0))
    return (obs - lo) / np.where(hi > lo, hi - lo, 1.0)


def _held_cells(sm, chosen, tasks, k_keep, rng):
    """The cells of the ``chosen`` models on ``tasks`` held out, ``k_keep`` scores of each
    model left revealed; ``keep``: which of them can go (:func:`_keep_tasks_alive`)."""
    held_i, held_j = [], []
    for i in chosen:
        obs = np.flatnonzero(sm.mask[i])
        hide = obs[tasks[obs]]
        kept = obs.size - hide.size
        if kept < k_keep and hide.size:
            back = rng.permutation(hide.size)[: k_keep - kept]
            hide = np.delete(hide, back)
        held_i.extend([i] * hide.size)
        held_j.extend(hide.tolist())
    held_i, held_j = np.asarray(held_i, int), np.asarray(held_j, int)
    return held_i, held_j, _keep_tasks_alive(sm, held_i, held_j)


def _keep_tasks_alive(sm, held_i, held_j, min_left: int = 3):
    """Which held cells can go: a task keeps at least ``min_left`` training scores."""
    keep = np.ones(held_i.size, bool)
    left = sm.mask.sum(axis=0).astype(int)
    for n, j in enumerate(held_j):
        if left[j] <= min_left:
            keep[n] = False
        else:
            left[j] -= 1
    return keep


def _new_task_split(sm: ScoreMatrix, empty, rng):
    """The question "a task no model has a score on" asked of the table: a fifth of its tasks
    with scores (at least 2) held out whole, each made a task without scores whose range is
    borrowed as the asked one's is (decision 0029), not read from its held-out scores."""
    have = np.flatnonzero(~empty)
    if have.size < 3:
        raise DataError(f"backtesting a new task needs at least 3 tasks with scores; the table "
                        f"has {have.size}: fit one method instead (e.g. cppjax.fit('pmf_svi', "
                        f"train, rng_key=0))")
    tasks = np.sort(rng.permutation(have)[:max(2, int(round(0.2 * have.size)))])
    held_i, held_j = np.nonzero(sm.mask[:, tasks])
    held_j = tasks[held_j]
    scores = np.array(sm.scores)
    scores[held_i, held_j] = np.nan
    norm = "auto" if sm.normalization.auto else sm.normalization.kind
    train = ScoreMatrix(scores, sm.models, sm.tasks, sm.model_factors, sm.task_factors,
                        scale=sm.scale, normalization=norm, source=sm.source,
                        task_info=sm.task_info)
    test = np.full(sm.shape, np.nan)
    test[held_i, held_j] = sm.scores[held_i, held_j]
    split = Split("backtest(new_task)", train, train.with_scores(test),
                  {"normalization": "train"})
    names = [sm.tasks[j] for j in tasks]
    return split, {"kind": "new_task", "models": sorted({sm.models[i] for i in held_i}),
                   "tasks": names, "why": f"the asked cells are on tasks without scores: "
                                          f"{len(names)} tasks with scores held out whole, "
                                          f"their ranges borrowed"}
