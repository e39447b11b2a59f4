"""Build the bundled datasets (`cppjax/datasets/files`) from the reference copies in shared/data.

Run from the repository root::

    python -m cppjax.datasets.build --shared ../shared/data

The package's tidy format, one CSV per table, in SI units:

* ``<name>_scores.csv``: ``model, task, score``: one row per observed cell, in the source's scale
  (percent for the CPP data, fraction for Observational Scaling Laws);
* ``<name>_models.csv``: ``model`` then model factors, one row per model in matrix order;
* ``<name>_tasks.csv`` (CPP only): ``task`` then task factors, one row per task in matrix order;
* ``manifest.json``: source, citation, scale and unit conversions of each dataset.

Counts are stored as plain numbers: ``parameters`` (not millions or billions), ``tokens``,
``flops``, ``batch_size_tokens``. Figures are otherwise copied as published, including the CPP
table's ``flops`` column, where four of five values are not FLOPs (OPT-175B 145824, Pythia-1.4B
7120 — the latter equals its A100-hours); :func:`cppjax.scaling.model_compute` rejects implausible
FLOPs rather than this script editing the record.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from cppjax.data import ScoreMatrix, read_factors

FILES = Path(__file__).parent / "files"

#: Names in the CPP paper's ``model_feature.csv`` that differ from its score matrix.
CPP_MODEL_ALIASES = {
    "Luminous Base": "Luminous Base-13B",
    "Luminous Extended": "Luminous Extended-30B",
    "Luminous Supreme": "Luminous Supreme-70B",
}

#: source column -> (our column, multiplier to SI count; None = categorical / as is)
CPP_MODEL_COLUMNS = {
    "family": ("family", None),
    "Pretraining Dataset Size(B)": ("tokens", 1e9),
    "Parameter Size(M)": ("parameters", 1e6),
    "Finetuning": ("finetuned", None),
    "GPUh": ("gpu_hours", 1.0),
    "FLOPs": ("flops", 1.0),
    "Context window": ("context_window", 1.0),
    "batch size(M)": ("batch_size_tokens", 1e6),
    "Layers": ("layers", 1.0),
    "Number Heads": ("heads", 1.0),
    "Key/Value Size": ("kv_size", 1.0),
    "bottleneck activation size": ("bottleneck_size", 1.0),
    "Carbon Emission (tCO2Eq)": ("carbon_tco2eq", 1.0),
}
CPP_TASK_ROWS = {
    "ability": "ability",
    "family": "task_family",
    "output": "output_format",
    "few-shot": "few_shot",
}

OSL_MODEL_COLUMNS = {
    "Model Family": ("family", None),
    "Model Size (B)": ("parameters", 1e9),
    "Pretraining Data Size (T)": ("tokens", 1e12),
    "FLOPs (1E21)": ("flops", 1e21),
}

CPP_CITATION = (
    "Zhang, Lyu, Liu, Ma. Collaborative Performance Prediction for Large Language Models. "
    "EMNLP 2024, arXiv:2407.01300. "
    "Data: the paper's public repository, folder data/, commit 4c4319a."
)
OSL_CITATION = (
    "Ruan, Maddison, Hashimoto. Observational Scaling Laws and the Predictability of "
    "Language Model Performance. NeurIPS 2024, arXiv:2405.10938. "
    "Data: the paper's public repository, "
    "eval_results/base_llm_benchmark_eval.csv, commit 4d6e1e4 (Apache License 2.0)."
)


def _convert(df: pd.DataFrame, columns: dict) -> pd.DataFrame:
    out = {}
    for src, (dst, mult) in columns.items():
        col = df[src]
        out[dst] = col if mult is None else col.astype(float) * mult
    return pd.DataFrame(out, index=df.index)


def read_cpp_reference(shared: Path) -> ScoreMatrix:
    """Parse the CPP paper's three reference files into a ScoreMatrix with our factor names."""
    d = shared / "cpp_llm"
    mf = read_factors(
        d / "model_feature.csv", name_column="Model Name", categorical=["family", "Finetuning"]
    )
    mf = mf.rename(index=CPP_MODEL_ALIASES)
    tf = read_factors(d / "benchmark_feature.csv", names_as="columns")
    tf = tf.rename(columns=CPP_TASK_ROWS)
    tf["few_shot"] = tf["few_shot"].astype(float)
    return ScoreMatrix.from_wide(
        d / "crowdsource_performance.csv",
        scale="percent",
        model_factors=_convert(mf, CPP_MODEL_COLUMNS),
        task_factors=tf,
    )


