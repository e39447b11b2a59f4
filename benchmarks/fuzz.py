"""Fuzz the loaders and the CLI with random tables, encodings, placeholders, shapes and flags.

    python benchmarks/fuzz.py                      # 10,000 loader cases, 300 CLI cases
    python benchmarks/fuzz.py --loads 500 --cli 20

The cases are ``tests/fuzz_cases.py``'s (the test suite runs a few hundred of them). Every
outcome must be a loaded table, a ``DataError`` or a usage error; the count of each outcome and
of untyped exceptions (with the first few, to reproduce) is written to ``results/fuzz.{md,json}``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from common import write_results  # noqa: E402
from fuzz_cases import (  # noqa: E402
    FLAGS,
    LOAD_OPTIONS,
    cli_case,
    good_tables,
    load_case,
    tables,
)
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import seed as hypothesis_seed  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


def run(n: int, body, strategies, seed: int) -> tuple[Counter, list[str]]:
    counts, failures = Counter(), []

    @settings(max_examples=n, deadline=None, database=None, derandomize=False,
              suppress_health_check=list(HealthCheck))
    @given(st.tuples(*strategies))
    def prop(case):
        try:
            counts[body(*case)] += 1
        except Exception as e:  # noqa: BLE001 - counting what escapes is the point
            counts[f"untyped {type(e).__name__}"] += 1
            if len(failures) < 5:
                failures.append(f"{case!r}\n{traceback.format_exc(limit=4)}")

    hypothesis_seed(seed)(prop)()
    return counts, failures


def cli_body(table, command, flags):
    with tempfile.TemporaryDirectory() as d:
        return cli_case(table, command, flags, Path(d))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--loads", type=int, default=10_000, help="loader cases (default 10,000)")
    ap.add_argument("--cli", type=int, default=300, help="CLI cases (default 300)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    groups, lines = {}, []
    for name, n, body, strats in (
            ("loader", args.loads, load_case, (tables(), LOAD_OPTIONS)),
            ("cli", args.cli, cli_body, (st.one_of(good_tables(), tables()),
                                         st.sampled_from(["predict", "rank"]), FLAGS))):
        t0 = time.perf_counter()
        counts, failures = run(n, body, strats, args.seed)
        secs = time.perf_counter() - t0
        total = sum(counts.values())
        untyped = sum(v for k, v in counts.items() if k.startswith("untyped"))
        groups[f"fuzz/{name}"] = {"all": {
            "cases": {"mean": total, "std": 0.0, "n": 1},
            "untyped_exceptions": {"mean": untyped, "std": 0.0, "n": 1},
            **{f"outcome_{k.replace(' ', '_')}": {"mean": v, "std": 0.0, "n": 1}
               for k, v in sorted(counts.items())}}}
        lines.append(f"| {name} | {total:,} | {untyped} | "
                     + ", ".join(f"{k}: {v:,}" for k, v in sorted(counts.items()))
                     + f" | {secs:.0f} |")
        print(lines[-1], flush=True)
        for f in failures:
            print(f, flush=True)
    md = ("Random tables (0-5 x 0-5 cells of numbers, placeholders and text; random names, "
          "delimiters and encodings) through `ScoreMatrix.from_wide`, and random flag sets "
          "through `cppjax predict` / `cppjax rank` (`tests/fuzz_cases.py`).\n\n"
          "| target | cases | untyped exceptions | outcomes | seconds |\n|---|---|---|---|---|\n"
          + "\n".join(lines) + "\n")
    write_results("fuzz", "property-based fuzzing (hypothesis) of the loaders and the CLI",
                  groups, md)
    print(md)


if __name__ == "__main__":
    main()
