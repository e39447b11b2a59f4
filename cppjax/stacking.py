"""Predictors chosen, combined and calibrated by backtesting on the training table's own frontier.

``cppjax.fit("auto", train, rng_key=0)`` (or ``Stack(...)``) does what a careful analyst does
before trusting an extrapolation:

1. **Rebuild the question inside the training table.** The cells asked (the missing cells of
   ``train``) are read for their pattern: do they belong to models beyond the training frontier
   (the top compute share, each family's largest, models with no score at all), and how many of
   their scores are known? The same pattern is then cut out of the *observed* table: its
   top-compute models and each family's largest model are held out on the tasks asked, keeping
   as many of their scores as the asked models have ("frontier" backtest); where the asked cells
   sit inside the table, a random share of cells is held out instead ("random").
2. **Score every candidate on it** (ScalingMF, PMF, NCF with factors, the hierarchical scaling
   law, the PC-sigmoid of observational scaling laws, copy-the-largest-sibling; see
   :data:`DEFAULT_CANDIDATES`), fitted once on the backtest table and once on the full table, the
   compiled programs of one inference object reused between the two; each reads the table in
   the normalisation its model prefers (``ModelSpec.preferred_normalization``: PMF a percent
   table's tasks through the logit, decision 0023), its draws compared in the table's units.
3. **Calibrate each candidate's intervals on the backtest residuals**, in a space where the
   errors are comparable across tasks (the logit of the share of a bounded task's range, a
   standardised score otherwise): the candidate's own spread scaled by ``alpha`` plus an
   extrapolation term growing with the distance in log compute beyond the task's training
   frontier, with family novelty and with having no score at all (Student-t, its degrees of
   freedom chosen by the same likelihood). A point predictor gets its intervals this way too.
4. **Combine**: Bayesian stacking (Yao et al., 2018) of the calibrated predictive densities on
   the backtest cells, averaged over a Bayesian bootstrap of the held-out models and pulled
   towards equal weights by a Dirichlet prior (``prior_weight``), or selection of the best
   (``combine="select"``). A draw of the stack is a draw of one candidate (chosen with its
   weight; the same candidate for every cell of the draw, so joint draws, ranks and planning
   stay coherent), its spread around the median scaled by the factor that maximises the
   backtest log score (a mixture of candidates that disagree is wider than each) on the held-out
   models nearest the asked ones (on a checkpoint ladder, the nearer half of the runs). The
   weights, the spread factor, the backtest scores and the calibration are in ``diagnostics``.

Why and with what figures: ``docs/decisions/0014-stacking-by-backtest.md``,
``docs/decisions/0016-backtest-that-asks-the-question.md``,
``docs/decisions/0019-spread-by-log-score-and-unseen-references.md`` and
``docs/decisions/0026-ladder-spread-on-the-nearest-runs.md``.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from typing import ClassVar

import jax
import numpy as np
from scipy import optimize, special, stats

from cppjax.backtest import MIN_BACKTEST_CELLS, backtest_split, families
from cppjax.data import ScoreMatrix
from cppjax.errors import DataError
from cppjax.inference.keys import as_key
from cppjax.inference.objects import progress_enabled
from cppjax.models.base import ModelSpec
from cppjax.models.baselines import BASELINES
from cppjax.models.registry import METHODS, make_spec
from cppjax.models.scaling_mf import compute_axis
from cppjax.posterior import NotSaveable, Posterior
from cppjax.stack_transform import Transform as _Transform

#: the candidates of ``fit("auto")``: fast enough to fit twice per table at OSL size in about a
#: minute on 2 cores (docs/decisions/0014-stacking-by-backtest.md)
DEFAULT_CANDIDATES = ("scaling_mf_svi", "pmf_svi", "ncf_factors", "scaling_law_hierarchical_map",
                      "pc_sigmoid", "copy_sibling")
#: candidates that place models by training compute or family size: skipped when the table has
#: no compute for any model
NEEDS_COMPUTE = ("scaling_mf", "scaling_law")
#: Student-t degrees of freedom the calibration chooses among (by the backtest likelihood)
DFS = (2.5, 4.0, 8.0, 30.0)
TASK_SD = 0.5  # prior sd of a task's log scale of the calibrated spread


@dataclasses.dataclass(frozen=True)
class Stack(ModelSpec):
    """Candidates chosen and calibrated by backtesting (see the module docstring).

    Args:
        candidates: method names (:data:`cppjax.models.registry.METHODS`, ``"copy_sibling"``,
            ``"pc_sigmoid"``) or ``(name, spec, inference)`` triples.
        backtest: ``"auto"`` (read from the cells asked), ``"frontier"``, ``"random"`` or
            ``"new_task"`` (tasks held out whole, their ranges borrowed: decision 0029).
        combine: ``"stacking"`` (weights on the backtest log predictive density) or
            ``"select"`` (the best candidate only).
        calibrate: widen (or narrow) each candidate's intervals by its backtest residuals; if
            False, a point candidate's intervals have zero width.
        share: the share of placed models held out as the frontier in the backtest.
        prior_weight: the strength of a symmetric Dirichlet prior on the stacking weights, as a
            share of the backtest's evidence (0: plain stacking; the weights move towards equal
            weights as it grows; decision 0016).
        n_draws: predictive draws per cell.
    """

    candidates: tuple = DEFAULT_CANDIDATES
    backtest: str = "auto"
    combine: str = "stacking"
    calibrate: bool = True
    share: float = 0.2
    prior_weight: float = 0.5
    n_draws: int = 400
    kind: ClassVar[str] = "stack"

    def __post_init__(self):
        if self.backtest not in ("auto", "frontier", "random", "new_task"):
            raise ValueError(f"backtest must be 'auto', 'frontier', 'random' or 'new_task'; "
                             f"got {self.backtest!r}")
        if self.combine not in ("stacking", "select"):
            raise ValueError(f"combine must be 'stacking' or 'select'; got {self.combine!r}")
        if not 0.0 < self.share < 1.0:
            raise ValueError(f"share must be in (0, 1); got {self.share}")
        if not (isinstance(self.prior_weight, int | float) and self.prior_weight >= 0):
            raise ValueError(f"prior_weight must be a number >= 0; got {self.prior_weight!r}")
        if not self.candidates:
            raise ValueError("a Stack needs at least one candidate")
        for c in self.candidates:
            if isinstance(c, str) and c not in METHODS and c not in BASELINES:
                raise ValueError(f"unknown candidate {c!r}; choose from "
                                 f"{', '.join([*METHODS, *BASELINES])}")

    def resolve_inference(self, inference=None, method: str | None = None):
        if inference is not None or method is not None:
            raise TypeError("a Stack takes no inference: each candidate carries its own "
                            "(give (name, spec, inference) triples to choose them)")
        return None

    def method_name(self, inference) -> str:
        return "auto" if self.candidates == DEFAULT_CANDIDATES else "stack"

    def _made(self):
        """The (name, spec, inference) of each candidate, made once per Stack so that its
        compiled programs serve every fit of this Stack."""
        made = self.__dict__.setdefault("_candidates", [])
        if not made:
            for c in self.candidates:
                if isinstance(c, str) and c in BASELINES:
                    made.append((c, BASELINES[c](), None))
                elif isinstance(c, str):
                    made.append((c, *make_spec(c)))
                else:
                    made.append(tuple(c))
        return made

    def fit(self, train: ScoreMatrix, *, rng_key, inference=None, method=None,
            progress: bool | None = None) -> StackPosterior:
        """Backtest, calibrate and fit every candidate on ``train`` (see the module
        docstring)."""
        self.resolve_inference(inference, method)
        t0 = time.perf_counter()
        key_bt, key_fit, key_pred = jax.random.split(as_key(rng_key), 3)
        split, protocol = backtest_split(train, self.backtest, self.share, key_bt)
        if (n_bt := int(split.test.mask.sum())) < MIN_BACKTEST_CELLS:
            raise DataError(
                f"the backtest could hold out only {n_bt} cells (at least {MIN_BACKTEST_CELLS} "
                f"are needed to calibrate on): a table of {train.n_models} models and "
                f"{int(train.mask.sum())} scores is too small to choose a method by "
                f"backtesting; fit one method instead, e.g. cppjax.fit('pmf_svi', train, "
                f"rng_key=0)")
        say = _printer(progress)
        say(f"stack: backtest '{protocol['kind']}' holds out {n_bt} cells "
            f"of {len(protocol['models'])} models; {len(self._made())} candidates")
        has_compute = bool(compute_axis(train)[1].any())
        mi_bt, ti_bt = np.nonzero(split.test.mask)
        feats_bt = _features(split.train, mi_bt, ti_bt)
        y_bt = split.test.scores[split.test.mask]
        tr = _Transform(train)
        fits, scores, calib, skipped, logdens, resid = {}, {}, {}, {}, {}, {}
        for n, (name, spec, inf) in enumerate(self._made()):
            if not has_compute and name.startswith(NEEDS_COMPUTE):
                skipped[name] = ("needs a size axis: give each model's 'parameters' (and "
                                 "'tokens' or 'flops') as model factors")
                say(f"stack: {name} skipped: {skipped[name]}")
                continue
            say(f"stack: [{n + 1}/{len(self._made())}] {name}")
            k1, k2, k3 = jax.random.split(jax.random.fold_in(key_fit, n), 3)
            # each candidate reads the table in the normalisation its model prefers (PMF: a
            # bounded task through the logit; decision 0023); its draws come back in the
            # table's units, so the stack compares them all the same way
            prefer = spec.normalization_for(inf) if hasattr(spec, "normalization_for") else None
            try:
                bt = spec.fit(split.train.renormalized(prefer), rng_key=k1, inference=inf,
                              progress=False)
                full = spec.fit(train.renormalized(prefer), rng_key=k2, inference=inf,
                                progress=False)
                draws = candidate_draws(bt, split.test, k3)
            except (ValueError, KeyError, DataError, np.linalg.LinAlgError,
                    FloatingPointError) as e:  # one candidate that fails does not stop the rest
                skipped[name] = f"{type(e).__name__}: {str(e).splitlines()[0][:160]}"
                say(f"stack: {name} skipped: {skipped[name]}")
                continue
            m, s = tr.moments(draws, ti_bt)
            e = tr.forward(y_bt, ti_bt) - m
            ok = np.isfinite(m)
            if ok.sum() < 5:
                skipped[name] = f"predicts only {int(ok.sum())} backtest cells"
                continue
            par = (_calibrate(e[ok], s[ok], feats_bt[ok], ti_bt[ok], train.n_tasks)
                   if self.calibrate else _raw(train.n_tasks))
            sd = _scale(par, s, feats_bt, ti_bt)
            df = par[2]
            logdens[name] = np.where(ok, stats.t.logpdf(e, df, scale=np.where(ok, sd, 1.0)),
                                     np.nan)
            resid[name] = (e, np.where(ok, sd, 1.0), df)
            lo, hi = stats.t.interval(0.9, df, loc=m, scale=sd)
            med = tr.inverse(m, ti_bt)
            scores[name] = {
                "cells": int(ok.sum()),
                "mae": float(np.nanmean(np.abs(med - y_bt))),
                "lpd": float(np.nanmean(logdens[name])),
                "coverage_90": float(np.mean(((e + m >= lo) & (e + m <= hi))[ok])),
            }
            fits[name], calib[name] = full, par
        if not fits:
            raise DataError(f"no candidate could be fitted: {skipped}")
        names = list(fits)
        L = np.column_stack([logdens[c] for c in names])
        common = np.isfinite(L).all(axis=1)
        rng = np.random.default_rng(np.asarray(jax.random.key_data(key_bt)).ravel())
        groups = mi_bt[common]
        w = _weights(L[common], self.combine, groups, self.prior_weight, rng)
        weights = {c: float(x) for c, x in zip(names, w, strict=True)}
        # the spread is set on the held-out models that resemble the asked ones most (on a
        # ladder, the runs nearest in compute; decision 0026), the weights on every one
        near = common & np.isin(mi_bt, [train.model_index(m)
                                        for m in protocol.get("nearest", ())])
        sel = near if near.sum() >= MIN_BACKTEST_CELLS else common
        kappa = (_sharpness([tuple(a[sel] if np.ndim(a) else a for a in resid[c])
                             for c in names], w, rng) if self.calibrate else 1.0)
        say("stack: weights " + ", ".join(f"{c} {x:.2f}" for c, x in weights.items() if x > .005)
            + f"; spread x {kappa:.2f}")
        info = {"backtest": {**protocol, "cells": int(common.sum()), "candidates": scores},
                "weights": weights, "spread": kappa,
                "calibration": {c: {**dict(zip(_PARAMS, map(float, calib[c][0]), strict=True)),
                                    "df": float(calib[c][2]),
                                    "task_scale": dict(zip(train.tasks,
                                                           np.exp(calib[c][1]).round(3).tolist(),
                                                           strict=True))}
                                for c in names},
                "skipped": skipped}
        return StackPosterior(train, self, None, fits, weights, calib,
                              time.perf_counter() - t0, info, key_pred, kappa, feats_bt)


# -- calibration -------------------------------------------------------------------------------
_PARAMS = ("alpha", "tau", "tau_distance", "tau_new_family", "tau_no_score")


def _raw(n_tasks):
    return np.array([1.0, 1e-6, 0.0, 0.0, 0.0]), np.zeros(n_tasks), 1e6


def _features(train: ScoreMatrix, mi, ti):
    """Per cell: log-compute distance beyond the frontier of what is known of the model's kind
    on the task (standardised units): beyond its family's largest placed model with a score on
    the task where there is one, else beyond the task's training frontier (a larger member of a
    family is as far from its known sibling as the model is; decision 0016); whether no model of
    the family has a score on the task; whether the model has no score."""
    z, placed, _ = compute_axis(train)
    placed = placed > 0
    has = train.mask & placed[:, None]
    with np.errstate(all="ignore"):
        front = np.where(has.any(axis=0), np.max(np.where(has, z[:, None], -np.inf), axis=0), 0.0)
    front = front[ti]
    fam = families(train)
    new_fam = np.zeros(mi.size)
    if fam is not None:  # families x tasks: does any member have a score (one pass, no loop)
        _, code = np.unique(fam, return_inverse=True)
        present = np.zeros((code.max() + 1, train.n_tasks), bool)
        oi, oj = np.nonzero(train.mask)
        present[code[oi], oj] = True
        new_fam = (~present[code[mi], ti]).astype(float)
        fam_front = np.full(present.shape, -np.inf)
        pi, pj = np.nonzero(has)
        named = ~np.isin(fam[pi], ("", "nan"))
        np.maximum.at(fam_front, (code[pi[named]], pj[named]), z[pi[named]])
        own = fam_front[code[mi], ti]
        anchored = np.isfinite(own).astype(float)
        front = np.where(np.isfinite(own), own, front)
    else:
        anchored = np.zeros(mi.size)
    dist = np.where(placed[mi], np.maximum(0.0, z[mi] - front), 0.0)
    cold = (train.mask.sum(axis=1) == 0)[mi].astype(float)
    return np.column_stack([dist, new_fam, cold, anchored])


def _in_backtest_terms(feats, feats_bt):
    """Test features with the distance of a cell whose reference (a family member, or the task's
    frontier) no backtest cell had replaced by the backtest's mean distance: the distance term
    was fitted on the other reference, and growing it along a distance it never saw widened
    leave-family-out's intervals to 0.99 coverage (decision 0019)."""
    out = feats.copy()
    unseen = ~np.isin(feats[:, 3], np.unique(feats_bt[:, 3]))
    out[unseen, 0] = feats_bt[:, 0].mean()
    return out


