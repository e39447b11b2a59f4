"""Saving and loading any fitted posterior (point, Bayesian, scaling law) in one format.

A saved posterior is one ``.npz`` archive (NumPy arrays, never pickled objects) holding

* ``meta``: JSON text: the format's name and version, the model's ``kind`` (its entry in
  :mod:`cppjax.models.registry`), the model and inference settings, the training matrix's names,
  factors, scale and normalisation, and a manifest of every array with its shape, dtype and
  the SHA-256 of its bytes;
* the training scores, the normalisation, and the posterior's own arrays (samples, fitted
  matrices...).

:func:`load` checks the archive before it builds anything: a file that is not a zip archive or
is truncated, one without cppjax's ``meta``, one from another program, one missing an array or
whose array differs from its manifest is refused with a :class:`~cppjax.DataError` that says
which. Predictions of a loaded posterior equal the saved one's.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from cppjax.data import Normalization, ScoreMatrix
from cppjax.errors import DataError

FORMAT = "cppjax-posterior"
VERSION = 3  # 3: task_info and the logit link of mixed tables (0.3)

#: model kind -> specification class, filled as each class is defined
#: (:meth:`cppjax.models.base.ModelSpec.__init_subclass__`), so that this module needs no model
SPEC_CLASSES: dict[str, type] = {}
#: a posterior's meta key -> the class that wraps the model's own posterior when the key is
#: there (``"fit_normalization"``: :mod:`cppjax.posterior.renormalized`), filled by that module
WRAPPER_CLASSES: dict[str, type] = {}


def _digest(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def _matrix_meta(sm: ScoreMatrix) -> dict:
    return {
        "models": list(sm.models), "tasks": list(sm.tasks), "scale": sm.scale,
        "norm_kind": sm.normalization.kind, "norm_auto": sm.normalization.auto,
        "source": sm.source,
        "model_factors": sm.model_factors.to_json(orient="split"),
        "task_factors": sm.task_factors.to_json(orient="split"),
        "model_factor_dtypes": {c: str(t) for c, t in sm.model_factors.dtypes.items()},
        "task_factor_dtypes": {c: str(t) for c, t in sm.task_factors.dtypes.items()},
        "task_info": sm.task_info.to_json(orient="split"),
    }


def _frame(js: str, dtypes: dict, names) -> pd.DataFrame:
    df = pd.read_json(io.StringIO(js), orient="split")
    for c, t in dtypes.items():
        df[c] = (df[c].astype(float) if t.startswith("float")
                 else df[c].astype(object).where(df[c].notna(), None))
    df.index = list(names)
    return df


def _matrix_from(meta: dict, scores, loc, scale, link=(), borrowed=None) -> ScoreMatrix:
    """The training matrix of a saved posterior (files of 0.1/0.2 have no task_info and no
    link arrays: their tasks take the scale's bounds); ``borrowed``: the ``norm_borrowed`` and
    ``norm_donor_*`` arrays of a table with a task without scores."""
    info = None
    if meta.get("task_info"):
        info = pd.read_json(io.StringIO(meta["task_info"]), orient="split")
        info.index = list(meta["tasks"])
        for c in ("lower", "upper"):  # JSON has no infinity: null
            info[c] = info[c].astype(float).fillna(np.inf if c == "upper" else -np.inf)
    return ScoreMatrix(
        scores, meta["models"], meta["tasks"],
        _frame(meta["model_factors"], meta["model_factor_dtypes"], meta["models"]),
        _frame(meta["task_factors"], meta["task_factor_dtypes"], meta["tasks"]),
        scale=meta["scale"], normalization=Normalization(
            meta["norm_kind"], loc, scale, *link, auto=meta.get("norm_auto", False),
            **_donors(borrowed)),
        source=meta["source"], task_info=info)


def _donors(arrays) -> dict:
    if not arrays:
        return {}
    task = arrays["norm_donor_task"].astype(int)
    return {"_borrowed": arrays["norm_borrowed"].astype(bool),
            "_donors": {int(j): (arrays["norm_donor_loc"][task == j],
                                 arrays["norm_donor_scale"][task == j])
                        for j in np.unique(task)}}


def save(posterior, path) -> Path:
    """Save ``posterior`` to ``path`` exactly as named (no suffix is added; ``.npz`` is the
    usual one) and return the path."""
    path = Path(path)
    own = posterior._arrays()  # first: a kind that cannot be saved says so (NotSaveable)
    sm = posterior.matrix
    norm = sm.normalization
    link = {} if norm.logit is None else {"norm_lower": norm.lower, "norm_upper": norm.upper,
                                          "norm_logit": norm.logit}
    if norm._donors:  # a task without scores: the ranges its draws go through (0029)
        link.update(norm_borrowed=norm.borrowed, **{
            f"norm_donor_{k}": np.concatenate([np.full(r[0].size, j) if k == "task" else r[i]
                                               for j, r in norm._donors.items()])
            for i, k in ((0, "loc"), (1, "scale"), (0, "task"))})
    arrays = {"scores": sm.scores, "norm_loc": norm.loc, "norm_scale": norm.scale, **link,
              **own}
    arrays = {k: np.asarray(v) for k, v in arrays.items()}
    inference = posterior.inference
    meta = {
        "format": FORMAT, "version": VERSION, "kind": posterior.spec.kind,
        "spec": posterior.spec.model_settings(),
        "inference": {"name": inference.name, **inference.settings()},
        "method": posterior.method, "fit_seconds": posterior.fit_seconds,
        "matrix": _matrix_meta(sm), "posterior": posterior._meta(),
        "arrays": {k: {"shape": list(v.shape), "dtype": v.dtype.str, "sha256": _digest(v)}
                   for k, v in arrays.items()},
    }
    with open(path, "wb") as fh:  # a file object: np.savez would append ".npz" to a name
        np.savez(fh, meta=np.array(json.dumps(meta)), **arrays)
    return path


def _read(path: Path) -> tuple[dict, dict]:
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    if not zipfile.is_zipfile(path):
        raise DataError(f"{path}: not a saved cppjax posterior (not a zip archive: a file "
                        f"written by posterior.save() is one); it may be another file or cut short")
    try:
        with np.load(path, allow_pickle=False) as f:
            if "meta" not in f.files:
                raise DataError(f"{path}: not a saved cppjax posterior (an .npz archive without "
                                f"cppjax's 'meta' record)")
            meta = json.loads(str(f["meta"]))
            arrays = {k: f[k] for k in f.files if k != "meta"}
    except DataError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as e:
        raise DataError(f"{path}: the saved posterior is damaged or truncated and cannot be "
                        f"read ({type(e).__name__}); save it again") from None
    return meta, arrays


def _check(path: Path, meta: dict, arrays: dict) -> None:
    if meta.get("format") != FORMAT:
        raise DataError(f"{path}: not a saved cppjax posterior (format {meta.get('format')!r})")
    if meta.get("version", 0) > VERSION:
        raise DataError(f"{path}: saved by a newer cppjax (format version {meta['version']}; "
                        f"this one reads up to {VERSION}): upgrade cppjax")
    manifest = meta.get("arrays", {})
    missing = sorted(set(manifest) - set(arrays))
    if missing:
        raise DataError(f"{path}: the saved posterior is incomplete: array(s) "
                        f"{', '.join(missing)} are missing")
    extra = sorted(set(arrays) - set(manifest))
    if extra:
        raise DataError(f"{path}: array(s) {', '.join(extra)} are not in the file's manifest "
                        f"(the file was changed after it was saved)")
    for k, info in manifest.items():
        a = arrays[k]
        if list(a.shape) != info["shape"] or a.dtype.str != info["dtype"] or \
                _digest(a) != info["sha256"]:
            raise DataError(f"{path}: array {k!r} differs from the one saved (shape, dtype or "
                            f"content): the file was changed or damaged after it was saved")


def _legacy(meta: dict) -> dict:
    """The meta record of a Bayesian posterior saved by cppjax 0.1's ``BayesPosterior.save``
    (no manifest: its arrays are taken as they are) in this format's shape."""
    spec = dict(meta["spec"])
    kind = meta["spec_kind"]
    method = meta["method"].split("_")[-1]
    moved = {"num_warmup", "num_samples", "num_chains", "target_accept", "max_tree_depth",
             "guide", "guide_rank", "svi_steps", "lr"}
    inf = {k: v for k, v in spec.items() if k in moved}
    spec = {k: v for k, v in spec.items() if k not in moved}
    if kind == "pmf":
        spec.setdefault("family", None)  # saved before PMF had family effects: none
    matrix = {k: meta[k] for k in ("models", "tasks", "scale", "norm_kind", "source",
                                   "model_factors", "task_factors", "model_factor_dtypes",
                                   "task_factor_dtypes")}
    return {"format": FORMAT, "version": 1, "kind": kind, "spec": spec,
            "inference": {"name": method, **inf}, "method": meta["method"],
            "fit_seconds": meta["fit_seconds"], "matrix": matrix,
            "posterior": {"num_chains": meta["num_chains"], "diagnostics": meta["diagnostics"],
                          "result_method": method}}


def load(path):
    """Load a posterior saved with :func:`save` (or ``posterior.save``); its predictions equal
    the saved posterior's."""
    from cppjax.inference import make_inference

    path = Path(path)
    meta, arrays = _read(path)
    if "spec_kind" in meta and "format" not in meta:
        meta = _legacy(meta)
    else:
        _check(path, meta, arrays)
    if meta["kind"] not in SPEC_CLASSES:
        raise DataError(f"{path}: model kind {meta['kind']!r} is not one this cppjax knows "
                        f"({', '.join(SPEC_CLASSES)})")
    spec_cls = SPEC_CLASSES[meta["kind"]]
    spec_args = dict(meta["spec"])
    if "hidden" in spec_args:
        spec_args["hidden"] = tuple(spec_args["hidden"])
    spec = spec_cls(**spec_args)
    inf_args = dict(meta["inference"])
    inference = make_inference(inf_args.pop("name"), spec.default_inference(meta["inference"]
                                                                             ["name"]), **inf_args)
    link = tuple(arrays.pop(k) for k in ("norm_lower", "norm_upper", "norm_logit")
                 if k in arrays)
    borrowed = {k: arrays.pop(k) for k in ("norm_borrowed", "norm_donor_loc",
                                           "norm_donor_scale", "norm_donor_task") if k in arrays}
    sm = _matrix_from(meta["matrix"], arrays.pop("scores"), arrays.pop("norm_loc"),
                      arrays.pop("norm_scale"), link, borrowed)
    restore = spec.posterior_class()._restore
    for key, cls in WRAPPER_CLASSES.items():  # e.g. fitted through another normalisation
        if key in meta["posterior"]:
            restore = cls._restore
    return restore(sm, spec, inference, meta["posterior"], arrays, meta["fit_seconds"])
