"""What the labels say: which axis holds the models, each task's metric kind (bounds and
direction), over a generated HELM-like export and the harness metrics of the Pythia data."""

import math
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest

import cppjax
from cppjax.data.names import metric_kind, orientation
from cppjax.errors import DataError

ORGS = ("meta-llama/Llama-2-{}b", "EleutherAI/pythia-{}b", "mistralai/Mistral-{}B-v0.1",
        "tiiuae/falcon-{}b", "Qwen/Qwen1.5-{}B-Chat", "openai/gpt-neox-{}b", "google/gemma-{}b-it",
        "bigscience/bloom-{}b")
#: (benchmark - metric, lower, upper, higher is better)
METRICS = [("MMLU - EM", 0, 1, True), ("BoolQ - EM", 0, 1, True),
           ("XSum - ROUGE-2", 0, 100, True), ("CNN/DailyMail - ROUGE-2", 0, 100, True),
           ("HellaSwag - EM", 0, 1, True), ("NaturalQuestions (open) - F1", 0, 1, True),
           ("CivilComments - ECE (10-bin)", 0, 1, False),
           ("RealToxicityPrompts - Toxic fraction", 0, 1, False),
           ("WikiText-103 - BPB", 0, math.inf, False),
           ("Anthropic RLHF - Harmlessness (1-5)", 1, 5, True),
           ("Best ChatGPT Prompts - Helpfulness (1-5)", 1, 5, True)]


def helm_export(n_models=88, n_metrics=56, seed=0) -> pd.DataFrame:
    """A HELM-like export: metric rows x model columns, '-' for missing."""
    rng = np.random.default_rng(seed)
    models = [ORGS[i % len(ORGS)].format(i + 1) for i in range(n_models)]
    rows, names = [], []
    for r in range(n_metrics):
        name, lo, hi, _ = METRICS[r % len(METRICS)]
        name = f"{name} [{r // len(METRICS)}]" if r >= len(METRICS) else name
        top = 3.0 if math.isinf(hi) else hi
        vals = lo + (top - lo) * rng.uniform(0.1, 0.9, n_models)
        cells = [f"{v:.3f}" if rng.random() > 0.3 else "-" for v in vals]
        rows.append(cells)
        names.append(name)
    return pd.DataFrame(rows, index=pd.Index(names, name="Metric"), columns=models)


def test_helm_export_is_read_with_models_as_columns_and_says_so():
    df = helm_export()
    with pytest.warns(cppjax.CppjaxWarning, match=r"read as 88 models \(columns\) x 56 tasks"):
        sm = cppjax.ScoreMatrix.from_wide(df)
    assert sm.shape == (88, 56) and sm.models[0] == "meta-llama/Llama-2-1b"
    assert sm.scale == "mixed"
    info = sm.task_info
    for name, lo, hi, hib in METRICS:
        assert (info.loc[name, "lower"], info.loc[name, "upper"]) == (lo, hi), name
        assert bool(info.loc[name, "higher_is_better"]) is hib, name
    # told explicitly: no warning, the same table
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        same = cppjax.ScoreMatrix.from_wide(df, models_as="columns")
    np.testing.assert_array_equal(same.scores, sm.scores)


def test_every_interval_stays_inside_its_metric(tmp_path):
    """A 1-5 rating never gets an interval above 5; a lower-is-better metric ranks its lowest
    score first."""
    df = helm_export(n_models=30, n_metrics=11, seed=1)
    with pytest.warns(cppjax.CppjaxWarning):
        sm = cppjax.ScoreMatrix.from_wide(df)
    post = cppjax.fit("pmf_svi", sm, rng_key=0, num_steps=300, num_samples=50, progress=False)
    pred = post.predict("missing", rng_key=1)
    lo, hi = pred.interval(0.9)
    upper = sm.task_info["upper"].to_numpy()[pred.task_idx]
    lower = sm.task_info["lower"].to_numpy()[pred.task_idx]
    assert (hi <= upper + 1e-9).all() and (lo >= lower - 1e-9).all()
    j = sm.task_index("WikiText-103 - BPB")
    ranks = post.rank(sm.tasks[j], rng_key=2).to_frame().set_index("model")["rank_mean"]
    col = sm.scores[:, j]
    lowest, highest = sm.models[np.nanargmin(col)], sm.models[np.nanargmax(col)]
    assert ranks[lowest] < ranks[highest]  # the lowest bits per byte ranks first


