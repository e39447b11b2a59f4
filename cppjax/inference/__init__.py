"""The inference layer: inference objects (NUTS, SVI, MAP, Adam) that own their compiled
programs, the one NUTS driver and SVI loop (:mod:`~cppjax.inference.programs`), the one optax
training loop (:mod:`~cppjax.inference.train`), the one predictive path
(:func:`predict_sites`), sharding over devices and PRNG keys. Above the data layer, below
posteriors and models (``docs/architecture.md``)."""

from cppjax.inference.cache import ProgramCache, enable_compilation_cache
from cppjax.inference.convergence import rank_rhat
from cppjax.inference.keys import as_key, numpy_rng
from cppjax.inference.objects import (
    INFERENCES,
    LEGACY_NAMES,
    MAP,
    NUTS,
    SVI,
    Adam,
    Inference,
    make_inference,
    progress_enabled,
)
from cppjax.inference.run import (
    InferenceResult,
    log_likelihood,
    predict_sites,
    run_inference,
)
from cppjax.inference.train import run_sgd

__all__ = ["INFERENCES", "LEGACY_NAMES", "MAP", "NUTS", "SVI", "Adam", "Inference",
           "InferenceResult", "ProgramCache", "as_key", "enable_compilation_cache",
           "log_likelihood", "make_inference", "numpy_rng", "predict_sites", "progress_enabled",
           "rank_rhat", "run_inference", "run_sgd"]
