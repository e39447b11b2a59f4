"""cppjax: collaborative performance prediction for LLM benchmarks, with honest uncertainty."""

from cppjax.data import Normalization, Observations, ScoreMatrix, read_factors
from cppjax.errors import CppjaxWarning, DataError, FactorMismatchError

__version__ = "0.1.0"

__all__ = [
    "CppjaxWarning",
    "DataError",
    "FactorMismatchError",
    "Normalization",
    "Observations",
    "ScoreMatrix",
    "read_factors",
]