def _scale(par, s, feats, tj):
    """The calibrated spread of each cell: ``par = (global terms, per-task log scale, df)``."""
    g, b = par[:2]
    var = ((g[0] * s) ** 2 + g[1] ** 2 + (g[2] * feats[:, 0]) ** 2
           + g[3] ** 2 * feats[:, 1] + g[4] ** 2 * feats[:, 2])
    return np.sqrt(var) * np.exp(b[tj])


def _calibrate(e, s, feats, tj, n_tasks):
    """``alpha``, ``tau``, the extrapolation terms (a term whose feature does not vary stays at
    zero), a log scale per task (shrunk to 0 with sd ``TASK_SD``) and the degrees of freedom
    (among :data:`DFS`), maximising the Student-t likelihood of the backtest residuals ``e``."""
    fits = [_calibrate_df(e, s, feats, tj, n_tasks, df) for df in DFS]
    return min(fits, key=lambda f: f[1])[0]


def _calibrate_df(e, s, feats, tj, n_tasks, df):
    # a term whose feature does not vary over the backtest cells cannot be told from tau: it
    # stays at zero (else the test cells without the feature get a share of the spread that the
    # backtest never separated; decision 0016)
    active = np.array([bool(s.max() > 0), True, *(np.ptp(feats[:, :3], axis=0) > 0)])
    tasks = np.unique(tj)
    n_g = int(active.sum())

    def unpack(p):
        g = np.zeros(5)
        g[active] = np.exp(p[:n_g])
        b = np.zeros(n_tasks)
        b[tasks] = p[n_g:]
        return g, b

    def nll(p):
        sd = _scale(unpack(p), s, feats, tj)
        return (-stats.t.logpdf(e, df, scale=sd).sum() + 0.5 * (p[:n_g] ** 2).sum() * 1e-2
                + 0.5 * (p[n_g:] ** 2).sum() / TASK_SD ** 2)

    x0 = np.concatenate([np.log(np.full(n_g, max(float(np.std(e)), 1e-3))),
                         np.zeros(tasks.size)])
    if active[0]:
        x0[0] = 0.0
    res = optimize.minimize(nll, x0, method="L-BFGS-B",
                            bounds=[(-7, 5)] * n_g + [(-3, 3)] * tasks.size)
    return (*unpack(res.x), df), float(res.fun)


