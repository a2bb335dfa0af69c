"""Where the time goes: every kernel of a compiled model, timed in place with its real arguments.

The Relax VM calls an *instrument* before and after every call instruction (``VirtualMachine.
set_instrument``). ``profile`` runs the model's ``main`` once with an instrument that, before each kernel
call, times that kernel with TVM's ``time_evaluator`` on the very tensors the VM is about to pass it (right
shapes, right memory, real data), then lets the call go ahead. Each kernel's row then says how long it
takes, what share of the run that is, its GFLOP/s and % of this machine's measured peak (``peak.py``), its
bytes moved and arithmetic intensity (for the roofline), and which schedule produced it (user rule, tuned
record, hand-written rule or fallback: the artifact metadata's ``kernels``).

Timed in place, a kernel runs with its inputs warm in cache (as TVM's time_evaluator always does); the
separate *timeline* runs record when each call starts and ends inside a real run (plus a few microseconds
of instrument overhead per call) and are what the Chrome trace shows.

A kernel that writes into one of its inputs would see its own output when re-run; the profile checks that
the model's outputs are unchanged afterwards and says so if not.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tvm

from .bench import MachineMonitor, Stats, machine_info, random_feeds
from .model import CompiledModel
from .peak import MachinePeak, machine_peak
from .threads import set_num_threads

STATS = {"median": np.median, "min": np.min}
_VM_PREFIX = "vm."  # VM builtins (allocation, shape checks) are calls too; they are not kernels
_UNIQUIFIER = re.compile(r"(?<=[a-z])\d+(?=_|$)")  # "conv2d10" -> "conv2d" (TVM numbers repeated names)


def op_of(kernel: str) -> str:
    """The ops a kernel computes, from TVM's naming: 'fused_conv2d10_add6_relu6' -> 'conv2d_add_relu'."""
    return _UNIQUIFIER.sub("", kernel.removeprefix("fused_"))


def _tensor_args(args) -> list[tuple[tuple[int, ...], str, int]]:
    out = []
    for a in args:
        shape = getattr(a, "shape", None)
        if shape is not None and hasattr(a, "dtype"):
            shape = tuple(int(d) for d in shape)
            nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(str(a.dtype)).itemsize
            out.append((shape, str(a.dtype), nbytes))
    return out


@dataclass
class KernelCall:
    """One call of a kernel inside one run of ``main``."""

    index: int  # order in the run
    kernel: str
    shapes: list[list[int]]
    bytes: int  # sum of the sizes of its tensor arguments (each read or written once: compulsory traffic)
    samples_us: list[float]  # time_evaluator samples, in place
    in_run_us: list[float] = field(default_factory=list)  # durations inside the timeline runs
    stat: str = "median"  # how samples become one number: "median" (typical) or "min" (best, on a busy machine)

    @property
    def us(self) -> float:
        return float(STATS[self.stat](self.samples_us))


@dataclass
class KernelProfile:
    """One kernel, all its calls together."""

    name: str
    op: str
    blocks: str
    shapes: list[list[int]]
    origin: str
    gflop: float  # per call
    calls: int
    us: float  # total over calls (median per call, summed)
    bytes: int  # per call
    percent: float = 0.0  # of the summed kernel time
    gflops: float = 0.0
    percent_of_peak: float | None = None
    gbs: float = 0.0  # bytes moved per second (compulsory traffic)

    @property
    def intensity(self) -> float:
        """Arithmetic intensity, FLOP per byte of compulsory traffic."""
        return self.gflop * 1e9 / self.bytes if self.bytes else 0.0

    def to_json(self) -> dict:
        return {**dataclasses.asdict(self), "intensity": self.intensity}


