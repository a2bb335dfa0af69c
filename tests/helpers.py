"""Small ONNX models built in code, and onnxruntime as the reference (shared by the tests)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


def make_model(nodes, inputs, outputs, initializers=(), opset: int = OPSET, name: str = "g",
               domains: dict[str, int] | None = None, check: bool = True) -> onnx.ModelProto:
    """A checked model; inputs/outputs are (name, shape, dtype) with dtype a numpy name."""

    def vi(n, shape, dtype="float32"):
        return helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(np.dtype(dtype)), shape)

    graph = helper.make_graph(
        nodes, name, [vi(*i) for i in inputs], [vi(*o) for o in outputs],
        [numpy_helper.from_array(a, n) for n, a in initializers])
    opsets = [helper.make_opsetid("", opset)] + [helper.make_opsetid(d, v) for d, v in (domains or {}).items()]
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 8  # onnxruntime takes IR <= 13
    if check:
        onnx.checker.check_model(model)
    return model


def rand(*shape, seed=0, dtype="float32", scale=1.0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)


def ort_run(model: onnx.ModelProto, feeds: dict[str, np.ndarray], threads: int = 1) -> list[np.ndarray]:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def conv_model(n=1, c=8, k=16, hw=16, kernel=3, stride=1, pad=1, group=1, bias=True, relu=True, seed=0):
    w = rand(k, c // group, kernel, kernel, seed=seed, scale=(2.0 / (c // group * kernel * kernel)) ** 0.5)
    inits = [("w", w)] + ([("b", rand(k, seed=seed + 1, scale=0.1))] if bias else [])
    out_hw = (hw + 2 * pad - kernel) // stride + 1
    nodes = [helper.make_node("Conv", ["x", "w"] + (["b"] if bias else []), ["c" if relu else "y"],
                              kernel_shape=[kernel, kernel], strides=[stride, stride], pads=[pad] * 4, group=group)]
    if relu:
        nodes.append(helper.make_node("Relu", ["c"], ["y"]))
    return make_model(nodes, [("x", [n, c, hw, hw])], [("y", [n, k, out_hw, out_hw])], inits)


def conv_bn_relu_model(n: int | str = 1, c=3, k=8, hw=16, seed=0):
    rng = np.random.default_rng(seed)
    inits = [("w", rand(k, c, 3, 3, seed=seed)), ("b", rand(k, seed=seed + 1)),
             ("s", rng.uniform(0.5, 1.5, k).astype("float32")), ("bb", rand(k, seed=seed + 2)),
             ("m", rand(k, seed=seed + 3)), ("v", rng.uniform(0.5, 1.5, k).astype("float32"))]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
             helper.make_node("BatchNormalization", ["c", "s", "bb", "m", "v"], ["bn"], epsilon=1e-5),
             helper.make_node("Relu", ["bn"], ["y"])]
    return make_model(nodes, [("x", [n, c, hw, hw])], [("y", [n, k, hw, hw])], inits)


def single_op_model(op: str, inputs, outputs, initializers=(), **attrs) -> onnx.ModelProto:
    """One node named ``op`` over the given graph inputs + initializers."""
    names = [i[0] for i in inputs] + [n for n, _ in initializers]
    node = helper.make_node(op, names, [o[0] for o in outputs], name=f"{op.lower()}_0", **attrs)
    return make_model([node], inputs, outputs, initializers)





# ---- looking inside the pipeline ------------------------------------------------------------------------
def lower(model: onnx.ModelProto, until: str, **options):
    """The IRModule after pipeline phase ``until`` ("graph", "legalize", "fuse", "schedule", ...) for the
    options' target (llvm, this CPU, unless ``target=`` says otherwise)."""
    from dlc.frontend import import_onnx, load_model
    from dlc.options import CompileOptions
    from dlc.pipeline import Pipeline
    from dlc.target import resolve_target

    compile_options = CompileOptions(**options)
    return Pipeline(resolve_target(compile_options.target), compile_options).run(
        import_onnx(load_model(model)).mod, until=until)


def relax_ops(mod) -> dict[str, int]:
    """How often each Relax operator is called in ``main``, e.g. {"nn.conv2d": 2, "add": 3}."""
    import collections
    import re

    return dict(collections.Counter(re.findall(r"= R\.([\w.]+)\(", mod["main"].script())))


def kernels(mod) -> list[str]:
    """Names of the TensorIR kernels (PrimFuncs) in a module."""
    import tvm

    return sorted(gv.name_hint for gv, f in mod.functions_items() if isinstance(f, tvm.tirx.PrimFunc))


__all__ = ["OPSET", "TensorProto", "conv_bn_relu_model", "conv_model", "kernels", "lower", "make_model", "ort_run",
           "rand", "relax_ops", "single_op_model"]