N_BOOT = 100  # Bayesian-bootstrap replicates of the backtest's held-out models


def _weights(L, combine, groups, prior_weight, rng):
    """Stacking weights maximising sum_n log sum_c w_c p_c(y_n) (EM), or a one-hot choice.

    The backtest's cells of one held-out model are not independent, so the weights are averaged
    over Bayesian-bootstrap replicates of the held-out *models* (each model's cells share its
    Dirichlet weight), and each replicate's EM carries a symmetric Dirichlet prior worth
    ``prior_weight`` of the evidence: plain stacking put all the weight on a candidate that a
    backtest of a few models favoured; equal weights won on 4 of 6 suite protocols (decision
    0016)."""
    C = L.shape[1]
    if combine == "select" or C == 1:
        w = np.zeros(C)
        w[int(np.argmax(L.mean(axis=0)))] = 1.0
        return w
    _, g = np.unique(groups, return_inverse=True)
    n_cells = np.bincount(g)
    boot = rng.dirichlet(np.ones(n_cells.size), size=N_BOOT)[:, g] / n_cells[g]  # (B, N)
    boot /= boot.sum(axis=1, keepdims=True)
    w = np.full((N_BOOT, C), 1.0 / C)
    for _ in range(500):  # EM, every replicate at once
        a = np.log(np.maximum(w, 1e-300))[:, None, :] + L[None]
        r = np.exp(a - special.logsumexp(a, axis=2, keepdims=True))
        w_new = (np.einsum("bn,bnc->bc", boot, r) + prior_weight / C) / (1.0 + prior_weight)
        if np.abs(w_new - w).max() < 1e-6:
            w = w_new
            break
        w = w_new
    w = w.mean(axis=0)
    w = np.where(w < 1e-3, 0.0, w)
    return w / w.sum()


