import numpy as np
import pandas as pd
import pytest

from cppjax.cli import main


def test_predict_bundled_writes_csv_and_figures(tmp_path, capsys):
    rc = main(["predict", "--method", "pmf_svi", "--steps", "300", "--samples", "60",
               "--out", str(tmp_path)])
    assert rc == 0
    df = pd.read_csv(tmp_path / "predictions.csv")
    assert list(df.columns) == ["model", "task", "mean", "median", "lower_90", "upper_90"]
    assert len(df) == 72 * 29 - 878
    # the median lies in its central interval (the mean need not: clipped draws pile at 100%)
    assert (df["lower_90"] <= df["median"]).all() and (df["median"] <= df["upper_90"]).all()
    assert df[["mean", "lower_90", "upper_90"]].stack().between(0, 100).all()
    for f in ("heatmap_mean.png", "heatmap_width.png", "rank_forest.png"):
        assert (tmp_path / f).stat().st_size > 10_000
    out = capsys.readouterr().out
    assert "1210 unobserved cells predicted" in out
    # PMF models CPP's percent tasks through the logit (decision 0023); a draw past the
    # squeeze's edge is a score on the bound (decision 0028): an interval of zero width only
    # on a bound (0% pass@1 for the smallest models), and few of them
    assert "bounded tasks modelled through the logit" in out
    width = df["upper_90"] - df["lower_90"]
    assert ((width > 0) | (df["lower_90"] == 0) | (df["upper_90"] == 100)).all()
    assert (width <= 0).mean() < 0.01


def test_normalization_follows_the_method_unless_given():
    from argparse import Namespace

    from cppjax.cli.common import normalization_for
    from cppjax.datasets import load_cpp_crowdsource

    sm = load_cpp_crowdsource()
    auto = Namespace(method="pmf_svi", normalization="auto")
    assert normalization_for(sm, auto).normalization.kind == "task_logit"
    assert normalization_for(sm, Namespace(method="mf", normalization="auto")) is sm
    # PMF's NUTS keeps the min-max (decision 0025); asked by name, it gets the logit
    assert normalization_for(sm, Namespace(method="pmf_nuts", normalization="auto")) is sm
    named = normalization_for(sm, Namespace(method="pmf_nuts", normalization="task_logit"))
    assert named.normalization.kind == "task_logit"
    assert normalization_for(sm, Namespace(method="pmf_svi", normalization="task_minmax")) is sm
    logit = normalization_for(sm, Namespace(method="mf", normalization="task_logit"))
    assert logit.normalization.kind == "task_logit"
    # names, scores and factors are the user's, unchanged
    assert logit.models == sm.models and logit.tasks == sm.tasks
    np.testing.assert_array_equal(logit.scores, sm.scores)
    assert logit.model_factors.equals(sm.model_factors)


def test_predict_user_csv_and_rank(tmp_path, capsys):
    p = tmp_path / "lb.csv"
    p.write_text("\ufeff,mmlu,gsm8k,bbh\nA,40,10,-\nB,60,,30\nC,80,50,35\nD,55,20,\n")
    rc = main(["predict", "--scores", str(p), "--scale", "percent", "--method", "mf",
               "--out", str(tmp_path / "o")])
    assert rc == 0
    df = pd.read_csv(tmp_path / "o" / "predictions.csv")
    assert set(zip(df["model"], df["task"], strict=True)) == {("A", "bbh"), ("B", "gsm8k"),
                                                              ("D", "bbh")}
    rc = main(["rank", "--task", "bbh", "--scores", str(p), "--method", "mf",
               "--out", str(tmp_path / "r")])
    assert rc == 0
    assert (tmp_path / "r" / "rank_bbh.png").exists()


