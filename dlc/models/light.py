"""The onnx wheel's "light" model zoo, with random weights that keep activations realistic.

The light models (``onnx/backend/test/data/light``) have the real graphs and shapes of ResNet-50, VGG-19 and
friends, but every weight is a ``ConstantOfShape`` of one value. ``light_model`` swaps each of them for a
random initializer of the same shape (He-initialised for conv/gemm weights), then *calibrates* every
BatchNormalization: its mean and variance are set to the statistics its input really has, so activations
stay O(1) through 50 layers and the final softmax is not one-hot (with raw random BN statistics, ResNet-50's
logits reach 1e5 and every comparison passes trivially). Calibration runs onnxruntime, once per BN depth.

``dlc.models.model_path`` builds and caches them (see ``zoo.py``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

LIGHT_DIR = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
LIGHT_MODELS = (
    "resnet50", "densenet121", "inception_v1", "inception_v2", "shufflenet", "squeezenet", "vgg19",
    "bvlc_alexnet", "zfnet512",
)


def light_model(name: str, seed: int = 0) -> onnx.ModelProto:
    """The light model ``name`` with random weights and calibrated BatchNorms (not cached; see zoo.py)."""
    if name not in LIGHT_MODELS:
        raise ValueError(f"unknown light model {name!r}; choose from {', '.join(LIGHT_MODELS)}")
    model = randomize_weights(onnx.load(LIGHT_DIR / f"light_{name}.onnx"), seed)
    calibrate_batchnorms(model, seed)
    return model


def input_spec(model: onnx.ModelProto) -> tuple[str, tuple[int, ...]]:
    """(name, shape) of the first graph input that is not an initializer."""
    inits = {t.name for t in model.graph.initializer}
    v = next(i for i in model.graph.input if i.name not in inits)
    return v.name, tuple(d.dim_value for d in v.type.tensor_type.shape.dim)


def random_input(model: onnx.ModelProto, seed: int = 1) -> dict[str, np.ndarray]:
    name, shape = input_spec(model)
    return {name: np.random.default_rng(seed).standard_normal(shape).astype(np.float32)}


def randomize_weights(model: onnx.ModelProto, seed: int = 0) -> onnx.ModelProto:
    """Replace every ConstantOfShape weight by a random initializer; modernize the graph (IR 8)."""
    rng = np.random.default_rng(seed)
    g = model.graph
    consts = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    consumers: dict[str, list[tuple[onnx.NodeProto, int]]] = {}
    for n in g.node:
        for k, name in enumerate(n.input):
            consumers.setdefault(name, []).append((n, k))

    def role(name: str) -> tuple[str | None, int]:
        for n, k in consumers.get(name, []):
            return role(n.output[0]) if n.op_type == "Unsqueeze" else (n.op_type, k)
        return None, -1

    kept = []
    for n in g.node:
        if n.op_type != "ConstantOfShape" or n.input[0] not in consts:
            kept.append(n)
            continue
        shape = tuple(int(d) for d in consts[n.input[0]])
        op, k = role(n.output[0])
        if op in ("Conv", "Gemm") and k == 1:  # He init keeps the activation variance through ReLUs
            fan_in = int(np.prod(shape[1:])) if op == "Conv" else shape[-1]
            w = rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)
        elif (op == "BatchNormalization" and k in (1, 4)) or op == "Mul":  # scales and variances
            w = rng.uniform(0.5, 1.5, shape)
        else:  # biases, shifts, means
            w = rng.standard_normal(shape) * 0.1
        g.initializer.append(numpy_helper.from_array(w.astype(np.float32), n.output[0]))
    del g.node[:]
    g.node.extend(kept)
    used = {i for n in g.node for i in n.input} | {o.name for o in g.output}
    inits = [t for t in g.initializer if t.name in used]
    del g.initializer[:]
    g.initializer.extend(inits)
    init_names = {t.name for t in inits}
    inputs = [v for v in g.input if v.name in used and v.name not in init_names]
    del g.input[:]
    g.input.extend(inputs)
    model.ir_version = 8  # IR >= 4 lets initializers stay out of graph.input; onnxruntime takes <= 13
    return model


def calibrate_batchnorms(model: onnx.ModelProto, seed: int = 0) -> None:
    """Set each BatchNormalization's mean/var to its input's real per-channel statistics (in place)."""
    import onnxruntime as ort  # the test extra; only needed to build the zoo

    g = model.graph
    bns = [n for n in g.node if n.op_type == "BatchNormalization"]
    if not bns:
        return
    inits = {t.name: t for t in g.initializer}
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    # Overridable initializers: listing mean/var as graph inputs lets each run feed new values.
    stat_names = [name for bn in bns for name in bn.input[3:5]]
    for name in stat_names:
        probe.graph.input.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    del probe.graph.output[:]
    for bn in bns:
        probe.graph.output.append(helper.make_tensor_value_info(bn.input[0], onnx.TensorProto.FLOAT, None))
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep BN inputs observable
    opts.log_severity_level = 3  # it warns about every overridable initializer, which is the point here
    sess = ort.InferenceSession(probe.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    feeds = {**random_input(model, seed + 1), **{n: numpy_helper.to_array(inits[n]) for n in stat_names}}
    # Iteration k makes the BNs at depth k exact; stop when nothing moves.
    for _ in range(len(bns) + 1):
        acts = sess.run(None, feeds)
        moved = False
        for bn, x in zip(bns, acts):
            axes = (0, *range(2, x.ndim))
            # Before the BNs above it are exact, a deep BN's input can overflow float32 (ShuffleNet's does):
            # its statistics are inf or nan for now and exact by the iteration that reaches its depth.
            with np.errstate(over="ignore", invalid="ignore"):
                mean, var = x.mean(axis=axes), x.var(axis=axes) + 1e-3
            if not (np.allclose(mean, feeds[bn.input[3]], rtol=1e-3, atol=1e-4)
                    and np.allclose(var, feeds[bn.input[4]], rtol=1e-3, atol=1e-4)):
                moved = True
            feeds[bn.input[3]], feeds[bn.input[4]] = mean.astype(np.float32), var.astype(np.float32)
        if not moved:
            break
    for name in stat_names:
        inits[name].CopyFrom(numpy_helper.from_array(feeds[name], name))
