"""lm-evaluation-harness result files (cppjax.data.harness): both layouts, the metric rule, the
checkpoint in the model name, shot counts, and errors that name the file and key."""

import json

import numpy as np
import pytest

from cppjax import ScoreMatrix
from cppjax.cli.main import main
from cppjax.data.harness import read_harness
from cppjax.errors import DataError


def _v03(path, model, step, acc, shots=0):
    doc = {"results": {"arc_easy": {"acc": acc, "acc_stderr": 0.01, "acc_norm": acc - 0.02,
                                    "acc_norm_stderr": 0.01},
                       "lambada_openai": {"ppl": 30.0 / (1 + acc), "ppl_stderr": 1.0,
                                          "acc": acc / 2, "acc_stderr": 0.01},
                       "wikitext": {"word_perplexity": 40.0 - 10 * acc, "byte_perplexity": 1.7}},
           "versions": {"arc_easy": 0},
           "config": {"model": "gpt2", "num_fewshot": shots,
                      "model_args": f"pretrained=EleutherAI/{model},revision=step{step}"}}
    path.write_text(json.dumps(doc))


def _v04(path, model, acc):
    doc = {"results": {"arc_easy": {"alias": "arc_easy", "acc,none": acc,
                                    "acc_stderr,none": 0.02, "acc_norm,none": acc}},
           "n-shot": {"arc_easy": 0}, "model_name": model,
           "config": {"model": "hf", "model_args": f"pretrained={model},dtype=bfloat16"}}
    path.write_text(json.dumps(doc))


@pytest.fixture
def folder(tmp_path):
    for n, (m, step, acc) in enumerate([("pythia-70m", 143000, 0.4), ("pythia-160m", 143000, 0.5),
                                        ("pythia-160m", 1000, 0.3)]):
        _v03(tmp_path / f"r{n}.json", m, step, acc)
    _v04(tmp_path / "sub.json", "org/other-1b", 0.6)
    return tmp_path


def test_reads_both_layouts_with_the_metric_rule(folder):
    sm = ScoreMatrix.from_harness(folder)
    assert set(sm.models) == {"EleutherAI/pythia-70m@step143000",
                              "EleutherAI/pythia-160m@step143000",
                              "EleutherAI/pythia-160m@step1000", "org/other-1b"}
    i = sm.model_index("EleutherAI/pythia-160m@step1000")
    assert sm.scores[i, sm.task_index("arc_easy")] == pytest.approx(0.3)  # acc, not acc_norm
    assert sm.scores[i, sm.task_index("lambada_openai")] == pytest.approx(0.15)  # acc over ppl
    info = sm.task_info.loc["wikitext"]  # only perplexities: lower is better, unbounded
    assert not info["higher_is_better"] and np.isinf(info["upper"])
    assert sm.scores[sm.model_index("org/other-1b"), sm.task_index("arc_easy")] == 0.6
    long = read_harness(folder)
    assert {"stderr", "file", "shots"} <= set(long.columns)
    assert long.loc[long["metric"] == "acc", "stderr"].notna().all()


def test_metric_override_and_shot_counts(folder, tmp_path):
    sm = ScoreMatrix.from_harness(folder, metric={"arc_easy": "acc_norm"})
    i = sm.model_index("EleutherAI/pythia-70m@step143000")
    assert sm.scores[i, sm.task_index("arc_easy")] == pytest.approx(0.38)
    _v03(folder / "five.json", "pythia-70m", 143000, 0.45, shots=5)
    sm = ScoreMatrix.from_harness(folder)
    assert "arc_easy (5-shot)" in sm.tasks and "arc_easy (0-shot)" in sm.tasks
    with pytest.raises(DataError, match="report"):
        ScoreMatrix.from_harness(folder, metric={"arc_easy": "f1"})


def test_errors_name_the_file_and_key(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"config": {}}))
    with pytest.raises(DataError, match="bad.json: no 'results'"):
        ScoreMatrix.from_harness(bad)
    bad.write_text(json.dumps({"results": {"arc": {"acc": "high"}}}))
    with pytest.raises(DataError, match=r"bad.json: results\['arc'\]\['acc'\]"):
        ScoreMatrix.from_harness(bad)
    bad.write_text("{not json")
    with pytest.raises(DataError, match="not a JSON"):
        ScoreMatrix.from_harness(bad)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no .json"):
        ScoreMatrix.from_harness(tmp_path / "empty")


def test_cli_reads_a_results_folder_and_takes_debug_anywhere(folder, tmp_path, capsys):
    rc = main(["predict", "--scores", str(folder), "--method", "copy_sibling",
               "--out", str(tmp_path / "out"), "--debug"])
    out = capsys.readouterr().out
    assert rc == 0 and "lm-evaluation-harness" in out
    assert (tmp_path / "out" / "predictions.csv").exists()
    assert main(["evaluate", "--seeds", "0"]) == 2
    assert "--seeds must be a positive integer" in capsys.readouterr().err
    assert main(["evaluate", "--protocol", "new_model", "--k", "-1"]) == 2
    assert "--k" in capsys.readouterr().err
