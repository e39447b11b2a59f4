"""Bayesian neural collaborative filtering (BNCF) in NumPyro."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import ClassVar

import numpyro.distributions as dist
from numpyro.contrib.module import random_flax_module

from cppjax.data.features import encode_factors
from cppjax.models.base import BayesSpec
from cppjax.models.legacy import accepts_legacy_settings
from cppjax.models.likelihood import observe, task_noise
from cppjax.models.nets import NCFNet, factor_arrays


def bncf_model(
    Xm, Xt, model_idx, task_idx, y=None, mask=None, *, net: NCFNet, factors: tuple,
    prior_scale: float = 0.3, noise_tau: float = 0.5, noise_floor: float = 0.0,
    likelihood: str = "normal", subsample_size: int | None = None, censor=None,
):
    """Bayesian NCF: Normal(0, prior_scale) priors on all weights, per-task noise."""
    nn = random_flax_module(
        "ncf", net, dist.Normal(0.0, prior_scale), model_idx[:1], task_idx[:1], *factors
    )
    mean = nn(model_idx, task_idx, *factors)
    sigma = task_noise(Xt.shape[0], noise_tau, floor=noise_floor)
    observe(mean, sigma, task_idx, y, likelihood, mask, subsample_size, censor)


@accepts_legacy_settings
@dataclass(frozen=True)
class BNCF(BayesSpec):
    """Bayesian neural collaborative filtering with design factors: the NCF network of
    :mod:`cppjax.models.nets` lifted into NumPyro with ``random_flax_module``, Normal priors on
    every weight, and PMF's per-task noise model with a lower floor (0.015).

    **Under NUTS its draws are an ensemble of modes.** A network's weights can be permuted
    (and, with odd activations, flipped) without changing its output, and these modes are too
    far apart for a chain to cross: each chain settles in one (r-hat of the cell means across
    chains 3.3-4.5 on CPP), so the posterior draws pool ``num_chains`` modes, like a deep
    ensemble whose members are each sampled. Its diagnostics judge convergence within each
    chain (``max_rhat``) and report the spread between them as ``between_chain_rhat``; its
    intervals' coverage is measured in ``benchmarks/results/calibration.md``.

    Its inference defaults differ from PMF's: NUTS trajectories stop at depth 7, SVI takes
    3,000 steps at learning rate 0.005 with a rank-20 guide. The measurements behind these
    settings are in ``docs/decisions/0004-noise-model-and-bncf-settings.md``.
    """

    dim: int = 4
    hidden: tuple[int, ...] = (16,)
    prior_scale: float = 0.3
    noise_floor: float = 0.015

    kind: ClassVar[str] = "bncf"
    chains_are_modes: ClassVar[bool] = True
    inference_defaults: ClassVar[dict[str, dict]] = {
        "nuts": {"max_tree_depth": 7},
        "svi": {"num_steps": 3000, "lr": 0.005, "guide_rank": 20},
        "map": {"num_steps": 3000, "lr": 0.005},
    }
    dims: ClassVar[dict] = {"sigma": ["tasks"], "sigma_z": ["tasks"]}

    def model_parts(self, sm, data_cells=False):
        # (each cell's mean comes from its own model's and task's inputs: nothing to leave out)
        mf, tf = encode_factors(sm.model_factors), encode_factors(sm.task_factors)
        if not self.use_factors:
            mf = mf._replace(
                numeric=mf.numeric[:, :0],
                missing=mf.missing[:, :0],
                categorical=mf.categorical[:, :0],
                cardinalities=(),
            )
            tf = tf._replace(
                numeric=tf.numeric[:, :0],
                missing=tf.missing[:, :0],
                categorical=tf.categorical[:, :0],
                cardinalities=(),
            )
        net = NCFNet(
            sm.n_models,
            sm.n_tasks,
            self.dim,
            tuple(self.hidden),
            use_ids=True,
            use_factors=self.use_factors,
            model_cards=mf.cardinalities,
            task_cards=tf.cardinalities,
        )
        model = partial(bncf_model, net=net, prior_scale=self.prior_scale,
                        noise_tau=self.noise_tau, noise_floor=self.noise_floor,
                        likelihood=self.likelihood)
        return model, {"factors": factor_arrays(mf, tf)}
