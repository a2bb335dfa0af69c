"""Benchmark a compiled model, alone or side by side with onnxruntime, and say what the machine was doing.

Latency is measured per run (one call of the model's ``main``, timed with ``perf_counter``) after warm-up
runs. With ``compare=`` onnxruntime runs the same ONNX model on the same feeds *in this process*, with the
same thread count, and the two alternate run by run (dlc, ort, ort, dlc, ...), so a change in the machine's
load hits both sides alike. The headline is the ratio of medians, ``dlc / onnxruntime`` (< 1: dlc faster);
the spread of the run-by-run ratios says how much to trust it.

The machine is often shared: ``MachineMonitor`` records load averages and how many cores *other* processes
used while the benchmark ran (from ``/proc``), so a number measured under contention says so.
"""

from __future__ import annotations

import dataclasses
import gc
import os
import platform
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import metadata as importlib_metadata
from pathlib import Path

import numpy as np
import onnx
import tvm
import tvm_ffi

from ..errors import DlcError, InputError
from ..signature import TensorSpec
from ..target import host_cpu_count, host_cpu_name
from ..version import versions
from .model import CompiledModel
from .threads import set_num_threads

COMPARE_CHOICES = ("onnxruntime",)


# ---- statistics -------------------------------------------------------------------------------------------
@dataclass
class Stats:
    """Order statistics of a list of samples (milliseconds for latencies)."""

    n: int
    min: float
    median: float
    p90: float
    mean: float
    p10: float = 0.0

    @classmethod
    def of(cls, samples: list[float]) -> Stats:
        if not samples:
            raise ValueError("no samples")
        a = np.asarray(samples, dtype=np.float64)
        return cls(n=len(a), min=float(a.min()), median=float(np.median(a)), p90=float(np.percentile(a, 90)),
                   mean=float(a.mean()), p10=float(np.percentile(a, 10)))

    def to_json(self) -> dict:
        return {k: round(v, 6) if isinstance(v, float) else v for k, v in dataclasses.asdict(self).items()}


# ---- the machine ------------------------------------------------------------------------------------------
def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def _proc_stat() -> dict[str, int] | None:
    text = _read("/proc/stat")
    if not text:
        return None
    fields = text.splitlines()[0].split()[1:]
    names = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
    return dict(zip(names, map(int, fields)))


def _pid_ticks() -> dict[int, tuple[str, int]]:
    """pid -> (command, user+system ticks) for every process we can read."""
    out = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        text = _read(f"/proc/{entry.name}/stat")
        if not text:
            continue
        comm_end = text.rfind(")")
        comm, rest = text[text.find("(") + 1:comm_end], text[comm_end + 2:].split()
        out[int(entry.name)] = (comm, int(rest[11]) + int(rest[12]))  # utime, stime (fields 14, 15)
    return out


def _governor() -> str | None:
    text = _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
    return text.strip() if text else None


class MachineMonitor:
    """What else ran on the machine between ``start()`` and ``stop()``: other processes' CPU use, steal."""

    def __init__(self) -> None:
        self._t0 = self._stat0 = self._pids0 = None

    def start(self) -> MachineMonitor:
        self._t0, self._stat0, self._pids0 = time.monotonic(), _proc_stat(), _pid_ticks()
        return self

    def stop(self) -> dict:
        elapsed = time.monotonic() - self._t0
        stat1, pids1 = _proc_stat(), _pid_ticks()
        hz = os.sysconf("SC_CLK_TCK")
        state = {"seconds": round(elapsed, 2), "loadavg": [round(x, 2) for x in os.getloadavg()],
                 "governor": _governor()}
        if self._stat0 and stat1 and elapsed > 0:
            delta = {k: stat1[k] - self._stat0[k] for k in stat1}
            busy = sum(v for k, v in delta.items() if k not in ("idle", "iowait", "steal"))
            me = pids1.get(os.getpid(), ("", 0))[1] - self._pids0.get(os.getpid(), ("", 0))[1]
            state["machine_busy_cores"] = round(busy / hz / elapsed, 2)
            state["this_process_cores"] = round(me / hz / elapsed, 2)
            state["other_processes_cores"] = round(max(0, busy - me) / hz / elapsed, 2)
            state["steal_cores"] = round(delta.get("steal", 0) / hz / elapsed, 2)
            others = []
            for pid, (comm, ticks) in pids1.items():
                if pid == os.getpid() or pid not in self._pids0:
                    continue
                used = (ticks - self._pids0[pid][1]) / hz / elapsed
                if used >= 0.05:
                    others.append({"pid": pid, "command": comm, "cores": round(used, 2)})
            state["busiest_other_processes"] = sorted(others, key=lambda o: -o["cores"])[:5]
        return state


