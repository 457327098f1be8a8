"""Censoring-aware statistics of escape times: rates, survival curves, exponentiality and
Arrhenius fits.

An ensemble experiment gives, per trajectory, whether it escaped and a time: the escape
time if it escaped, otherwise the time it was watched before the budget ran out (right
censoring). The statistics here never drop censored runs and never average escaped times
alone; they use

* the exposure (total time at risk) ``E = sum_i t_i`` over all trajectories and the
  number of escapes ``D``: for exponential waiting times ``D / E`` is the maximum
  likelihood rate, and given ``E``, ``D`` is Poisson, which gives exact (Garwood)
  intervals;
* the Kaplan-Meier estimate of the survival function (scipy.stats.ecdf);
* a likelihood-ratio test of exponential waiting times after a lag against a Weibull
  alternative;
* the Arrhenius fit ln tau = ln tau0 + dE x as a Poisson regression of the escape counts
  with the log exposure as offset, with profile-likelihood or bootstrap intervals, set
  beside the naive fit of ln(mean escaped time) that ignores censoring.

Data come as arrays (``times``, ``escaped``) or as a pandas DataFrame with one row per
trajectory and columns ``escaped`` (bool), a time column (``time`` by default; any other
column can be chosen with ``time=``) and the settings (``temperature``, ``lr``,
``batch_size``, ``beta``, ...). Rows with ``diverged`` True are excluded with a warning:
they are neither escapes nor clean censoring. Times are in whatever unit the caller
chose (steps, epochs, lr * steps); rates are per that unit.
"""

from grokescape.stats.arrhenius import ArrheniusFit, arrhenius_fit
from grokescape.stats.rates import (
    EscapeRate,
    ExponentialCheck,
    escape_rate,
    escape_rate_table,
    exponential_check,
    garwood_interval,
    survival_curve,
)

__all__ = [
    "ArrheniusFit",
    "EscapeRate",
    "ExponentialCheck",
    "arrhenius_fit",
    "escape_rate",
    "escape_rate_table",
    "exponential_check",
    "garwood_interval",
    "survival_curve",
]
