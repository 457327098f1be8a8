"""Shared pieces of the experiments: results, report rows, data, formatting."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from grokescape.data import Dataset, teacher_data

__all__ = ["Claim", "ExperimentResult", "fmt", "markdown_table", "paper_data", "verdict_within"]

REPRODUCED = "reproduced"
NOT_REPRODUCED = "not reproduced"
NOT_WELL_DEFINED = "not well defined"
CONFIRMED = "confirmed"
REFUTED = "refuted"


@dataclass
class Claim:
    """One row of the report's table: a number the paper states, ours beside it."""

    experiment: str
    quantity: str
    paper: str
    ours: str
    n: str
    verdict: str
    note: str = ""


@dataclass
class ExperimentResult:
    """What an experiment returns: data, figures, report rows and a markdown section."""

    name: str
    config: dict[str, Any]
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    figures: dict[str, Figure] = field(default_factory=dict)
    claims: list[Claim] = field(default_factory=list)
    markdown: str = ""
    seconds: float = 0.0
    values: dict[str, Any] = field(default_factory=dict)  # key numbers, for tests


def paper_data(config: dict[str, Any], *, exact_moments: bool = False) -> Dataset:
    """The paper's teacher data set from a config (eta, n_train, n_test, data_seed)."""
    return teacher_data(
        config["eta"],
        config["n_train"],
        config["n_test"],
        seed=config["data_seed"],
        exact_moments=exact_moments,
    )


def fmt(x: float, digits: int = 3) -> str:
    """A number with `digits` significant digits ('nan' for NaN)."""
    if x is None or not np.isfinite(x):
        return "nan" if x is None or np.isnan(x) else ("inf" if x > 0 else "-inf")
    return f"{x:.{digits}g}"


def markdown_table(df: pd.DataFrame, digits: int = 4) -> str:
    """A DataFrame as a GitHub markdown table, floats with `digits` significant digits."""

    def cell(v: Any) -> str:
        if isinstance(v, (float, np.floating)):
            return fmt(float(v), digits)
        return str(v)

    head = "| " + " | ".join(str(c) for c in df.columns) + " |"
    rule = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def verdict_within(ours: float, paper: float, tolerance: float) -> str:
    """'reproduced' when |ours - paper| <= tolerance, else 'not reproduced'."""
    return REPRODUCED if abs(ours - paper) <= tolerance else NOT_REPRODUCED