def _sharpness(resid, w, rng, n_draws: int = 300):
    """The factor on the stack's spread around its median that maximises the backtest log
    predictive density of the scaled mixture: a mixture of calibrated candidates that disagree
    is wider than each of them (decision 0016). The CRPS chose 0.5-0.55 where the mixture's
    centre was good and left OSL largest-of-family at 0.38 / 0.80 coverage; the log score
    weighs the tails (decision 0019). ``resid``: per candidate ``(e, sd, df)`` on the backtest
    cells (``e``: the truth minus the candidate's centre, transformed space)."""
    pick = rng.choice(len(w), size=n_draws, p=w)
    x = np.stack([-resid[c][0] + resid[c][1] * stats.t.rvs(resid[c][2], size=resid[c][0].size,
                                                            random_state=rng) for c in pick])
    centre = np.median(x, axis=0)  # of the draws of (prediction - truth)
    used = [c for c in range(len(w)) if w[c] > 0]

    def lpd(k):  # the scaled mixture's density at the truth: (1/k) p(centre - centre / k)
        lp = [np.log(w[c]) - np.log(resid[c][1])
              + stats.t.logpdf((centre - centre / k + resid[c][0]) / resid[c][1], resid[c][2])
              for c in used]
        return float((special.logsumexp(np.array(lp), axis=0) - np.log(k)).mean())

    grid = np.linspace(0.3, 2.0, 35)
    return float(grid[int(np.argmax([lpd(k) for k in grid]))])


