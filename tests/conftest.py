"""Shared fixtures. The suite also runs from a copy of tests/ outside the repository,
against an installed wheel (.ci/run, cibuildwheel): everything it needs is registered here,
and a test that reads a repository file asks for it through ``repo_file``."""

import os
import sys
import sysconfig
from pathlib import Path

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
sys.path.insert(0, os.path.dirname(__file__))

FULL_VALIDATION = os.environ.get("GROKESCAPE_FULL_VALIDATION", "") == "1"
REPOSITORY = Path(__file__).resolve().parents[1]


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "slow: long validations; CI runs them in a reduced form "
        "(GROKESCAPE_FULL_VALIDATION=1 for the full size)",
    )


@pytest.fixture(scope="session", autouse=True)
def installed_package():
    """With GROKESCAPE_TEST_INSTALLED=1, fail unless grokescape and its compiled core
    are imported from this interpreter's site-packages, not from a source tree."""
    if os.environ.get("GROKESCAPE_TEST_INSTALLED", "") != "1":
        return
    import grokescape
    from grokescape import _native

    site = {Path(sysconfig.get_paths()[k]).resolve() for k in ("purelib", "platlib")}
    for module in (grokescape, _native.core):
        path = Path(module.__file__).resolve()
        assert any(path.is_relative_to(s) for s in site), (
            f"{module.__name__} is imported from {path}, not from site-packages {sorted(site)}"
        )


@pytest.fixture
def repo_file():
    """The path of a repository file (examples, docs); skips the test where the suite
    runs without the repository around it."""

    def get(relative: str) -> Path:
        path = REPOSITORY / relative
        if not path.is_file():
            pytest.skip(f"{relative} is not here: the tests run outside the repository")
        return path

    return get


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
