"""Random score tables and command lines for the fuzz tests (``tests/test_fuzz.py``, a few
hundred cases) and ``benchmarks/fuzz.py`` (10,000): every outcome must be a result, a
:class:`~cppjax.errors.DataError` or a usage error, never another exception."""

from __future__ import annotations

import contextlib
import io
import math
import tempfile
import warnings
from pathlib import Path

from hypothesis import strategies as st

from cppjax import ScoreMatrix
from cppjax.cli import main
from cppjax.errors import CppjaxWarning, DataError

PLACEHOLDERS = ["", "-", "n/a", "NA", "nan", "NaN", "null", "?", "--", " "]
#: names that carry evidence for the orientation and the metric kinds (cppjax.data.names)
TELLING = ["meta-llama/Llama-2-7b", "pythia-70m@step3000", "gpt2-xl", "Qwen1.5-7B-Chat",
           "MMLU - EM", "XSum - ROUGE-2", "WikiText - BPB", "Helpfulness (1-5)", "ppl",
           "likelihood_difference", "pct_stereotype", "ECE (10-bin)", "acc_norm", "1-10 rating"]
NAMES = st.one_of(
    st.sampled_from(["mmlu", "gsm8k", "m1", "a,b", 'q"x', "  pad  ", "", "1", "é-ü", "x;y"]),
    st.sampled_from(TELLING),
    st.text(min_size=0, max_size=12))
CELLS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=32).map(lambda v: repr(float(v))),
    st.floats(-5, 150).map(lambda v: f"{v:.3g}"),
    st.integers(-10, 200).map(str),
    st.sampled_from(PLACEHOLDERS),
    st.text(max_size=6))
ENCODINGS = ["utf-8", "utf-8-sig", "utf-16", "latin-1", "cp1252"]


@st.composite
def good_tables(draw):
    """A table that mostly loads: unique names (tasks t1, t2, ...), numbers in one of a few
    units, some placeholders; a random delimiter and encoding."""
    n_rows, n_cols = draw(st.integers(1, 6)), draw(st.integers(1, 4))
    sep = draw(st.sampled_from([",", ";", "\t", "|"]))
    lo, hi = draw(st.sampled_from([(0.0, 1.0), (0.0, 100.0), (-5.0, 5.0), (0.5, 3.0)]))
    cell = st.one_of(st.floats(lo, hi).map(lambda v: f"{v:.4g}"),
                     st.sampled_from(PLACEHOLDERS[:4]))
    header = ["model"] + [f"t{j + 1}" for j in range(n_cols)]
    rows = [[f"m{i}"] + [draw(cell) for _ in range(n_cols)] for i in range(n_rows)]
    text = "\n".join(sep.join(r) for r in [header, *rows]) + "\n"
    return text, draw(st.sampled_from(ENCODINGS)), sep


@st.composite
def raw_tables(draw):
    """A delimited text table of random names and cells, in a random encoding."""
    n_rows, n_cols = draw(st.integers(0, 5)), draw(st.integers(0, 5))
    sep = draw(st.sampled_from([",", ";", "\t", "|"]))
    header = [draw(NAMES) for _ in range(n_cols + 1)]
    rows = [[draw(NAMES)] + [draw(CELLS) for _ in range(n_cols)] for _ in range(n_rows)]
    text = "\n".join(sep.join(r) for r in [header, *rows])
    if draw(st.booleans()):
        text += "\n"
    return text, draw(st.sampled_from(ENCODINGS)), sep


def tables():
    """Random tables, half of them close to loadable."""
    return st.one_of(raw_tables(), good_tables())


LOAD_OPTIONS = st.fixed_dictionaries({
    "models_as": st.sampled_from(["auto", "rows", "columns"]),
    "scale": st.sampled_from(["auto", "percent", "fraction", "unbounded", "mixed"]),
    "drop_empty": st.booleans(),
    "sep": st.sampled_from([None, ",", ";"]),
})


def load_case(table, options) -> str:
    """Write ``table`` and load it with ``options``; the outcome's name ("ok", "DataError");
    any other exception propagates."""
    text, enc, _ = table
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "t.csv"
        try:
            path.write_bytes(text.encode(enc))
        except UnicodeEncodeError:
            path.write_bytes(text.encode("utf-8"))
        try:
            with warnings.catch_warnings(record=True) as said:
                warnings.simplefilter("always", CppjaxWarning)  # a warning is an outcome
                sm = ScoreMatrix.from_wide(path, **options)
        except DataError:
            return "DataError"
        # a loaded table is usable: its normalised scores are finite where observed
        obs = sm.observed()
        assert all(math.isfinite(float(v)) for v in obs.values)
        return "warned" if any(issubclass(w.category, CppjaxWarning) for w in said) else "ok"


FLAGS = st.lists(st.sampled_from([
    ["--samples", "0"], ["--samples", "-5"], ["--samples", "3"], ["--level", "90"],
    ["--level", "0.5"], ["--level", "1"], ["--steps", "0"], ["--steps", "2"],
    ["--method", "mf"], ["--method", "nope"], ["--scale", "percent"],
    ["--scale", "mixed"], ["--scale", "bogus"], ["--models-as", "columns"], ["--sep", ";"],
    ["--lower-is-better", "t1"], ["--lower-is-better", "zz"], ["--task", "t1"],
    ["--task", "missing"], ["--seed", "x"], ["--warmup", "2"], ["--chains", "0"],
    ["--drop-empty"], ["--overwrite"], ["--unknown-flag"],
]), max_size=5)


def cli_case(table, command: str, flags: list[list[str]], out: Path) -> str:
    """Run ``cppjax <command>`` on ``table`` with ``flags`` (fits cut to 2 steps and 2 draws);
    the outcome's name ("ok", "usage", "error"); an exception the CLI does not turn into a
    message propagates (``--debug`` is not passed)."""
    text, enc, _ = table
    out.mkdir(parents=True, exist_ok=True)
    path = out / "t.csv"
    try:
        path.write_bytes(text.encode(enc))
    except UnicodeEncodeError:
        path.write_bytes(text.encode("utf-8"))
    argv = [command, "--scores", str(path), "--out", str(out / "o"), "--overwrite"]
    for f in flags:
        argv += f
    if command == "rank" and "--task" not in argv:
        argv += ["--task", "t1"]
    if "--steps" not in argv:
        argv += ["--steps", "2"]
    if "--samples" not in argv and "--method" in argv and "mf" not in argv:
        argv += ["--samples", "2"]
    if "--method" not in argv:
        argv += ["--method", "mf"]
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        try:
            rc = main(argv)
        except SystemExit as e:  # argparse: a usage error
            return "usage" if e.code == 2 else f"exit {e.code}"
    return "ok" if rc == 0 else "error"
