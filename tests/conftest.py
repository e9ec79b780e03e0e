"""Suite-wide settings."""

import pytest
from threadpoolctl import threadpool_limits


@pytest.fixture(autouse=True, scope="session")
def one_blas_thread():
    """Run numpy's BLAS on one thread.

    tinybn's tests multiply small matrices; on a 2-core machine a multi-threaded BLAS
    spends far longer waking threads than multiplying (seen: 22 ms instead of 0.02 ms
    for a 64×100 @ 100×100 product when the machine is busy).
    """
    with threadpool_limits(limits=1):
        yield


def pytest_configure(config):
    """With TINYBN_REQUIRE_ORACLES=1 (set by .ci/run) a missing torch or micrograd is an
    error, not a silent skip of every parity test."""
    import importlib
    import os

    if os.environ.get("TINYBN_REQUIRE_ORACLES") == "1":
        for oracle in ("torch", "micrograd"):
            try:
                importlib.import_module(oracle)
            except ImportError as error:
                raise pytest.UsageError(
                    f"TINYBN_REQUIRE_ORACLES=1 but {oracle} cannot be imported ({error}); "
                    'install them with pip install -e ".[oracle]"'
                ) from None