@dataclass
class Profile:
    model: str
    target: str
    threads: int
    stat: str  # "median" or "min" of each call's samples
    kernels: list[KernelProfile]  # sorted by time, largest first
    calls: list[KernelCall]  # in run order
    end_to_end_ms: Stats  # whole ``main`` runs, time_evaluator
    peak: MachinePeak | None
    timeline: list[list[dict]]  # per timeline run: {"name", "cat", "ts_us", "dur_us"} in run order
    outputs_unchanged: bool
    machine: dict = field(default_factory=dict)
    state: dict = field(default_factory=dict)

    @property
    def kernel_ms(self) -> float:
        return sum(k.us for k in self.kernels) / 1e3

    @property
    def gflop(self) -> float:
        return sum(k.gflop * k.calls for k in self.kernels)

    def to_json(self) -> dict:
        return {
            "model": self.model, "target": self.target, "threads": self.threads, "stat": self.stat,
            "kernels": [k.to_json() for k in self.kernels],
            "calls": [dataclasses.asdict(c) for c in self.calls],
            "kernel_ms": self.kernel_ms, "gflop": self.gflop,
            "end_to_end_ms": self.end_to_end_ms.to_json(),
            "peak": self.peak.to_json() if self.peak else None,
            "outputs_unchanged": self.outputs_unchanged, "machine": self.machine, "state": self.state,
        }

    def table(self, top: int | None = None) -> list[dict[str, str]]:
        """Display rows (largest time first), the columns ``dlc profile`` prints and the benchmarks write."""
        rows = []
        for k in self.kernels[:top]:
            rows.append({
                "kernel": k.name, "op": k.op,
                "shapes": " ".join("x".join(map(str, s)) for s in k.shapes),
                "calls": str(k.calls), "us": f"{k.us:,.1f}", "%": f"{k.percent:.1f}",
                "GFLOP/s": f"{k.gflops:.1f}" if k.gflop > 0 else "-",
                "% peak": f"{k.percent_of_peak:.1f}" if k.percent_of_peak is not None else "-",
                "GB/s": f"{k.gbs:.1f}", "schedule": k.origin,
            })
        return rows

    # ---- Chrome trace -----------------------------------------------------------------------------------
    def chrome_trace(self) -> dict:
        """The timeline runs in Chrome's trace-event format (chrome://tracing, Perfetto), like onnxruntime's
        profiler: one complete ("X") event per model run and per call, times in microseconds."""
        by_name = {k.name: k for k in self.kernels}
        pid, tid = os.getpid(), 0
        events: list[dict] = [
            {"ph": "M", "name": "process_name", "pid": pid, "tid": tid, "args": {"name": f"dlc {self.model}"}},
            {"ph": "M", "name": "thread_name", "pid": pid, "tid": tid, "args": {"name": "main (VM)"}},
        ]
        offset = 0.0
        for run_index, run in enumerate(self.timeline):
            if not run:
                continue
            start = run[0]["ts_us"]
            end = max(e["ts_us"] + e["dur_us"] for e in run)
            events.append({"ph": "X", "cat": "Session", "name": "model_run", "pid": pid, "tid": tid,
                           "ts": round(offset, 3), "dur": round(end - start, 3), "args": {"run": run_index}})
            for e in run:
                args: dict = {"op_name": e["cat"]}
                k = by_name.get(e["name"])
                if k is not None:
                    args = {"op_name": k.op, "blocks": k.blocks, "schedule": k.origin,
                            "shapes": ["x".join(map(str, s)) for s in k.shapes], "gflop": k.gflop,
                            "timed_in_place_us": round(k.us / k.calls, 3)}
                events.append({"ph": "X", "cat": "Node" if k is not None else "VM", "name": e["name"],
                               "pid": pid, "tid": tid, "ts": round(offset + e["ts_us"] - start, 3),
                               "dur": round(e["dur_us"], 3), "args": args})
            offset += end - start + 10.0  # runs side by side, 10 us apart
        return {"traceEvents": events, "displayTimeUnit": "ms",
                "otherData": {"model": self.model, "target": self.target, "threads": self.threads,
                              "producer": "dlc profile", "version": self.machine.get("versions", {}).get("dlc")}}

    def write_trace(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.chrome_trace()))
        return path

    def plot_roofline(self, path: str | os.PathLike, *, label_top: int = 8) -> Path:
        from .roofline import RooflinePoint, plot_roofline

        total = sum(k.us for k in self.kernels) or 1.0
        points = [RooflinePoint(k.name, k.intensity, k.gflops, k.us / total) for k in self.kernels
                  if k.gflop > 0 and k.bytes > 0 and k.us > 0]
        title = f"{self.model}: {len(self.kernels)} kernels, {self.threads} threads, {self.target}"
        return plot_roofline(points, self.peak, path, title=title, label_top=label_top)


# ---- running ----------------------------------------------------------------------------------------------
def _kernel_names(model: CompiledModel) -> dict[str, dict]:
    return {k["name"]: k for k in model.kernels}


def _is_kernel(name: str, known: Mapping[str, dict], lib: tvm.runtime.Module) -> bool:
    if name.startswith(_VM_PREFIX):
        return False
    return name in known or lib.implements_function(name)


def count_kernel_calls(model: CompiledModel, feeds: Mapping[str, np.ndarray]) -> list[tuple[dict, int]]:
    """(metadata row, number of calls per run) for every kernel ``main`` calls; one instrumented run."""
    known = _kernel_names(model)
    lib = model.kernel_library()
    counts: Counter[str] = Counter()

    def instrument(func, name, before, ret, *args):
        if before and _is_kernel(name, known, lib):
            counts[name] += 1
        return 0

    _run_instrumented(model, feeds, instrument)
    return [(known.get(name, {"name": name, "gflop": 0.0}), n) for name, n in counts.items()]


def _run_instrumented(model: CompiledModel, feeds: Mapping[str, np.ndarray], instrument) -> list:
    vm = model.virtual_machine()
    vm.set_instrument(instrument)
    try:
        return list(model.run(feeds).values())
    finally:
        vm.set_instrument(None)


