"""Where tasks run: the embedded local process pool, Dask, submitit (Slurm), or any
``concurrent.futures.Executor``.

The local pool starts `workers` processes (default: one per core) that each give the core
``cores // workers`` threads, so the machine is used once and never oversubscribed. A
pool worker ends itself when its driver dies (``kill -9``), instead of finishing work
whose result nobody will write.

Dask is used through ``Client.get_executor(pure=False)``: with Dask's default
``pure=True``, resubmitting an identical call returns the cached result of the first
instead of running it again; every Dask submission here passes ``pure=False`` whatever the
executor was made with. Workers take their threads from OMP_NUM_THREADS, which Dask's
nanny sets to 1 per worker process; start workers with ``--nthreads 1`` (one task at a
time per process) and as many processes as cores, or set OMP_NUM_THREADS for more.

submitit's executors (``submitit.AutoExecutor``, ``SlurmExecutor``, ``LocalExecutor``)
are not ``concurrent.futures`` executors; their jobs are polled. Each task is one job
(within one ``executor.batch()``: a Slurm job array), so give Slurm cells a chunk of
minutes of work.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

__all__ = [
    "Submitted",
    "dask_processes",
    "is_dask",
    "is_submitit",
    "local_executor",
    "open_executor",
]


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _watch_parent(parent: int) -> None:
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            os._exit(1)


def _init_pool_worker(parent: int, threads: int) -> None:
    os.environ["OMP_NUM_THREADS"] = str(threads)  # read by worker_threads() in each task
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()


def local_executor(workers: int | None = None, threads: int | None = None) -> cf.Executor:
    """The embedded pool: `workers` processes (default: one per core), each running one
    task at a time with `threads` core threads (default: cores // workers)."""
    cores = available_cores()
    workers = cores if workers is None else max(1, int(workers))
    threads = max(1, cores // workers) if threads is None else max(1, int(threads))
    return cf.ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_init_pool_worker,
        initargs=(os.getpid(), threads),
    )


def is_dask(executor: Any) -> bool:
    return type(executor).__module__.startswith("distributed") and hasattr(executor, "_client")


def is_submitit(executor: Any) -> bool:
    return type(executor).__module__.startswith("submitit")


@contextlib.contextmanager
def open_executor(spec: Any, workers: int | None = None) -> Iterator[tuple[Any, str]]:
    """(executor, description) for `spec`: None or "local" (the embedded pool, shut down
    afterwards), "tcp://HOST:PORT" (a Dask scheduler; the client is closed afterwards), a
    ``distributed.Client`` or any executor (left open: the caller owns it)."""
    if spec is None or spec == "local":
        pool = local_executor(workers)
        try:
            yield pool, f"local pool ({pool._max_workers} processes)"  # type: ignore[attr-defined]
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        return
    if isinstance(spec, str):
        if "://" not in spec:
            raise ValueError(
                f"scheduler: expected 'local' or a Dask address tcp://HOST:PORT, got {spec!r}"
            )
        try:
            from distributed import Client
        except ImportError:
            raise ImportError(
                "scheduler: a Dask scheduler needs dask.distributed "
                "(pip install 'grokescape[dask]')"
            ) from None
        client = Client(spec)
        try:
            yield client.get_executor(pure=False), f"dask {spec}"
        finally:
            client.close()
        return
    if type(spec).__name__ == "Client" and hasattr(spec, "get_executor"):
        yield spec.get_executor(pure=False), f"dask {getattr(spec, 'scheduler', '')}"
        return
    if isinstance(spec, cf.ProcessPoolExecutor):
        context = getattr(spec, "_mp_context", None)
        method = context.get_start_method() if context is not None else None
        if method == "fork":
            raise ValueError(
                "executor: a ProcessPoolExecutor that forks hangs once the core's OpenMP "
                "threads have started in this process; give it mp_context="
                "multiprocessing.get_context('spawn') (or 'forkserver'), or use "
                "grokescape.sweep.local_executor()"
            )
    if not hasattr(spec, "submit"):
        raise TypeError(
            f"executor: expected None, 'local', a Dask address, a distributed.Client, a "
            f"concurrent.futures.Executor or a submitit executor, got {type(spec).__name__}"
        )
    yield spec, type(spec).__name__


class Submitted:
    """Tasks submitted to an executor, yielded as they finish: (key, outcome, error)."""

    def __init__(self, executor: Any) -> None:
        self.executor = executor
        self.pending: dict[Any, Any] = {}  # future or job -> key

    def submit_all(
        self, fn: Callable[..., Any], items: Iterable[tuple[Any, tuple[Any, ...]]]
    ) -> None:
        ex = self.executor
        extra: dict[str, Any] = {"pure": False} if is_dask(ex) else {}
        items = list(items)
        if is_submitit(ex) and hasattr(ex, "batch") and len(items) > 1:
            with ex.batch():
                jobs = [(key, ex.submit(fn, *args)) for key, args in items]
        else:
            jobs = [(key, ex.submit(fn, *args, **extra)) for key, args in items]
        for key, job in jobs:
            self.pending[job] = key

    def __len__(self) -> int:
        return len(self.pending)

    def as_completed(self) -> Iterator[tuple[Any, Any, BaseException | None]]:
        if all(isinstance(f, cf.Future) for f in self.pending):
            finished: Iterable[Any] = cf.as_completed(list(self.pending))
        else:  # submitit jobs: polled
            finished = self._polled()
        for f in finished:
            key = self.pending.pop(f)
            try:
                yield key, f.result(), None
            except Exception as exc:  # noqa: BLE001 - reported per task by the caller
                yield key, None, exc

    def _polled(self) -> Iterator[Any]:
        while self.pending:
            done = [f for f in list(self.pending) if f.done()]
            if not done:
                time.sleep(0.2)
            yield from done

    def cancel(self) -> None:
        for f in list(self.pending):
            with contextlib.suppress(Exception):
                f.cancel()
        self.pending.clear()


@contextlib.contextmanager
def dask_processes(
    n_workers: int = 2, threads: int = 1, directory: str | os.PathLike[str] | None = None
) -> Iterator[str]:
    """A Dask cluster of separate processes on this machine, as one would start by hand:
    ``dask scheduler`` and `n_workers` ``dask worker --nthreads threads`` processes on
    127.0.0.1. Yields the scheduler's address; stops them all afterwards. For tests,
    benchmarks and trying the Dask path without a cluster (a ``LocalCluster`` is the
    in-library alternative)."""
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    from distributed import Client

    exe = Path(sys.executable).with_name("dask")
    dask = [str(exe)] if exe.exists() else [sys.executable, "-m", "dask"]
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        file = Path(tmp) / "scheduler.json"
        quiet: dict[str, Any] = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        procs = [
            subprocess.Popen(
                [
                    *dask,
                    "scheduler",
                    "--scheduler-file",
                    str(file),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    "0",
                    "--no-dashboard",
                ],
                **quiet,
            )
        ]
        try:
            deadline = time.monotonic() + 60
            while not file.exists():
                if time.monotonic() > deadline or procs[0].poll() is not None:
                    raise RuntimeError("dask scheduler did not start")
                time.sleep(0.1)
            for i in range(n_workers):
                procs.append(
                    subprocess.Popen(
                        [
                            *dask,
                            "worker",
                            "--scheduler-file",
                            str(file),
                            "--nthreads",
                            str(threads),
                            "--no-dashboard",
                            "--name",
                            f"worker-{i}",
                            "--local-directory",
                            tmp,
                        ],
                        **quiet,
                    )
                )
            with Client(scheduler_file=str(file), timeout=60) as client:
                client.wait_for_workers(n_workers, timeout=120)
                address = client.scheduler.address
            yield address
        finally:
            for p in reversed(procs):
                p.terminate()
            for p in reversed(procs):
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
