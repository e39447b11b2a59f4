"""Flax modules of the collaborative predictors (shared by the point and Bayesian models).

Every module maps index arrays of cells ``(model_idx, task_idx)`` of shape ``(N,)`` to normalised
score predictions of shape ``(N,)``. Static configuration (sizes, which branches exist) is module
attributes; factor arrays are passed at call time.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax.numpy as jnp

from cppjax.data.features import EncodedFactors


class MFNet(nn.Module):
    """Matrix factorisation: ``u_i . v_j`` (+ ``b + b_i + b_j`` with biases)."""

    n_models: int
    n_tasks: int
    rank: int = 10
    biases: bool = True

    @nn.compact
    def __call__(self, model_idx, task_idx):
        init = nn.initializers.normal(0.1)
        zeros = nn.initializers.zeros
        U = nn.Embed(self.n_models, self.rank, embedding_init=init, name="U")
        V = nn.Embed(self.n_tasks, self.rank, embedding_init=init, name="V")
        if self.biases:
            bm = nn.Embed(self.n_models, 1, embedding_init=zeros, name="model_bias")
            bt = nn.Embed(self.n_tasks, 1, embedding_init=zeros, name="task_bias")
            b0 = self.param("bias", nn.initializers.constant(0.5), ())
        if self.n_models * self.n_tasks <= 32 * model_idx.size:
            # cells filling a good part of the matrix: the whole matrix and one gather (its
            # gradient is one scatter of a value per cell, not of rows: 5x faster on CPU at 20%
            # observed; docs/decisions/0008-pmf-cost-grows-with-the-cells.md)
            full = U.embedding @ V.embedding.T
            if self.biases:
                full = full + bm.embedding + bt.embedding.T + b0
            return full.reshape(-1)[model_idx * self.n_tasks + task_idx]
        out = jnp.sum(U(model_idx) * V(task_idx), axis=-1)
        if self.biases:
            out = out + bm(model_idx)[..., 0] + bt(task_idx)[..., 0] + b0
        return out


class FactorEncoder(nn.Module):
    """Embeds one side's design factors: categorical columns through embeddings, numeric columns
    (with their missing-value indicators) through a dense layer; returns ``(N, dim)``."""

    cardinalities: Sequence[int]
    dim: int

    @nn.compact
    def __call__(self, dense, codes):
        parts = []
        if dense.shape[-1]:
            parts.append(nn.Dense(self.dim, name="numeric")(dense))
        for k, card in enumerate(self.cardinalities):
            parts.append(nn.Embed(card, self.dim, name=f"cat{k}")(codes[..., k]))
        if not parts:
            return jnp.zeros(dense.shape[:-1] + (self.dim,))
        return sum(parts[1:], parts[0])


class NCFNet(nn.Module):
    """Neural collaborative filtering (He et al. 2017) as in the CPP paper.

    A GMF branch (element-wise product of model and task embeddings) and an MLP branch over the
    concatenated embeddings, joined by a linear output layer. With ``use_factors`` the encoded
    model and task design factors enter the MLP branch beside the ID embeddings (and, without
    IDs, form the GMF branch's product too: the factors-only predictor).
    """

    n_models: int
    n_tasks: int
    dim: int = 10
    hidden: Sequence[int] = (64, 32)
    use_ids: bool = True
    use_factors: bool = False
    model_cards: Sequence[int] = ()
    task_cards: Sequence[int] = ()

    @nn.compact
    def __call__(self, model_idx, task_idx, model_dense, model_codes, task_dense, task_codes):
        # Every part is computed once per model and per task (tables), and the first MLP layer
        # is split into its model and task halves, so only two tables are gathered per cell:
        # the same function and parameters as embedding and concatenating per cell, with fewer
        # gathers (docs/decisions/0007-small-measured-choices.md).
        init = nn.initializers.normal(0.1)
        m_rows, t_rows = jnp.arange(self.n_models), jnp.arange(self.n_tasks)
        gmf_u, gmf_v, mlp_m, mlp_t = [], [], [], []
        if self.use_ids:
            gmf_u.append(nn.Embed(self.n_models, self.dim, embedding_init=init,
                                  name="gmf_model")(m_rows))
            gmf_v.append(nn.Embed(self.n_tasks, self.dim, embedding_init=init,
                                  name="gmf_task")(t_rows))
            mlp_m.append(nn.Embed(self.n_models, self.dim, embedding_init=init,
                                  name="mlp_model")(m_rows))
            mlp_t.append(nn.Embed(self.n_tasks, self.dim, embedding_init=init,
                                  name="mlp_task")(t_rows))
        if self.use_factors:
            fm = FactorEncoder(tuple(self.model_cards), self.dim, name="model_factors")(
                model_dense, model_codes)
            ft = FactorEncoder(tuple(self.task_cards), self.dim, name="task_factors")(
                task_dense, task_codes)
            mlp_m.append(fm)
            mlp_t.append(ft)
            if not self.use_ids:
                gmf_u.append(fm)
                gmf_v.append(ft)
        gmf_m, gmf_t = sum(gmf_u[1:], gmf_u[0]), sum(gmf_v[1:], gmf_v[0])
        if self.hidden:
            pm, pt = _PairDense(self.hidden[0], name="mlp0")(mlp_m, mlp_t)
            cm = jnp.concatenate([gmf_m, pm], axis=-1)[model_idx]
            ct = jnp.concatenate([gmf_t, pt], axis=-1)[task_idx]
            gmf = cm[..., :self.dim] * ct[..., :self.dim]
            h = nn.relu(cm[..., self.dim:] + ct[..., self.dim:])
            for k, width in enumerate(self.hidden[1:], start=1):
                h = nn.relu(nn.Dense(width, name=f"mlp{k}")(h))
        else:
            gmf = gmf_m[model_idx] * gmf_t[task_idx]
            h = jnp.concatenate([x for m, t in zip(mlp_m, mlp_t, strict=True)
                                 for x in (m[model_idx], t[task_idx])], axis=-1)
        out = nn.Dense(1, name="out")(jnp.concatenate([gmf, h], axis=-1))
        return out[..., 0]


class _PairDense(nn.Module):
    """``nn.Dense(features)`` over the per-cell concatenation ``[m_0, t_0, m_1, t_1, ...]`` of
    model parts ``m_k`` and task parts ``t_k``, computed per model and per task: returns the
    model table ``sum_k m_k W_mk + bias`` and the task table ``sum_k t_k W_tk``, whose gathered
    sum is the layer's output. Same parameters (names, shapes, initialisation) as the Dense."""

    features: int

    @nn.compact
    def __call__(self, model_parts, task_parts):
        widths = [x.shape[-1] for pair in zip(model_parts, task_parts, strict=True) for x in pair]
        kernel = self.param("kernel", nn.initializers.lecun_normal(),
                            (sum(widths), self.features))
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
        offs = [sum(widths[:i]) for i in range(len(widths) + 1)]
        pm = sum(x @ kernel[offs[2 * k]:offs[2 * k + 1]] for k, x in enumerate(model_parts))
        pt = sum(x @ kernel[offs[2 * k + 1]:offs[2 * k + 2]] for k, x in enumerate(task_parts))
        return pm + bias, pt


def factor_arrays(model: EncodedFactors, task: EncodedFactors):
    """The four arrays an :class:`NCFNet` takes after the cell indices."""
    return (jnp.asarray(model.dense), jnp.asarray(model.categorical),
            jnp.asarray(task.dense), jnp.asarray(task.categorical))
