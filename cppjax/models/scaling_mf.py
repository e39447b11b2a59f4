"""Scaling-aware matrix factorisation (``ScalingMF``): the per-family power law inside the matrix
model, with a link that keeps every prediction between a task's floor and ceiling. Written out
in ``docs/models.md``; why, with its measurements, in ``docs/decisions/0012-beyond-the-table.md``::

    y_ij ~ Normal or StudentT(m_ij, sigma_j)
    m_ij = f_j + (c_j - f_j) * exp(-exp(-eta_ij))   (f_j: chance, else the lower bound;
                                                     c_j: the upper bound; unbounded: eta_ij)
    eta_ij = b_j + sum_k lam_k v_jk s_ik + a_g(i)j + d_g(i)j * placed_i * z_i
    s_ik = h_g(i)k + placed_i * w_g(i)k * z_i + (1 - placed_i) * u_k + imputed_i * q_k
           + x_i' W_k + tau_k e_ik
    w_gk = w_k + s_w eps_gk    h_gk = s_h eta_gk    a_gj = s_a alpha_gj    d_gj = s_d delta_gj
    b_j = t_j' B + s_b beta_j    v_jk = t_j' G_k + nu_jk

``z_i`` is model ``i``'s standardised log10 training compute (reported FLOPs, else 6ND, else
imputed from its parameters: :func:`compute_axis`), ``placed_i`` whether it has one, ``g(i)`` its
family, ``x_i`` and ``t_j`` the design factors. Each latent capability moves linearly with log
compute along each family's own slope, partially pooled across families, and ``a + d z`` is each
family's own law on each task, pooled too (so a family of many sizes gets its own scaling law,
a family of one borrows the others'). The link keeps every prediction between chance and the
upper bound: by default the log-log link (the Gumbel distribution function), whose distance to
the ceiling falls as a power of compute at the top, as the per-family power law of the error
has it, where the sigmoid of observational scaling laws (Ruan et al. 2024; ``link="sigmoid"``)
bends upwards below its midpoint and over-predicted the largest model of a family;
``link="richards"`` learns a shape between the two (decision 0012). A model without compute
has ``u_k`` and its design factors in its place: the model is then PMF with a bounded link.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import ClassVar, Literal

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pandas as pd

from cppjax.data import ScoreMatrix
from cppjax.data.compute import model_compute
from cppjax.data.features import category_levels, design_matrix, encode_factors
from cppjax.models.base import BayesSpec
from cppjax.models.legacy import accepts_legacy_settings
from cppjax.models.likelihood import observe, task_noise

#: model factors that measure compute: the compute axis carries them, not the regression
COMPUTE_FACTORS = ("flops", "parameters", "tokens", "gpu_hours")


def scaling_mf_model(Xm, Xt, model_idx, task_idx, y=None, mask=None, *, rank: int = 3,
                     noise_tau: float = 0.5, noise_floor: float = 0.0,
                     likelihood: str = "normal", subsample_size: int | None = None,
                     link: str = "loglog", z=None, placed=None, imputed=None, families=None,
                     floor=None, ceiling=None, bounded=None, censor=None):
    """The model of the module docstring. ``z``, ``placed`` (known or imputed), ``imputed``:
    ``(n_models,)`` (:func:`compute_axis`); ``families``:
    one-hot ``(n_models, n_families)`` (a row of zeros: no family); ``floor``, ``ceiling``,
    ``bounded``: ``(n_tasks,)`` in normalised units (``bounded`` False: identity link)."""
    n_models, n_tasks = Xm.shape[0], Xt.shape[0]
    k = rank
    r_m = numpyro.sample("reg_model", dist.HalfNormal(0.3))
    r_t = numpyro.sample("reg_task", dist.HalfNormal(0.3))
    slope = numpyro.sample("slope", dist.Normal(0.0, 1.0).expand([k]).to_event(1))
    unknown = numpyro.sample("unknown_compute", dist.Normal(0.0, 1.0).expand([k]).to_event(1))
    shift = numpyro.sample("imputed_shift", dist.Normal(0.0, 1.0).expand([k]).to_event(1))
    # a table without families (no family column): every model on the pooled law, and no
    # family sites (a plate of size 0 is an error, and their scales would be prior only)
    n_fam = families.shape[1]
    if n_fam:
        s_w = numpyro.sample("s_family_slope", dist.HalfNormal(1.0))
        s_h = numpyro.sample("s_family_offset", dist.HalfNormal(1.0))
    tau = numpyro.sample("s_residual", dist.HalfNormal(1.0).expand([k]).to_event(1))
    W = _weights("W_z", Xm.shape[1], k)
    fam_offset = jnp.zeros((n_models, k))
    w = slope  # a model without a family: the pooled slope
    if n_fam:
        with numpyro.plate("families", n_fam):
            h_z = numpyro.sample("family_offset_z",
                                 dist.Normal(0.0, 1.0).expand([k]).to_event(1))
            w_z = numpyro.sample("family_slope_z", dist.Normal(0.0, 1.0).expand([k]).to_event(1))
        fam_offset = families @ (s_h * h_z)
        w = slope + families @ (s_w * w_z)
    with numpyro.plate("models", n_models):
        e = numpyro.sample("e_z", dist.Normal(0.0, 1.0).expand([k]).to_event(1))
    s = (fam_offset + placed[:, None] * w * z[:, None]
         + (1.0 - placed[:, None]) * unknown + imputed[:, None] * shift + r_m * (Xm @ W)
         + tau * e)
    s = numpyro.deterministic("capability", s)

    b0 = numpyro.sample("mu", dist.Normal(0.0, 2.0))
    s_b = numpyro.sample("s_task", dist.HalfNormal(1.0))
    B = _weights("B_z", Xt.shape[1], 1)[:, 0]
    G = _weights("G_z", Xt.shape[1], k)
    lam = numpyro.sample("lam", dist.HalfNormal(1.0).expand([k]).to_event(1))
    with numpyro.plate("tasks", n_tasks):
        b_z = numpyro.sample("b_z", dist.Normal(0.0, 1.0))
        v_z = numpyro.sample("V_z", dist.Normal(0.0, 1.0).expand([k]).to_event(1))
    b = b0 + r_t * (Xt @ B) + s_b * b_z
    V = (r_t * (Xt @ G) + v_z) * lam
    # each family's own law on each task, around what the capabilities give: the per-family
    # power law of the scaling-law baseline, partially pooled (s_ft, s_fs learned)
    fam_task = jnp.zeros((n_models, n_tasks))
    if n_fam:
        s_ft = numpyro.sample("s_family_task_offset", dist.HalfNormal(0.5))
        s_fs = numpyro.sample("s_family_task_slope", dist.HalfNormal(1.0))
        with numpyro.plate("family_rows", n_fam, dim=-2), \
                numpyro.plate("task_cols", n_tasks, dim=-1):
            ft_z = numpyro.sample("family_task_offset_z", dist.Normal(0.0, 1.0))
            fs_z = numpyro.sample("family_task_slope_z", dist.Normal(0.0, 1.0))
        fam_task = (families @ (s_ft * ft_z)
                    + (placed * z)[:, None] * (families @ (s_fs * fs_z)))
    nu = (numpyro.sample("link_shape", dist.LogNormal(0.0, 1.0)) if link == "richards"
          else None)

    def cell_means(idx):
        r, c = (model_idx, task_idx) if idx is None else (model_idx[idx], task_idx[idx])
        eta = b[c] + jnp.einsum("ck,ck->c", s[r], V[c]) + fam_task[r, c]
        span = ceiling[c] - floor[c]
        if link == "sigmoid":
            share = jax.nn.sigmoid(eta)
        elif link == "loglog":  # (clipped: exp(-exp(20)) is 0 already; no inf in gradients)
            share = jnp.exp(-jnp.exp(-jnp.maximum(eta, -20.0)))
        else:  # Richards: sigmoid(eta) ** nu, from the sigmoid (nu = 1) to log-log (large nu)
            share = jnp.exp(-nu * jax.nn.softplus(-eta))
        return jnp.where(bounded[c], floor[c] + span * share, eta)

    sigma = task_noise(n_tasks, noise_tau, floor=noise_floor)
    observe(cell_means, sigma, task_idx, y, likelihood, mask, subsample_size, censor)


def _weights(name: str, n_columns: int, k: int):
    """Regression weights ``(n_columns, k)`` ~ Normal(0, 1); no site for a design without
    columns (a site of size 0 breaks the guides: NumPyro reshapes it by -1)."""
    if n_columns == 0:
        return jnp.zeros((0, k))
    return numpyro.sample(name, dist.Normal(0.0, 1.0).expand([n_columns, k]).to_event(2))


def compute_axis(sm: ScoreMatrix, family: str | None = "family"
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Standardised log10 training compute of each model, whether it is known (reported FLOPs,
    else 6ND: :func:`cppjax.data.compute.model_compute`) and whether it is imputed: a model with a
    parameter count but no token count is placed at 6 x parameters x the median token count of
    its family's models that have one (else of the table's), flagged so that the model learns
    how far such placements sit off (``imputed_shift``). A table with no FLOPs and no token
    count at all but parameter counts: compute proportional to parameters (a size axis).
    Unknown otherwise (0)."""
    mf = sm.model_factors
    comp = model_compute(mf)
    known = comp["source"].isin(["flops", "6ND"]).to_numpy()
    c = np.where(known, comp["compute"].to_numpy(dtype=float), np.nan)
    params = (pd.to_numeric(mf["parameters"], errors="coerce").to_numpy(dtype=float)
              if "parameters" in mf else np.full(sm.n_models, np.nan))
    tokens = (pd.to_numeric(mf["tokens"], errors="coerce").to_numpy(dtype=float)
              if "tokens" in mf else np.full(sm.n_models, np.nan))
    ok_t = np.isfinite(tokens) & (tokens > 0)
    imputed = ~known & np.isfinite(params) & (params > 0) & ok_t.any()
    if imputed.any():
        fam = (mf[family].astype(str).to_numpy() if family is not None and family in mf
               else np.zeros(sm.n_models, str))
        overall = np.median(tokens[ok_t])
        for i in np.flatnonzero(imputed):
            same = ok_t & (fam == fam[i])
            c[i] = 6.0 * params[i] * (np.median(tokens[same]) if same.any() else overall)
    placed = known | imputed
    ok_p = np.isfinite(params) & (params > 0)
    if known.sum() < 2 and not ok_t.any() and ok_p.sum() >= 2:
        # no FLOPs and no token count anywhere (a leaderboard that gives sizes only): compute
        # taken as proportional to parameters, one unknown token count for all (decision 0028)
        known = placed = ok_p  # (nothing was imputed: no token count to impute from)
        c = np.where(ok_p, params, np.nan)
    logc = np.log10(np.where(placed, c, 1.0))
    if known.sum() >= 2:
        mu, sd = logc[known].mean(), logc[known].std()
        z = np.where(placed, (logc - mu) / (sd if sd > 0 else 1.0), 0.0)
    else:
        z, placed, imputed = np.zeros(sm.n_models), np.zeros_like(placed), np.zeros_like(placed)
    return z.astype(np.float32), placed.astype(np.float32), imputed.astype(np.float32)


