"""Winograd against dlc's own direct convolution, layer by layer, on the 3x3 stride-1 convs of VGG-19 and ResNet-50.

Each distinct layer (channels in/out, image size) becomes a one-conv ONNX model (conv + bias + ReLU, as in the
nets, then a 1x1 max pool that only carries the output), compiled twice — ``--winograd off`` and
``--winograd on`` (F(4,3) or F(2,3), whichever the cost model prefers). Two times per layer and variant:

* kernels (the per-layer figure, and the speedup): the compiled layer's kernels, each run alone on random
  buffers, median of ``--repeat`` runs (direct and Winograd alternating), summed: the layer as it runs inside a
  network, reading and writing the blocked NCHW16c layout. The model's conversions NCHW -> NCHW16c at the
  input and back at the output are not timed: inside VGG-19 and ResNet-50 no 3x3 layer has them (a network
  converts once at each end). The trailing pool is there so that the conversion back fuses into its kernel
  and not into the layer's last one, where it cost 4-5 ms at 224x224 in both variants (a transpose with
  channel planes 4 KB apart) and hid the layer's own time.
* model: ``CompiledModel.run`` end to end, alternating the two variants run by run; it adds ~1-2 ms of VM,
  allocation and numpy conversion per call, which hides the difference on small layers.

The default clock is the thread's CPU time on one thread, which other processes on a shared machine cannot
inflate; ``--wall --threads 2`` measures what a user sees on an idle machine.

    python benchmarks/winograd.py [--repeat 10] [--json out.json] [--wall --threads 2]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import time

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

# (model, C, K, H=W, count in the model)
LAYERS = [
    ("vgg19", 3, 64, 224, 1), ("vgg19", 64, 64, 224, 1), ("vgg19", 64, 128, 112, 1), ("vgg19", 128, 128, 112, 1),
    ("vgg19", 128, 256, 56, 1), ("vgg19", 256, 256, 56, 3), ("vgg19", 256, 512, 28, 1), ("vgg19", 512, 512, 28, 3),
    ("vgg19", 512, 512, 14, 4),
    ("resnet50", 64, 64, 56, 3), ("resnet50", 128, 128, 28, 4), ("resnet50", 256, 256, 14, 6),
    ("resnet50", 512, 512, 7, 3),
]


def conv_model(c: int, k: int, hw: int, seed: int = 0) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    w = (rng.standard_normal((k, c, 3, 3)) * math.sqrt(2 / (9 * c))).astype(np.float32)
    b = (rng.standard_normal(k) * 0.1).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("MaxPool", ["r"], ["y"], kernel_shape=[1, 1])]  # carries the output conversion
    graph = helper.make_graph(nodes, "conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, hw, hw])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, k, hw, hw])],
                              [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def timed(run, wall: bool) -> float:
    clock = time.perf_counter if wall else time.thread_time
    t0 = clock()
    run()
    return clock() - t0


def layer_kernels(model: onnx.ModelProto, winograd: str) -> list:
    """(kernel, args) for each of the compiled layer's kernels, each ready to run alone on random buffers."""
    import tvm
    from tvm import tirx

    from dlc.api import prepare
    from dlc.options import CompileOptions
    from dlc.target import resolve_target

    options = CompileOptions(winograd=winograd)
    target = resolve_target(options.target)
    _, imported, pipeline = prepare(model, options, target, lambda _msg: None)
    mod = pipeline.run(imported.mod, until="schedule")
    rng = np.random.default_rng(0)
    kernels = []
    for gv, func in mod.functions_items():
        if not isinstance(func, tirx.PrimFunc):
            continue
        name = gv.name_hint
        if name.startswith("te_layout_transform") or "pool" in name:  # the model's conversions in and out
            continue
        kernel = tvm.compile(tvm.IRModule({name: func.with_attr("global_symbol", name)}), target=target)[name]
        args = [tvm.runtime.tensor(rng.standard_normal([int(d) for d in p.ty.shape]).astype(str(p.ty.dtype)))
                for p in func.params]
        kernel(*args)
        kernels.append((kernel, args))
    return kernels


def time_variants(variants: dict[str, list], repeat: int, wall: bool) -> dict[str, float]:
    """Seconds per variant (name -> its ``layer_kernels``): the sum over its kernels of each one's median time,
    run alone. The variants alternate run by run, as the model runs do, so drift in the machine's load hits all."""
    times = {name: [[] for _ in kernels] for name, kernels in variants.items()}
    for _ in range(repeat):
        for name, kernels in variants.items():
            for (kernel, args), t in zip(kernels, times[name]):
                t.append(timed(lambda f=kernel, a=args: f(*a), wall))
    return {name: sum(float(np.median(t)) for t in spent) for name, spent in times.items()}