def read_obsscaling_reference(shared: Path) -> ScoreMatrix:
    """Parse the Observational Scaling Laws base-model table into a ScoreMatrix."""
    path = shared / "obsscaling" / "base_llm_benchmark_eval.csv"
    raw = ScoreMatrix.from_wide(
        path, label_column="Model", scale="fraction", factor_columns=list(OSL_MODEL_COLUMNS)
    )
    mf = _convert(raw.model_factors, OSL_MODEL_COLUMNS)
    return ScoreMatrix(
        raw.scores, raw.models, raw.tasks, model_factors=mf, scale="fraction", source=str(path)
    )


def _write(sm: ScoreMatrix, name: str, out: Path) -> list[str]:
    written = []
    scores = sm.to_long()
    scores.to_csv(out / f"{name}_scores.csv", index=False)
    written.append(f"{name}_scores.csv")
    models = sm.model_factors.reset_index()
    models.to_csv(out / f"{name}_models.csv", index=False)
    written.append(f"{name}_models.csv")
    if len(sm.task_factors.columns):
        sm.task_factors.reset_index().to_csv(out / f"{name}_tasks.csv", index=False)
        written.append(f"{name}_tasks.csv")
    return written


PYTHIA_CITATION = (
    "Biderman et al. Pythia: A Suite for Analyzing Large Language Models Across Training and "
    "Scaling. ICML 2023, arXiv:2304.01373; term-frequency case study after Razeghi et al. 2022. "
    "Data: github.com/EleutherAI/pythia, evals/csv/*/term_frquency_all_shots.csv, commit "
    "a19eecb (Apache License 2.0)."
)


def write_pythia_arithmetic(shared: Path, out: Path) -> dict:
    """The Pythia v0 arithmetic per-item results in the package's tidy form: one row per
    (model, item) with the share of its 50 instances solved; an item is one first operand of
    one task (operation x few-shot count), named ``<task>/<x1>``."""
    d = shared / "cod" / "pythia_v0_termfreq_arith"
    raw = pd.read_csv(d / "items_long.csv.gz")
    if not (raw["n_correct"] / raw["n_instances"] - raw["score"]).abs().max() < 1e-9:
        raise ValueError(f"{d}: score is not n_correct / n_instances")
    items = pd.DataFrame({"model": raw["model"], "task": raw["task"],
                          "item": raw["task"] + "/" + raw["x1"].astype(str),
                          "correct": raw["score"], "n_trials": raw["n_instances"]})
    items = items.sort_values(["model", "task", "item"], kind="stable")
    items.to_csv(out / "pythia_arith_items.csv.gz", index=False,
                 compression={"method": "gzip", "mtime": 0})
    m = pd.read_csv(d / "models.csv")
    models = pd.DataFrame({"model": m["model"], "family": m["family"], "size": m["size_name"],
                           "step": m["step"], "parameters": m["params"].astype(float),
                           "tokens": m["tokens"].astype(float),
                           "flops": m["flops"].astype(float)})
    models.to_csv(out / "pythia_arith_models.csv", index=False)
    return {"files": ["pythia_arith_items.csv.gz", "pythia_arith_models.csv"],
            "shape": [int(models.shape[0]), int(items["item"].nunique())],
            "tasks": sorted(items["task"].unique()), "citation": PYTHIA_CITATION,
            "units": {"correct": "share of the item's 50 instances solved (exact match)",
                      "flops": "6 x parameters x tokens"}}