def describe_state(state: dict) -> str:
    """One line: 'load 2.1/1.8/1.5, other processes used 0.9 of 2 cores'."""
    parts = ["load " + "/".join(f"{x:.1f}" for x in state["loadavg"])]
    if "other_processes_cores" in state:
        parts.append(f"other processes used {state['other_processes_cores']:.1f} of {os.cpu_count()} cores")
    if state.get("steal_cores"):
        parts.append(f"steal {state['steal_cores']:.2f} cores")
    if state.get("governor"):
        parts.append(f"governor {state['governor']}")
    return ", ".join(parts)


def machine_info(threads: int | None = None) -> dict:
    """CPU, cores, threads used, and the versions of everything that decides the numbers."""
    from ..target import host_target, target_key

    def dist(name: str) -> str | None:
        try:
            return importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            return None

    return {
        "cpu": host_cpu_name(), "cores": host_cpu_count(), "cpus_online": os.cpu_count(),
        "threads": threads, "target_key": target_key(host_target()), "host": platform.node(),
        "os": f"{platform.system()} {platform.release()}", "python": platform.python_version(),
        "versions": {**versions(), "onnxruntime": dist("onnxruntime"), "numpy": np.__version__},
        "governor": _governor(),
    }


# ---- inputs and onnxruntime -------------------------------------------------------------------------------
def random_feeds(specs: tuple[TensorSpec, ...], seed: int = 0) -> dict[str, np.ndarray]:
    """Random inputs for a signature; a symbolic dimension becomes 1."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for spec in specs:
        shape = tuple(d if isinstance(d, int) else 1 for d in spec.shape)
        dtype = np.dtype(spec.dtype)
        if dtype.kind == "f":
            feeds[spec.name] = rng.standard_normal(shape).astype(dtype)
        elif dtype.kind in "iu":
            feeds[spec.name] = rng.integers(0, 2, shape).astype(dtype)
        elif dtype.kind == "b":
            feeds[spec.name] = rng.integers(0, 2, shape).astype(bool)
        else:
            raise InputError(f"cannot make a random input {spec.name!r} of dtype {spec.dtype}; give --input")
    return feeds


def onnxruntime_session(model: str | os.PathLike | onnx.ModelProto, threads: int):
    """A CPU onnxruntime session with ``threads`` intra-op threads; DlcError if onnxruntime is missing."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise DlcError("--compare onnxruntime needs the onnxruntime package, which is a test extra: "
                       "pip install 'dlc[test]' (or onnxruntime==1.31.1)") from None
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3
    src = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    try:
        return ort.InferenceSession(src, opts, providers=["CPUExecutionProvider"])
    except Exception as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise DlcError(f"onnxruntime cannot load the model: {first}") from None


# ---- timing -----------------------------------------------------------------------------------------------
def dlc_runner(model: CompiledModel, feeds: Mapping[str, np.ndarray]) -> Callable[[], object]:
    """A no-argument callable running ``main`` once on device-resident inputs (what is timed)."""
    arrays = model.check_feeds(feeds)
    vm = model.virtual_machine()
    dev = model.device()
    args = [tvm.runtime.tensor(a, dev) for a in arrays]
    main = vm["main"]
    if model.target["kind"] != "cuda":
        return lambda: main(*args)

    def run_and_sync():
        out = main(*args)
        dev.sync()
        return out

    return run_and_sync


def _outputs_of(result) -> list[np.ndarray]:
    items = list(result) if isinstance(result, (tvm_ffi.Array, list, tuple)) else [result]
    return [r.numpy() if hasattr(r, "numpy") else np.asarray(r) for r in items]


@dataclass
class BenchResult:
    model: str
    threads: int
    repeat: int
    warmup: int
    dlc: Stats
    gflop: float  # per inference, summed over kernel calls (dlc's FLOP estimate; also used for onnxruntime)
    peak_gflops: float | None
    onnxruntime: Stats | None = None
    ratio: float | None = None  # median(dlc) / median(onnxruntime)
    paired_ratio: Stats | None = None  # run-by-run ratios: their spread is the noise
    max_abs_diff: float | None = None  # dlc's outputs against onnxruntime's
    machine: dict = field(default_factory=dict)
    state: dict = field(default_factory=dict)
    samples_ms: dict[str, list[float]] = field(default_factory=dict)

    def gflops(self, which: str = "dlc") -> float | None:
        stats = self.dlc if which == "dlc" else self.onnxruntime
        if stats is None or not self.gflop:
            return None
        return self.gflop / (stats.median / 1e3)

    def percent_of_peak(self, which: str = "dlc") -> float | None:
        g = self.gflops(which)
        return 100 * g / self.peak_gflops if g and self.peak_gflops else None

    def to_json(self) -> dict:
        out = dataclasses.asdict(self)
        for name in ("dlc", "onnxruntime", "paired_ratio"):
            stats = getattr(self, name)
            out[name] = stats.to_json() if stats else None
        out["gflops"] = {w: self.gflops(w) for w in ("dlc", "onnxruntime")}
        out["percent_of_peak"] = {w: self.percent_of_peak(w) for w in ("dlc", "onnxruntime")}
        return out


