"""The bundled datasets equal the reference figures in shared/data, cell by cell."""

import numpy as np
import pandas as pd
import pytest

from cppjax.datasets import load_cpp_crowdsource, load_obsscaling
from cppjax.datasets.build import (
    CPP_MODEL_ALIASES,
    CPP_MODEL_COLUMNS,
    CPP_TASK_ROWS,
    OSL_MODEL_COLUMNS,
)


def test_bundled_loads_without_shared():
    cpp = load_cpp_crowdsource()
    assert cpp.shape == (72, 29) and cpp.n_observed == 878 and cpp.scale == "percent"
    assert set(cpp.task_factors.columns) == {"ability", "task_family", "output_format", "few_shot"}
    assert cpp.model_factors["family"].notna().all()
    osl = load_obsscaling()
    assert osl.shape == (148, 8) and osl.scale == "fraction"
    assert list(osl.model_factors.columns) == ["family", "parameters", "tokens", "flops"]


def test_cpp_scores_equal_reference(shared_data):
    ref = pd.read_csv(
        shared_data / "cpp_llm" / "crowdsource_performance.csv", encoding="utf-8-sig", index_col=0
    )
    sm = load_cpp_crowdsource()
    assert list(ref.index) == list(sm.models) and list(ref.columns) == list(sm.tasks)
    np.testing.assert_array_equal(ref.to_numpy(dtype=float), sm.scores)  # NaN positions too


def test_cpp_factors_equal_reference(shared_data):
    ref = pd.read_csv(shared_data / "cpp_llm" / "model_feature.csv", encoding="utf-8-sig")
    ref = ref.set_index("Model Name").rename(index=CPP_MODEL_ALIASES)
    sm = load_cpp_crowdsource()
    mf = sm.model_factors.loc[list(ref.index)]
    for src, (dst, mult) in CPP_MODEL_COLUMNS.items():
        if mult is None:
            assert (
                ref[src].astype(object).where(ref[src].notna(), None).tolist() == mf[dst].tolist()
            ), src
        else:
            np.testing.assert_allclose(
                mf[dst].to_numpy(float), ref[src].to_numpy(float) * mult, rtol=1e-12, err_msg=src
            )
    tref = pd.read_csv(
        shared_data / "cpp_llm" / "benchmark_feature.csv", encoding="utf-8-sig", index_col=0
    )
    for row, dst in CPP_TASK_ROWS.items():
        got = sm.task_factors.loc[list(tref.columns), dst].tolist()
        want = tref.loc[row].tolist()
        if dst == "few_shot":
            want = [float(w) for w in want]
        assert got == want, row


def test_obsscaling_equals_reference(shared_data):
    ref = pd.read_csv(shared_data / "obsscaling" / "base_llm_benchmark_eval.csv").set_index("Model")
    sm = load_obsscaling()
    assert list(ref.index) == list(sm.models)
    np.testing.assert_array_equal(ref[list(sm.tasks)].to_numpy(float), sm.scores)
    for src, (dst, mult) in OSL_MODEL_COLUMNS.items():
        if mult is None:
            assert ref[src].tolist() == sm.model_factors[dst].tolist()
        else:
            np.testing.assert_allclose(
                sm.model_factors[dst].to_numpy(float),
                ref[src].to_numpy(float) * mult,
                rtol=1e-12,
                err_msg=src,
            )


def test_build_script_reproduces_bundled_files(shared_data, tmp_path):
    from cppjax.datasets import FILES
    from cppjax.datasets.build import build

    build(shared_data, tmp_path)
    for f in sorted(FILES.glob("*.csv")) + [FILES / "manifest.json"]:
        assert (tmp_path / f.name).read_text() == f.read_text(), f.name


@pytest.mark.parametrize("models_as", ["rows", "columns"])
def test_reference_csv_loads_in_both_orientations(shared_data, models_as):
    """A real table nobody wrote for this project (BOM, empty first header cell) loads as is."""
    from cppjax import ScoreMatrix

    sm = ScoreMatrix.from_wide(
        shared_data / "cpp_llm" / "crowdsource_performance.csv",
        models_as=models_as,
        scale="percent",
    )
    assert sm.n_observed == 878
    assert sm.shape == ((72, 29) if models_as == "rows" else (29, 72))


def test_synthetic_generator_is_reproducible_and_missing_not_at_random():
    from cppjax.datasets import synthetic

    a = synthetic(3, n_models=60, n_tasks=10, observed=0.3)
    b = synthetic(3, n_models=60, n_tasks=10, observed=0.3)
    np.testing.assert_array_equal(a.full.scores, b.full.scores)
    np.testing.assert_array_equal(a.matrix.mask, b.matrix.mask)
    assert not np.array_equal(synthetic(4, n_models=60, n_tasks=10).full.scores, a.full.scores)
    assert 0.25 <= a.matrix.n_observed / a.matrix.scores.size <= 0.36
    assert a.matrix.mask.any(axis=1).all() and a.matrix.mask.any(axis=0).all()
    # the observed scores are the full table's, and the truth is the noise-free mean
    np.testing.assert_array_equal(a.matrix.scores[a.matrix.mask], a.full.scores[a.matrix.mask])
    assert np.abs(a.full.scores - a.truth).mean() < 0.05
    # larger models are evaluated on more tasks
    size = np.log(a.matrix.model_factors["parameters"].to_numpy())
    assert np.corrcoef(size, a.matrix.mask.sum(axis=1))[0, 1] > 0.4
    with pytest.raises(ValueError, match="observed must be in"):
        synthetic(0, observed=0)
