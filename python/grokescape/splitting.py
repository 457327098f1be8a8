"""Rare escapes by splitting: probabilities, fixed-horizon probabilities and mean escape
times far beyond what brute force reaches.

The algorithm is generalized adaptive multilevel splitting (AMS; Brehier, Gazeau,
Goudenege, Lelievre, Rousset, Ann. Appl. Probab. 26 (2016) 3559), run in the core
(``cpp/include/grokescape/splitting.hpp``). A score xi of a network's state says how far it
is out of the trap (default: the amplitude lambda of the escaping mode, as
:class:`~grokescape.escape.ModeThreshold` uses; also a singular value, or minus the test
MSE with :class:`~grokescape.escape.TestMSEThreshold`). A = {xi <= z_a} is the trap, B =
{xi >= z_b} the escaped state. Each run has n replicas; each iteration kills every replica
whose largest score is at or below the k-th smallest, and replaces it by a copy of a
surviving replica cut where that one first passed the level, continued with a random
stream never used before. The estimate p_hat = weight x (replicas in B) / n is unbiased
for any n, k and score; independent runs give the interval (never average 1 / p_hat).

- :func:`escape_probability`: P(reach B before A) from given start states.
- :func:`escape_before`: P(reach B before a time horizon) (TAMS, Lestang et al., J. Stat.
  Mech. 2018), comparable with a Kaplan-Meier estimate at that time.
- :func:`mean_escape_time`: the two-stage estimate of Cerou, Guyader, Lelievre, Pommier
  (J. Chem. Phys. 134 (2011) 054108): stage 1 follows the trapped ensemble by brute force
  through loops A -> Sigma -> A, stage 2 runs AMS from the Sigma states it met, and
  tau = (1/p - 1) E[T_loop] + E[T_up] + E[T_reactive].

Interfaces default to the exact per-mode theory of the data's eta_hat at beta: z_b is the
threshold of :class:`~grokescape.escape.ModeThreshold` (midway between the saddle and the
learned minimum), z_a = 0 (the trap's amplitude), and Sigma the amplitude at which the
per-mode regulariser (L beta / 2) lambda^(2/L) reaches 2 T, at most half the saddle's.
Times are in steps (``*_continuous``: lr x steps, the time of Langevin theory).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from grokescape import _checks, theory
from grokescape.data import Dataset
from grokescape.ensemble import Ensemble, EnsembleSnapshot
from grokescape.escape import ModeThreshold, TestMSEThreshold

__all__ = [
    "MeanEscapeTime",
    "SplittingInterrupted",
    "SplittingResult",
    "escape_before",
    "escape_probability",
    "mean_escape_time",
]

Criterion = ModeThreshold | TestMSEThreshold


class SplittingInterrupted(KeyboardInterrupt):
    """Ctrl-C during a splitting estimate; ``.result`` holds the estimate from the runs that
    had finished (None if none had)."""

    def __init__(self, message: str, result: Any) -> None:
        super().__init__(message)
        self.result = result


@dataclass
class SplittingResult:
    """An AMS estimate from independent runs.

    Attributes
    ----------
    p : float
        Mean of the runs' p_hat: P(B before A) (:func:`escape_probability`) or P(B before
        the horizon) (:func:`escape_before`).
    stderr : float
        Standard error of p over the runs.
    interval : (float, float)
        Normal-approximation interval of p at `confidence` (its lower end clipped at 0).
    table : DataFrame
        One row per run: run, p, weight, iterations, killed, in_b, reactive_age,
        member_steps, last_level.
    member_steps : float
        Steps simulated over all runs, replays included: the estimate's cost.
    brute_force_member_steps : float
        What brute force would need for the same relative error: 1 / (p eps^2)
        trajectories of `mean_trajectory_steps` steps each (NaN where p is 0).
    settings : dict
    interrupted : bool
    """

    p: float
    stderr: float
    interval: tuple[float, float]
    table: pd.DataFrame
    member_steps: float
    brute_force_member_steps: float
    confidence: float
    settings: dict[str, Any] = field(default_factory=dict)
    interrupted: bool = False

    @property
    def n_runs(self) -> int:
        return len(self.table)

    @property
    def relative_error(self) -> float:
        return self.stderr / self.p if self.p > 0 else math.inf

    @property
    def mean_reactive_steps(self) -> float:
        """E[T | B]: the mean age at which replicas reach B, steps from their start."""
        t = self.table
        num = float((t["weight"] * t["reactive_age"]).sum())
        den = float((t["weight"] * t["in_b"]).sum())
        return num / den if den > 0 else math.nan

    def __repr__(self) -> str:
        lo, hi = self.interval
        return (
            f"SplittingResult(p={self.p:.4g} [{lo:.3g}, {hi:.3g}], runs={self.n_runs}, "
            f"member_steps={self.member_steps:.3g}"
            f"{', interrupted' if self.interrupted else ''})"
        )


@dataclass
class MeanEscapeTime:
    """The two-stage mean escape time, with every intermediate quantity.

    tau = (1/p - 1) loop + up + reactive (steps); ``tau_continuous`` = lr x tau.

    Attributes
    ----------
    tau, interval : float, (float, float)
        Mean escape time in steps and its bootstrap interval (runs of stage 2 and members of
        stage 1 resampled).
    p : SplittingResult
        Stage 2: P(B before A) from the Sigma states of stage 1.
    loop, up, reactive : float
        E[T_loop] (A -> Sigma -> A), E[T_up] (A -> Sigma), E[T_reactive] (Sigma -> B, from
        stage 2's replicas that reached B).
    n_loops, n_ups : int
        Completed loops and ups of stage 1.
    loops : DataFrame
        Stage 1's events (member, kind, duration, at).
    interfaces : dict
        z_a, z_sigma, z_b.
    member_steps : float
        Both stages' cost.
    """

    tau: float
    interval: tuple[float, float]
    tau_continuous: float
    interval_continuous: tuple[float, float]
    p: SplittingResult
    loop: float
    up: float
    reactive: float
    n_loops: int
    n_ups: int
    loops: pd.DataFrame
    interfaces: dict[str, float]
    member_steps: float
    stage1_member_steps: float
    settings: dict[str, Any] = field(default_factory=dict)

    def to_pandas(self) -> pd.DataFrame:
        """The estimate and its parts as a one-row table."""
        lo, hi = self.interval
        return pd.DataFrame(
            [
                {
                    "tau": self.tau, "tau_lo": lo, "tau_hi": hi,
                    "tau_continuous": self.tau_continuous, "p": self.p.p,
                    "p_stderr": self.p.stderr, "loop": self.loop, "up": self.up,
                    "reactive": self.reactive, "n_loops": self.n_loops, "n_ups": self.n_ups,
                    "runs": self.p.n_runs, "member_steps": self.member_steps,
                    **self.interfaces,
                }
            ]
        )  # fmt: skip

    def __repr__(self) -> str:
        lo, hi = self.interval
        return (
            f"MeanEscapeTime(tau={self.tau:.4g} steps [{lo:.3g}, {hi:.3g}], p={self.p.p:.3g}, "
            f"loop={self.loop:.4g}, up={self.up:.4g}, reactive={self.reactive:.4g})"
        )


# ---------------------------------------------------------------------------- defaults
def default_interfaces(
    data: Dataset,
    criterion: Criterion,
    beta: float,
    temperature: float,
    depth: int,
) -> dict[str, float]:
    """z_a, z_sigma and z_b from the exact per-mode theory (module docstring); for
    ModeThreshold on lambda only (other scores need explicit interfaces)."""
    if not isinstance(criterion, ModeThreshold) or criterion.on != "lambda":
        raise ValueError(
            "z_b: give the interfaces (z_a, z_b, z_sigma) for scores other than a mode amplitude"
        )
    eta = float(data.eta_hat[min(criterion.mode, data.n_modes - 1)])
    if criterion.value is not None:
        z_b = float(criterion.value)
    else:
        z_b = float(np.asarray(theory.mode_thresholds(eta, beta, depth).lam))
    saddle = float(np.asarray(theory.stationary_points(eta, beta, depth).saddle).ravel()[0])
    if not math.isfinite(z_b) or not math.isfinite(saddle):
        raise ValueError(
            f"criterion: mode {criterion.mode} (eta_hat={eta:.4g}) has no learned state at "
            f"beta={beta:.4g}; give z_b"
        )
    sigma = (4.0 * max(temperature, 0.0) / (depth * beta)) ** (depth / 2.0) if beta > 0 else 0.0
    return {"z_a": 0.0, "z_sigma": min(sigma, 0.5 * saddle), "z_b": z_b}


def _scalar(value: ArrayLike, name: str, low: float, inclusive: bool) -> float:
    arr = _checks.per_member(value, name, 1, low=low, low_inclusive=inclusive)
    return float(arr[0])


# ---------------------------------------------------------------------------- AMS
def _start_ensemble(
    start: Ensemble | EnsembleSnapshot, runs: int, n: int, seed: int, first_run: int
) -> Ensemble:
    """runs x n replicas, replica (r, i) on a pool state drawn uniformly for run r."""
    snap = start.snapshot() if isinstance(start, Ensemble) else start
    if not isinstance(snap, EnsembleSnapshot):
        raise TypeError(
            f"start: expected an Ensemble or EnsembleSnapshot, got {type(start).__name__}"
        )
    if snap.n_members < 1:
        raise ValueError("start: holds no states")
    if np.any(snap.diverged):
        raise ValueError("start: some states have diverged")
    picks = np.concatenate(
        [
            np.random.Generator(np.random.Philox(key=[seed, first_run + r])).integers(
                0, snap.n_members, size=n
            )
            for r in range(runs)
        ]
    )
    replicas = Ensemble(list(snap.widths), runs * n, dtype=snap.dtype, bias=snap.bias,
                        activation=snap.activation)  # fmt: skip
    replicas.restore(
        EnsembleSnapshot(
            params=snap.params[picks], steps=snap.steps[picks], streams=snap.streams[picks],
            order_streams=snap.order_streams[picks], order_epochs=snap.order_epochs[picks],
            diverged=snap.diverged[picks], widths=snap.widths, dtype=snap.dtype,
            bias=snap.bias, activation=snap.activation,
        )
    )  # fmt: skip
    return replicas


def _result(
    out: dict[str, NDArray[Any]],
    interrupted: bool,
    confidence: float,
    mean_trajectory_steps: float,
    settings: dict[str, Any],
) -> SplittingResult:
    table = pd.DataFrame({k: v for k, v in out.items() if k != "done"})
    r = len(table)
    p = float(table["p"].mean()) if r else math.nan
    stderr = float(table["p"].std(ddof=1) / math.sqrt(r)) if r > 1 else math.nan
    z = float(_normal_quantile(confidence))
    interval = (max(0.0, p - z * stderr), p + z * stderr)
    eps = stderr / p if p > 0 else math.nan
    brute = mean_trajectory_steps / (p * eps**2) if p > 0 and eps > 0 else math.nan
    return SplittingResult(
        p=p, stderr=stderr, interval=interval, table=table,
        member_steps=float(table["member_steps"].sum()) if r else 0.0,
        brute_force_member_steps=brute, confidence=confidence, settings=settings,
        interrupted=interrupted,
    )  # fmt: skip


def _normal_quantile(confidence: float) -> float:
    """The two-sided normal quantile of a confidence level."""
    from scipy import stats as sps

    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence: expected a level in (0, 1), got {confidence!r}")
    return float(sps.norm.ppf(0.5 + confidence / 2.0))


def escape_probability(
    data: Dataset,
    start: Ensemble | EnsembleSnapshot,
    criterion: Criterion | None = None,
    *,
    lr: float,
    beta: float,
    temperature: float,
    batch_size: int | None = None,
    sampling: str = "epoch",
    seed: int = 0,
    n: int = 100,
    k: int = 1,
    runs: int = 16,
    z_a: float | None = None,
    z_b: float | None = None,
    horizon: int = 0,
    score_every: int = 1,
    quantum: float = 0.0,
    first_run: int = 0,
    max_iterations: int | None = None,
    confidence: float = 0.95,
    n_threads: int | None = None,
    progress: bool = False,
    _naive: bool = False,
) -> SplittingResult:
    """P(the score reaches z_b before z_a) from the states in `start`, by AMS.

    Parameters
    ----------
    data : Dataset
    start : Ensemble or EnsembleSnapshot
        The start states: each replica starts from one drawn uniformly (one state: every
        replica starts there). Their scores must lie above z_a.
    criterion : ModeThreshold or TestMSEThreshold, optional
        The score (default ``ModeThreshold(1)``: the amplitude of mode 1). Its ``value``, if
        given, is z_b.
    lr, beta, temperature, batch_size, sampling, seed
        As in :meth:`grokescape.Ensemble.run_until_escape`.
    n, k : int
        Replicas per run, and the number killed per iteration (at least; ties go together).
    runs : int
        Independent runs (their p_hat are averaged; at least 2 for an interval).
    z_a, z_b : float, optional
        Interfaces on the score's scale (default: the theory's; module docstring).
    horizon : int
        Replicas also end at this age (steps); with z_a = -inf this is TAMS
        (:func:`escape_before`).
    score_every : int
        Steps between score evaluations: the splitting's Markov chain is the state every
        this many steps.
    quantum : float
        Scores rounded down to multiples of this (0: exact); ties are handled exactly.
    first_run : int
        Id of the first run: batches with different first_run use disjoint random streams
        (a study split over calls stays one set of independent runs).
    max_iterations : int, optional
        Iterations per run at most (a run stopped early reports the weight so far times the
        fraction of replicas in B: biased low). 0 is brute force: p = fraction of the n
        trajectories that reach B before A.
    confidence : float
    n_threads, progress
        As in :meth:`grokescape.Ensemble.train`.

    Returns
    -------
    SplittingResult
        Raises :class:`SplittingInterrupted` (a KeyboardInterrupt) on Ctrl-C, with the
        finished runs' estimate as ``.result``.
    """
    criterion = ModeThreshold(1) if criterion is None else criterion
    lr_ = _scalar(lr, "lr", 0.0, False)
    beta_ = _scalar(beta, "beta", 0.0, True)
    temp = _scalar(temperature, "temperature", 0.0, True)
    n = _checks.integer(n, "n", minimum=2)
    k = _checks.integer(k, "k", minimum=1)
    if k >= n:
        raise ValueError(f"k: expected 1 <= k < n = {n}, got {k}")
    runs = _checks.integer(runs, "runs", minimum=1)
    seed = _checks.seed(seed)
    first_run = _checks.integer(first_run, "first_run", minimum=0)
    horizon = _checks.integer(horizon, "horizon", minimum=0)
    score_every = _checks.integer(score_every, "score_every", minimum=1)
    quantum = _scalar(quantum, "quantum", 0.0, True)
    if max_iterations is not None:
        max_iterations = _checks.integer(max_iterations, "max_iterations", minimum=0)
    if not isinstance(start, Ensemble | EnsembleSnapshot):
        raise TypeError(
            f"start: expected an Ensemble or EnsembleSnapshot, got {type(start).__name__}"
        )
    depth = len(start.widths) - 1
    if z_a is None or z_b is None:
        defaults = default_interfaces(data, criterion, beta_, temp, depth)
        z_a = defaults["z_a"] if z_a is None else z_a
        z_b = defaults["z_b"] if z_b is None else z_b
    z_a, z_b = float(z_a), float(z_b)
    if not z_a < z_b or math.isnan(z_b) or math.isinf(z_b):
        raise ValueError(f"z_a, z_b: expected z_a < z_b with z_b finite, got {z_a}, {z_b}")
    if math.isinf(z_a) and horizon == 0:
        raise ValueError("horizon: without A (z_a = -inf) replicas need a horizon to end")
    replicas = _start_ensemble(start, runs, n, seed, first_run)
    obs = replicas.observables(data, beta_)
    scores = _scores(obs, criterion)
    if np.any(scores <= z_a):
        raise ValueError(
            f"start: {int(np.sum(scores <= z_a))} start states lie in A "
            f"(score <= z_a = {z_a:.4g}); start above z_a"
        )
    settings = {
        "n": n, "k": k, "runs": runs, "z_a": z_a, "z_b": z_b, "horizon": horizon,
        "score_every": score_every, "quantum": quantum, "lr": lr_, "beta": beta_,
        "temperature": temp, "batch_size": batch_size, "sampling": sampling, "seed": seed,
        "first_run": first_run, "criterion": repr(criterion), "widths": list(start.widths),
        "max_iterations": max_iterations, "naive": _naive,
    }  # fmt: skip
    out, interrupted = replicas.ams_runs(
        data, criterion, n=n, k=k, runs=runs, z_a=z_a, z_b=z_b, lr=lr_, beta=beta_,
        temperature=temp, batch_size=batch_size, sampling=sampling, seed=seed,
        horizon=horizon, score_every=score_every, quantum=quantum, first_run=first_run,
        max_iterations=-1 if max_iterations is None else max_iterations, naive=_naive,
        n_threads=n_threads, progress=progress,
    )  # fmt: skip
    steps = np.asarray(out["member_steps"], dtype=float)
    trajectories = n + np.asarray(out["killed"], dtype=float)
    mean_steps = float(steps.sum() / trajectories.sum()) if trajectories.sum() else math.nan
    result = _result(out, interrupted, confidence, mean_steps, settings)
    if interrupted:
        raise SplittingInterrupted(
            f"splitting interrupted: {result.n_runs} of {runs} runs finished", result
        )
    return result


def _scores(obs: pd.DataFrame, criterion: Criterion) -> NDArray[np.float64]:
    """The criterion's score of every member (Ensemble.observables' columns)."""
    if isinstance(criterion, TestMSEThreshold):
        return -obs["test_mse"].to_numpy()
    if not isinstance(criterion, ModeThreshold):
        raise TypeError(
            "criterion: expected a ModeThreshold or TestMSEThreshold, "
            f"got {type(criterion).__name__}"
        )
    column = f"lambda_{criterion.mode}" if criterion.on == "lambda" else f"sv_{criterion.mode}"
    if column not in obs.columns:
        raise ValueError(f"criterion.mode: {criterion.mode} is out of range for these data")
    return obs[column].to_numpy()


def escape_before(
    data: Dataset,
    start: Ensemble | EnsembleSnapshot,
    horizon: int,
    criterion: Criterion | None = None,
    **kwargs: Any,
) -> SplittingResult:
    """P(the score reaches z_b within `horizon` steps) from the states in `start`: AMS with
    a fixed horizon and no A (TAMS). Comparable with one minus a Kaplan-Meier survival
    estimate of :meth:`~grokescape.Ensemble.run_until_escape` escape times at that time
    (same criterion and score_every as check_every). Other arguments as in
    :func:`escape_probability` (z_a is -inf)."""
    horizon = _checks.integer(horizon, "horizon", minimum=1)
    if "z_a" in kwargs:
        raise ValueError("z_a: escape_before has no A (z_a = -inf)")
    return escape_probability(data, start, criterion, z_a=-math.inf, horizon=horizon, **kwargs)


# ---------------------------------------------------------------------------- two stages
def mean_escape_time(
    data: Dataset,
    trap: Ensemble,
    criterion: Criterion | None = None,
    *,
    lr: float,
    beta: float,
    temperature: float,
    batch_size: int | None = None,
    sampling: str = "epoch",
    seed: int = 0,
    loop_steps: int = 20_000,
    pool_per_member: int = 1000,
    n: int = 100,
    k: int = 1,
    runs: int = 16,
    z_a: float | None = None,
    z_sigma: float | None = None,
    z_b: float | None = None,
    score_every: int = 1,
    quantum: float = 0.0,
    confidence: float = 0.95,
    n_boot: int = 1000,
    n_threads: int | None = None,
    progress: bool = False,
) -> MeanEscapeTime:
    """The mean escape time from a trap, by brute-force loops and AMS (module docstring).

    Parameters
    ----------
    trap : Ensemble
        Its members are stage 1's trajectories; each starts in A (score <= z_a) and is
        followed for `loop_steps` steps. Use hundreds of members for a good loop average.
    loop_steps : int
        Steps of stage 1 per member.
    pool_per_member : int
        Sigma states each member gives to stage 2 (its first crossings; the default keeps
        them all, so that the pool samples the crossings of the whole of stage 1, not only
        those soon after the trap's initial state).
    z_sigma : float, optional
        Sigma = {score >= z_sigma}, between z_a and z_b (default: module docstring).
    n_boot : int
        Bootstrap resamples for the interval.

    Other parameters as in :func:`escape_probability`.

    Returns
    -------
    MeanEscapeTime
    """
    criterion = ModeThreshold(1) if criterion is None else criterion
    lr_ = _scalar(lr, "lr", 0.0, False)
    beta_ = _scalar(beta, "beta", 0.0, True)
    temp = _scalar(temperature, "temperature", 0.0, True)
    if not isinstance(trap, Ensemble):
        raise TypeError(f"trap: expected an Ensemble, got {type(trap).__name__}")
    depth = trap.depth
    if z_a is None or z_b is None or z_sigma is None:
        defaults = default_interfaces(data, criterion, beta_, temp, depth)
        z_a = defaults["z_a"] if z_a is None else z_a
        z_sigma = defaults["z_sigma"] if z_sigma is None else z_sigma
        z_b = defaults["z_b"] if z_b is None else z_b
    z_a, z_sigma, z_b = float(z_a), float(z_sigma), float(z_b)
    if not z_a < z_sigma < z_b:
        raise ValueError(f"z_sigma: expected z_a < z_sigma < z_b, got {z_a}, {z_sigma}, {z_b}")
    obs = trap.observables(data, beta_)
    # a trap built analytically sits on z_a up to rounding (lambda ~ 1e-18 for a mode at zero)
    if np.any(_scores(obs, criterion) > z_a + 1e-9 * (z_sigma - z_a)):
        raise ValueError(f"trap: every member must start in A (score <= z_a = {z_a:.4g})")
    stage1 = trap.snapshot()
    events, pool, interrupted = trap.trap_loops(
        data, criterion, loop_steps, z_a=z_a, z_sigma=z_sigma, z_b=z_b, lr=lr_, beta=beta_,
        temperature=temp, batch_size=batch_size, sampling=sampling, seed=seed,
        score_every=score_every, quantum=quantum, pool_per_member=pool_per_member,
        n_threads=n_threads, progress=progress,
    )  # fmt: skip
    # every member ran loop_steps steps (its step counter restarts after an escape)
    stage1_steps = float(loop_steps) * trap.n_members
    trap.restore(stage1)
    if interrupted:
        raise SplittingInterrupted("mean_escape_time interrupted in stage 1", None)
    loops = events[events["kind"] == "loop"]
    ups = events[events["kind"] == "up"]
    if len(loops) < 2 or len(pool["steps"]) < 1:
        raise ValueError(
            f"loop_steps: stage 1 saw {len(loops)} loops and {len(pool['steps'])} Sigma "
            "crossings; run it longer, use more members or a lower z_sigma"
        )
    snap = EnsembleSnapshot(
        params=pool["params"], steps=pool["steps"], streams=pool["streams"],
        order_streams=pool["order_streams"], order_epochs=pool["order_epochs"],
        diverged=np.zeros(len(pool["steps"]), np.uint8), widths=tuple(trap.widths),
        dtype=trap.dtype.name, bias=trap.bias, activation=trap.activation,
    )  # fmt: skip
    p = escape_probability(
        data, snap, criterion, lr=lr_, beta=beta_, temperature=temp, batch_size=batch_size,
        sampling=sampling, seed=seed, n=n, k=k, runs=runs, z_a=z_a, z_b=z_b,
        score_every=score_every, quantum=quantum, confidence=confidence,
        n_threads=n_threads, progress=progress,
    )  # fmt: skip

    # E[T_loop] as a renewal ratio: every member's time in loops, the one still open when
    # stage 1 ends included, over the loops completed. The mean of the completed loops alone
    # favours short loops (a long one is more often cut off by the end), which is a bias
    # where loops are long-tailed: tau 10-13% low for [2,10,10,2] at dE/T 24-27 with 20,000
    # steps (docs/validation.md section 10). An open segment past Sigma may be an escape in
    # progress, counted here as loop time: a bias of order p, small where splitting is used.
    per_member = pd.DataFrame(
        {
            "time": events[events["kind"].isin(["loop", "open"])]
            .groupby("member")["duration"]
            .sum(),
            "loops": loops.groupby("member").size(),
        }
    ).fillna(0.0)
    loop_time, loop_count = per_member["time"].to_numpy(), per_member["loops"].to_numpy()

    def estimate(
        time: NDArray[Any], count: NDArray[Any], up_d: NDArray[Any], t: pd.DataFrame
    ) -> tuple[float, ...]:
        p_ = float(t["p"].mean())
        num = float((t["weight"] * t["reactive_age"]).mean())
        den = float((t["weight"] * t["in_b"]).mean())
        reac = num / den if den > 0 else math.nan
        n_loops = float(np.sum(count))
        loop_m = float(np.sum(time)) / n_loops if n_loops > 0 else math.inf
        up_m = float(np.mean(up_d))
        tau = (1.0 / p_ - 1.0) * loop_m + up_m + reac if p_ > 0 else math.inf
        return tau, loop_m, up_m, reac

    tau, loop_m, up_m, reac = estimate(loop_time, loop_count, ups["duration"].to_numpy(), p.table)
    # Bootstrap: members of stage 1 (their loops together) and runs of stage 2.
    rng = np.random.default_rng(seed)
    by_member_ups = [g.to_numpy() for _, g in ups.groupby("member")["duration"]]
    boot = []
    for _ in range(int(n_boot)):
        ml = rng.integers(0, len(loop_time), len(loop_time))
        mu = rng.integers(0, len(by_member_ups), len(by_member_ups))
        rr = rng.integers(0, len(p.table), len(p.table))
        boot.append(
            estimate(
                loop_time[ml],
                loop_count[ml],
                np.concatenate([by_member_ups[i] for i in mu]),
                p.table.iloc[rr],
            )[0]
        )
    alpha = (1.0 - confidence) / 2.0
    finite = np.asarray(boot)[np.isfinite(boot)]
    lo, hi = (
        (float(np.quantile(finite, alpha)), float(np.quantile(finite, 1 - alpha)))
        if finite.size
        else (math.nan, math.nan)
    )
    return MeanEscapeTime(
        tau=tau, interval=(lo, hi), tau_continuous=lr_ * tau,
        interval_continuous=(lr_ * lo, lr_ * hi), p=p, loop=loop_m, up=up_m, reactive=reac,
        n_loops=len(loops), n_ups=len(ups), loops=events,
        interfaces={"z_a": z_a, "z_sigma": z_sigma, "z_b": z_b},
        member_steps=stage1_steps + p.member_steps, stage1_member_steps=stage1_steps,
        settings={**p.settings, "loop_steps": loop_steps, "pool_per_member": pool_per_member,
                  "trap_members": trap.n_members},
    )  # fmt: skip
