"""Encoding of model and task design factors into arrays a JAX model can use.

Numeric factors are put on a log scale (``log1p`` of non-negative columns; columns with negative
values are left linear) and standardised over their observed values; a missing value becomes 0
(the column mean) **and** sets a missing-value indicator, so a model can tell "average" from
"unknown". Categorical factors become integer codes, with code 0 reserved for "missing or unseen".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd

#: Numeric columns of the bundled CPP table that the paper treats as categories (embedded).
CPP_CATEGORICAL = ("family", "finetuned", "context_window", "batch_size_tokens")


class EncodedFactors(NamedTuple):
    """Factors of ``n`` rows (models or tasks)."""

    numeric: np.ndarray  # float32 (n, p): log-scaled, standardised, 0 where missing
    missing: np.ndarray  # float32 (n, p): 1 where the numeric factor is missing
    categorical: np.ndarray  # int32 (n, c): code 1.. per level, 0 = missing / unseen
    cardinalities: tuple[int, ...]  # levels + 1 per categorical column
    numeric_names: tuple[str, ...]
    categorical_names: tuple[str, ...]

    @property
    def dense(self) -> np.ndarray:
        """Numeric values and missing indicators side by side, ``(n, 2p)``."""
        return np.concatenate([self.numeric, self.missing], axis=1)

    @property
    def n_features(self) -> int:
        return self.numeric.shape[1] + self.categorical.shape[1]


def encode_factors(
    df: pd.DataFrame,
    *,
    categorical: Sequence[str] | None = None,
    exclude: Sequence[str] = (),
) -> EncodedFactors:
    """Encode a factor table (index = names).

    Args:
        df: a factor table such as ``ScoreMatrix.model_factors``.
        categorical: columns to embed as categories; default: the non-numeric columns plus those of
            :data:`CPP_CATEGORICAL` present in ``df``.
        exclude: columns to leave out.
    """
    cols = [c for c in df.columns if c not in set(exclude)]
    if categorical is None:
        categorical = [c for c in cols if df[c].dtype == object or c in CPP_CATEGORICAL]
    cat_cols = [c for c in cols if c in set(categorical)]
    num_cols = [c for c in cols if c not in set(cat_cols)]
    n = len(df)
    numeric = np.zeros((n, len(num_cols)), np.float32)
    missing = np.zeros((n, len(num_cols)), np.float32)
    for k, c in enumerate(num_cols):
        x = pd.to_numeric(df[c], errors="coerce").to_numpy(dtype=float)
        obs = np.isfinite(x)
        if obs.any() and (x[obs] >= 0).all():
            x = np.log1p(np.where(obs, x, 0.0))
        if obs.sum() > 1:
            mu, sd = x[obs].mean(), x[obs].std()
            z = (x - mu) / (sd if sd > 0 else 1.0)
        else:
            z = np.zeros(n)
        numeric[:, k] = np.where(obs, z, 0.0)
        missing[:, k] = ~obs
    codes = np.zeros((n, len(cat_cols)), np.int32)
    cards = []
    for k, c in enumerate(cat_cols):
        vals, levels = category_levels(df[c])
        lookup = {v: i + 1 for i, v in enumerate(levels)}
        codes[:, k] = [lookup.get(v, 0) if v is not None else 0 for v in vals]
        cards.append(len(levels) + 1)
    # drop numeric columns that carry nothing (all missing)
    keep = ~(missing.all(axis=0))
    return EncodedFactors(numeric[:, keep], missing[:, keep], codes, tuple(cards),
                          tuple(c for c, k in zip(num_cols, keep, strict=True) if k),
                          tuple(cat_cols))


def category_levels(values) -> tuple[list[str | None], list[str]]:
    """A categorical column's values as strings (None where missing) and its levels, sorted:
    level ``i`` gets code ``i + 1`` in :func:`encode_factors`."""
    vals = [None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)
            for v in list(values)]
    return vals, sorted({v for v in vals if v is not None})


def design_matrix(enc: EncodedFactors) -> np.ndarray:
    """A dense regression design: numeric values, missing indicators (columns that vary) and
    one-hot categorical levels (code 0, "missing", is the baseline), ``(n, p)`` float32."""
    parts = [enc.numeric]
    varying = enc.missing.std(axis=0) > 0
    parts.append(enc.missing[:, varying])
    for k, card in enumerate(enc.cardinalities):
        onehot = np.eye(card, dtype=np.float32)[enc.categorical[:, k]][:, 1:]
        parts.append(onehot[:, onehot.std(axis=0) > 0])
    return np.concatenate(parts, axis=1).astype(np.float32) if parts else np.zeros((0, 0))
