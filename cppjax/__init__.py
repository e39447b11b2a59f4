"""cppjax: collaborative performance prediction for LLM benchmarks, with honest uncertainty."""

from cppjax import compat
from cppjax.api import fit
from cppjax.data import Normalization, Observations, ScoreMatrix, read_factors
from cppjax.data.items import ItemResponses
from cppjax.errors import CppjaxWarning, DataError, FactorMismatchError
from cppjax.inference import MAP, NUTS, SVI, Adam, enable_compilation_cache
from cppjax.models import (
    BNCF,
    MF,
    NCF,
    PMF,
    CopySibling,
    FactorsOnly,
    PCSigmoid,
    ScalingLaw,
    ScalingMF,
)
from cppjax.posterior import Posterior, Predictive
from cppjax.posterior.files import load
from cppjax.posterior.ranks import RankPosterior

__version__ = "0.9.0"

compat.install()  # the module paths of 0.5, for one release (cppjax.compat)

#: the applications and helpers, imported on first use (``cppjax.planning.plan(...)``)
_SUBMODULES = ("planning", "cod", "importance", "clustering", "datasets", "metrics", "plots",
               "splits", "evaluation", "stacking")


def __getattr__(name: str):
    if name in _SUBMODULES:
        import importlib

        return importlib.import_module(f"cppjax.{name}")
    if name == "Stack":  # fit("auto")'s model, with the splits it backtests on
        from cppjax.stacking import Stack

        return Stack
    raise AttributeError(f"module 'cppjax' has no attribute {name!r}")

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
    "CopySibling",
    "PCSigmoid",
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
    "enable_compilation_cache",
]
