"""Property-based fuzzing of the loaders and the CLI (``tests/fuzz_cases.py``): a result, a
DataError or a usage error, never another exception. ``benchmarks/fuzz.py`` runs 10,000 cases."""

import tempfile
from pathlib import Path

from fuzz_cases import FLAGS, LOAD_OPTIONS, cli_case, good_tables, load_case, tables
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


@settings(max_examples=300, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(tables(), LOAD_OPTIONS)
def test_loader_outcomes_are_typed(table, options):
    assert load_case(table, options) in ("ok", "warned", "DataError")


@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(good_tables(), tables()), st.sampled_from(["predict", "rank"]), FLAGS)
def test_cli_outcomes_are_typed(table, command, flags):
    with tempfile.TemporaryDirectory() as d:
        assert cli_case(table, command, flags, Path(d)) in ("ok", "usage", "error")
