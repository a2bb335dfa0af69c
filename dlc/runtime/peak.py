"""This machine's roof: peak FP32 FLOP/s and memory bandwidth, measured with kernels TVM compiles here.

* **Compute**: every thread runs a chain of ``ACCUMULATORS`` independent 16-lane FMAs (``vfmadd213ps zmm``
  on AVX-512) in a loop, so the FMA units never wait on a result (FMA latency 4 cycles x 2 ports needs >= 8
  chains; 24 leaves room and still fits the 32 vector registers). FLOP = threads x iterations x 24 x 16 x 2.
* **Bandwidth**: a STREAM triad ``a = b + s * c`` per thread on its own slice, at three sizes: resident in
  L2, in L3, and far larger than the last-level cache (DRAM). Bytes are counted the STREAM way: 12 per
  fp32 element (two reads, one write; the write-allocate read is not counted).

The machine is shared, so each number is measured in many short windows (~2 ms compute, ~80 ms DRAM) and
the best window counts: another process can only make a window slower, never faster. For compute there is
a second lower bound that time-sharing cannot fool: FLOP per *CPU* second of this process x threads (what
the cores deliver while they run us). The roof ``gflops`` is the larger of the two; the measurement is
``stable`` when the best wall-clock window confirms it within 10%. An unstable cached measurement is
measured again (at most hourly) and the cache keeps the best of all measurements.

Cached under ``$DLC_CACHE/peak/<target key>-t<threads>.json`` (default ``~/.cache/dlc``).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tvm
from filelock import FileLock
from tvm.script import tirx as T

from ..target import host_target, target_key, vector_lanes
from . import threads as threads_module
from .threads import set_num_threads

ACCUMULATORS = 24
CACHE_VERSION = 1
_COMPUTE_WINDOW_S = 0.002
_COMPUTE_WINDOWS = 150
_L2_BYTES_PER_THREAD = 192 << 10  # three 64 KiB arrays: inside a 1 MiB L2, outside a 32-48 KiB L1
_L3_BYTES_PER_THREAD = 6 << 20  # three 2 MiB arrays: past L2, inside a shared L3 of >= 16 MiB
_DRAM_BYTES = 384 << 20  # three 128 MiB arrays: far past any last-level cache


@dataclass
class MachinePeak:
    target_key: str
    threads: int
    cpu: str
    gflops: float  # the compute roof: max(gflops_window, gflops_cpu_time)
    gflops_window: float  # best wall-clock window of the FMA kernel
    gflops_median: float  # median window (how busy the machine was)
    gflops_cpu_time: float  # FLOP / process CPU seconds x threads (robust to time-sharing)
    bandwidth_gbs: dict[str, float]  # best triad window per level: {"L2": .., "L3": .., "DRAM": ..}
    bandwidth_median_gbs: dict[str, float]
    stable: bool
    measured: str  # ISO date of the latest measurement merged in
    measurements: int = 1

    @property
    def dram_gbs(self) -> float:
        return self.bandwidth_gbs["DRAM"]

    def ridge_point(self, level: str = "DRAM") -> float:
        """Arithmetic intensity (FLOP/byte) where the bandwidth roof meets the compute roof."""
        return self.gflops / self.bandwidth_gbs[level]

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> MachinePeak:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def merged(self, other: MachinePeak) -> MachinePeak:
        """The best of two measurements of the same machine (contention only ever lowers a number)."""
        best = self if self.gflops >= other.gflops else other
        bw = {k: max(self.bandwidth_gbs.get(k, 0.0), other.bandwidth_gbs.get(k, 0.0))
              for k in {*self.bandwidth_gbs, *other.bandwidth_gbs}}
        window = max(self.gflops_window, other.gflops_window)
        cpu_time = max(self.gflops_cpu_time, other.gflops_cpu_time)
        return dataclasses.replace(best, bandwidth_gbs=bw, gflops_window=window, gflops_cpu_time=cpu_time,
                                   gflops=max(window, cpu_time), stable=window >= 0.9 * cpu_time,
                                   measured=max(self.measured, other.measured),
                                   measurements=self.measurements + other.measurements)


# ---- the kernels ------------------------------------------------------------------------------------------
def _fma_kernel(threads: int, lanes: int):
    n = ACCUMULATORS * lanes

    @T.prim_func
    def fma_peak(out: T.Buffer((threads, n), "float32"), iters: T.int32):
        T.func_attr({"global_symbol": "fma_peak", "tirx.noalias": True})
        for p in T.parallel(threads):
            acc = T.alloc_buffer((n,), "float32", scope="local")  # lives in vector registers after unrolling
            for a in T.unroll(ACCUMULATORS):
                for v in T.vectorized(lanes):
                    acc[a * lanes + v] = out[p, a * lanes + v]
            for _ in range(iters):
                for a in T.unroll(ACCUMULATORS):
                    for v in T.vectorized(lanes):
                        acc[a * lanes + v] = T.fma(acc[a * lanes + v], T.float32(0.999), T.float32(0.001))
            for a in T.unroll(ACCUMULATORS):
                for v in T.vectorized(lanes):
                    out[p, a * lanes + v] = acc[a * lanes + v]

    return fma_peak


def _triad_kernel(name: str, threads: int, per_thread: int, lanes: int):
    """``reps`` times over each thread's own slice: a[p] = b[p] + s * c[p]."""

    @T.prim_func
    def triad(a: T.Buffer((threads, per_thread), "float32"), b: T.Buffer((threads, per_thread), "float32"),
              c: T.Buffer((threads, per_thread), "float32"), s: T.float32, reps: T.int32):
        T.func_attr({"global_symbol": name, "tirx.noalias": True})
        for p in T.parallel(threads):
            for _ in range(reps):
                for i in range(per_thread // lanes):
                    for v in T.vectorized(lanes):
                        a[p, i * lanes + v] = b[p, i * lanes + v] + s * c[p, i * lanes + v]

    return triad


def _triad_sizes(threads: int) -> dict[str, int]:
    """fp32 elements per thread and array, per level (a multiple of 1024)."""
    per = {"L2": _L2_BYTES_PER_THREAD // 12, "L3": _L3_BYTES_PER_THREAD // 12,
           "DRAM": _DRAM_BYTES // 12 // threads}
    return {k: max(1024, v // 1024 * 1024) for k, v in per.items()}


# ---- measuring --------------------------------------------------------------------------------------------
def _windows(lib: tvm.runtime.Module, name: str, args: list, work: float, windows: int) -> list[float]:
    """``windows`` timings of one call each (seconds), timed in C++ by TVM's time_evaluator."""
    timer = lib.time_evaluator(name, tvm.cpu(0), number=1, repeat=windows)
    return [work / t for t in timer(*args).results]


def _calibrate(lib, name: str, args: list, reps_index: int, seconds: float) -> int:
    """The repetition count that makes one call take about ``seconds``."""
    reps = 16
    while True:
        args[reps_index] = reps
        t = min(lib.time_evaluator(name, tvm.cpu(0), number=1, repeat=3)(*args).results)
        if t >= seconds / 4 or reps >= 1 << 28:
            return max(1, int(reps * seconds / t))
        reps *= 4


def measure(threads: int, *, quick: bool = False) -> MachinePeak:
    """Measure now (about 2-4 s; ``quick``: ~4x fewer windows, for tests)."""
    target = host_target()
    lanes = vector_lanes(target)
    sizes = _triad_sizes(threads)
    mod = tvm.IRModule({"fma_peak": _fma_kernel(threads, lanes),
                        **{f"triad_{lvl}": _triad_kernel(f"triad_{lvl}", threads, n, lanes)
                           for lvl, n in sizes.items()}})
    lib = tvm.compile(mod, target=target).mod
    previous = threads_module.current()
    set_num_threads(threads)
    try:
        return _measure(lib, target, threads, lanes, sizes, 4 if quick else 1)
    finally:
        if previous is not None:
            set_num_threads(previous)


def _measure(lib, target, threads: int, lanes: int, sizes: dict[str, int], div: int) -> MachinePeak:
    out = tvm.runtime.tensor(np.ones((threads, ACCUMULATORS * lanes), "float32"))
    args = [out, 0]
    iters = _calibrate(lib, "fma_peak", args, 1, _COMPUTE_WINDOW_S)
    args[1] = iters
    flop = threads * iters * ACCUMULATORS * lanes * 2
    cpu0 = time.process_time()
    rates = sorted(_windows(lib, "fma_peak", args, flop / 1e9, _COMPUTE_WINDOWS // div))
    cpu = time.process_time() - cpu0
    calls = len(rates) + 1  # time_evaluator's warm-up call is not in the results
    cpu_rate = flop * calls / 1e9 / cpu if cpu > 0 else 0.0

    best, median = {}, {}
    for lvl, n in sizes.items():
        bufs = [tvm.runtime.tensor(np.full((threads, n), 1.0, "float32")) for _ in range(3)]
        targs = [*bufs, 0.5, 1]
        reps = 1 if lvl == "DRAM" else _calibrate(lib, f"triad_{lvl}", targs, 4, _COMPUTE_WINDOW_S)
        targs[4] = reps
        windows = {"DRAM": 20, "L3": 60, "L2": 100}[lvl] // div
        bw = sorted(_windows(lib, f"triad_{lvl}", targs, 12 * n * threads * reps / 1e9, max(windows, 5)))
        best[lvl], median[lvl] = bw[-1], bw[len(bw) // 2]
        del bufs, targs

    window, cpu_time = round(rates[-1], 2), round(cpu_rate * threads, 2)
    return MachinePeak(
        target_key=target_key(target), threads=threads, cpu=_cpu_name(),
        gflops=max(window, cpu_time), gflops_window=window, gflops_median=round(rates[len(rates) // 2], 2),
        gflops_cpu_time=cpu_time,
        bandwidth_gbs={k: round(v, 2) for k, v in best.items()},
        bandwidth_median_gbs={k: round(v, 2) for k, v in median.items()},
        stable=window >= 0.9 * cpu_time,
        measured=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    )


def _cpu_name() -> str:
    from ..target import host_cpu_name

    return host_cpu_name()


# ---- the cache --------------------------------------------------------------------------------------------
def cache_path(threads: int) -> Path:
    root = Path(os.environ.get("DLC_CACHE", Path.home() / ".cache" / "dlc"))
    return root / "peak" / f"{target_key(host_target())}-t{threads}-v{CACHE_VERSION}.json"


def cached_peak(threads: int) -> MachinePeak | None:
    path = cache_path(threads)
    try:
        return MachinePeak.from_json(json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def _age_seconds(peak: MachinePeak) -> float:
    try:
        then = datetime.datetime.fromisoformat(peak.measured)
    except ValueError:
        return float("inf")
    return (datetime.datetime.now(datetime.timezone.utc) - then).total_seconds()


_remeasured: set[int] = set()  # thread counts re-measured by this process (once is enough)


def machine_peak(threads: int | None = None, *, remeasure: bool = False, quick: bool = False) -> MachinePeak:
    """The peak for ``threads`` (default: every core we may use), from the cache or measured now.

    An unstable cached measurement is measured again, once per process; the cache keeps the best.
    """
    from ..target import host_cpu_count

    threads = int(threads or host_cpu_count())
    path = cache_path(threads)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        cached = cached_peak(threads)
        if cached is not None and not remeasure and (cached.stable or threads in _remeasured
                                                     or _age_seconds(cached) < 3600):
            return cached
        _remeasured.add(threads)
        fresh = measure(threads, quick=quick)
        result = fresh.merged(cached) if cached is not None else fresh
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(result.to_json(), indent=1))
        os.replace(tmp, path)
        return result
