"""The one place the settings of cppjax's first forms live on, each with a DeprecationWarning
(removed in 0.7; CHANGELOG 0.6.0):

* inference settings given to a model's constructor (``PMF(svi_steps=300, num_samples=50)``,
  ``MF(steps=200)``): they become the defaults of the inferences that take them
  (:func:`accepts_legacy_settings`); today: ``PMF(...)`` with ``inference=SVI(...)``;
* an inference setting read from the model (``MF().n_inits``; :class:`LegacyAttributes`);
  today: ``MF().default_inference().n_inits``;
* ``fit(..., method="svi")`` for ``inference="svi"`` (:func:`legacy_method`).
"""

from __future__ import annotations

import dataclasses
import warnings

from cppjax.inference import INFERENCES, LEGACY_NAMES


def _deprecated(what: str, instead: str, stacklevel: int = 3) -> None:
    """``stacklevel``: frames from here to the user's line (3: the user calls the function
    that calls this one)."""
    warnings.warn(f"{what} is deprecated (removed in cppjax 0.7); {instead}", DeprecationWarning,
                  stacklevel=stacklevel + 1)


def accepts_legacy_settings(cls):
    """Class decorator: the constructor of ``cls`` also takes the inference settings of the
    first forms of cppjax (``num_samples``, ``svi_steps``, ``steps``...), kept apart from the
    model's fields and applied by ``ModelSpec.default_inference``."""
    init = cls.__init__
    legacy_names = set()
    for inf in cls.inference_defaults:
        legacy_names |= set(INFERENCES[inf].field_names())
    legacy_names |= set(LEGACY_NAMES)

    def __init__(self, *args, **kwargs):
        own = {f.name for f in dataclasses.fields(cls)}
        legacy = {k: kwargs.pop(k) for k in list(kwargs) if k not in own and k in legacy_names}
        if legacy:
            _deprecated(f"{cls.__name__}({', '.join(f'{k}=' for k in legacy)})",
                        "give these settings to the inference object (inference=SVI(...), "
                        "NUTS(...), Adam(...))")
        init(self, *args, **kwargs)
        object.__setattr__(self, "legacy_settings", legacy)

    __init__.__doc__ = init.__doc__
    __init__.__wrapped__ = init
    cls.__init__ = __init__
    return cls


class LegacyAttributes:
    """Reading an inference setting from the model, as in the first forms of cppjax
    (``MF().n_inits``): the value in this model's default inference that takes it."""

    def __getattr__(self, name: str):
        if not name.startswith("_") and name != "legacy_settings":
            field = LEGACY_NAMES.get(name, name)
            for inf in type(self).inference_defaults:
                if field in INFERENCES[inf].field_names():
                    _deprecated(f"reading {type(self).__name__}().{name}",
                                f"read default_inference({inf!r}).{field}")
                    return getattr(self.default_inference(inf), field)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


def legacy_method(inference, method: str | None):
    """``inference`` from ``fit(inference=...)`` or the first form's ``fit(method=...)``."""
    if inference is not None and method is not None:
        raise TypeError("give inference= or method=, not both")
    if method is not None:
        # the user -> cppjax.fit or spec.fit -> resolve_inference -> here
        _deprecated(f"fit(method={method!r})", f"write fit(inference={method!r})", 4)
        return method
    return inference
