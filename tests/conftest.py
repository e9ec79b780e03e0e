"""Suite-wide settings, and the ``oracle`` mark on every test that compares with PyTorch or
micrograd (``python -m pytest -m oracle`` runs the parity tests alone, ``-m "not oracle"``
the rest)."""

import functools
import inspect
import shutil

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


ORACLES = ("torch", "micrograd")


def _code_names_an_oracle(code) -> bool:
    """The code (or a lambda, comprehension or function inside it) reads a global or
    attribute named torch/micrograd, or holds the string "torch" (importorskip("torch"))."""
    if any(name in ORACLES for name in code.co_names):
        return True
    for constant in code.co_consts:
        if constant in ORACLES:
            return True
        if inspect.iscode(constant) and _code_names_an_oracle(constant):
            return True
    return False


@functools.cache
def _source_names_an_oracle(function) -> bool:
    code = getattr(inspect.unwrap(function), "__code__", None)
    return code is not None and _code_names_an_oracle(code)


def _uses_an_oracle(item: pytest.Item) -> bool:
    """The test's module imports an oracle at its top, or the test function's source (or a
    fixture it asks for) names one."""
    module = getattr(item, "module", None)
    if module is not None and any(oracle in vars(module) for oracle in ORACLES):
        return True
    function = getattr(item, "function", None)
    if function is not None and _source_names_an_oracle(function):
        return True
    fixtures = getattr(item, "_fixtureinfo", None)
    for name in fixtures.names_closure if fixtures is not None else ():
        for definition in fixtures.name2fixturedefs.get(name, ()):
            if _source_names_an_oracle(definition.func):
                return True
    return False


def pytest_collection_modifyitems(config, items):
    for item in items:
        if _uses_an_oracle(item):
            item.add_marker(pytest.mark.oracle)


# Debian's Chromium, driven by playwright (no browser download): the browser tests of the
# explorer page and of the built docs site share one launch
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser():
    """A headless Chromium for one test module; the test skips, saying why, without it."""
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (pip install playwright)"
    )
    if not shutil.which(CHROMIUM):
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install -y chromium)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
