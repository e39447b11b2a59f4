import os
import tempfile
from pathlib import Path

# CPU only, set before JAX starts: the workers of pytest-xdist (one per core) must not each
# claim an accelerator's memory
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# XLA's backend optimisation off in the tests (and the subprocesses they start): a test's time
# is mostly compiling programs it runs for a few steps (decision 0021); users' programs keep it.
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                               + " --xla_backend_optimization_level=0").strip()

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_platform_name", "cpu")
# the CLI's persistent compilation cache in a folder of this test session, not the user's home
# (this process leaves it off: on a fresh machine writing the entries cost more than the few
# hits saved, 223 s against 180 s for test_bayes.py)
os.environ.setdefault("CPPJAX_CACHE_DIR", tempfile.mkdtemp(prefix="cppjax-jax-cache-"))

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"reference data not found at {SHARED} (../shared/data beside the repository)")
    return SHARED


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("CPPJAX_PROGRESS", os.environ.get("CPPJAX_PROGRESS", "0"))
