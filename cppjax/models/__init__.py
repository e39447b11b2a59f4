"""Predictors: point (MF, NCF, factors-only), Bayesian (PMF, BNCF) and the scaling-law baseline."""

from cppjax.models.bayes import BNCF, PMF, BayesPosterior
from cppjax.models.point import MF, NCF, FactorsOnly, PointPosterior
from cppjax.models.scaling import ScalingLaw, ScalingLawPosterior

__all__ = ["BNCF", "MF", "NCF", "PMF", "BayesPosterior", "FactorsOnly", "PointPosterior",
           "ScalingLaw", "ScalingLawPosterior"]
