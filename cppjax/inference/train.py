"""The one optax training loop of cppjax (after dynamax's ``run_sgd``): the point models, the
2PL item groups of :mod:`cppjax.clustering` and the factor-importance fits all train through
:func:`run_sgd`, so that the update step, its scan and the tracking of the best state are
written once.

It is a pure function of arrays (no Python loop, no host round trip): callers ``jax.jit`` and
``jax.vmap`` it (the point models vectorise initialisations, importance vectorises subsets and
folds), and keep the compiled program on their inference object where there is one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax


class SGDResult(NamedTuple):
    """What :func:`run_sgd` returns.

    Attributes:
        params: the parameters after the last step.
        losses: ``(num_steps,)`` the objective before each step.
        best_params: the parameters after the step of lowest ``track`` score (the last
            parameters when nothing is tracked).
        best_step: that step (0-based; ``num_steps - 1`` when nothing is tracked).
    """

    params: object
    losses: jax.Array
    best_params: object
    best_step: jax.Array


def run_sgd(loss_fn: Callable, params, optimizer: optax.GradientTransformation, num_steps: int,
            *, track: Callable | None = None) -> SGDResult:
    """``num_steps`` updates of ``params`` by ``optimizer`` on ``loss_fn(params)``, in one
    ``lax.scan``.

    Args:
        loss_fn: a differentiable scalar function of the parameters (close over the data).
        optimizer: any optax transformation (its ``update`` gets the parameters, so weight
            decay works).
        track: optional ``track(params, step) -> score`` evaluated after every update; the
            parameters of the lowest score are returned as ``best_params`` (early stopping on a
            validation error, or a snapshot at a given step).

    Example:
        >>> import optax, jax.numpy as jnp
        >>> out = run_sgd(lambda p: jnp.sum((p - 3.0) ** 2), jnp.zeros(2), optax.adam(0.1), 300)
        >>> [round(float(v), 2) for v in out.params]
        [3.0, 3.0]
    """

    def step(carry, t):
        p, state, best_score, best_t, best_p = carry
        loss, g = jax.value_and_grad(loss_fn)(p)
        upd, state = optimizer.update(g, state, p)
        p = optax.apply_updates(p, upd)
        if track is None:
            return (p, state, best_score, t, p), loss
        score = track(p, t)
        better = score < best_score
        best_p = jax.tree.map(lambda a, b: jnp.where(better, a, b), p, best_p)
        return (p, state, jnp.where(better, score, best_score), jnp.where(better, t, best_t),
                best_p), loss

    init = (params, optimizer.init(params), jnp.float32(jnp.inf), jnp.int32(0), params)
    (p, _, _, best_t, best_p), losses = jax.lax.scan(step, init,
                                                     jnp.arange(num_steps, dtype=jnp.int32))
    return SGDResult(p, losses, best_p, best_t)
