"""Every conv kernel of a model, timed in place on one thread with the thread's CPU time (issue 4's per-layer check).

``dlc profile`` times kernels with TVM's time_evaluator, i.e. wall-clock time, which other processes on a shared
machine inflate. This script runs the model once with a VM instrument and, at each conv call, calls that kernel
on its real arguments ``--repeat`` times (each sample >= 20 ms) measuring ``time.thread_time()``; calls of one
layer shape are merged (their median). GFLOP/s and % of the measured single-thread peak per layer.

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", nargs="?", default="resnet50")
    ap.add_argument("--winograd", default="off", help="auto, on, off (default off: the direct conv on every layer)")
    ap.add_argument("--repeat", type=int, default=9)
    ap.add_argument("--json", help="write the per-call samples here")
    a = ap.parse_args()
    path = a.model if Path(a.model).exists() else model_path(a.model)
    model = dlc.compile(path, winograd=a.winograd)
    model.virtual_machine()
    set_num_threads(1)
    peak = machine_peak(1).gflops
    set_num_threads(1)
    known, lib = _kernel_names(model), model.kernel_library()
    calls = []

    def time_in_place(func, name, before, ret, *args):
        if before and _is_kernel(name, known, lib) and "conv2d" in known.get(name, {}).get("blocks", name):
            f = lib[name]
            f(*args)
            t = time.thread_time()
            f(*args)
            number = max(1, int(0.02 / max(time.thread_time() - t, 1e-5)))
            samples = []
            for _ in range(a.repeat):
                t = time.thread_time()
                for _ in range(number):
                    f(*args)
                samples.append((time.thread_time() - t) / number)
            shapes = [list(s) for s, _, _ in _tensor_args(args)]
            calls.append({"kernel": name, "shapes": shapes, "gflop": known[name].get("gflop", 0.0), "samples_s": samples})
        return 0

    _run_instrumented(model, random_feeds(model.inputs), time_in_place)
    layers: dict[str, list[dict]] = {}
    for c in calls:
        layers.setdefault(layer_name(c["shapes"]), []).append(c)
    print(f"{Path(path).name}: conv layers on 1 thread (thread CPU time), peak {peak:.0f} GFLOP/s")
    print("| layer | calls | GFLOP | ms (median) | GFLOP/s | % peak | best GFLOP/s |")
    print("|---|---|---|---|---|---|---|")
    for name, cs in layers.items():
        gflop = cs[0]["gflop"]
        med = statistics.median(statistics.median(c["samples_s"]) for c in cs)
        best = statistics.median(min(c["samples_s"]) for c in cs)
        print(f"| {name} | {len(cs)} | {gflop:.3f} | {med * 1e3:.3f} | {gflop / med:.0f} | {100 * gflop / med / peak:.0f}% "
              f"| {gflop / best:.0f} |")
    if a.json:
        Path(a.json).write_text(json.dumps({"model": str(path), "peak": peak, "calls": calls}, indent=1))


if __name__ == "__main__":
    main()
