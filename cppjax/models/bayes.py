"""Where PMF and BNCF lived before they had modules of their own; kept so that earlier imports
(``from cppjax.models.bayes import PMF``) still work."""

from cppjax.models.bncf import BNCF, bncf_model
from cppjax.models.pmf import PMF, pmf_model
from cppjax.posterior import BayesPosterior

__all__ = ["BNCF", "PMF", "BayesPosterior", "bncf_model", "pmf_model"]
