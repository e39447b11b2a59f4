"""50 fits of changing shapes in one process, under ``JAX_CHECK_TRACER_LEAKS=1``: no traced
value outlives its trace (a leak fails the fit there), and the process's memory maps do not keep
growing with every dropped fit (compiled programs belong to inference objects, not to
module-level caches). The loop is ``tests/fit_loop.py``, run in a fresh process."""

import os
import re
import subprocess
import sys
from pathlib import Path


def test_fifty_fits_of_changing_shapes_leak_no_tracer_and_free_their_programs():
    env = {**os.environ, "JAX_CHECK_TRACER_LEAKS": "1", "CPPJAX_PROGRESS": "0",
           "JAX_PLATFORMS": "cpu"}
    script = Path(__file__).with_name("fit_loop.py")
    run = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True,
                         timeout=1200)
    assert run.returncode == 0, run.stderr[-3000:]
    m = re.search(r"fits 50 maps_after_10 (\d+) maps_after_50 (\d+)", run.stdout)
    assert m, run.stdout[-2000:]
    after_10, after_50 = int(m.group(1)), int(m.group(2))
    # 40 more fits, each compiling programs for a new shape: what is dropped is freed (kept
    # across fits, about 380 maps per fit had accumulated)
    assert after_50 - after_10 < 40 * 100, (after_10, after_50)
