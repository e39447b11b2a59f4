"""The posterior layer: the :class:`Posterior` protocol every fitted model implements, the
:class:`Predictive` it answers with, rank posteriors, and the checked save files. Above the
inference layer, below the models (``docs/architecture.md``)."""

from cppjax.posterior.base import NotSaveable, Posterior
from cppjax.posterior.predictive import Predictive, hpd_interval
from cppjax.posterior.ranks import RankPosterior
from cppjax.posterior.renormalized import RenormalizedPosterior

__all__ = ["NotSaveable", "Posterior", "Predictive", "RankPosterior", "RenormalizedPosterior",
           "hpd_interval"]
