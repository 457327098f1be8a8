"""The engine's bits are held fixed: hashes of the weights, records and escape tables after
the README example and each benchmark workload (tests/bit_hashes.py) equal the values
stored for the core variant in use, computed on the code before the one-driver rewrite."""

import platform

import numpy as np
import pytest
from bit_hashes import CASES, run, stored

from grokescape._native import ISA


@pytest.mark.parametrize("name", sorted(CASES))
def test_bits_equal_the_stored_hashes(name):
    # The stored hashes were computed on x86-64; another architecture's baseline core
    # (aarch64 wheels from cibuildwheel) has other vector code and rounds differently.
    if platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip(f"no stored hashes for {platform.machine()}")
    store = stored()
    expected = store.get(ISA)
    if expected is None:
        pytest.skip(f"no stored hashes for the {ISA} core variant")
    inputs, result = run(name)
    if inputs != store["inputs"][name]:
        pytest.skip(
            f"numpy {np.__version__} builds this case's inputs (teacher data, modes, traps) "
            "with other bits than the numpy that stored the hashes: the core cannot be compared"
        )
    assert result == expected[name]
