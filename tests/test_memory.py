"""Fits of changing shapes in one process, 16 of them (decision 0021), whose dropped programs
must be freed (the process's memory maps do not keep growing: compiled programs belong to
inference objects, not to module-level caches), and a short loop over every inference path under
``JAX_CHECK_TRACER_LEAKS=1`` (no traced value outlives its trace; a leak fails the fit there).
The loop is ``tests/fit_loop.py``, run in a fresh process each time."""

import os
import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).with_name("fit_loop.py")


def _loop(n, **env):
    run = subprocess.run([sys.executable, str(SCRIPT), str(n)], capture_output=True, text=True,
                         env={**os.environ, "CPPJAX_PROGRESS": "0", "JAX_PLATFORMS": "cpu",
                              **env}, timeout=1200)
    assert run.returncode == 0, run.stderr[-3000:]
    m = re.search(rf"fits {n} maps_after_10 (\d+) maps_after_{n} (\d+)", run.stdout)
    assert m, run.stdout[-2000:]
    return int(m.group(1)), int(m.group(2))


def test_many_fits_of_changing_shapes_free_their_programs():
    after_10, after_16 = _loop(16)
    # 6 more fits, each compiling programs for a new shape; kept in a module-level cache they
    # had added about 380 maps per fit (2,280 here, against the bound of 600)
    assert after_16 - after_10 < 6 * 100, (after_10, after_16)


def test_no_traced_value_outlives_its_trace():
    _loop(4, JAX_CHECK_TRACER_LEAKS="1")  # mf, PMF MAP, SVI and NUTS