def bench(model: CompiledModel, feeds: Mapping[str, np.ndarray] | None = None, *, repeat: int = 50,
          warmup: int = 5, threads: int | None = None,
          compare: str | os.PathLike | onnx.ModelProto | None = None,
          peak: bool = True, log: Callable[[str], None] | None = None) -> BenchResult:
    """Time ``model`` (and onnxruntime on ``compare``, the ONNX model, interleaved run by run)."""
    from .peak import machine_peak
    from .profile import count_kernel_calls

    say = log or (lambda msg: None)
    if repeat < 1 or warmup < 0:
        raise DlcError(f"repeat must be >= 1 and warmup >= 0, got {repeat} and {warmup}")
    model.virtual_machine()  # applies the thread count the model was loaded with
    threads = set_num_threads(threads or model.num_threads)
    feeds = dict(feeds) if feeds is not None else random_feeds(model.inputs)
    gflop = sum(n * k["gflop"] for k, n in count_kernel_calls(model, feeds))
    peak_gflops = machine_peak(threads).gflops if peak else None
    set_num_threads(threads)

    runners: dict[str, Callable[[], object]] = {"dlc": dlc_runner(model, feeds)}
    diff = None
    if compare is not None:
        session = onnxruntime_session(compare, threads)
        names = [i.name for i in session.get_inputs()]
        missing = [n for n in names if n not in feeds]
        if missing:
            raise InputError(f"the ONNX model for onnxruntime needs inputs {missing}, which dlc's model does not have")
        ort_feeds = {n: feeds[n] for n in names}
        runners["onnxruntime"] = lambda: session.run(None, ort_feeds)
        ours, theirs = _outputs_of(runners["dlc"]()), runners["onnxruntime"]()
        diff = max((float(np.max(np.abs(a.astype(np.float64) - b))) for a, b in zip(ours, theirs) if a.size),
                   default=0.0)

    order = list(runners)
    say(f"warm-up: {warmup} runs each")
    for i in range(warmup):
        for name in (order if i % 2 == 0 else order[::-1]):
            runners[name]()
    samples: dict[str, list[float]] = {name: [] for name in order}
    say(f"timing: {repeat} runs each" + (", interleaved" if len(order) > 1 else ""))
    monitor = MachineMonitor().start()
    gc_was_enabled = gc.isenabled()
    gc.disable()  # as timeit does: a collection inside a timed run is noise, not the model's cost
    try:
        for i in range(repeat):
            for name in (order if i % 2 == 0 else order[::-1]):
                run = runners[name]
                t0 = time.perf_counter_ns()
                run()
                samples[name].append((time.perf_counter_ns() - t0) / 1e6)
    finally:
        if gc_was_enabled:
            gc.enable()
    state = monitor.stop()

    result = BenchResult(model=str(model.metadata.get("model", "?")), threads=threads, repeat=repeat,
                         warmup=warmup, dlc=Stats.of(samples["dlc"]), gflop=round(gflop, 6),
                         peak_gflops=peak_gflops, machine=machine_info(threads), state=state,
                         samples_ms={k: [round(v, 4) for v in s] for k, s in samples.items()})
    if "onnxruntime" in samples:
        result.onnxruntime = Stats.of(samples["onnxruntime"])
        result.ratio = result.dlc.median / result.onnxruntime.median
        result.paired_ratio = Stats.of([a / b for a, b in zip(samples["dlc"], samples["onnxruntime"])])
        result.max_abs_diff = diff
    return result


def find_onnx_for(artifact: str | os.PathLike, meta: dict) -> Path | None:
    """The ONNX file an artifact was compiled from, if it sits next to the artifact under its recorded name."""
    name = meta.get("model")
    if not name or name == "<ModelProto>":
        return None
    candidate = Path(artifact).parent / name
    return candidate if candidate.is_file() else None


__all__ = ["COMPARE_CHOICES", "BenchResult", "MachineMonitor", "Stats", "bench", "describe_state",
           "find_onnx_for", "machine_info", "onnxruntime_session", "random_feeds"]
