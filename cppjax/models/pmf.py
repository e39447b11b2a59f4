"""Probabilistic matrix factorisation (PMF) in NumPyro; the model is written out in
``docs/models.md``::

    y_ij ~ StudentT(nu, mu + a_i + b_j + sum_k lam_k u_ik v_jk, sigma_j)   (or Normal)
    a_i = x_i' beta_a + s_fa h_g(i) + s_a e_i       u_ik = x_i' W_k + s_fu H_g(i)k + e_ik
    b_j = t_j' beta_b + s_b f_j                      v_jk = t_j' G_k + f_jk

with design factors ``x_i`` (models) and ``t_j`` (tasks), family effects ``h, H`` of model
``i``'s family ``g(i)``, per-dimension shrinkage ``lam_k``, per-task noise ``sigma_j`` with a
floor. The regression coefficients are integrated out (:mod:`cppjax.models.regression`); why,
and what it bought, is in ``docs/decisions/0002-pmf-regressions-integrated-out.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import ClassVar, Literal

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

from cppjax.data import ScoreMatrix
from cppjax.data.features import category_levels, design_matrix, encode_factors
from cppjax.models.base import BayesSpec
from cppjax.models.legacy import accepts_legacy_settings
from cppjax.models.likelihood import observe, task_noise
from cppjax.models.regression import (
    all_rows,
    conditional_basis,
    data_row_position,
    data_rows,
    prior_basis,
    row_positions,
)


def pmf_model(Xm, Xt, model_idx, task_idx, y=None, mask=None, *, rank: int = 5,
              noise_tau: float = 0.5, noise_floor: float = 0.0, likelihood: str = "normal",
              reg_scale: float | None = None, bases=None, data_cells: bool = False,
              families=None, subsample_size: int | None = None, censor=None):
    """Probabilistic MF with per-dimension shrinkage, factor regressions (coefficients integrated
    out) and per-task noise; ``bases``: the :func:`prior_basis` or :func:`conditional_basis` of
    ``Xm`` and of ``Xt`` (prior bases computed here when not given); ``reg_scale=None`` learns
    the four regression scales.

    The offsets and latent factors are centred on the rows with data. ``data_cells=True`` says
    that every cell is on a model and a task with data (a fit's training cells): their means are
    then computed from those rows alone, so that the rows without data (cold start), which feed
    only the deterministic offsets, drop out of the compiled log density and its gradient. A
    cell on a row without data gives a wrong mean there: leave it False for predictions (as
    :meth:`BayesSpec.fit` does: it passes True to the fit only).

    ``families``: a one-hot ``(n_models, n_families)`` matrix (a row of zeros: no family) or
    None. Each family then shifts its models' offsets and latent factors by a family effect,
    ``s_fa h_g`` and ``s_fu H_g``, ``h, H ~ Normal(0, 1)``, with their own learned scales, on
    top of the factor regressions (whose design then leaves the family columns out): a new
    family's effect is a draw from the prior of scale ``s_fa``, learned from how far the
    training families sit from what their design factors predict."""
    if reg_scale is None:
        r_a = numpyro.sample("reg_model_offset", dist.HalfNormal(0.3))
        r_b = numpyro.sample("reg_task_offset", dist.HalfNormal(0.3))
        r_u = numpyro.sample("reg_model_latent", dist.HalfNormal(0.3))
        r_v = numpyro.sample("reg_task_latent", dist.HalfNormal(0.3))
    else:
        r_a = r_b = r_u = r_v = reg_scale
    n_models, n_tasks = Xm.shape[0], Xt.shape[0]
    bm, bt = bases if bases is not None else (prior_basis(Xm), prior_basis(Xt))
    mu = numpyro.sample("mu", dist.Normal(0.5, 0.5))
    s_a = numpyro.sample("s_model", dist.HalfNormal(0.5))
    s_b = numpyro.sample("s_task", dist.HalfNormal(0.5))
    with numpyro.plate("models", n_models):
        a_z = numpyro.sample("a_z", dist.Normal(0.0, 1.0))
    with numpyro.plate("tasks", n_tasks):
        b_z = numpyro.sample("b_z", dist.Normal(0.0, 1.0))

    def centred(z, basis, s0, s1, shift=None):
        """Every row and the rows with data, centred on the mean of the rows with data;
        ``shift``: a per-row term (the family effects) added to the regression's rows."""
        data = data_rows(z, basis, s0, s1)
        rows = all_rows(data, z, basis, s0, s1)
        if shift is not None:
            data = data + shift[row_positions(basis, z.shape[0])]
            rows = rows + shift
        centre = data.mean(0)
        return rows - centre, data - centre

    fam_a = fam_u = None
    has_families = families is not None and families.shape[1] > 0
    if has_families:
        s_fa = numpyro.sample("s_family_offset", dist.HalfNormal(0.3))
        with numpyro.plate("families", families.shape[1]):
            f_z = numpyro.sample("family_offset_z", dist.Normal(0.0, 1.0))
        fam_a = families @ (s_fa * f_z)
    a, a_data = centred(a_z, bm, s_a, r_a, fam_a)
    b, b_data = centred(b_z, bt, s_b, r_b)
    a = numpyro.deterministic("model_offset", a)
    b = numpyro.deterministic("task_offset", b)
    if data_cells:  # the matrix of the rows with data, and the cells' positions in it
        rows, cols = data_row_position(bm, model_idx), data_row_position(bt, task_idx)
        a, b = a_data, b_data
    else:
        rows, cols = model_idx, task_idx
    # the cells' means from the fitted matrix in one gather where the cells fill a good part of
    # it (cheaper gradients than gathering rows: docs/decisions/0007-small-measured-choices.md),
    # else from the cells' rows, O(cells x rank): docs/decisions/0008-...
    dense = subsample_size is None and a.shape[0] * b.shape[0] <= 32 * rows.shape[0]
    if rank:
        lam = numpyro.sample("lam", dist.HalfNormal(0.5).expand([rank]).to_event(1))
        with numpyro.plate("models", n_models):
            u_e = numpyro.sample("U_z", dist.Normal(0.0, 1.0).expand([rank]).to_event(1))
        with numpyro.plate("tasks", n_tasks):
            v_e = numpyro.sample("V_z", dist.Normal(0.0, 1.0).expand([rank]).to_event(1))
        if has_families:
            s_fu = numpyro.sample("s_family_latent", dist.HalfNormal(1.0))
            with numpyro.plate("families", families.shape[1]):
                fu_z = numpyro.sample("family_latent_z",
                                      dist.Normal(0.0, 1.0).expand([rank]).to_event(1))
            fam_u = families @ (s_fu * fu_z)
        U, U_data = centred(u_e, bm, 1.0, r_u, fam_u)
        V, V_data = centred(v_e, bt, 1.0, r_v)
        if data_cells:
            U, V = U_data, V_data

    def cell_means(idx):
        """The means of the cells ``idx`` (None: every cell)."""
        r, c = (rows, cols) if idx is None else (rows[idx], cols[idx])
        if dense:
            full = a[:, None] + b[None, :]
            if rank:
                full = full + (U * lam) @ V.T  # sum_k lam_k u_ik v_jk
            return mu + full.reshape(-1)[r * full.shape[1] + c]
        out = mu + a[r] + b[c]
        return out + jnp.einsum("ck,ck->c", U[r] * lam, V[c]) if rank else out

    sigma = task_noise(n_tasks, noise_tau, floor=noise_floor)
    observe(cell_means, sigma, task_idx, y, likelihood, mask, subsample_size, censor)


@accepts_legacy_settings
@dataclass(frozen=True)
class PMF(BayesSpec):
    """Probabilistic matrix factorisation (see the module docstring); ``rank`` is the maximum
    rank: per-dimension shrinkage switches unused dimensions off. ``reg_scale`` fixes the prior
    scale of the factor-regression coefficients (``None``, the default: four scales are learned).
    ``family``: the model factor naming each model's family, whose effects on the offsets and
    latent factors get scales of their own (see :func:`pmf_model`); ignored where the factor
    table has no such column, ``None`` for none (the family then, if present, is one more
    categorical factor of the regression).

    Example:
        >>> from cppjax.datasets import load_cpp_crowdsource
        >>> from cppjax.inference import SVI
        >>> post = PMF(rank=2).fit(load_cpp_crowdsource(), rng_key=0,
        ...                        inference=SVI(num_steps=300, num_samples=50), progress=False)
        >>> post.predict("missing", rng_key=1).draws.shape
        (50, 1210)
    """

    rank: int = 5
    reg_scale: float | None = None
    likelihood: Literal["normal", "student_t"] = "student_t"
    family: str | None = "family"

    kind: ClassVar[str] = "pmf"
    #: bounded tasks through the logit of their place between the bounds: lower error on 9 of
    #: 10 protocols of 5 tables and no interval clipped onto a bound (decision 0023)
    preferred_normalization: ClassVar[str | None] = "task_logit"
    #: NUTS keeps the table's min-max: through the logit its chains split between modes on
    #: sparse tasks (r-hat up to 1.38) for no gain inside the table (decision 0025)
    preferred_under: ClassVar[tuple[str, ...]] = ("svi", "map")
    dims: ClassVar[dict] = {
        "family_offset_z": ["families"], "family_latent_z": ["families", "latent"],
        "model_offset": ["models"], "task_offset": ["tasks"], "sigma": ["tasks"],
        "a_z": ["models"], "b_z": ["tasks"], "sigma_z": ["tasks"],
        "U_z": ["models", "latent"], "V_z": ["tasks", "latent"], "lam": ["latent"],
    }

    def __post_init__(self):
        super().__post_init__()
        if isinstance(self.rank, bool) or not isinstance(self.rank, int) or self.rank < 0:
            raise ValueError(f"PMF.rank must be an integer >= 0; got {self.rank!r}")

    def coords(self, sm: ScoreMatrix) -> dict:
        out = super().coords(sm)
        if names := self.family_names(sm):
            out["families"] = names
        return out

    def _family_column(self, sm: ScoreMatrix) -> str | None:
        """The model factor that names a model's family, if the fit uses one."""
        if self.use_factors and self.family is not None and self.family in sm.model_factors:
            return self.family
        return None

    def design(self, sm: ScoreMatrix):
        fam = self._family_column(sm)
        if fam is None:
            return super().design(sm)
        return (design_matrix(encode_factors(sm.model_factors, exclude=(fam,))),
                design_matrix(encode_factors(sm.task_factors)))

    def families(self, sm: ScoreMatrix) -> np.ndarray | None:
        """One-hot family membership ``(n_models, n_families)`` (a model without a family: a
        row of zeros), or None without a family column."""
        fam = self._family_column(sm)
        if fam is None:
            return None
        enc = encode_factors(sm.model_factors[[fam]], categorical=[fam])
        return np.eye(enc.cardinalities[0], dtype=np.float32)[enc.categorical[:, 0]][:, 1:]

    def family_names(self, sm: ScoreMatrix) -> list[str]:
        """The families in the order of the columns of :meth:`families`."""
        fam = self._family_column(sm)
        return [] if fam is None else category_levels(sm.model_factors[fam])[1]

    def model_parts(self, sm, data_cells=False):
        Xm, Xt = self.design(sm)
        bases = (conditional_basis(Xm, sm.mask.any(axis=1)),
                 conditional_basis(Xt, sm.mask.any(axis=0)))
        model = partial(pmf_model, rank=self.rank, noise_tau=self.noise_tau,
                        noise_floor=self.noise_floor, likelihood=self.likelihood,
                        reg_scale=self.reg_scale, data_cells=data_cells)
        fam = self.families(sm)
        return model, {"bases": bases,
                       "families": None if fam is None else jnp.asarray(fam)}
