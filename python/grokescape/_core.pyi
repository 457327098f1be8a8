"""Type stubs of the compiled core (grokescape._core and its ISA variants)."""

import enum

import numpy as np
from numpy.typing import NDArray

F = NDArray[np.float64] | NDArray[np.float32]
F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
U64 = NDArray[np.uint64]
U8 = NDArray[np.uint8]

class Purpose(enum.Enum):
    init = 1
    permutation = 2
    replacement = 3
    langevin = 4
    residual = 5
    user = 6

class Activation(enum.Enum):
    linear = 0
    tanh = 1

class Sampling(enum.Enum):
    epoch = 0
    replacement = 1

class Layout:
    def __init__(self, widths: list[int], bias: bool, activation: Activation) -> None: ...
    @property
    def widths(self) -> list[int]: ...
    @property
    def bias(self) -> bool: ...
    @property
    def activation(self) -> Activation: ...
    @property
    def w_offset(self) -> list[int]: ...
    @property
    def b_offset(self) -> list[int]: ...
    @property
    def n_params(self) -> int: ...
    @property
    def depth(self) -> int: ...

def build_info() -> dict[str, object]: ...
def default_threads() -> int: ...
def philox4x64_10(counters: U64, key: U64) -> U64: ...
def standard_normal(
    seed: int, streams: U64, step: int, purpose: Purpose, out: F64, n_threads: int
) -> None: ...
def epoch_permutation(seed: int, stream: int, epoch: int, n: int) -> I64: ...

class CriterionKind(enum.Enum):
    mode_amplitude = 0
    singular_value = 1
    test_mse = 2

# The named parts every entry point takes (cpp/bindings/parts.hpp); keyword-only.
class EnsembleState:
    def __init__(
        self,
        *,
        layout: Layout,
        params: F,
        steps: I64,
        streams: U64,
        order_streams: U64,
        order_epochs: I64,
        diverged: U8,
    ) -> None: ...
    @property
    def layout(self) -> Layout: ...
    @property
    def n_members(self) -> int: ...

class RunData:
    def __init__(
        self,
        *,
        x_train: F,
        y_train: F,
        x_test: F,
        y_test: F,
        mode_out: F64,
        mode_in: F64,
        eta: F64,
    ) -> None: ...

class Schedule:
    def __init__(self, *, stage_end: I64, lr: F64, beta: F64, temperature: F64) -> None: ...

class Records:
    def __init__(
        self,
        *,
        at: I64,
        train_mse: F64,
        test_mse: F64,
        loss: F64,
        lam: F64,
        sv: F64,
        energy: F64,
        diverged_at: I64,
    ) -> None: ...

class Options:
    def __init__(
        self,
        *,
        batch_size: int,
        sampling: Sampling,
        seed: int,
        decay_bias: bool,
        n_threads: int,
        generic_kernel: bool = False,
        moment_gradient: bool = True,
    ) -> None: ...

class Span:
    def __init__(self, *, first: int, n_steps: int, member_begin: int, member_end: int) -> None: ...

class Criterion:
    def __init__(
        self, *, kind: CriterionKind, index: int, values: F64, hold: int, check_every: int
    ) -> None: ...

class Slots:
    def __init__(
        self,
        *,
        active: U8,
        start_step: I64,
        hold_since: I64,
        trajectories: I64,
        init_params: F,
        refill: bool,
        refill_base: int,
    ) -> None: ...

def parallel_selftest(n: int, n_threads: int, failing_thread: int) -> int: ...
def copy_members(
    source: EnsembleState,
    source_members: I64,
    target: EnsembleState,
    target_members: I64,
    new_streams: U64,
    batches_per_epoch: int,
) -> None: ...
def train(
    state: EnsembleState,
    data: RunData,
    schedule: Schedule,
    records: Records,
    options: Options,
    span: Span,
) -> None: ...
def step_kernel(
    layout: Layout, batch_size: int, n_train: int, float32: bool, options: Options
) -> str: ...
def evaluate(
    state: EnsembleState, data: RunData, beta: F64, out: Records, options: Options
) -> None: ...
def gradients(
    state: EnsembleState, data: RunData, beta: F64, grads: F, options: Options
) -> None: ...
def per_sample_gradient_moments(
    state: EnsembleState, data: RunData, mean_sq: F64, sq_mean: F64, options: Options
) -> None: ...
def run_until_escape(
    state: EnsembleState,
    data: RunData,
    schedule: Schedule,
    criterion: Criterion,
    slots: Slots,
    options: Options,
    span: Span,
) -> dict[str, NDArray[np.generic]]: ...

# Rare-event splitting (cpp/bindings/bind_splitting.cpp); options keyword-only.
class SplittingOptions:
    def __init__(
        self,
        *,
        n_replicas: int,
        n_kill: int,
        z_a: float,
        z_b: float,
        horizon: int,
        score_every: int,
        quantum: float,
        max_iterations: int,
        naive: bool,
        batches_per_epoch: int,
    ) -> None: ...

class LoopOptions:
    def __init__(
        self,
        *,
        z_a: float,
        z_sigma: float,
        z_b: float,
        score_every: int,
        quantum: float,
        pool_per_member: int,
        refill_base: int,
    ) -> None: ...

class LoopSlots:
    def __init__(
        self,
        *,
        seeking_a: U8,
        loop_start: I64,
        sigma_step: I64,
        restarts: I64,
        pooled: I64,
        init_params: F,
    ) -> None: ...

class Splitting:
    def __init__(
        self,
        *,
        state: EnsembleState,
        n_runs: int,
        first_run_id: int,
        seed: int,
        options: SplittingOptions,
    ) -> None: ...
    def start(
        self, state: EnsembleState, data: RunData, criterion: Criterion, options: Options
    ) -> None: ...
    def advance(
        self,
        state: EnsembleState,
        data: RunData,
        schedule: Schedule,
        criterion: Criterion,
        options: Options,
        n_steps: int,
        work: float,
    ) -> int: ...
    def results(self) -> dict[str, NDArray[np.generic]]: ...

def trap_loops(
    state: EnsembleState,
    data: RunData,
    schedule: Schedule,
    criterion: Criterion,
    loop: LoopOptions,
    slots: LoopSlots,
    options: Options,
    span: Span,
) -> dict[str, NDArray[np.generic]]: ...
