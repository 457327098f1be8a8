"""Load the compiled core built for the best instruction set this CPU supports.

The build produces ``_core`` (baseline x86-64, runs anywhere) and, on x86-64 with GCC or
Clang, ``_core_avx2`` and ``_core_avx512``. The environment variable ``GROKESCAPE_ISA``
(``baseline``, ``avx2`` or ``avx512``) forces a choice, e.g. to compare variants.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import TYPE_CHECKING

_VARIANTS = {"baseline": "_core", "avx2": "_core_avx2", "avx512": "_core_avx512"}
_NEEDS = {"baseline": (), "avx2": ("avx2", "fma"), "avx512": ("avx512f", "avx2", "fma")}


def _load() -> tuple[str, ModuleType]:
    baseline = importlib.import_module("grokescape._core")
    features = baseline.build_info().get("cpu_features", {})
    forced = os.environ.get("GROKESCAPE_ISA", "").strip().lower()
    if forced:
        if forced not in _VARIANTS:
            raise ImportError(f"GROKESCAPE_ISA={forced!r}: expected one of {sorted(_VARIANTS)}")
        order = [forced]
    else:
        order = ["avx512", "avx2", "baseline"]
    for isa in order:
        if not all(features.get(flag, False) for flag in _NEEDS[isa]):
            if forced:
                raise ImportError(f"GROKESCAPE_ISA={forced}: this CPU lacks {_NEEDS[isa]}")
            continue
        try:
            return isa, importlib.import_module(f"grokescape.{_VARIANTS[isa]}")
        except ImportError:
            if forced:
                raise
    return "baseline", baseline


if TYPE_CHECKING:
    from grokescape import _core as core

    ISA: str
else:
    ISA, core = _load()
