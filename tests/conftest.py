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
