"""One registry of models and method names, read by ``fit``, ``load``, the CLI, ``to_arviz``
and the benchmarks.

Each model is a specification class (its module declares its ``kind``, inference defaults,
posterior dimensions and how its posterior is saved); a method name is a shorthand for a
(model, inference) pair. Adding a model is one module and one line of :data:`ENTRIES`.

Example:
    >>> spec, inference = make_spec("bncf_svi")
    >>> type(spec).__name__, inference.num_steps
    ('BNCF', 3000)
"""

from __future__ import annotations

from dataclasses import fields

from cppjax.errors import did_you_mean
from cppjax.inference import INFERENCES, LEGACY_NAMES, make_inference
from cppjax.models.bncf import BNCF
from cppjax.models.pmf import PMF
from cppjax.models.point import MF, NCF, FactorsOnly
from cppjax.models.scaling import ScalingLaw
from cppjax.models.scaling_mf import ScalingMF

#: (specification class, method name, model settings, one line for the CLI's help). In a name,
#: ``{inference}`` is each inference the model takes; ``{_inference}`` is empty for the model's
#: default inference and ``_svi``, ``_map`` for the others; a name without either is the
#: default inference only.
ENTRIES = [
    (MF, "mf", {}, "matrix factorisation, an ensemble of 5 fits (fast point predictor)"),
    (NCF, "ncf", {}, "neural collaborative filtering (point)"),
    (NCF, "ncf_factors", {"use_factors": True}, "NCF with model and task design factors (point)"),
    (FactorsOnly, "factors_only", {}, "design factors only, no IDs (point; new models/tasks)"),
    (PMF, "pmf_{inference}", {}, "probabilistic MF with factor regressions and families"),
    (BNCF, "bncf_{inference}", {}, "Bayesian NCF with design factors (NUTS: each chain one "
     "weight-permutation mode, the draws an ensemble of modes)"),
    (ScalingMF, "scaling_mf_{inference}", {},
     "scaling-aware MF: capabilities moving with log compute per family, sigmoid link from "
     "chance (models beyond the table)"),
    (ScalingLaw, "scaling_law_unpooled{_inference}", {"pooling": "unpooled"},
     "per-family power law, each family and task on its own (the CPP paper's baseline)"),
    (ScalingLaw, "scaling_law_hierarchical{_inference}", {"pooling": "hierarchical"},
     "per-family power law, slopes and intercepts partially pooled"),
]

def _methods() -> dict[str, tuple[type, dict, str, str]]:
    out = {}
    for cls, pattern, model_settings, about in ENTRIES:
        names = list(cls.inference_defaults)
        for inf in names:
            suffix = "" if inf == names[0] else f"_{inf}"
            name = pattern.format(inference=inf, _inference=suffix)
            if name == pattern and inf != names[0]:
                continue  # a name without a placeholder: the default inference only
            out[name] = (cls, model_settings, inf, about)
    return out


#: method name -> (specification class, model settings, inference name, description)
METHODS = _methods()


def describe_methods() -> str:
    """One line per method name (the CLI's help)."""
    return "\n".join(f"  {name:<32s} {about} [{inf.upper() if inf != 'adam' else 'Adam'}]"
                     for name, (_, _, inf, about) in METHODS.items())


def make_spec(name: str, inference: str | None = None, **settings):
    """The (model specification, inference object) pair behind a method name, with ``settings``
    overriding the defaults of either; a setting that applies to neither is an error naming it.
    ``inference``: another inference of the model by name (e.g. ``"svi"`` for a ``_nuts``
    name)."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}{did_you_mean(name, METHODS)}; choose from "
                         f"{', '.join(METHODS)}")
    cls, model_settings, inf, _ = METHODS[name]
    if inference is not None:
        if inference not in cls.inference_defaults:
            raise ValueError(f"{cls.__name__} is fitted by {', '.join(cls.inference_defaults)}, "
                             f"not {inference!r}")
        inf = inference
    own = {f.name for f in fields(cls)}
    inf_fields = set(INFERENCES[inf].field_names())
    model_kw = {k: v for k, v in settings.items() if k in own}
    inf_kw = {k: v for k, v in settings.items()
              if k not in own and LEGACY_NAMES.get(k, k) in inf_fields}
    unknown = [k for k in settings if k not in model_kw and k not in inf_kw]
    if unknown:
        raise TypeError(f"{', '.join(map(repr, unknown))} do(es) not apply to {name!r}: its "
                        f"model ({cls.__name__}) takes {', '.join(sorted(own))}; its inference "
                        f"({INFERENCES[inf].__name__}) takes {', '.join(sorted(inf_fields))}")
    spec = cls(**{**model_settings, **model_kw})
    inference = make_inference(inf, spec.default_inference(inf), **inf_kw)
    return spec, inference
