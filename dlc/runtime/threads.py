"""How many threads TVM's runtime uses: chosen on purpose and recorded, never left to chance.

TVM's thread pool starts with ``TVM_NUM_THREADS`` threads (1 on these machines when unset). dlc sets it to
every core this process may use unless told otherwise, and the count is part of every run/bench report.
"""

from __future__ import annotations

import os

import tvm

from ..target import host_cpu_count

_current: int | None = None


def set_num_threads(n: int | None = None) -> int:
    """Use ``n`` threads (default: all cores in this process's affinity mask); return the count."""
    global _current
    n = int(n) if n else host_cpu_count()
    if n < 1:
        raise ValueError(f"thread count must be >= 1, got {n}")
    if n != _current:
        os.environ["TVM_NUM_THREADS"] = str(n)  # for a pool not started yet, and for child processes
        # Mode 1 (kBig) is what TVM's pool starts with; this resizes a pool that is already running.
        tvm.get_global_func("runtime.config_threadpool")(1, n)
        _current = n
    return n


def num_threads() -> int:
    return _current if _current is not None else set_num_threads()


def current() -> int | None:
    """The count set so far in this process, or None if nothing has set one yet."""
    return _current
