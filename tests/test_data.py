import numpy as np
import pandas as pd
import pytest

from cppjax import DataError, FactorMismatchError, ScoreMatrix, read_factors


def write(tmp_path, text, name="t.csv", bom=False):
    p = tmp_path / name
    p.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode())
    return p


WIDE = ",mmlu,gsm8k,bbh\nA,40,10,-\nB,60,,30\nC,80,50.5,35\n"


def test_wide_csv_with_bom_blank_and_placeholder(tmp_path):
    sm = ScoreMatrix.from_wide(write(tmp_path, WIDE, bom=True), scale="percent")
    assert sm.models == ("A", "B", "C")
    assert sm.tasks == ("mmlu", "gsm8k", "bbh")
    assert np.isnan(sm.scores[0, 2]) and np.isnan(sm.scores[1, 1])
    assert sm.scores[2, 1] == 50.5
    assert sm.n_observed == 7


def test_both_orientations_agree(tmp_path):
    sm = ScoreMatrix.from_wide(write(tmp_path, WIDE), scale="percent")
    t = sm.to_wide().T
    t.index.name = None
    sm2 = ScoreMatrix.from_wide(t, models_as="columns", scale="percent")
    assert sm2.models == sm.models and sm2.tasks == sm.tasks
    np.testing.assert_array_equal(sm2.scores, sm.scores)


def test_long_table_round_trip(tmp_path):
    sm = ScoreMatrix.from_wide(write(tmp_path, WIDE), scale="percent")
    long = sm.to_long()
    back = ScoreMatrix.from_long(long, scale="percent")
    np.testing.assert_array_equal(back.scores, sm.scores)
    p = write(tmp_path, "model,task,score\nA,x,0.5\nB,x,\nB,y,0.75\nA,y,-\n", "long.csv")
    sm3 = ScoreMatrix.from_long(p, scale="fraction")
    assert sm3.models == ("A", "B") and sm3.tasks == ("x", "y")
    assert sm3.n_observed == 2


def test_user_input_not_altered():
    df = pd.DataFrame({"a": [0.1, 0.5], "b": [0.3, np.nan]}, index=["m1", "m2"])
    before = df.copy()
    sm = ScoreMatrix.from_wide(df, scale="fraction")
    pd.testing.assert_frame_equal(df, before)
    with pytest.raises(ValueError):
        sm.scores[0, 0] = 1.0  # read-only


def test_scale_is_explicit_and_checked(tmp_path):
    p = write(tmp_path, WIDE)
    assert ScoreMatrix.from_wide(p).scale == "percent"  # one decision for the whole table
    with pytest.raises(DataError, match=r"outside the fraction scale.*'A'.*'mmlu'.*percent"):
        ScoreMatrix.from_wide(p, scale="fraction")
    with pytest.raises(DataError, match="outside the percent scale"):
        ScoreMatrix.from_wide(write(tmp_path, ",t\nA,140\nB,3\n", "o.csv"), scale="percent")
    frac = ScoreMatrix.from_wide(write(tmp_path, ",t\nA,0.4\nB,0.9\n", "f.csv"))
    assert frac.scale == "fraction"


def test_errors_name_file_line_and_column(tmp_path):
    p = write(tmp_path, ",mmlu,gsm8k\nA,40,ten\nB,60,20\n")
    with pytest.raises(DataError, match=r"t\.csv.*line 2 \('A'\), column 'gsm8k': 'ten'"):
        ScoreMatrix.from_wide(p, scale="percent")
    p = write(tmp_path, ",mmlu,gsm8k\nA,40,10\nB,60,20\nA,1,2\n", "dup.csv")
    with pytest.raises(
        DataError, match=r"dup\.csv: duplicate model name 'A' \(line 2 and line 4\)"
    ):
        ScoreMatrix.from_wide(p, scale="percent")
    p = write(tmp_path, ",mmlu,mmlu\nA,40,10\n", "dupcol.csv")
    with pytest.raises(DataError, match="duplicate task name 'mmlu'"):
        ScoreMatrix.from_wide(p, scale="percent")
    p = write(tmp_path, "model,task,score\nA,x,1\nA,x,2\n", "duplong.csv")
    with pytest.raises(
        DataError, match=r"'A' on task 'x' appears more than once \(line 2, line 3\)"
    ):
        ScoreMatrix.from_long(p, scale="percent")
    with pytest.raises(DataError, match=r"no column 'score' \(closest: 'scor'\)"):
        ScoreMatrix.from_long(write(tmp_path, "model,task,scor\nA,x,1\n", "c.csv"))


