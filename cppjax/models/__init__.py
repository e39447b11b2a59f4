"""Predictors: point (MF, NCF, factors-only), Bayesian (PMF, BNCF, ScalingMF) and the scaling-law
baseline."""

from cppjax.models.baselines import BaselinePosterior, CopySibling, PCSigmoid
from cppjax.models.bayes import BayesPosterior
from cppjax.models.bncf import BNCF
from cppjax.models.pmf import PMF
from cppjax.models.point import MF, NCF, FactorsOnly, PointPosterior
from cppjax.models.scaling import ScalingLaw, ScalingLawPosterior
from cppjax.models.scaling_mf import ScalingMF

__all__ = ["BNCF", "MF", "NCF", "PMF", "BaselinePosterior", "BayesPosterior", "CopySibling",
           "PCSigmoid", "FactorsOnly", "PointPosterior",
           "ScalingLaw", "ScalingLawPosterior", "ScalingMF"]