def test_bad_input_is_one_clear_message(tmp_path, capsys):
    p = tmp_path / "bad.csv"
    p.write_text(",mmlu\nA,40\nA,50\n")
    rc = main(["predict", "--scores", str(p), "--method", "mf", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2
    assert "duplicate model name 'A'" in err and "Traceback" not in err
    rc = main(["rank", "--task", "mmlux", "--method", "mf", "--out", str(tmp_path)])
    assert rc == 2
    assert "unknown task 'mmlux'" in capsys.readouterr().err


def test_evaluate_prints_table(capsys):
    rc = main(["evaluate", "--methods", "mf", "--seeds", "1"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "rank_acc" in out and "mf" in out


def test_evaluate_leave_family_out(capsys):
    rc = main(["evaluate", "--protocol", "leave_family_out", "--methods", "mf",
               "--dataset", "obsscaling"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "leave_family_out: 1 split(s)" in out and "mf" in out


@pytest.mark.parametrize("argv", [["--help"], ["predict", "--help"]])
def test_help(argv):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 0


def test_predict_with_scaling_law_names_unplaced_models(tmp_path, capsys):
    rc = main(["predict", "--method", "scaling_law_hierarchical_svi", "--steps", "300",
               "--samples", "60", "--out", str(tmp_path)])
    assert rc == 0
    df = pd.read_csv(tmp_path / "predictions.csv")
    assert not {"GPT-4", "gpt-3.5"} & set(df["model"])
    assert df[["lower_90", "upper_90"]].stack().between(0, 100).all()
    out = capsys.readouterr().out
    assert "cannot place 2 model(s)" in out and "GPT-4" in out
    assert (tmp_path / "rank_forest.png").exists()


@pytest.mark.parametrize("argv,message", [
    (["predict", "--level", "90"], "--level must be in (0, 1)"),
    (["predict", "--samples", "0"], "--samples must be a positive integer"),
    (["predict", "--method", "mf", "--samples", "5"], "--samples do(es) not apply to --method mf"),
    (["predict", "--method", "pmf_nut"], "unknown method 'pmf_nut'"),
    (["rank", "--task", "GSM8K(5-shot)", "--method", "mf"], "unknown task 'GSM8K(5-shot)'"),
    (["evaluate", "--methods", "mf,ncf", "--samples", "5"], "applies to none of the methods"),
])
def test_arguments_are_checked_before_any_fit(argv, message, capsys):
    """Each of these fails in well under a second: nothing is fitted before the check."""
    import time

    t0 = time.perf_counter()
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert message in captured.err, captured.err
    assert "fitting" not in captured.out
    assert time.perf_counter() - t0 < 20


def test_methods_lists_every_name(capsys):
    from cppjax.models.registry import METHODS

    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in METHODS)


def test_complete_table_and_unwritable_out(tmp_path, capsys):
    """A table with no missing cell is not an error; an output path that is a file fails before
    any fit."""
    csv = tmp_path / "complete.csv"
    csv.write_text("model,a,b\nm1,0.5,0.6\nm2,0.7,0.2\nm3,0.4,0.9\n")
    assert main(["predict", "--scores", str(csv), "--method", "mf", "--steps", "20",
                 "--out", str(tmp_path / "o")]) == 0
    assert "nothing to predict: every cell of the table is observed" in capsys.readouterr().out
    assert main(["predict", "--scores", str(csv), "--method", "mf", "--steps", "20",
                 "--cells", "all", "--out", str(tmp_path / "all")]) == 0
    fitted = pd.read_csv(tmp_path / "all" / "predictions.csv")
    assert len(fitted) == 6 and fitted["observed"].all()
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["predict", "--out", str(blocker / "sub")]) == 2
    assert "--out" in capsys.readouterr().err


def test_outputs_are_not_replaced_without_overwrite(tmp_path, capsys):
    csv = tmp_path / "board.csv"
    csv.write_text("model;a;b\nm1;50;60\nm2;70;-\nm3;-;40\n")  # a semicolon table, sniffed
    args = ["predict", "--scores", str(csv), "--scale", "percent", "--method", "mf",
            "--steps", "20", "--out", str(tmp_path / "o")]
    assert main(args) == 0
    first = (tmp_path / "o" / "predictions.csv").read_text()
    capsys.readouterr()
    assert main(args) == 2
    assert "already holds predictions.csv" in capsys.readouterr().err
    assert (tmp_path / "o" / "predictions.csv").read_text() == first
    assert main(args + ["--overwrite"]) == 0
