"""cppjax: collaborative performance prediction for LLM benchmarks, with honest uncertainty."""

from cppjax.api import fit
from cppjax.data import Normalization, Observations, ScoreMatrix, read_factors
from cppjax.errors import CppjaxWarning, DataError, FactorMismatchError
from cppjax.models import BNCF, MF, NCF, PMF, FactorsOnly, ScalingLaw
from cppjax.predictive import Posterior, Predictive
from cppjax.ranks import RankPosterior

__version__ = "0.1.0"

__all__ = [
    "BNCF",
    "MF",
    "NCF",
    "PMF",
    "FactorsOnly",
    "ScalingLaw",
    "Posterior",
    "Predictive",
    "RankPosterior",
    "fit",
    "CppjaxWarning",
    "DataError",
    "FactorMismatchError",
    "Normalization",
    "Observations",
    "ScoreMatrix",
    "read_factors",
]