def test_cli_prints_the_orientation_and_refuses_when_the_names_do_not_tell(tmp_path):
    path = tmp_path / "helm.csv"
    helm_export(n_models=20, n_metrics=11).to_csv(path)
    run = subprocess.run([sys.executable, "-m", "cppjax.cli", "predict", "--scores", str(path),
                          "--method", "mf", "--steps", "30", "--out", str(tmp_path / "o")],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "read as 20 models (columns) x 11 tasks (rows)" in run.stdout
    assert "(--models-as rows) flips it" in run.stdout
    assert "lower-better" in run.stdout and "'BPB' in the name" in run.stdout
    bad = tmp_path / "bad.csv"  # models in both axes' names: refused, not guessed
    pd.DataFrame([[0.5, 0.6], [0.4, 0.3]], index=["llama-7b", "MMLU - EM"],
                 columns=["pythia-1b", "BoolQ - EM"]).to_csv(bad)
    run = subprocess.run([sys.executable, "-m", "cppjax.cli", "predict", "--scores", str(bad),
                          "--out", str(tmp_path / "o2")], capture_output=True, text=True,
                         timeout=600)
    assert run.returncode != 0 and "cannot tell which axis holds the models" in run.stderr
    assert "Traceback" not in run.stderr


@pytest.mark.parametrize("rows, cols, expected", [
    (["LLama-2-7B", "Llama 3 70B", "GLM-130B"], ["BoolQ(0-shot)", "MMLU(5-shot)"], "rows"),
    (["pythia-70m@step3000", "pythia-1.4b@step143000"], ["arc_easy", "lambada_openai"], "rows"),
    (["m0", "m1", "m2"], ["t0", "t1"], "rows"),  # no evidence: the usual layout, said
    (["HellaSwag - EM", "XSum - ROUGE-2"], ["gpt2-xl", "EleutherAI/gpt-j-6b"], "columns"),
])
def test_orientation(rows, cols, expected):
    o = orientation(rows, cols)
    assert o.models_as == expected
    assert ("flips it" in o.line) or ("usual layout" in o.line)


def test_bundled_tables_read_as_rows():
    for load in (cppjax.datasets.load_cpp_crowdsource, cppjax.datasets.load_obsscaling):
        sm = load()
        assert orientation(sm.models, sm.tasks).models_as == "rows"
        assert sm.task_info["higher_is_better"].all()  # no task named like a loss or an error


def test_contradictory_names_are_refused():
    with pytest.raises(DataError, match="pass models_as='rows' or 'columns'"):
        orientation(["llama-7b", "MMLU - EM"], ["pythia-1b", "BoolQ - EM"])


@pytest.mark.parametrize("name, values, kind, bounds, hib", [
    ("ppl", [3.0, 2e6], "non-negative", (0, math.inf), False),
    ("likelihood_difference", [2.0, 18.9], "non-negative", (0, math.inf), False),
    ("pct_stereotype", [0.3, 0.9], "rate", (0, 1), False),
    ("acc", [0.2, 0.95], "rate", (0, 1), True),
    ("acc_norm", [0.2, 0.95], "rate", (0, 1), True),
    ("MT-Bench rating (1-10)", [3.0, 9.1], "rating", (1, 10), True),
    ("Helpfulness (1-5)", [2.0, 4.5], "rating", (1, 5), True),
    ("XSum - ROUGE-2", [5.0, 21.0], "text overlap (0-100)", (0, 100), True),
    ("WMT14 - BLEU-4", [0.1, 0.4], "text overlap (0-1)", (0, 1), True),
    ("logprob gap", [-2.0, 3.0], "signed", (-math.inf, math.inf), True),
    ("word error rate", [3.0, 40.0], "non-negative", (0, math.inf), False),
    ("latency (s)", [0.2, 9.0], "non-negative", (0, math.inf), False),
    ("MMLU", [20.0, 80.0], "percent", (0, 100), True),
])
def test_metric_kinds(name, values, kind, bounds, hib):
    k = metric_kind(name, values)
    assert (k.kind, (k.lower, k.upper), k.higher_is_better) == (kind, bounds, hib), k
    assert k.rule


def test_pythia_harness_metrics_get_their_kinds(shared_data):
    d = pd.read_csv(shared_data / "pythia_v1_evals" / "evals_long.csv.gz")
    for metric, group in d.groupby("metric"):
        k = metric_kind(metric, group["value"].to_numpy())
        assert k.higher_is_better is (metric in ("acc", "acc_norm")), (metric, k)
        assert np.all(group["value"] >= k.lower) and np.all(group["value"] <= k.upper)


def test_a_rating_column_makes_a_table_mixed():
    """A 0-1 rate beside a 1-5 rating: not one percent table with [0, 100] bounds."""
    df = pd.DataFrame({"MMLU - EM": [0.4, 0.5, 0.6, 0.7], "Harmlessness (1-5)": [3.2, 4.1, 4.5,
                                                                                 2.9]},
                      index=["llama-7b", "llama-13b", "pythia-1b", "pythia-2.8b"])
    sm = cppjax.ScoreMatrix.from_wide(df)
    assert sm.scale == "mixed"
    assert tuple(sm.task_info.loc["Harmlessness (1-5)", ["lower", "upper"]]) == (1.0, 5.0)
    assert tuple(sm.task_info.loc["MMLU - EM", ["lower", "upper"]]) == (0.0, 1.0)
    # a task named like an error rate is lower-is-better on a plain table too
    plain = cppjax.ScoreMatrix.from_wide(pd.DataFrame(
        {"acc": [0.4, 0.5, 0.6], "error rate": [0.6, 0.5, 0.4]}, index=["a-1b", "b-2b", "c-3b"]))
    assert plain.scale == "fraction"
    assert not plain.task_info.loc["error rate", "higher_is_better"]


def test_a_bleu_column_beside_fractions_makes_a_table_mixed():
    """Accuracies in [0, 1] beside a 0-100 BLEU (the OSL emergent table's
    ipa_transliterate_2_bleu): fractions and a 0-100 column, not one percent table (the
    accuracies' 90% intervals reached 5.97 on a 0-1 accuracy); a percent table with a BLEU
    column stays percent."""
    idx = ["llama-7b", "llama-13b", "pythia-1b", "pythia-2.8b"]
    df = pd.DataFrame({"arithmetic_acc": [0.1, 0.3, 0.05, 0.2],
                       "ipa_transliterate_bleu": [12.0, 31.5, 4.2, 20.0]}, index=idx)
    sm = cppjax.ScoreMatrix.from_wide(df)
    assert sm.scale == "mixed"
    assert tuple(sm.task_info.loc["arithmetic_acc", ["lower", "upper"]]) == (0.0, 1.0)
    assert tuple(sm.task_info.loc["ipa_transliterate_bleu", ["lower", "upper"]]) == (0.0, 100.0)
    pct = cppjax.ScoreMatrix.from_wide(df.assign(arithmetic_acc=df["arithmetic_acc"] * 100))
    assert pct.scale == "percent"
    # a BLEU column whose values all lie in [0, 1] beside fractions: one fraction table
    frac = cppjax.ScoreMatrix.from_wide(df.assign(ipa_transliterate_bleu=[.12, .31, .04, .2]))
    assert frac.scale == "fraction"
