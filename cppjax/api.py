"""One entry point for every predictor: ``fit(model, train, rng_key=..., inference=...)``.

``model`` is a specification object (``PMF(rank=5)``, ``MF()``, ``ScalingLaw(...)``) with an
optional inference object (``NUTS(...)``, ``SVI(...)``, ``MAP(...)``, ``Adam(...)``), or a method
name, a shorthand for a (model, inference) pair: ``mf``, ``ncf``, ``ncf_factors``,
``factors_only`` (point predictors), ``pmf_nuts``, ``pmf_svi``, ``pmf_map``, ``bncf_nuts``,
``bncf_svi``, ``bncf_map`` (Bayesian collaborative models), ``scaling_law_unpooled`` and
``scaling_law_hierarchical`` (per-family power laws, NUTS; ``_svi`` or ``_map`` appended for the
other inferences). :data:`cppjax.models.registry.METHODS` lists them all. ``"auto"``: the
candidates chosen, stacked and calibrated by backtesting on the table's own frontier
(:class:`cppjax.stacking.Stack`); ``"copy_sibling"`` and ``"pc_sigmoid"``: closed-form baselines
(:mod:`cppjax.models.baselines`).
"""

from __future__ import annotations

from cppjax.data import ScoreMatrix
from cppjax.models.base import ModelSpec
from cppjax.models.baselines import BASELINES
from cppjax.models.registry import METHODS, make_spec
from cppjax.posterior import Posterior

__all__ = ["METHODS", "fit", "make_spec"]


def fit(
    model: str | ModelSpec,
    train: ScoreMatrix,
    *,
    rng_key,
    inference=None,
    method: str | None = None,
    progress: bool | None = None,
    **settings,
) -> Posterior:
    """Fit a predictor on the observed cells of ``train``.

    Args:
        model: a method name or a specification object (``MF(rank=8)``, ``PMF(rank=5)``, ...).
        rng_key: a ``jax.random`` key or an int seed (required).
        inference: an inference object (``NUTS(num_warmup=200)``, ``SVI(num_steps=2000)``,
            ``Adam(steps=500)``...) or its name; default: the method's or the model's own.
            Holding one object across fits reuses its compiled programs.
        method: the same as ``inference`` given by name (the first form of this function).
        settings: with a method name, overrides of its model's or its inference's defaults
            (``rank=3``, ``num_samples=200``); a setting neither takes is an error.

    Example:
        >>> from cppjax.datasets import load_cpp_crowdsource
        >>> from cppjax.inference import Adam
        >>> post = fit("mf", load_cpp_crowdsource(), rng_key=0, inference=Adam(steps=100))
        >>> post.predict("missing").to_frame().columns.tolist()
        ['model', 'task', 'mean', 'median', 'lower', 'upper', 'observed']
    """
    if isinstance(model, str) and (model == "auto" or model in BASELINES):
        if inference is not None or method is not None:
            raise TypeError(f"{model!r} takes no inference object (its candidates carry their "
                            f"own; a closed-form baseline needs none)")
        if model == "auto":
            from cppjax.stacking import Stack

            spec = Stack(**settings)
        else:
            spec = BASELINES[model](**settings)
        return spec.fit(train, rng_key=rng_key, progress=progress)
    if isinstance(model, str):
        by_name = inference if isinstance(inference, str) else method
        spec, default = make_spec(model, by_name, **settings)
        if inference is None or isinstance(inference, str):
            inference, method = default, None
    elif isinstance(model, ModelSpec):
        if settings:
            raise TypeError(f"settings {sorted(settings)} apply to a method name; set them on "
                            f"the model object or the inference object instead")
        spec = model
    else:
        raise TypeError(f"model must be a method name or a model specification (PMF(), MF()"
                        f"...); got {type(model).__name__}")
    return spec.fit(train, rng_key=rng_key, inference=inference, method=method,
                    progress=progress)