def profile(model: CompiledModel, feeds: Mapping[str, np.ndarray] | None = None, *, repeat: int = 5,
            min_repeat_ms: int = 5, timeline_runs: int = 3, threads: int | None = None,
            peak: MachinePeak | bool = True, stat: str = "median",
            log: Callable[[str], None] | None = None) -> Profile:
    """Profile every kernel of ``model`` on ``feeds`` (random inputs if None).

    ``repeat`` time_evaluator samples per kernel call, each at least ``min_repeat_ms`` long;
    ``timeline_runs`` instrumented runs for the trace; ``peak``: a MachinePeak, True (the cached or
    measured peak for this thread count) or False (no % of peak); ``stat``: a call's time is the "median"
    of its samples, or the "min" (what the kernel can do, when other processes keep interrupting it).
    """
    if stat not in STATS:
        raise ValueError(f"stat must be one of {sorted(STATS)}, got {stat!r}")
    say = log or (lambda msg: None)
    model.virtual_machine()  # applies the thread count the model was loaded with
    threads = set_num_threads(threads or model.num_threads)
    feeds = dict(feeds) if feeds is not None else random_feeds(model.inputs)
    if peak is True:
        say(f"machine peak for {threads} threads (measured once, then cached)")
        peak = machine_peak(threads)
        set_num_threads(threads)
    peak = peak or None
    known = _kernel_names(model)
    lib = model.kernel_library()
    dev = model.device()

    say("warm-up run")
    reference = list(model.run(feeds).values())
    monitor = MachineMonitor().start()

    say(f"timing each kernel call in place ({repeat} samples of >= {min_repeat_ms} ms)")
    calls: list[KernelCall] = []

    def time_in_place(func, name, before, ret, *args):
        if before and _is_kernel(name, known, lib):
            timer = lib.time_evaluator(name, dev, number=1, repeat=repeat, min_repeat_ms=min_repeat_ms)
            samples = [t * 1e6 for t in timer(*args).results]
            tensors = _tensor_args(args)
            calls.append(KernelCall(len(calls), name, [list(s) for s, _, _ in tensors],
                                    sum(b for _, _, b in tensors), samples, stat=stat))
        return 0

    after = _run_instrumented(model, feeds, time_in_place)
    unchanged = all(np.array_equal(a, b, equal_nan=True) for a, b in zip(reference, after))

    say(f"timeline: {timeline_runs} instrumented runs")
    timeline: list[list[dict]] = []
    for _ in range(timeline_runs):
        events: list[dict] = []
        open_calls: list[tuple[str, int]] = []

        def record(func, name, before, ret, *args, events=events, open_calls=open_calls):
            now = time.perf_counter_ns()
            if before:
                open_calls.append((name, now))
            elif open_calls:
                started_name, started = open_calls.pop()
                kind = "kernel" if _is_kernel(started_name, known, lib) else "vm"
                events.append({"name": started_name, "cat": kind, "ts_us": started / 1e3,
                               "dur_us": (now - started) / 1e3})
            return 0

        _run_instrumented(model, feeds, record)
        events.sort(key=lambda e: e["ts_us"])
        timeline.append(events)
    kernel_events = [[e for e in run if e["cat"] == "kernel"] for run in timeline]
    for run in kernel_events:
        if len(run) == len(calls):
            for c, e in zip(calls, run):
                c.in_run_us.append(round(e["dur_us"], 3))

    say("end-to-end runs")
    e2e = Stats.of([t * 1e3 for t in model.time_main(feeds, number=1, repeat=max(repeat, 5))])
    state = monitor.stop()

    kernels = _aggregate(calls, known, peak)
    return Profile(model=str(model.metadata.get("model", "?")), target=model.target.get("key", "?"),
                   threads=threads, stat=stat, kernels=kernels, calls=calls, end_to_end_ms=e2e, peak=peak,
                   timeline=timeline, outputs_unchanged=unchanged, machine=machine_info(threads), state=state)


def _aggregate(calls: list[KernelCall], known: Mapping[str, dict], peak: MachinePeak | None) -> list[KernelProfile]:
    by_name: dict[str, list[KernelCall]] = {}
    for c in calls:
        by_name.setdefault(c.kernel, []).append(c)
    rows = []
    for name, cs in by_name.items():
        meta = known.get(name, {})
        us = sum(c.us for c in cs)
        gflop = float(meta.get("gflop", 0.0))
        row = KernelProfile(name=name, op=op_of(name), blocks=meta.get("blocks", "?"),
                            shapes=cs[0].shapes, origin=meta.get("origin", "?"), gflop=gflop, calls=len(cs),
                            us=us, bytes=cs[0].bytes)
        seconds = us / 1e6
        if seconds > 0:
            row.gflops = gflop * len(cs) / seconds
            row.gbs = row.bytes * len(cs) / seconds / 1e9
        if peak is not None and gflop > 0:
            row.percent_of_peak = 100 * row.gflops / peak.gflops
        rows.append(row)
    total = sum(r.us for r in rows) or 1.0
    for r in rows:
        r.percent = 100 * r.us / total
    return sorted(rows, key=lambda r: -r.us)


__all__ = ["KernelCall", "KernelProfile", "Profile", "count_kernel_calls", "op_of", "profile"]
