"""
Write your own schedule in Python
=================================

Every kernel dlc builds gets its loop nest from the first *schedule rule* that answers, in this order:
your rules, tuned records, dlc's hand-written rules, and a generic fallback. This tutorial writes a rule for
a dense layer (MatMul + bias + ReLU), registers it from Python, sees it chosen (``model.kernels``, the rows
``dlc compile --explain`` prints), checks the numbers, and times it against dlc's own schedule with
``dlc profile``'s machinery.

Run it with ``python tutorials/02_custom_schedule.py``; with ``CI=true`` it uses a smaller layer and fewer
timing samples.
"""

# %%
# A dense layer
# -------------
# ``y = relu(x @ w + b)``, written the way exporters write it: MatMul, Add, Relu. dlc fuses the three into
# one kernel, a matrix multiply with its bias and ReLU computed on the way out (the "epilogue").
import inspect
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from tvm import s_tir

import dlc
from dlc.runtime.profile import profile

CI = os.environ.get("CI", "").lower() == "true"
M, K, N = (32, 256, 256) if CI else (64, 512, 512)
work = Path(os.environ.get("DLC_TUTORIAL_DIR", "out/tutorial02"))
work.mkdir(parents=True, exist_ok=True)

rng = np.random.default_rng(0)
w = (rng.standard_normal((K, N)) / np.sqrt(K)).astype(np.float32)
b = rng.standard_normal(N).astype(np.float32) * 0.1
graph = helper.make_graph(
    [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Add", ["h", "b"], ["z"]),
     helper.make_node("Relu", ["z"], ["y"])],
    "dense", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [M, K])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, [M, N])],
    [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
model.ir_version = 8
onnx_path = work / "dense.onnx"
onnx.save(model, onnx_path)
x = rng.standard_normal((M, K)).astype(np.float32)
expected = np.maximum(x @ w + b, 0)

# %%
# What dlc does on its own
# ------------------------
# ``model.kernels`` has one row per kernel: its name, its compute blocks, its buffer shapes, which rule
# scheduled it and its GFLOP. The ``schedule`` says ``hand:<rule>`` for one of dlc's hand-written rules or
# ``fallback:generic`` when none of them fits.
builtin = dlc.compile(onnx_path)
(kernel,) = builtin.kernels
print(f"built-in: {kernel['name']}: blocks {kernel['blocks']}, shapes {kernel['shapes']}, "
      f"schedule {kernel['origin']}, {kernel['gflop'] * 1e3:.1f} MFLOP")


# %%
# A rule
# ------
# A rule is a function ``(PrimFunc, Target) -> tvm.s_tir.Schedule | None``: ``None`` means "not mine", and
# dlc asks the next rule. This one takes 2-D matrix multiplies whose sizes divide its tiles, and
#
# * cuts the output into 4 x 32 tiles, one per task of the parallel loop (rows x columns, fused);
# * keeps each tile in eight 16-lane vector registers while it runs down the K dimension (``cache_write``
#   to a local buffer, the tile loops unrolled and the 16 columns vectorized: each step of K is eight
#   vector FMAs fed by two loads of ``w`` and four broadcasts of ``x``);
# * folds the elementwise epilogue (bias, ReLU) into the block that writes the output, inside the same task,
#   while the tile is still in cache.
#
# ``@dlc.schedule.rule("llvm", ...)`` registers it for CPU targets; rules registered from Python come
# before tuned records and dlc's own rules. (``order`` ranks it among your other rules.)
@dlc.schedule.rule("llvm", name="tiled_matmul", order=10)
def tiled_matmul(func, target):
    sch = s_tir.Schedule(func)
    try:
        mm = sch.get_sblock("matmul")
    except Exception:  # no block of that name: not a matmul kernel
        return None
    loops = sch.get_loops(mm)
    if len(loops) != 3:
        return None
    m, n, k = (int(sch.get(loop).extent) for loop in loops)
    if m % 4 or n % 32 or k % 4:
        return None
    # Inline the elementwise chain after the matmul into its last block (the one writing the output).
    consumers = sch.get_consumers(mm)
    while len(consumers) == 1 and sch.get_consumers(consumers[0]):
        sch.compute_inline(consumers[0])
        consumers = sch.get_consumers(mm)
    i, j, kk = loops
    i0, i1 = sch.split(i, [None, 4])
    j0, j1, j2 = sch.split(j, [None, 2, 16])
    k0, k1 = sch.split(kk, [None, 4])
    sch.reorder(i0, j0, k0, k1, i1, j1, j2)
    tile = sch.fuse(i0, j0)
    sch.parallel(tile)
    acc = sch.cache_write(mm, 0, "local")  # the 4 x 32 accumulator tile, in registers
    sch.reverse_compute_at(acc, tile)
    for loop in (k1, i1, j1):
        sch.unroll(loop)
    sch.vectorize(j2)
    init = sch.decompose_reduction(mm, k0)  # after vectorize (see the TVM 0.27 notes)
    sch.vectorize(sch.get_loops(init)[-1])
    sch.vectorize(sch.get_loops(acc)[-1])
    for block in consumers:
        sch.reverse_compute_at(block, tile)
        sch.vectorize(sch.get_loops(block)[-1])
    return sch


# %%
# The rule at work
# ----------------
# Compile again: the kernel's schedule is now ``user:tiled_matmul``, and the numbers are still right.
custom = dlc.compile(onnx_path)
(kernel,) = custom.kernels
print(f"custom:   {kernel['name']}: schedule {kernel['origin']}")
assert kernel["origin"] == "user:tiled_matmul", kernel
for name, m in (("built-in", builtin), ("custom", custom)):
    err = float(np.abs(m.run({"x": x})["y"] - expected).max())
    print(f"{name}: max abs difference to numpy {err:.1e}")
    assert err < 1e-4

# %%
# The same from the command line
# ------------------------------
# Rules can also live in files: ``dlc compile --schedules DIR`` imports every ``*.py`` in ``DIR`` and the
# rules they register count as yours. Here the file is this very function's source; ``--explain`` prints
# the kernel rows.
rules = work / "rules"
rules.mkdir(exist_ok=True)
(rules / "tiled_matmul.py").write_text("from tvm import s_tir\n\nimport dlc\n\n\n" + inspect.getsource(tiled_matmul))
subprocess.run([sys.executable, "-m", "dlc", "compile", str(onnx_path), "--schedules", str(rules), "--explain",
                "-q", "-o", str(work / "dense_custom.so")], check=True)

# %%
# Timed against the built-in schedule
# -----------------------------------
# ``dlc.runtime.profile.profile`` times every kernel call in place, on the tensors the model really passes
# it (``dlc profile MODEL`` on the command line), and puts it against this machine's measured peak. The
# machine may be busy: compare the two schedules with each other, measured one right after the other, rather
# than trusting either absolute number. (If dlc has a hand-written rule for this kernel it may well win: this
# rule is short on purpose. What it shows is the mechanism: your rule, chosen first, checked, measured.)
repeat = 5 if CI else 20
rows = {}
for name, m in (("built-in", builtin), ("custom", custom)):
    (k,) = profile(m, {"x": x}, repeat=repeat, min_repeat_ms=2 if CI else 10, timeline_runs=1).kernels
    rows[name] = k
    pct = f"{k.percent_of_peak:.1f}% of peak" if k.percent_of_peak is not None else ""
    print(f"{name:9} {k.origin:20} {k.us:9.1f} us  {k.gflops:7.1f} GFLOP/s  {pct}")
print(f"custom / built-in time: {rows['custom'].us / rows['built-in'].us:.2f}")

# %%
# Where next
# ----------
# * ``dlc profile model.onnx --png roofline.png`` shows which kernels are worth a rule of their own.
# * ``dlc.schedule.REGISTRY.remove("tiled_matmul")`` unregisters the rule in this process.
# * dlc's own rules are in ``schedules/llvm/``; they are written with the same decorator.
dlc.schedule.REGISTRY.remove("tiled_matmul")
