"""What a new user runs into first gives one clear message, never a raw traceback or a silent
result (issue 33's list)."""

import warnings

import numpy as np
import pytest

from cppjax import CppjaxWarning, DataError, ScoreMatrix
from cppjax.cli.main import main
from cppjax.datasets import load_cpp_crowdsource


def test_an_array_or_a_folder_is_not_a_score_table(tmp_path):
    with pytest.raises(DataError, match="not a ndarray"):
        ScoreMatrix.from_wide(np.zeros((2, 2)))
    with pytest.raises(DataError, match="is a folder"):
        ScoreMatrix.from_wide(tmp_path)


def test_a_fraction_into_a_percent_table_warns_and_out_of_bounds_is_an_error():
    sm = load_cpp_crowdsource()
    mi, ti = sm.missing()
    cell = (sm.models[mi[0]], sm.tasks[ti[0]])
    with pytest.warns(CppjaxWarning, match="a fraction"):
        sm.add_scores({cell: 0.7})
    with pytest.raises(DataError, match="outside the task's bounds"):
        sm.add_scores({cell: 170.0})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sm.add_scores({cell: 70.0})


def test_cli_counts_and_debug_after_the_subcommand(capsys):
    assert main(["evaluate", "--folds", "0", "--protocol", "kfold"]) == 2
    assert "--folds must be a positive integer" in capsys.readouterr().err
    with pytest.raises(ValueError):  # --debug after the subcommand: the traceback
        main(["evaluate", "--seeds", "0", "--debug"])
