"""The data layer: the one container (:class:`ScoreMatrix`) and everything that reads tables
into it (tables, task info, factors, normalisation, compute, per-item results, costs). It
imports nothing of cppjax above it (``docs/architecture.md``)."""

from cppjax.data.matrix import (
    MISSING_TOKENS,
    SCALE_RANGE,
    Normalization,
    NormKind,
    Observations,
    Scale,
    ScoreMatrix,
    auto_scale,
    read_factors,
)

__all__ = ["MISSING_TOKENS", "SCALE_RANGE", "NormKind", "Normalization", "Observations",
           "Scale", "ScoreMatrix", "auto_scale", "read_factors"]

from cppjax.data import harness as _harness  # noqa: E402

# lm-evaluation-harness result files (cppjax.data.harness); bound here, matrix.py stays short
ScoreMatrix.from_harness = classmethod(_harness.from_harness)