def test_empty_rows_error_or_drop(tmp_path):
    p = write(tmp_path, ",t1,t2,t3\nA,40,-,\nB,60,,\nC,-,,\n")
    with pytest.raises(
        DataError, match=r"model\(s\) with no observed score: \['C'\].*task\(s\).*'t2', 't3'"
    ):
        ScoreMatrix.from_wide(p, scale="percent")
    sm = ScoreMatrix.from_wide(p, scale="percent", drop_empty=True)
    assert sm.models == ("A", "B") and sm.tasks == ("t1",)
    assert sm.dropped_models == ("C",) and sm.dropped_tasks == ("t2", "t3")
    # a matrix built in code (a split, a thinned table) names the task too, not its index,
    # where it has no bounds to borrow a range within (decision 0029; a bounded one borrows)
    with pytest.raises(DataError, match=r"no observed score and no lower.*\['t2'\]"):
        ScoreMatrix(np.array([[0.5, np.nan], [0.2, np.nan]]), ["A", "B"], ["t1", "t2"],
                    scale="unbounded")
    kept = ScoreMatrix(np.array([[0.5, np.nan], [0.2, np.nan]]), ["A", "B"], ["t1", "t2"],
                       scale="fraction")
    assert kept.normalization.borrowed.tolist() == [False, True]


def test_normalisation_is_invertible_and_shared():
    sm = ScoreMatrix.from_wide(
        pd.DataFrame({"a": [10.0, 30.0, 50.0], "b": [5.0, np.nan, 7.0]}, index=["x", "y", "z"]),
        scale="percent",
    )
    obs = sm.observed()
    np.testing.assert_allclose(obs.values, [0.0, 0.0, 0.5, 1.0, 1.0])
    back = sm.denormalize(obs.values, obs.model_idx, obs.task_idx)
    np.testing.assert_allclose(back, sm.scores[obs.model_idx, obs.task_idx], rtol=1e-6)
    draws = np.stack([obs.values, obs.values])  # (n_draws, n_cells) broadcast
    assert sm.denormalize(draws, obs.model_idx, obs.task_idx).shape == (2, 5)
    mm = ScoreMatrix(sm.scores, sm.models, sm.tasks, scale="percent", normalization="model_max")
    np.testing.assert_allclose(mm.normalized[0], [1.0, 0.5])
    np.testing.assert_allclose(mm.normalized[2], [1.0, 7 / 50])
    # a constant task does not divide by zero
    const = ScoreMatrix(np.array([[3.0], [3.0]]), ["a", "b"], ["t"], scale="percent")
    assert np.isfinite(const.normalized).all()


def test_renormalized_changes_the_units_of_the_fit_not_the_scores():
    sm = ScoreMatrix.from_wide(
        pd.DataFrame({"a": [10.0, 30.0, 50.0], "b": [5.0, np.nan, 7.0]}, index=["x", "y", "z"]),
        scale="percent",
    )
    logit = sm.renormalized("task_logit")
    assert logit.normalization.kind == "task_logit" and sm.normalization.kind == "task_minmax"
    np.testing.assert_array_equal(logit.scores, sm.scores)
    obs = sm.observed()
    raw = sm.scores[obs.model_idx, obs.task_idx]
    back = logit.denormalize(logit.normalize(raw, obs.model_idx, obs.task_idx),
                             obs.model_idx, obs.task_idx)
    np.testing.assert_allclose(back, raw, rtol=1e-4)
    assert sm.renormalized(None) is sm and sm.renormalized("task_minmax") is sm
    assert logit.renormalized("task_minmax").normalization.kind == "task_minmax"
    # units the user asked for are kept: a model_max or unbounded table is not relinked
    mm = ScoreMatrix(sm.scores, sm.models, sm.tasks, scale="percent", normalization="model_max")
    assert mm.renormalized("task_logit") is mm
    free = ScoreMatrix(sm.scores, sm.models, sm.tasks, scale="unbounded")
    assert free.renormalized("task_logit") is free


def test_factors_join_by_name_and_report_mismatches(tmp_path):
    scores = pd.DataFrame({"t": [0.1, 0.2, 0.3]}, index=["Luminous Base-13B", "m2", "m3"])
    f = pd.DataFrame(
        {"family": ["lum", "x", "x"], "params": [13.0, np.nan, 7.0]},
        index=["Luminous Base", "m2", "m3"],
    )
    with pytest.raises(FactorMismatchError, match=r"'Luminous Base-13B'.*closest: 'Luminous Base'"):
        ScoreMatrix.from_wide(scores, scale="fraction", model_factors=f)
    sm = ScoreMatrix.from_wide(
        scores,
        scale="fraction",
        model_factors=f.rename(index={"Luminous Base": "Luminous Base-13B"}),
    )
    assert np.isnan(sm.model_factors.loc["m2", "params"])  # missing stays missing
    assert sm.model_factors.loc["m3", "params"] == 7.0
    from cppjax import CppjaxWarning

    with pytest.warns(CppjaxWarning, match="Luminous Base"):
        sm = ScoreMatrix.from_wide(scores, scale="fraction", model_factors=f, on_mismatch="warn")
    assert sm.model_factors.loc["Luminous Base-13B"].isna().all()
    assert sm.model_factors.attrs["unmatched"] == ("Luminous Base",)