def kernels_times(model: onnx.ModelProto, repeat: int, wall: bool) -> tuple[float, float]:
    """Seconds, direct and Winograd (``time_variants``)."""
    seconds = time_variants({mode: layer_kernels(model, mode) for mode in ("off", "on")}, repeat, wall)
    return seconds["off"], seconds["on"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--wall", action="store_true", help="wall-clock time instead of the thread's CPU time")
    ap.add_argument("--json", help="write the per-layer results here")
    ap.add_argument("--only", help="model name filter (vgg19 or resnet50)")
    args = ap.parse_args()
    if not args.wall and args.threads != 1:
        ap.error("thread CPU time measures one thread: use --wall with --threads > 1")
    os.environ["TVM_NUM_THREADS"] = str(args.threads)
    import dlc  # after TVM_NUM_THREADS
    from dlc.runtime.bench import MachineMonitor, describe_state, machine_info

    # Before any run: a model's first run sizes TVM's pool to every core unless told (the thread's CPU time
    # would then be this thread's share only), and a pool resized after it has run is best avoided: one run of
    # this benchmark died in a pool worker during its first layer, where that resize used to happen (not
    # reproduced since).
    dlc.runtime.set_num_threads(args.threads)

    info = machine_info(args.threads)
    monitor = MachineMonitor().start()  # other processes share the cores: say how busy they kept them
    rows = []
    for model_name, c, k, hw, count in LAYERS:
        if args.only and model_name != args.only:
            continue
        model = conv_model(c, k, hw)
        x = {"x": np.random.default_rng(1).standard_normal((1, c, hw, hw)).astype(np.float32)}
        direct = dlc.compile(model, winograd="off")
        wino = dlc.compile(model, winograd="on")
        kinds = sorted({m.group() for k_ in wino.kernels if (m := re.search(r"winograd\d", k_["name"]))})
        ref, got = direct.run(x)["y"], wino.run(x)["y"]
        times = {"direct": [], "winograd": []}
        for _ in range(args.repeat):  # alternate, so drift in the machine's load hits both alike
            for key, compiled in (("direct", direct), ("winograd", wino)):
                times[key].append(timed(lambda compiled=compiled, x=x: compiled.run(x), args.wall))
        md, mw = (float(np.median(times[key])) for key in ("direct", "winograd"))
        d, w = kernels_times(model, args.repeat, args.wall)
        gflop = 2 * 9 * c * k * hw * hw / 1e9
        row = {"model": model_name, "layer": f"{c}->{k} @{hw}x{hw}", "count": count, "winograd": "/".join(kinds),
               "direct_ms": d * 1e3, "winograd_ms": w * 1e3, "speedup": d / w, "direct_gflops": gflop / d,
               "model_direct_ms": md * 1e3, "model_winograd_ms": mw * 1e3, "model_speedup": md / mw,
               "max_rel_err": float(np.abs(got - ref).max() / np.abs(ref).max())}
        rows.append(row)
        print(f"{model_name:9s} {row['layer']:18s} x{count}  direct {row['direct_ms']:7.2f} ms "
              f"({row['direct_gflops']:5.1f} GFLOP/s)  {row['winograd']:9s} {row['winograd_ms']:7.2f} ms  "
              f"speedup {row['speedup']:4.2f}  (model runs: {md * 1e3:7.2f} / {mw * 1e3:7.2f} ms, "
              f"{md / mw:4.2f})  rel err {row['max_rel_err']:.1e}", flush=True)
    for name in sorted({r["model"] for r in rows}):
        sel = [r for r in rows if r["model"] == name]
        geo = math.exp(sum(math.log(r["speedup"]) for r in sel) / len(sel))
        total = sum(r["direct_ms"] * r["count"] for r in sel) / sum(r["winograd_ms"] * r["count"] for r in sel)
        print(f"{name}: geomean per-layer speedup {geo:.2f}, all 3x3 layers together {total:.2f}")
    geo = math.exp(sum(math.log(r["speedup"]) for r in rows) / max(len(rows), 1))
    mean = sum(r["speedup"] for r in rows) / max(len(rows), 1)
    print(f"all layers: geomean speedup {geo:.2f}, mean {mean:.2f} (kernels, {'wall' if args.wall else 'thread CPU'} "
          f"time, {args.threads} thread(s), median of {args.repeat})")
    state = monitor.stop()
    print(f"machine: {info['cpu']}, {info['cores']} cores; during the run: {describe_state(state)}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"clock": "wall" if args.wall else "thread_cpu", "threads": args.threads, "machine": info,
                       "state": state, "layers": rows}, f, indent=1)


if __name__ == "__main__":
    main()
