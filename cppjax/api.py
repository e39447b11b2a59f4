"""One entry point for every predictor: ``fit(name_or_spec, train, rng_key=..., method=...)``.

Names (as in the benchmarks): ``mf``, ``ncf``, ``ncf_factors``, ``factors_only`` (point
predictors), ``pmf_nuts``, ``pmf_svi``, ``pmf_map``, ``bncf_nuts``, ``bncf_svi``, ``bncf_map``
(Bayesian collaborative models), ``scaling_law_unpooled`` and ``scaling_law_hierarchical``
(per-family power laws, NUTS; append ``_svi`` or ``_map`` for the other inferences).
"""

from __future__ import annotations

from cppjax.data import ScoreMatrix
from cppjax.models.bayes import BNCF, PMF, _Bayes
from cppjax.models.point import MF, NCF, FactorsOnly, _PointModel
from cppjax.models.scaling import ScalingLaw
from cppjax.predictive import Posterior

POINT = {
    "mf": MF,
    "ncf": NCF,
    "ncf_factors": lambda **kw: NCF(use_factors=True, **kw),
    "factors_only": FactorsOnly,
}
BAYES = {"pmf": PMF, "bncf": BNCF}
SCALING = {
    "scaling_law_unpooled": lambda **kw: ScalingLaw(pooling="unpooled", **kw),
    "scaling_law_hierarchical": lambda **kw: ScalingLaw(pooling="hierarchical", **kw),
}
METHODS = (tuple(POINT) + tuple(f"{m}_{i}" for m in BAYES for i in ("nuts", "svi", "map"))
           + tuple(SCALING))


def make_spec(name: str, **settings):
    """The specification object behind a method name, with ``settings`` overriding defaults;
    returns ``(spec, inference)`` where ``inference`` is None for point predictors."""
    if name in POINT:
        return POINT[name](**settings), None
    if name in SCALING:
        return SCALING[name](**settings), "nuts"
    for inference in ("svi", "map"):
        if name.removesuffix(f"_{inference}") in SCALING:
            return SCALING[name.removesuffix(f"_{inference}")](**settings), inference
    base, _, inference = name.rpartition("_")
    if base in BAYES and inference in ("nuts", "svi", "map"):
        return BAYES[base](**settings), inference
    from cppjax.errors import did_you_mean

    raise ValueError(
        f"unknown method {name!r}{did_you_mean(name, METHODS)}; choose from {', '.join(METHODS)}"
    )


def fit(
    model: str | _PointModel | _Bayes,
    train: ScoreMatrix,
    *,
    rng_key,
    method: str | None = None,
    progress: bool | None = None,
    **settings,
) -> Posterior:
    """Fit a predictor on the observed cells of ``train``.

    Args:
        model: a method name (see the module docstring) or a specification object
            (``MF(rank=8)``, ``PMF(rank=5)``, ...).
        rng_key: a ``jax.random`` key or an int seed (required).
        method: for a Bayesian specification object, ``"nuts"``, ``"svi"`` or ``"map"``.
        settings: overrides of the specification's defaults when ``model`` is a name.

    Example:
        >>> from cppjax.datasets import load_cpp_crowdsource
        >>> post = fit("mf", load_cpp_crowdsource(), rng_key=0, steps=100)
        >>> post.predict("missing").to_frame().columns.tolist()
        ['model', 'task', 'mean', 'median', 'lower', 'upper', 'observed']
    """
    if isinstance(model, str):
        spec, inference = make_spec(model, **settings)
        method = method or inference
    else:
        if settings:
            raise TypeError("settings apply to a method name; set them on the spec object instead")
        spec = model
    if isinstance(spec, _PointModel):
        return spec.fit(train, rng_key=rng_key)
    return spec.fit(train, rng_key=rng_key, method=method or "nuts", progress=progress)