OPENLLM_CITATION = (
    "Zhang, Dorner, Hardt. How Benchmark Prediction from Fewer Data Misses the Mark. 2025. "
    "Data: github.com/socialfoundations/benchmark-prediction, data/scores/openllm_math.jbl, "
    "commit 2e98c82 (MIT License), from the Open LLM Leaderboard v2 details."
)


def write_openllm_math(shared: Path, out: Path) -> dict:
    """The model zoo's MATH level-5 results (0/1 per item) as a gzipped wide table, and a model
    table with the parameter count read from each name (:func:`cppjax.data.names.
    parameters_from_name`; blank where the name does not say it: the loader leaves those
    models out and says so)."""
    from cppjax.data.names import parameters_from_name

    src = shared / "openllm_items" / "math_hard_items.csv.gz"
    wide = pd.read_csv(src)
    values = wide.drop(columns="model")
    if not values.isin([0, 1]).all().all():
        raise ValueError(f"{src}: results other than 0/1")
    wide.to_csv(out / "openllm_math_items.csv.gz", index=False,
                compression={"method": "gzip", "mtime": 0})
    sizes = [parameters_from_name(m) for m in wide["model"]]
    models = pd.DataFrame({"model": wide["model"],
                           "parameters": [s[0] if s else float("nan") for s in sizes],
                           "parameters_from_name": [s[1] if s else "" for s in sizes]})
    models.to_csv(out / "openllm_math_models.csv", index=False)
    return {"files": ["openllm_math_items.csv.gz", "openllm_math_models.csv"],
            "shape": list(values.shape), "placed": int(models["parameters"].notna().sum()),
            "citation": OPENLLM_CITATION,
            "units": {"correct": "exact match, 0/1", "parameters": "count, read from the "
                      "model's name (blank: the name does not say)"}}


def build(shared: Path, out: Path = FILES) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    cpp = read_cpp_reference(shared)
    osl = read_obsscaling_reference(shared)
    manifest = {
        "cpp_crowdsource": {
            "files": _write(cpp, "cpp_crowdsource", out),
            "scale": "percent",
            "shape": list(cpp.shape),
            "observed": cpp.n_observed,
            "citation": CPP_CITATION,
            "model_aliases": CPP_MODEL_ALIASES,
            "units": {
                "tokens": "count (source: billions)",
                "parameters": "count (source: millions)",
                "batch_size_tokens": "count (source: millions)",
                "flops": "as published (mixed units, see cppjax.datasets.build)",
            },
        },
        "obsscaling": {
            "files": _write(osl, "obsscaling", out),
            "scale": "fraction",
            "shape": list(osl.shape),
            "observed": osl.n_observed,
            "citation": OSL_CITATION,
            "units": {
                "parameters": "count (source: billions)",
                "tokens": "count (source: T)",
                "flops": "FLOPs (source: units of 1e21)",
            },
        },
    }
    manifest["pythia_arith"] = write_pythia_arithmetic(shared, out)
    manifest["openllm_math"] = write_openllm_math(shared, out)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--shared",
        type=Path,
        default=Path("../shared/data"),
        help="folder holding cpp_llm/ and obsscaling/ (default ../shared/data)",
    )
    p.add_argument("--out", type=Path, default=FILES)
    args = p.parse_args(argv)
    manifest = build(args.shared, args.out)
    for name, info in manifest.items():
        print(
            f"{name}: {info['shape'][0]} models x {info['shape'][1]} tasks (items), "
            f"{info.get('observed', 'all')} observed -> {', '.join(info['files'])}"
        )
    print(f"model names reconciled in cpp_crowdsource: {CPP_MODEL_ALIASES}")


if __name__ == "__main__":
    main()
