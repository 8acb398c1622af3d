"""Shipping tasks to ``concurrent.futures``-style executors (threads, process pools, a Dask ``Client``).

A process pool pickles the function and its arguments with the standard :mod:`pickle`, which refuses closures and
lambdas: every ``leaky_relu(slope)`` activation and most user :class:`~meanfield.Activation` objects. :func:`submit`
therefore serializes the task with ``cloudpickle`` (the serializer Dask itself uses; it pickles closures, lambdas and
functions defined in ``__main__`` by value) and sends the bytes to a module-level trampoline, which every executor
can ship. Executors that share memory (threads) get the call unchanged.

What can be shipped: any function and arguments cloudpickle can serialize: built-in and user activations, closures
over numbers and arrays, lambdas. Not: objects holding open files, locks or generators. Functions defined in an
importable module are pickled by reference (the worker imports that module), as with Dask.

Cost: one ``cloudpickle.dumps`` per submitted task (the payload includes the task's arrays, as plain pickling
would), and one ``loads`` per task in the worker; the last few payloads are cached there, so a pool that runs many
tasks of one call unpickles shared arguments once per distinct payload.
"""

from __future__ import annotations

import functools
from concurrent.futures import ThreadPoolExecutor

__all__ = ["pack", "shares_memory", "shipper"]


def shares_memory(executor) -> bool:
    """True for executors whose tasks run in this process (threads): no serialization needed."""
    return isinstance(executor, ThreadPoolExecutor)


@functools.lru_cache(maxsize=4)
def _loads(payload: bytes):
    import cloudpickle

    return cloudpickle.loads(payload)


def _call(payload: bytes, *args):
    """Worker side: unpickle ``(fn, shared)`` and return ``fn(*args, *shared)``."""
    fn, shared = _loads(payload)
    return fn(*args, *shared)


def pack(fn, shared=()) -> bytes:
    """``cloudpickle.dumps((fn, shared))``: the part of a task that is the same for every call."""
    import cloudpickle

    return cloudpickle.dumps((fn, tuple(shared)))


def shipper(executor, fn, shared=()):
    """``submit(*args)``: a function that submits ``fn(*args, *shared)`` to ``executor`` and returns the future.

    Thread pools get the call unchanged; any other executor (a process pool, a Dask ``Client.get_executor()``)
    gets ``(fn, shared)`` cloudpickled once and the per-call ``args`` pickled as usual, so closures and lambdas
    (in ``fn`` or ``shared``) reach worker processes.

    Examples
    --------
    >>> from concurrent.futures import ProcessPoolExecutor
    >>> scale = 3.0
    >>> with ProcessPoolExecutor(1) as ex:
    ...     submit = shipper(ex, lambda x, y: scale * x + y, (1.0,))
    ...     submit(2.0).result()
    7.0
    """
    shared = tuple(shared)
    if shares_memory(executor):
        return lambda *args: executor.submit(fn, *args, *shared)
    payload = pack(fn, shared)
    return lambda *args: executor.submit(_call, payload, *args)
