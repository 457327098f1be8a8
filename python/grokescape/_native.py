"""Load the compiled core built for the best instruction set this CPU supports.

The build produces ``_core`` (baseline x86-64, runs anywhere) and, on x86-64 with GCC or
Clang, ``_core_avx2`` and ``_core_avx512``. The environment variable ``GROKESCAPE_ISA``
(``baseline``, ``avx2`` or ``avx512``) forces a choice, e.g. to compare variants.

A variant is chosen only where the CPU has every instruction-set extension it was
compiled with (CMakeLists.txt): a CPU with AVX-512F but without DQ, BW or VL gets the AVX2
core instead of dying on an illegal instruction.

Bits: the avx2 and avx512 variants give identical weights (their kernels do the same
arithmetic in the same order; only the vector width differs); observables evaluated
through Eigen may differ in the last bit, and the baseline variant (SSE2, no FMA) rounds
differently throughout. tests/bit_hashes.json holds each variant's hashes.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from types import ModuleType
from typing import TYPE_CHECKING

VARIANTS = {"baseline": "_core", "avx2": "_core_avx2", "avx512": "_core_avx512"}
# The CPU features each variant's compile flags require (CMakeLists.txt).
NEEDS = {
    "baseline": (),
    "avx2": ("avx2", "fma"),
    "avx512": ("avx512f", "avx512dq", "avx512bw", "avx512vl", "avx2", "fma"),
}
_PREFERENCE = ("avx512", "avx2", "baseline")


def supported(features: Mapping[str, bool]) -> list[str]:
    """The variants a CPU with these features can run, best first."""
    return [isa for isa in _PREFERENCE if all(features.get(f, False) for f in NEEDS[isa])]


def choose(features: Mapping[str, bool], forced: str = "") -> list[str]:
    """The variants to try in order: the forced one (checked against the CPU), or every
    supported one, best first."""
    forced = forced.strip().lower()
    if not forced:
        return supported(features)
    if forced not in VARIANTS:
        raise ImportError(f"GROKESCAPE_ISA={forced!r}: expected one of {sorted(VARIANTS)}")
    if forced not in supported(features):
        missing = [f for f in NEEDS[forced] if not features.get(f, False)]
        raise ImportError(f"GROKESCAPE_ISA={forced}: this CPU lacks {missing}")
    return [forced]


def _load() -> tuple[str, ModuleType]:
    baseline = importlib.import_module("grokescape._core")
    features = baseline.build_info().get("cpu_features", {})
    forced = os.environ.get("GROKESCAPE_ISA", "")
    for isa in choose(features, forced):
        try:
            return isa, importlib.import_module(f"grokescape.{VARIANTS[isa]}")
        except ImportError:
            if forced:
                raise
    return "baseline", baseline


if TYPE_CHECKING:
    import grokescape._core as core

    ISA: str
else:
    ISA, core = _load()