def task_bounds(sm: ScoreMatrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each task's floor (chance where known, else the lower bound) and ceiling (the upper
    bound) in normalised units, and whether both are finite (else the identity link). A task
    normalised through the logit (``task_logit``) is bounded by its normalisation already: it
    gets the identity link."""
    info = sm.task_info
    lo = info["chance"].fillna(info["lower"]).to_numpy(dtype=float)
    hi = info["upper"].to_numpy(dtype=float)
    ok = np.isfinite(lo) & np.isfinite(hi) & (hi > lo)
    norm = sm.normalization
    if norm.kind not in ("task_minmax", "task_logit"):
        ok[:] = False
    if norm.logit is not None:
        ok &= ~np.asarray(norm.logit, bool).reshape(-1)
    t = np.arange(sm.n_tasks)
    zero = np.zeros(sm.n_tasks, int)
    f = np.where(ok, norm.transform(np.where(ok, lo, 0.0), zero, t) if ok.any() else 0.0, 0.0)
    c = np.where(ok, norm.transform(np.where(ok, hi, 1.0), zero, t) if ok.any() else 1.0, 1.0)
    return f.astype(np.float32), c.astype(np.float32), ok


@accepts_legacy_settings
@dataclass(frozen=True)
class ScalingMF(BayesSpec):
    """Scaling-aware matrix factorisation (see the module docstring): ``rank`` latent
    capabilities (3, as the principal components of observational scaling laws), each moving
    with log compute along a slope per family, partially pooled; a bounded link (``link``:
    ``"loglog"``, ``"sigmoid"`` or ``"richards"``) from each task's chance level to its upper
    bound; design factors of models (the compute columns
    aside: the compute axis carries them) and tasks. ``family``: the model factor naming each
    model's family (ignored where absent).

    Example:
        >>> from cppjax.datasets import load_obsscaling
        >>> from cppjax.inference import SVI
        >>> post = ScalingMF().fit(load_obsscaling(), rng_key=0, progress=False,
        ...                        inference=SVI(num_steps=300, num_samples=50))
        >>> post.predict("missing", rng_key=1).draws.shape
        (50, 40)
    """

    rank: int = 3
    family: str | None = "family"
    link: Literal["loglog", "sigmoid", "richards"] = "loglog"

    kind: ClassVar[str] = "scaling_mf"
    inference_defaults: ClassVar[dict[str, dict]] = {
        "nuts": {}, "svi": {"num_steps": 6000}, "map": {"num_steps": 4000}}
    dims: ClassVar[dict] = {
        "family_offset_z": ["families", "latent"], "family_slope_z": ["families", "latent"],
        "e_z": ["models", "latent"], "capability": ["models", "latent"],
        "b_z": ["tasks"], "V_z": ["tasks", "latent"], "sigma": ["tasks"], "sigma_z": ["tasks"],
        "lam": ["latent"], "slope": ["latent"], "unknown_compute": ["latent"],
        "family_task_offset_z": ["families", "tasks"],
        "family_task_slope_z": ["families", "tasks"], "s_residual": ["latent"],
        "imputed_shift": ["latent"],
    }

    def __post_init__(self):
        super().__post_init__()
        if isinstance(self.rank, bool) or not isinstance(self.rank, int) or self.rank < 1:
            raise ValueError(f"ScalingMF.rank must be an integer >= 1; got {self.rank!r}")
        if self.link not in ("loglog", "sigmoid", "richards"):
            raise ValueError(f"ScalingMF.link must be 'loglog', 'sigmoid' or 'richards'; got "
                             f"{self.link!r}")

    def _family_column(self, sm: ScoreMatrix) -> str | None:
        if self.family is not None and self.family in sm.model_factors:
            return self.family
        return None

    def family_names(self, sm: ScoreMatrix) -> list[str]:
        fam = self._family_column(sm)
        return [] if fam is None else category_levels(sm.model_factors[fam])[1]

    def coords(self, sm: ScoreMatrix) -> dict:
        return {**super().coords(sm), "families": self.family_names(sm)}

    def design(self, sm: ScoreMatrix):
        if not self.use_factors:
            return super().design(sm)
        skip = (*COMPUTE_FACTORS, *([self.family] if self.family else []))
        return (design_matrix(encode_factors(sm.model_factors, exclude=skip)),
                design_matrix(encode_factors(sm.task_factors)))

    def families(self, sm: ScoreMatrix) -> np.ndarray:
        fam = self._family_column(sm)
        if fam is None:
            return np.zeros((sm.n_models, 0), np.float32)
        enc = encode_factors(sm.model_factors[[fam]], categorical=[fam])
        return np.eye(enc.cardinalities[0], dtype=np.float32)[enc.categorical[:, 0]][:, 1:]

    def model_parts(self, sm, data_cells=False):
        z, placed, imputed = compute_axis(sm, self._family_column(sm))
        floor, ceiling, bounded = task_bounds(sm)
        model = partial(scaling_mf_model, rank=self.rank, noise_tau=self.noise_tau,
                        noise_floor=self.noise_floor, likelihood=self.likelihood,
                        link=self.link)
        fam = self.families(sm)
        return model, {"z": jnp.asarray(z), "placed": jnp.asarray(placed),
                       "imputed": jnp.asarray(imputed),
                       "families": jnp.asarray(fam),
                       "floor": jnp.asarray(floor), "ceiling": jnp.asarray(ceiling),
                       "bounded": jnp.asarray(bounded)}
