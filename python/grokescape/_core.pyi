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
def train(
    layout: Layout,
    params: F,
    steps: I64,
    diverged: U8,
    streams: U64,
    x_train: F,
    y_train: F,
    x_test: F,
    y_test: F,
    stage_end: I64,
    lr: F64,
    beta: F64,
    temperature: F64,
    batch_size: int,
    sampling: Sampling,
    seed: int,
    decay_bias: bool,
    run_offset: int,
    n_steps: int,
    record_at: I64,
    mode_out: F64,
    mode_in: F64,
    mode_eta: F64,
    train_mse: F64,
    test_mse: F64,
    loss: F64,
    lam: F64,
    sv: F64,
    energy: F64,
    diverged_at: I64,
    n_threads: int,
    generic_kernel: bool = False,
    moment_gradient: bool = True,
) -> None: ...
def evaluate(
    layout: Layout,
    params: F,
    x_train: F,
    y_train: F,
    x_test: F,
    y_test: F,
    beta: F64,
    decay_bias: bool,
    mode_out: F64,
    mode_in: F64,
    mode_eta: F64,
    train_mse: F64,
    test_mse: F64,
    loss: F64,
    lam: F64,
    sv: F64,
    energy: F64,
    n_threads: int,
) -> None: ...
def gradients(
    layout: Layout,
    params: F,
    x_train: F,
    y_train: F,
    beta: F64,
    decay_bias: bool,
    grads: F,
    n_threads: int,
) -> None: ...

class CriterionKind(enum.Enum):
    mode_amplitude = 0
    singular_value = 1
    test_mse = 2

def per_sample_gradient_moments(
    layout: Layout,
    params: F,
    x_train: F,
    y_train: F,
    mean_sq: F64,
    sq_mean: F64,
    n_threads: int,
) -> None: ...
def step_kernel(
    layout: Layout,
    batch_size: int,
    n_train: int,
    float32: bool,
    generic_kernel: bool = False,
    moment_gradient: bool = True,
) -> str: ...
def run_until_escape(
    layout: Layout,
    params: F,
    steps: I64,
    diverged: U8,
    streams: U64,
    init_params: F,
    x_train: F,
    y_train: F,
    x_test: F,
    y_test: F,
    mode_out: F64,
    mode_in: F64,
    mode_eta: F64,
    lr: F64,
    beta: F64,
    temperature: F64,
    kind: CriterionKind,
    index: int,
    value: F64,
    hold: int,
    check_every: int,
    batch_size: int,
    sampling: Sampling,
    seed: int,
    decay_bias: bool,
    refill: bool,
    refill_base: int,
    n_steps: int,
    active: U8,
    start_step: I64,
    hold_since: I64,
    trajectories: I64,
    n_threads: int,
    generic_kernel: bool = False,
    moment_gradient: bool = True,
) -> dict[str, NDArray[np.generic]]: ...
