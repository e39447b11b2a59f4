"""cppjax: collaborative performance prediction for LLM benchmarks, with honest uncertainty."""

from cppjax.api import fit
from cppjax.data import Normalization, Observations, ScoreMatrix, read_factors
from cppjax.errors import CppjaxWarning, DataError, FactorMismatchError
from cppjax.inference import MAP, NUTS, SVI, Adam
from cppjax.io import load
from cppjax.items import ItemResponses
from cppjax.models import BNCF, MF, NCF, PMF, FactorsOnly, ScalingLaw, ScalingMF
from cppjax.predictive import Posterior, Predictive
from cppjax.ranks import RankPosterior

__version__ = "0.5.0"

__all__ = [
    "BNCF",
    "MAP",
    "MF",
    "NCF",
    "NUTS",
    "PMF",
    "SVI",
    "Adam",
    "FactorsOnly",
    "ScalingLaw",
    "ScalingMF",
    "Posterior",
    "Predictive",
    "RankPosterior",
    "fit",
    "load",
    "CppjaxWarning",
    "DataError",
    "FactorMismatchError",
    "ItemResponses",
    "Normalization",
    "Observations",
    "ScoreMatrix",
    "read_factors",
]
