"""Factor regressions with their coefficients integrated out: the algebra behind PMF's offsets
and latent factors (see ``docs/models.md``).

A column of offsets or latent factors regressed on design factors ``X`` with coefficients
``B ~ Normal(0, s1)`` and residuals of scale ``s0`` has covariance ``K = s0**2 I + s1**2 X X'``;
it is drawn as ``K^(1/2) z`` from standard normal ``z`` (one value per row instead of one per
design column on top), and rows without data (cold start) from the regression's conditional
given the rows with data. See ``docs/decisions/0002-pmf-regressions-integrated-out.md``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np


def prior_basis(X) -> tuple[np.ndarray, np.ndarray]:
    """The thin basis of ``X X'``: its eigenvectors ``U`` with a non-zero eigenvalue
    ``(n_rows, r)``, ``r <= n_columns``, and those eigenvalues (float32), from one thin SVD of
    ``X`` per fit. The covariance ``s0**2 I + s1**2 X X'`` of a factor regression with its
    coefficients integrated out has the symmetric square root
    ``s0 I + U diag(sqrt(s0**2 + s1**2 ev) - s0) U'`` for any ``s0, s1``: applied in
    ``O(n_rows r)`` rather than with an ``n_rows x n_rows`` eigenbasis
    (``docs/decisions/0008-pmf-cost-grows-with-the-cells.md``)."""
    X = np.asarray(X, np.float64)
    if X.shape[1] == 0 or X.shape[0] == 0:
        return np.zeros((X.shape[0], 0), np.float32), np.zeros(0, np.float32)
    U, sv, _ = np.linalg.svd(X, full_matrices=False)
    keep = sv > 1e-6 * max(float(sv.max(initial=0.0)), 1e-12)
    return U[:, keep].astype(np.float32), (sv[keep] ** 2).astype(np.float32)


class ConditionalBasis(NamedTuple):
    """What :func:`regressed` needs to draw the rows without data (cold-start models or tasks)
    from the factor regression *given* the rows with data; see :func:`conditional_basis`."""

    observed: np.ndarray  # indices of the rows with data
    new: np.ndarray  # indices of the rows without
    observed_basis: tuple  # prior_basis(X[observed])
    XoP: jnp.ndarray  # X[observed] @ P, with X[observed]' X[observed] = P diag(M) P'
    XnP: jnp.ndarray  # X[new] @ P
    new_basis: tuple  # XnP = Un diag(sn) Vn' (thin): (Un, diag(sn) Vn')
    M: jnp.ndarray
    keep: jnp.ndarray  # M clearly above 0 (directions the observed rows determine)
    inverse: np.ndarray  # rows of concatenate([observed, new]) back in the original order


def conditional_basis(X, observed) -> tuple | ConditionalBasis:
    """Like :func:`prior_basis`, for a matrix where some rows (``observed`` False: models or tasks
    without a score) have no data. Their offsets and factors are drawn from the regression's
    conditional given the observed rows' (a Gaussian conditional in weight space), so the
    variables behind them carry no information from the data: their posterior is their prior,
    which SVI's guides get right (with the symmetric square root, a cold row is a mix of every
    row's variables, which the posterior correlates and a low-rank guide misses: SVI was
    overconfident on cold start). The joint prior is the same. Without cold rows this is
    :func:`prior_basis`; without design factors (no columns) the new rows are ``s0`` times their
    own variables, as there, but kept apart from the rows with data (which a fit's density
    then leaves out: ``pmf_model(..., data_cells=True)``)."""
    X = np.asarray(X, np.float64)
    observed = np.asarray(observed, bool)
    o, n = np.flatnonzero(observed), np.flatnonzero(~observed)
    if n.size == 0 or o.size == 0:
        return prior_basis(X)
    M, P = np.linalg.eigh(X[o].T @ X[o])
    M = np.clip(M, 0.0, None)
    keep = M > 1e-6 * max(float(M.max(initial=0.0)), 1e-12)

    def f32(a):
        return jnp.asarray(a, jnp.float32)

    XnP = X[n] @ P
    Un, sn, Vnt = np.linalg.svd(XnP, full_matrices=False)
    rk = sn > 1e-6 * max(float(sn.max(initial=0.0)), 1e-12)
    return ConditionalBasis(o, n, prior_basis(X[o]), f32(X[o] @ P), f32(XnP),
                            (f32(Un[:, rk]), f32(sn[rk, None] * Vnt[rk])), f32(M),
                            jnp.asarray(keep), np.argsort(np.concatenate([o, n])))


def regressed(z, basis, s0, s1):
    """Rows of ``z`` (one per model or task, standard normal) mapped to draws of the factor
    regression ``X B + s0 e``, ``B ~ Normal(0, s1)``, without sampling ``B``: covariance
    ``K = s0**2 I + s1**2 X X'``.

    With a :func:`prior_basis` this is ``K^(1/2) z``, the symmetric square root: unique, so the
    map does not depend on how the eigenvectors of a repeated eigenvalue were chosen. With a
    :class:`ConditionalBasis` the observed rows are ``K_oo^(1/2) z_o`` and the new rows their
    conditional mean given those plus the Cholesky factor of the conditional covariance times
    ``z_n``, computed in weight space (``Sigma_B = (I / s1**2 + X_o' X_o / s0**2)^-1``), which
    stays positive definite in float32."""
    return all_rows(data_rows(z, basis, s0, s1), z, basis, s0, s1)


def per_row(w, z):
    """``w`` (one weight per row) shaped to broadcast against ``z`` (a vector or a matrix)."""
    return w.reshape(w.shape + (1,) * (z.ndim - 1))


def data_rows(z, basis, s0, s1):
    """The rows with data of ``regressed(z, basis, s0, s1)`` (every row for a
    :func:`prior_basis`), computed without the rows without data."""
    if isinstance(basis, ConditionalBasis):
        return data_rows(z[basis.observed], basis.observed_basis, s0, s1)
    U, ev = basis
    # s0 z + U (d - s0) U'z, d = sqrt(s0^2 + s1^2 ev): the symmetric root (eigenvalue 0, d = s0,
    # off U); d - s0 written without the cancellation
    excess = s1**2 * ev / (jnp.sqrt(s0**2 + s1**2 * ev) + s0)
    return s0 * z + U @ (per_row(excess, z) * (U.T @ z))


def all_rows(a_o, z, basis, s0, s1):
    """Every row of ``regressed(z, basis, s0, s1)`` from its rows with data ``a_o``
    (:func:`data_rows`): with a :class:`ConditionalBasis`, the new rows drawn from their
    conditional given ``a_o``; with a :func:`prior_basis`, ``a_o`` itself."""
    if not isinstance(basis, ConditionalBasis):
        return a_o
    s0sq, s1sq = s0**2, s1**2
    gain = jnp.where(basis.keep, 1.0 / (s0sq / s1sq + basis.M), 0.0)  # E[B | a_o] in P
    mean_n = basis.XnP @ (per_row(gain, a_o) * (basis.XoP.T @ a_o))
    cov_b = s0sq * s1sq / (s0sq + s1sq * basis.M)  # Sigma_B in P
    # cov_n = s0^2 I + XnP Sigma_B XnP' = s0^2 (I - Un Un') + Un (s0^2 I + C) Un' with
    # C = SV' Sigma_B V S (r x r, XnP = Un S V'); R = s0 (I - Un Un') + Un chol(s0^2 I + C) Un'
    # has R R' = cov_n: no n_new x n_new factor (docs/decisions/0008-...)
    Un, SVt = basis.new_basis
    C = (SVt * cov_b) @ SVt.T
    L = jnp.linalg.cholesky(s0sq * jnp.eye(C.shape[0]) + C)
    z_n = z[basis.new]
    w = Un.T @ z_n
    a_n = mean_n + s0 * z_n + Un @ (L @ w - s0 * w)
    # back to the row order with one gather (rather than scattering into a zero array)
    return jnp.concatenate([a_o, a_n])[basis.inverse]


def data_row_position(basis, idx):
    """Each row of ``idx``'s position among the rows with data (rows without data: beyond)."""
    if isinstance(basis, ConditionalBasis):
        return jnp.asarray(basis.inverse)[idx]
    return idx


def row_positions(basis, n_rows):
    """The rows with data in the order :func:`data_rows` returns them."""
    return basis.observed if isinstance(basis, ConditionalBasis) else np.arange(n_rows)
