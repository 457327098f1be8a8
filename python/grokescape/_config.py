"""Build and runtime facts for bug reports and benchmark records."""

from __future__ import annotations

import platform
import sys
from typing import Any

import numpy as np

from grokescape._native import ISA, core


def config() -> dict[str, Any]:
    """Versions, OpenMP, thread count and instruction sets, as a dict."""
    from grokescape._version import __version__

    info = dict(core.build_info())
    return {
        "grokescape": __version__,
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "core_variant": ISA,
        "compiled_isa": info.pop("compiled_isa"),
        "openmp": info.pop("openmp"),
        "default_threads": int(core.default_threads()),
        **info,
    }


def show_config() -> None:
    """Print versions, OpenMP on/off, default thread count and instruction sets."""
    for key, value in config().items():
        print(f"{key:>16}: {value}")
