"""Write the three figures of the exact per-mode theory as PNGs.

Usage: python examples/theory_figures.py [OUTPUT_DIR]   (default: theory_figures/)

- landscape.png: E(lambda) - E(0) at eta = 0.8, L = 3, beta in (0.29, 0.32, 0.35)
  (the paper's Fig. 2a, with the consistent regulariser L beta / 2), and E(s) - E(0).
- bifurcation.png: stationary lambda against beta for eta = 0.9 and 0.8 (Fig. 4).
- phase_diagram.png: rank of the global minimum and hysteresis windows against beta.
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from grokescape.theory_plots import (  # noqa: E402
    plot_bifurcation,
    plot_landscape,
    plot_phase_diagram,
)


def main(argv: list[str]) -> None:
    out = Path(argv[1] if len(argv) > 1 else "theory_figures")
    out.mkdir(parents=True, exist_ok=True)

    fig, axes = plt.subplots(1, 2, figsize=(10.5, 3.6), layout="constrained")
    plot_landscape(0.8, (0.29, 0.32, 0.35), depth=3, ax=axes[0])
    plot_landscape(0.8, (0.29, 0.32, 0.35), depth=3, ax=axes[1], coordinate="s", legend=False)
    fig.savefig(out / "landscape.png", dpi=200)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5.0, 3.6), layout="constrained")
    plot_bifurcation((0.9, 0.8), depth=3, ax=ax)
    fig.savefig(out / "bifurcation.png", dpi=200)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5.0, 3.6), layout="constrained")
    plot_phase_diagram((0.9, 0.8), depth=3, ax=ax)
    fig.savefig(out / "phase_diagram.png", dpi=200)
    plt.close(fig)

    for name in ("landscape.png", "bifurcation.png", "phase_diagram.png"):
        print(out / name)


if __name__ == "__main__":
    main(sys.argv)