def candidate_draws(post: Posterior, cells, rng_key):
    """A candidate's predictive draws (original units) of ``cells`` (a ScoreMatrix's observed
    cells or index arrays); NaN where it cannot place the model."""
    mi, ti = post._cells(cells) if not isinstance(cells, tuple) else cells
    out = np.full((post.n_draws, mi.size), np.nan)
    unplaced = [post.matrix.model_index(m) for m in post.unplaced_models]
    ok = ~np.isin(mi, unplaced)
    if ok.any():
        pred = post.predict((mi[ok], ti[ok]), rng_key=rng_key)
        out = np.full((pred.draws.shape[0], mi.size), np.nan)
        out[:, ok] = pred.draws
    return out


def _printer(progress):
    on = progress_enabled(progress)

    def say(msg):
        if on:
            print(msg, file=sys.stderr, flush=True)
    return say


# -- the posterior -------------------------------------------------------------------------------
class StackPosterior(Posterior):
    """Candidates fitted on the full table, their stacking weights and their calibration."""

    _mixes_borrowed = False  # its candidates' predictions did (decision 0029)

    def __init__(self, matrix, spec, inference, fits, weights, calib, fit_seconds, info,
                 rng_key, spread=1.0, feats_bt=None):
        super().__init__(matrix, spec, inference, fit_seconds)
        self.fits, self.weights, self.calib, self.info = fits, weights, calib, info
        self.spread, self._feats_bt = spread, feats_bt
        self._key = rng_key
        self._tr = _Transform(matrix)

    @property
    def n_draws(self) -> int:
        return self.spec.n_draws

    @property
    def diagnostics(self) -> dict:
        """``weights``; ``spread`` (the factor on the mixture's spread around its median);
        ``backtest`` (the protocol rebuilt, each candidate's backtest MAE,
        log predictive density and 90% coverage); ``calibration`` (each candidate's alpha and
        extrapolation terms); ``skipped`` candidates and why; ``candidates``: each fitted
        candidate's own diagnostics."""
        return {**self.info, "candidates": {c: p.diagnostics for c, p in self.fits.items()}}

    def _draws(self, model_idx, task_idx, rng_key, noise):
        if noise is False:
            raise TypeError("a stack's draws are calibrated predictions of scores; noise-free "
                            "cell means are not defined for it (leave noise unset)")
        key = self._key if rng_key is None else rng_key
        k_choice, k_cand = jax.random.split(as_key(key))
        rng = np.random.default_rng(np.asarray(jax.random.key_data(k_choice)).ravel())
        names = [c for c, w in self.weights.items() if w > 0]
        w = np.array([self.weights[c] for c in names])
        choice = rng.choice(len(names), size=self.n_draws, p=w / w.sum())
        feats = _features(self.matrix, model_idx, task_idx)
        if self._feats_bt is not None:
            feats = _in_backtest_terms(feats, self._feats_bt)
        cal = [self._calibrated(c, model_idx, task_idx, feats,
                                jax.random.fold_in(k_cand, n), rng) for n, c in enumerate(names)]
        t = np.full((self.n_draws, model_idx.size), np.nan)  # the transformed space
        for n in range(len(names)):
            t = np.where((choice == n)[:, None], cal[n], t)
        for n in np.argsort(-w, kind="stable"):  # a cell the chosen one cannot place: the next
            t = np.where(np.isnan(t), cal[n], t)
        if self.spread != 1.0:  # the whole draw around the median (joint structure kept), in
            # the unbounded space: around a median clipped at a bound it would shrink the
            # draws onto the bound (decision 0016)
            centre = np.median(t, axis=0)
            t = centre + self.spread * (t - centre)
        out = self._tr.inverse(t, task_idx[None, :])
        return self.matrix.normalize(out, model_idx, task_idx)

    def _calibrated(self, name, mi, ti, feats, key, rng):
        """``n_draws`` calibrated draws of one candidate in the transformed space
        (:class:`_Transform`; NaN where it cannot place the model)."""
        draws = candidate_draws(self.fits[name], (mi, ti), key)
        t = self._tr.forward(draws, ti[None, :])
        m = t.mean(axis=0)
        pick = rng.integers(0, t.shape[0], self.n_draws)
        par = self.calib[name]
        g, b = par[:2]
        scale = np.exp(b[ti])
        dev = (t[pick] - m) * g[0] * scale if t.shape[0] > 1 else 0.0
        s = t.std(axis=0) if t.shape[0] > 1 else np.zeros(mi.size)
        extra = np.sqrt(np.maximum(_scale(par, s, feats, ti) ** 2 - (g[0] * s * scale) ** 2,
                                   0.0))
        noise = stats.t.rvs(par[2], size=(self.n_draws, mi.size), random_state=rng) * extra
        return m + dev + noise

    def refit(self, train, *, rng_key, progress: bool | None = None) -> StackPosterior:
        """Backtest, calibrate and fit again on ``train`` (the candidates' compiled programs
        reused)."""
        return self.spec.fit(train, rng_key=rng_key, progress=progress)

    def to_arviz(self):
        """ArviZ InferenceData: the stack's draws of every cell as ``posterior["scores"]``
        (one chain; original units) and the weights as ``constant_data``."""
        import arviz as az

        draws = self.joint_draws("all", rng_key=self._key).reshape(1, self.n_draws,
                                                                   *self.matrix.shape)
        return az.from_dict(posterior={"scores": draws},
                            constant_data={"weights": np.array(list(self.weights.values()))},
                            coords={**self.spec.coords(self.matrix),
                                    "candidate": list(self.weights)},
                            dims={"scores": ["models", "tasks"], "weights": ["candidate"]})

    def save(self, path):
        raise NotSaveable("a stack holds several fitted candidates: save the one you need "
                          "(post.fits[name].save(path)) or refit the stack (minutes at most)")

    def _arrays(self):
        return {}

    def _meta(self):
        return {}

    @classmethod
    def _restore(cls, matrix, spec, inference, meta, arrays, fit_seconds):
        raise NotSaveable("stacks are not saved")

    def __repr__(self):
        w = ", ".join(f"{c} {x:.2f}" for c, x in self.weights.items() if x > 0)
        return f"StackPosterior({w}; fit {self.fit_seconds:.1f}s)"
