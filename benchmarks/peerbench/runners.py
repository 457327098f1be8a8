"""The peers' ensemble runners (``benchmarks/peers.py`` describes each): NumPy, PyTorch
eager and compiled, JAX, and grokescape's :class:`grokescape.selfbench.TrainRunner`. A
runner starts from given weights; ``run(steps)`` advances every member, ``weights()`` returns
them, and :func:`grokescape.selfbench.time_runner` times it."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from grokescape.selfbench import TrainRunner

PEERS = ("grokescape", "grokescape-per-sample", "numpy", "torch", "torch-compile", "jax")


@dataclass(frozen=True)
class RunSpec:
    """Everything a peer needs to build an ensemble runner."""

    widths: tuple[int, ...]
    n_members: int
    dtype: str
    batch_size: int
    lr: float
    beta: float
    temperature: float
    stored_order: bool  # full batch in stored order (verification)
    seed: int

    @property
    def depth(self) -> int:
        return len(self.widths) - 1


def _batch(spec: RunSpec, n: int) -> tuple[int, int]:
    """(samples per step, steps per epoch)."""
    if spec.stored_order or spec.batch_size >= n:
        return n, 1
    return spec.batch_size, n // spec.batch_size


# Peers draw their epochs' permutations before the timed loop: a pool of this many bytes of
# int32 indices at most (at least one epoch, at most _POOL_EPOCHS), reused cyclically.
_POOL_BYTES = 256 * 2**20
_POOL_EPOCHS = 16


def _pool_epochs(spec: RunSpec, n: int) -> int:
    if spec.stored_order:
        return 1
    return int(max(1, min(_POOL_EPOCHS, _POOL_BYTES // (4 * n * spec.n_members))))


class NumpyRunner:
    """Stacked np.matmul over members, preallocated buffers, manual backward."""

    granularity = 1

    def __init__(self, spec: RunSpec, x: np.ndarray, y: np.ndarray, weights: list[np.ndarray]):
        dt = np.dtype(spec.dtype)
        self.spec = spec
        self.n = x.shape[0]
        self.batch, self.per_epoch = _batch(spec, self.n)
        m, b = spec.n_members, self.batch
        self.x = np.ascontiguousarray(x, dtype=dt)
        self.y = np.ascontiguousarray(y, dtype=dt)
        self.w = [np.ascontiguousarray(w, dtype=dt) for w in weights]  # (M, out, in)
        self.acts = [np.empty((m, b, width), dt) for width in spec.widths]
        self.yb = np.empty((m, b, spec.widths[-1]), dt)
        self.delta = [np.empty((m, b, width), dt) for width in spec.widths]
        self.grad = [np.empty_like(w) for w in self.w]
        self.noise = [np.empty_like(w) for w in self.w] if spec.temperature > 0 else None
        self.rng = np.random.default_rng(spec.seed)
        self.pool = np.stack([self.new_permutation() for _ in range(_pool_epochs(spec, self.n))])
        self.pos = self.epoch = 0
        self.decay = dt.type(1.0 - spec.lr * spec.beta)
        self.lr = dt.type(spec.lr)
        self.inv_b = dt.type(1.0 / b)
        self.sigma = dt.type(math.sqrt(2.0 * spec.lr * spec.temperature))

    def new_permutation(self) -> np.ndarray:
        """One epoch: a permutation of the samples per member, (M, n) int32."""
        order = np.tile(np.arange(self.n, dtype=np.int32), (self.spec.n_members, 1))
        if not self.spec.stored_order:
            self.rng.permuted(order, axis=1, out=order)
        return order

    def step(self) -> None:
        b, depth = self.batch, self.spec.depth
        idx = self.pool[self.epoch % len(self.pool), :, self.pos * b : (self.pos + 1) * b]
        np.take(self.x, idx, axis=0, out=self.acts[0])
        np.take(self.y, idx, axis=0, out=self.yb)
        for l in range(depth):
            np.matmul(self.acts[l], self.w[l].transpose(0, 2, 1), out=self.acts[l + 1])
        delta = self.delta[depth]
        np.subtract(self.acts[depth], self.yb, out=delta)
        delta *= self.inv_b
        for l in reversed(range(depth)):
            np.matmul(delta.transpose(0, 2, 1), self.acts[l], out=self.grad[l])
            if l > 0:
                np.matmul(delta, self.w[l], out=self.delta[l])
                delta = self.delta[l]
        for l in range(depth):
            self.w[l] *= self.decay
            self.grad[l] *= self.lr
            self.w[l] -= self.grad[l]
            if self.noise is not None:
                self.rng.standard_normal(out=self.noise[l], dtype=self.w[l].dtype)
                self.noise[l] *= self.sigma
                self.w[l] += self.noise[l]
        self.pos += 1
        if self.pos == self.per_epoch:
            self.pos, self.epoch = 0, self.epoch + 1

    def run(self, steps: int) -> None:
        for _ in range(steps):
            self.step()

    def weights(self) -> list[np.ndarray]:
        return [w.copy() for w in self.w]


class TorchRunner:
    """Hand-batched torch.bmm into preallocated buffers, manual backward, no autograd."""

    granularity = 1

    def __init__(self, spec: RunSpec, x: np.ndarray, y: np.ndarray, weights: list[np.ndarray]):
        import torch

        torch.set_num_threads(os.cpu_count() or 1)
        self.torch = torch
        dt = {"float64": torch.float64, "float32": torch.float32}[spec.dtype]
        self.spec = spec
        self.n = x.shape[0]
        self.batch, self.per_epoch = _batch(spec, self.n)
        m, b = spec.n_members, self.batch
        self.x = torch.from_numpy(np.array(x)).to(dt)
        self.y = torch.from_numpy(np.array(y)).to(dt)
        self.w = [torch.from_numpy(np.array(w)).to(dt).contiguous() for w in weights]
        self.acts = [torch.empty((m, b, width), dtype=dt) for width in spec.widths]
        self.yb = torch.empty((m, b, spec.widths[-1]), dtype=dt)
        self.delta = [torch.empty((m, b, width), dtype=dt) for width in spec.widths]
        self.noise = [torch.empty_like(w) for w in self.w] if spec.temperature > 0 else None
        self.gen = torch.Generator().manual_seed(spec.seed)
        self.pool = torch.stack([self.new_permutation() for _ in range(_pool_epochs(spec, self.n))])
        self.idx = torch.empty(m * b, dtype=torch.int32)
        self.pos = self.epoch = 0
        self.decay = 1.0 - spec.lr * spec.beta
        self.sigma = math.sqrt(2.0 * spec.lr * spec.temperature)

    def new_permutation(self) -> Any:
        """One epoch: argsort of uniform keys per member, (M, n) int32."""
        t, m = self.torch, self.spec.n_members
        if self.spec.stored_order:
            return t.arange(self.n, dtype=t.int32).repeat(m, 1)
        keys = t.rand((m, self.n), generator=self.gen)
        return t.argsort(keys, dim=1).to(t.int32)

    def _batch_indices(self) -> Any:
        b = self.batch
        idx = self.pool[self.epoch % len(self.pool), :, self.pos * b : (self.pos + 1) * b]
        self.pos += 1
        if self.pos == self.per_epoch:
            self.pos, self.epoch = 0, self.epoch + 1
        return idx

    def step(self) -> None:
        t, s, b, depth = self.torch, self.spec, self.batch, self.spec.depth
        m = s.n_members
        self.idx.view(m, b).copy_(self._batch_indices())
        t.index_select(self.x, 0, self.idx, out=self.acts[0].view(m * b, -1))
        t.index_select(self.y, 0, self.idx, out=self.yb.view(m * b, -1))
        for l in range(depth):
            t.bmm(self.acts[l], self.w[l].transpose(1, 2), out=self.acts[l + 1])
        delta = self.delta[depth]
        t.sub(self.acts[depth], self.yb, out=delta)
        delta.mul_(1.0 / b)
        for l in reversed(range(depth)):
            if l > 0:  # back-propagate through the old W_l before updating it
                t.bmm(delta, self.w[l], out=self.delta[l])
            # W_l <- decay W_l - lr delta^T a_l in one fused call
            self.w[l].baddbmm_(delta.transpose(1, 2), self.acts[l], beta=self.decay, alpha=-s.lr)
            if l > 0:
                delta = self.delta[l]
        for l in range(depth):
            if self.noise is not None:
                self.noise[l].normal_(generator=self.gen)
                self.w[l].add_(self.noise[l], alpha=self.sigma)

    def run(self, steps: int) -> None:
        with self.torch.inference_mode():
            for _ in range(steps):
                self.step()

    def weights(self) -> list[np.ndarray]:
        return [w.numpy().copy() for w in self.w]


class TorchCompileRunner(TorchRunner):
    """The whole functional step (gather, forward, backward, update) under torch.compile."""

    def __init__(self, spec: RunSpec, x: np.ndarray, y: np.ndarray, weights: list[np.ndarray]):
        super().__init__(spec, x, y, weights)
        torch = self.torch
        depth, b = spec.depth, self.batch
        lr, decay, sigma = spec.lr, self.decay, self.sigma

        def step(ws: list[Any], xs: Any, ys: Any, idx: Any) -> list[Any]:
            idx = idx.long()
            acts = [xs[idx]]
            for w in ws:
                acts.append(torch.bmm(acts[-1], w.transpose(1, 2)))
            delta = (acts[-1] - ys[idx]) * (1.0 / b)
            new: list[Any] = [None] * depth
            for l in reversed(range(depth)):
                grad = torch.bmm(delta.transpose(1, 2), acts[l])
                if l > 0:
                    delta = torch.bmm(delta, ws[l])
                new[l] = ws[l] * decay - lr * grad
                if sigma > 0:
                    new[l] = new[l] + sigma * torch.randn_like(new[l])
            return new

        self.compiled = torch.compile(step, fullgraph=True, dynamic=False)

    def step(self) -> None:
        self.w = self.compiled(self.w, self.x, self.y, self._batch_indices())


class JaxRunner:
    """jax.jit of a lax.scan over steps of vmap(step), members sharded over host devices."""

    def __init__(
        self,
        spec: RunSpec,
        x: np.ndarray,
        y: np.ndarray,
        weights: list[np.ndarray],
        block: int,
    ):
        import jax
        import jax.numpy as jnp
        from jax.sharding import Mesh, NamedSharding, PartitionSpec

        self.jax = jax
        dt = jnp.dtype(spec.dtype)
        self.spec = spec
        self.n = n = x.shape[0]
        self.batch, self.per_epoch = b, per_epoch = _batch(spec, n)
        m, depth = spec.n_members, spec.depth
        self.granularity = block
        devices = jax.devices()
        n_dev = len(devices) if m % len(devices) == 0 else 1
        mesh = Mesh(np.array(devices[:n_dev]), ("members",))
        by_member = NamedSharding(mesh, PartitionSpec("members"))
        replicated = NamedSharding(mesh, PartitionSpec())
        self.n_devices = n_dev
        decay, lr = 1.0 - spec.lr * spec.beta, spec.lr
        sigma = math.sqrt(2.0 * spec.lr * spec.temperature)
        stored = spec.stored_order

        def member_step(ws: list[Any], xb: Any, yb: Any) -> list[Any]:
            acts = [xb]
            for w in ws:
                acts.append(acts[-1] @ w.T)
            delta = (acts[-1] - yb) * (1.0 / b)
            grads: list[Any] = [None] * depth
            for l in reversed(range(depth)):
                grads[l] = delta.T @ acts[l]
                if l > 0:
                    delta = delta @ ws[l]
            return [decay * w - lr * g for w, g in zip(ws, grads, strict=True)]

        batched_step = jax.vmap(member_step)

        def new_perm(key: Any) -> Any:
            if stored:
                return jax.lax.with_sharding_constraint(
                    jnp.broadcast_to(jnp.arange(n, dtype=jnp.int32), (m, n)), by_member
                )
            keys = jax.random.uniform(key, (m, n), dtype=jnp.float32)
            return jax.lax.with_sharding_constraint(
                jnp.argsort(keys, axis=1).astype(jnp.int32), by_member
            )

        def run_block(ws: list[Any], key: Any, pos: Any, epoch: Any, pool: Any, xs: Any, ys: Any):
            def body(carry: Any, _: Any) -> Any:
                ws, key, pos, epoch = carry
                key, k_noise = jax.random.split(key)
                start = (epoch % pool.shape[0], jnp.int32(0), pos * b)
                idx = jax.lax.dynamic_slice(pool, start, (1, m, b))[0]
                ws = batched_step(ws, xs[idx], ys[idx])
                if sigma > 0:
                    noise_keys = jax.random.split(k_noise, depth)
                    ws = [
                        w + sigma * jax.random.normal(k, w.shape, dtype=w.dtype)
                        for w, k in zip(ws, noise_keys, strict=True)
                    ]
                ws = [jax.lax.with_sharding_constraint(w, by_member) for w in ws]
                pos = pos + 1
                wrap = pos == per_epoch
                return (ws, key, jnp.where(wrap, 0, pos), jnp.where(wrap, epoch + 1, epoch)), None

            carry, _ = jax.lax.scan(body, (ws, key, pos, epoch), None, length=block)
            return carry

        self._run = jax.jit(run_block, donate_argnums=(0,))
        self._new_perm = jax.jit(new_perm)
        pool_sharding = NamedSharding(mesh, PartitionSpec(None, "members"))
        keys = jax.random.split(jax.random.key(spec.seed + 1), _pool_epochs(spec, n))
        self.pool = jax.device_put(jnp.stack([self._new_perm(k) for k in keys]), pool_sharding)
        self.ws = [jax.device_put(jnp.asarray(np.asarray(w), dtype=dt), by_member) for w in weights]
        self.key = jax.device_put(jax.random.key(spec.seed), replicated)
        self.pos = jax.device_put(jnp.int32(0), replicated)
        self.epoch = jax.device_put(jnp.int32(0), replicated)
        self.xs = jax.device_put(jnp.asarray(x, dtype=dt), replicated)
        self.ys = jax.device_put(jnp.asarray(y, dtype=dt), replicated)

    def new_permutation(self) -> Any:
        """One epoch's permutations (jitted argsort of uniform keys), as in the pool."""
        return self.jax.block_until_ready(self._new_perm(self.key))

    def run(self, steps: int) -> None:
        if steps % self.granularity:
            raise ValueError(f"steps: expected a multiple of {self.granularity}, got {steps}")
        carry = (self.ws, self.key, self.pos, self.epoch)
        for _ in range(steps // self.granularity):
            carry = self._run(*carry, self.pool, self.xs, self.ys)
        self.ws, self.key, self.pos, self.epoch = carry
        self.jax.block_until_ready(self.ws)

    def weights(self) -> list[np.ndarray]:
        return [np.asarray(w) for w in self.ws]


def peer_version(peer: str) -> tuple[str | None, str | None]:
    """(version, None) if the peer can run here, else (None, reason)."""
    if peer.startswith("grokescape") or peer == "numpy":
        import grokescape

        return (np.__version__ if peer == "numpy" else grokescape.__version__), None
    module = "torch" if peer.startswith("torch") else "jax"
    try:
        mod = __import__(module)
    except Exception as exc:  # ImportError, or a broken install
        return None, f"{module} not importable ({type(exc).__name__}: {exc})"
    return str(mod.__version__), None


def make_runner(
    peer: str, spec: RunSpec, data: Any, weights: list[np.ndarray], block: int = 1
) -> Any:
    x, y = data.x_train, data.y_train
    if peer.startswith("grokescape"):
        return TrainRunner(
            spec.widths,
            spec.dtype,
            weights,
            data,
            lr=spec.lr,
            beta=spec.beta,
            batch_size=None if spec.stored_order else spec.batch_size,
            temperature=spec.temperature,
            seed=spec.seed,
            moment_gradient=peer == "grokescape",
        )
    if peer == "numpy":
        return NumpyRunner(spec, x, y, weights)
    if peer == "torch":
        return TorchRunner(spec, x, y, weights)
    if peer == "torch-compile":
        return TorchCompileRunner(spec, x, y, weights)
    if peer == "jax":
        return JaxRunner(spec, x, y, weights, block)
    raise ValueError(f"peer: expected one of {PEERS}, got {peer!r}")
