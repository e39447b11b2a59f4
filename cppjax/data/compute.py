"""Training compute per model, for scaling laws and for "largest model of a family" splits.

Rule (per model, first that applies):

1. ``flops``: reported training FLOPs, if at least ``min_flops`` (1e18 by default; smaller values
   cannot be the pre-training FLOPs of an LLM and are reported as rejected: the CPP paper's table,
   for example, lists Pythia-1.4B with 7120, its A100-hours);
2. ``6ND``: 6 x parameters x training tokens, when both are known (Kaplan et al. 2020);
3. ``parameters``: the parameter count alone (a different unit: see :func:`family_scale`);
4. ``none``: the model cannot be placed on a compute axis; it is reported, never guessed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

MIN_PLAUSIBLE_FLOPS = 1e18


def model_compute(
    factors: pd.DataFrame,
    *,
    flops: str = "flops",
    parameters: str = "parameters",
    tokens: str = "tokens",
    min_flops: float = MIN_PLAUSIBLE_FLOPS,
) -> pd.DataFrame:
    """Compute of each model and where it came from.

    Args:
        factors: a model-factor table (``ScoreMatrix.model_factors``); absent columns count as
            missing.

    Returns:
        DataFrame indexed like ``factors`` with ``compute`` (FLOPs, or parameters when
        ``source == "parameters"``, NaN when ``"none"``), ``source`` and ``note``.

    Example:
        >>> f = pd.DataFrame({"flops": [np.nan, 7120.0, 1e22], "parameters": [1e9, 1e9, 1e9],
        ...                   "tokens": [1e12, 3e11, np.nan]}, index=["a", "b", "c"])
        >>> model_compute(f)["source"].tolist()
        ['6ND', '6ND', 'flops']
        >>> float(model_compute(f).loc["b", "compute"])  # 7120 "FLOPs" rejected, 6ND used
        1.8e+21
    """

    def col(name):
        if name in factors.columns:
            return pd.to_numeric(factors[name], errors="coerce").to_numpy(dtype=float)
        return np.full(len(factors), np.nan)

    f, n, d = col(flops), col(parameters), col(tokens)
    compute = np.full(len(factors), np.nan)
    source = np.array(["none"] * len(factors), dtype=object)
    note = np.array([""] * len(factors), dtype=object)
    rejected = np.isfinite(f) & (f < min_flops)
    note[rejected] = [
        f"reported FLOPs {v:g} < {min_flops:g} rejected as implausible" for v in f[rejected]
    ]
    ok_f = np.isfinite(f) & (f >= min_flops)
    ok_nd = ~ok_f & np.isfinite(n) & np.isfinite(d) & (n > 0) & (d > 0)
    ok_n = ~ok_f & ~ok_nd & np.isfinite(n) & (n > 0)
    compute[ok_f], source[ok_f] = f[ok_f], "flops"
    compute[ok_nd], source[ok_nd] = 6.0 * n[ok_nd] * d[ok_nd], "6ND"
    compute[ok_n], source[ok_n] = n[ok_n], "parameters"
    return pd.DataFrame({"compute": compute, "source": source, "note": note}, index=factors.index)


def family_scale(factors: pd.DataFrame, *, family: str = "family", **kwargs) -> pd.DataFrame:
    """One consistent size axis per family.

    Within a family, models are placed on training compute (FLOPs or 6ND) if every placeable
    member has it, otherwise on parameters (if every placeable member has them); a family never
    mixes the two units. Models with neither are left out (``axis == "none"``).

    Returns:
        DataFrame indexed like ``factors`` with ``family``, ``x`` (the size on the family's axis),
        ``axis`` (``"compute"``, ``"parameters"`` or ``"none"``) and ``source`` of the compute.
    """
    if family not in factors.columns:
        raise KeyError(f"no {family!r} column among the model factors {list(factors.columns)}: "
                       f"a per-family scaling law needs each model's family and its parameters "
                       f"(and tokens) or FLOPs; give them as model factors (Python: "
                       f"model_factors=; command line: --model-factors FILE), or use a method "
                       f"without laws (pmf_svi, auto)")
    comp = model_compute(factors, **kwargs)
    params = (
        pd.to_numeric(factors[kwargs.get("parameters", "parameters")], errors="coerce")
        if kwargs.get("parameters", "parameters") in factors.columns
        else pd.Series(np.nan, index=factors.index)
    )
    out = pd.DataFrame(
        {"family": factors[family], "x": np.nan, "axis": "none", "source": comp["source"]},
        index=factors.index,
    )
    has_c = comp["source"].isin(["flops", "6ND"])
    has_p = params.notna() & (params > 0)
    for idx in out.groupby("family", dropna=True).groups.values():
        members = [i for i in idx if has_c[i] or has_p[i]]
        if not members:
            continue
        if all(has_c[i] for i in members):
            out.loc[members, "x"] = comp.loc[members, "compute"]
            out.loc[members, "axis"] = "compute"
        else:
            pm = [i for i in members if has_p[i]]
            out.loc[pm, "x"] = params[pm]
            out.loc[pm, "axis"] = "parameters"
    return out
