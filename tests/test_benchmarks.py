"""The calibration benchmark's results file: the BENCHMARKS.md shape, and ``--merge`` keeping the
other methods' figures (quick settings, one split)."""

import json
import os
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def calibration():
    # the benchmarks make 4 CPU devices through XLA_FLAGS; keep that from the tests after these
    flags = os.environ.get("XLA_FLAGS")
    sys.path.insert(0, str(BENCH))
    try:
        import calibration

        yield calibration
    finally:
        sys.path.remove(str(BENCH))
        if flags is None:
            os.environ.pop("XLA_FLAGS", None)
        else:
            os.environ["XLA_FLAGS"] = flags


def test_calibration_writes_and_merges(calibration, tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["benchmarks/calibration.py"])
    common = ["--seeds", "1", "--skip-cold", "--quick", "--out", str(tmp_path)]
    calibration.main(["--methods", "pmf_svi", *common])
    calibration.main(["--methods", "ncf", "--merge", *common])
    doc = json.loads((tmp_path / "calibration.json").read_text())
    assert set(doc) == {"benchmark", "command", "device", "versions", "protocol", "groups"}
    group = doc["groups"]["cpp_crowdsource/random"]
    assert set(group) == {"pmf_svi", "ncf"}  # the first run's figures are kept
    for stat in group["pmf_svi"].values():
        assert set(stat) == {"mean", "std", "n"}
    assert {"coverage_90", "crps", "lpd"} <= set(group["pmf_svi"])
    assert "coverage_90" not in group["ncf"]  # a metric that does not apply is left out
    # both commands are named, without the output folder (it changes no figure)
    assert doc["command"].count("python benchmarks/calibration.py") == 2
    assert " && " in doc["command"] and str(tmp_path) not in doc["command"]
    md = (tmp_path / "calibration.md").read_text()
    assert "| pmf_svi |" in md and "| ncf |" in md