def test_read_factors_types_and_orientation(tmp_path):
    p = write(tmp_path, ",t1,t2\nability,math,code\nfew-shot,0,-\n", "tf.csv", bom=True)
    tf = read_factors(p, names_as="columns")
    assert list(tf.index) == ["t1", "t2"]
    assert tf["ability"].tolist() == ["math", "code"]
    assert tf["few-shot"].dtype == float and np.isnan(tf.loc["t2", "few-shot"])


def test_inline_factor_columns(tmp_path):
    p = write(tmp_path, "Model,Family,Size,mmlu\nA,f,1,0.3\nB,f,,0.5\n")
    sm = ScoreMatrix.from_wide(p, label_column="Model", factor_columns=["Family", "Size"])
    assert sm.tasks == ("mmlu",)
    assert sm.model_factors["Family"].tolist() == ["f", "f"]


def test_observed_and_missing_cells():
    sm = ScoreMatrix(
        np.array([[1.0, np.nan], [np.nan, 2.0]]), ["a", "b"], ["x", "y"], scale="unbounded"
    )
    obs = sm.observed()
    assert obs.model_idx.dtype == np.int32 and obs.values.dtype == np.float32
    assert list(zip(*sm.missing(), strict=True)) == [(0, 1), (1, 0)]
    with pytest.raises(KeyError, match="closest: 'a'"):
        sm.model_index("A")


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16"])
@pytest.mark.parametrize("sep", [",", ";", "\t"])
def test_encodings_and_delimiters_are_detected(tmp_path, encoding, sep):
    """UTF-8 (with or without a byte-order mark) and UTF-16 files, with comma, semicolon or tab
    delimiters, read the same without a flag."""
    text = sep.join(["model", "a", "b"]) + "\n" + sep.join(["m1", "50", "-"]) + "\n" \
        + sep.join(["m2", "70", "60"]) + "\n"
    path = tmp_path / "t.csv"
    path.write_bytes(text.encode(encoding))
    sm = ScoreMatrix.from_wide(path, scale="percent")
    assert sm.models == ("m1", "m2") and sm.tasks == ("a", "b") and sm.n_observed == 3


def test_excel_and_undecodable_files_are_named(tmp_path):
    broken = tmp_path / "board.csv"
    broken.write_bytes(b"PK\x03\x04" + b"\x00" * 40)
    with pytest.raises(DataError, match="board.csv: neither a CSV table nor a readable Excel"):
        ScoreMatrix.from_wide(broken)
    # a workbook, even renamed .csv, is read through pandas (openpyxl)
    book = tmp_path / "renamed.csv"
    pd.DataFrame({"model": ["m1", "m2"], "mmlu": [40, "-"], "gsm8k": [10, 55]}).to_excel(
        book, index=False, engine="openpyxl")
    sm = ScoreMatrix.from_wide(book, scale="percent")
    assert sm.models == ("m1", "m2") and sm.n_observed == 3
    latin = tmp_path / "latin.csv"
    latin.write_bytes("model,a\nm1,50\nm\xe9,60\n".encode("latin-1"))
    with pytest.raises(DataError, match="latin.csv: line 3 is not UTF-8 text"):
        ScoreMatrix.from_wide(latin)


def test_excel_without_openpyxl_names_it(tmp_path, monkeypatch):
    def missing(*a, **k):
        raise ImportError("Missing optional dependency 'openpyxl'")

    monkeypatch.setattr(pd, "read_excel", missing)
    book = tmp_path / "board.xlsx"
    book.write_bytes(b"PK\x03\x04" + b"\x00" * 40)
    with pytest.raises(DataError, match="needs openpyxl: pip install openpyxl"):
        ScoreMatrix.from_wide(book)


def test_empty_model_message_names_the_cli_flag(tmp_path):
    path = tmp_path / "e.csv"
    path.write_text("model,a,b\nm1,50,60\nm2,-,-\n")
    with pytest.raises(DataError, match="--drop-empty"):
        ScoreMatrix.from_wide(path, scale="percent")
