"""PRNG keys: the one place an int seed becomes a ``jax.random`` key.

Every function of cppjax that draws random numbers takes ``rng_key`` explicitly (no hidden
``PRNGKey(0)``); where it needs several streams it splits the key with ``jax.random.split``,
never by adding to a seed (``seed + 1`` for one run is ``seed`` for the next).
"""

from __future__ import annotations

import jax
import numpy as np


def as_key(rng_key, *, name: str = "rng_key") -> jax.Array:
    """``rng_key`` as a ``jax.random`` key: a key is returned as it is, an int seed becomes
    ``jax.random.PRNGKey(seed)``.

    Example:
        >>> import jax
        >>> bool((as_key(3) == jax.random.PRNGKey(3)).all())
        True
    """
    if rng_key is None:
        raise ValueError(f"{name} is required: pass a jax.random key or an int seed")
    if isinstance(rng_key, bool):
        raise TypeError(f"{name} must be a jax.random key or an int seed, not a bool")
    if isinstance(rng_key, int | np.integer):
        return jax.random.PRNGKey(int(rng_key))
    key = jax.numpy.asarray(rng_key) if not isinstance(rng_key, jax.Array) else rng_key
    if not (jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)
            or (key.dtype == np.uint32 and key.shape == (2,))):
        raise TypeError(f"{name} must be a jax.random key or an int seed; got an array of "
                        f"dtype {key.dtype} and shape {key.shape}")
    return key


def numpy_rng(rng_key) -> np.random.Generator:
    """A NumPy generator seeded from ``rng_key`` (a ``jax.random`` key or an int seed): the one
    way cppjax turns a key into NumPy random numbers (where NumPy's samplers are faster than
    JAX's on the CPU, e.g. many Gamma draws; decision 0008). Split or fold the key first for
    another stream; never add to a seed.

    Example:
        >>> a = numpy_rng(7).standard_normal(2)
        >>> bool((a == numpy_rng(7).standard_normal(2)).all())
        True
    """
    key = as_key(rng_key)
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    return np.random.default_rng(np.asarray(key, np.uint32).ravel())
