"""Every conv kernel of a model, timed in place on one thread with the thread's CPU time (issue 4's per-layer check).

``dlc profile`` times kernels with TVM's time_evaluator, i.e. wall-clock time, which other processes on a shared
machine inflate. This script runs the model once with a VM instrument and, at each conv call, calls that kernel
on its real arguments ``--repeat`` times (each sample >= 20 ms) measuring ``time.thread_time()``; calls of one
layer shape are merged (their median). GFLOP/s and % of the measured single-thread peak per layer.

The model runs ``--passes`` times and each layer's figure is the median over the passes: on a shared VM a
burst of the host's memory traffic lasts seconds and slows whichever layers are timed then (one pass once
put four consecutive mid-network layers at 42-49% that the passes before and after had at 70-80%).

    python benchmarks/conv_layers.py [MODEL.onnx|zoo name] [--winograd off] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import dlc
from dlc.models import model_path
from dlc.runtime.bench import random_feeds
from dlc.runtime.peak import machine_peak
from dlc.runtime.profile import _is_kernel, _kernel_names, _run_instrumented, _tensor_args
from dlc.runtime.threads import set_num_threads


def layer_name(shapes: list[list[int]]) -> str:
    """'3x3 256->256 14x14 s1 +res' from the blocked shapes [data, kernel, ..., out] of a conv2d_nchwc kernel."""
    data, kernel, out = shapes[0], shapes[1], shapes[-1]
    c, k, kh, h = data[1] * data[4], kernel[0] * kernel[5], kernel[2], data[2]
    residual = " +res" if any(s == out for s in shapes[2:-1]) else ""
    return f"{kh}x{kh} {c}->{k} {h}x{h} s{h // out[2]}{residual}"


class FmaProbe:
    """The core's FMA throughput right now: ``dlc peak``'s FMA kernel for ~2 ms of thread time.

    On a shared VM the host's other tenants (a hyperthread sibling on the same physical core, memory traffic)
    slow this core by up to half for seconds at a time, and thread CPU time cannot see it. Timed next to each
    layer sample, the probe gives the roof that sample actually had."""

    def __init__(self):
        import numpy as np
        import tvm

        from dlc.runtime.peak import ACCUMULATORS, _fma_kernel
        from dlc.target import host_target, vector_lanes

        lanes = vector_lanes(host_target())
        self.kernel = tvm.compile(tvm.IRModule({"fma_peak": _fma_kernel(1, lanes)}), target=host_target())["fma_peak"]
        self.out = tvm.runtime.tensor(np.ones((1, ACCUMULATORS * lanes), "float32"))
        self.flop_per_iter = ACCUMULATORS * lanes * 2
        self.iters = 20_000  # ~2 ms at 150 GFLOP/s

    def gflops(self) -> float:
        t = time.thread_time()
        self.kernel(self.out, self.iters)
        return self.flop_per_iter * self.iters / max(time.thread_time() - t, 1e-6) / 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", nargs="?", default="resnet50")
    ap.add_argument("--winograd", default="off", help="auto, on, off (default off: the direct conv on every layer)")
    ap.add_argument("--repeat", type=int, default=9)
    ap.add_argument("--passes", type=int, default=3, help="instrumented runs of the model, spread over time")
    ap.add_argument("--json", help="write the per-call samples here")
    a = ap.parse_args()
    path = a.model if Path(a.model).exists() else model_path(a.model)
    model = dlc.compile(path, winograd=a.winograd)
    model.virtual_machine()
    set_num_threads(1)
    peak = machine_peak(1).gflops
    set_num_threads(1)
    known, lib = _kernel_names(model), model.kernel_library()
    fma = FmaProbe()
    calls = []

    def time_in_place(func, name, before, ret, *args):
        if before and _is_kernel(name, known, lib) and "conv2d" in known.get(name, {}).get("blocks", name):
            f = lib[name]
            f(*args)
            t = time.thread_time()
            f(*args)
            number = max(1, int(0.02 / max(time.thread_time() - t, 1e-5)))
            samples, core = [], []
            for _ in range(a.repeat):
                core.append(fma.gflops())
                t = time.thread_time()
                for _ in range(number):
                    f(*args)
                samples.append((time.thread_time() - t) / number)
            shapes = [list(s) for s, _, _ in _tensor_args(args)]
            calls.append({"kernel": name, "shapes": shapes, "gflop": known[name].get("gflop", 0.0), "samples_s": samples,
                          "fma_gflops": core})
        return 0

    feeds = random_feeds(model.inputs)
    for p in range(a.passes):
        start = len(calls)
        _run_instrumented(model, feeds, time_in_place)
        for c in calls[start:]:
            c["pass"] = p
    layers: dict[str, list[dict]] = {}
    for c in calls:
        layers.setdefault(layer_name(c["shapes"]), []).append(c)
    print(f"{Path(path).name}: conv layers on 1 thread (thread CPU time), peak {peak:.0f} GFLOP/s")
    print(f"{a.passes} passes; ms: median over the passes of the layer's median time")
    print("| layer | calls | GFLOP | ms (median) | GFLOP/s | % peak | best GFLOP/s | % of FMA probe |")
    print("|---|---|---|---|---|---|---|---|")
    for name, cs in layers.items():
        gflop = cs[0]["gflop"]
        passes = sorted({c["pass"] for c in cs})  # per pass: the median over the layer's calls
        med = statistics.median(statistics.median(statistics.median(c["samples_s"]) for c in cs if c["pass"] == p)
                                for p in passes)
        best = min(statistics.median(min(c["samples_s"]) for c in cs if c["pass"] == p) for p in passes)
        # the same, each sample's throughput over the FMA probe's just before it
        of_core = statistics.median(statistics.median(statistics.median(
            gflop / t / r for t, r in zip(c["samples_s"], c["fma_gflops"])) for c in cs if c["pass"] == p)
            for p in passes)
        print(f"| {name} | {len(cs) // len(passes)} | {gflop:.3f} | {med * 1e3:.3f} | {gflop / med:.0f} | {100 * gflop / med / peak:.0f}% "
              f"| {gflop / best:.0f} | {100 * of_core:.0f}% |")
    if a.json:
        Path(a.json).write_text(json.dumps({"model": str(path), "peak": peak, "calls": calls}, indent=1))


if __name__ == "__main__":
    main()
