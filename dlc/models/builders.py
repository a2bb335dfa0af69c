"""Benchmark models built in code: a MobileNetV2 (depthwise convs, ReLU6, residuals) and a transformer encoder.

Both have random weights (He-initialised; MobileNetV2's BatchNorms calibrated like the light zoo's) and are
written the way exporters write them: Conv + BatchNormalization + Clip(0, 6) for MobileNetV2; MatMul + Add,
Reshape/Transpose head splitting, Softmax, LayerNormalization and erf-GELU for the encoder (PyTorch's opset-17
export of ``nn.TransformerEncoderLayer`` with ``norm_first=False, activation="gelu"``).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .light import calibrate_batchnorms

OPSET = 17


class _Graph:
    """A tiny graph builder: unique names, initializers, nodes."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._n = 0

    def name(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}_{self._n}"

    def const(self, prefix: str, array: np.ndarray) -> str:
        name = self.name(prefix)
        self.inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def op(self, op_type: str, inputs: list[str], **attrs) -> str:
        out = self.name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out

    def model(self, name: str, inputs, outputs) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, name, inputs, outputs, self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                  producer_name="dlc.models.builders")
        model.ir_version = 8
        onnx.checker.check_model(model)
        return model


def _conv_bn(g: _Graph, x: str, cin: int, cout: int, k: int, stride: int, groups: int, relu6: bool) -> str:
    w = g.rng.standard_normal((cout, cin // groups, k, k)) * np.sqrt(2.0 / (cin // groups * k * k))
    y = g.op("Conv", [x, g.const("w", w.astype(np.float32))], kernel_shape=[k, k], strides=[stride, stride],
             pads=[k // 2] * 4, group=groups)
    bn = [g.const(p, a.astype(np.float32)) for p, a in (
        ("gamma", g.rng.uniform(0.5, 1.5, cout)), ("beta", g.rng.standard_normal(cout) * 0.1),
        ("mean", np.zeros(cout)), ("var", np.ones(cout)))]
    y = g.op("BatchNormalization", [y, *bn], epsilon=1e-5)
    if relu6:
        y = g.op("Clip", [y, g.const("lo", np.array(0, np.float32)), g.const("hi", np.array(6, np.float32))])
    return y


def mobilenet_v2(batch: int = 1, resolution: int = 224, num_classes: int = 1000, seed: int = 0) -> onnx.ModelProto:
    """MobileNetV2 (Sandler et al. 2018), width 1.0: inverted residual blocks with depthwise 3x3 convs."""
    g = _Graph(seed)
    x = _conv_bn(g, "input", 3, 32, 3, 2, 1, True)
    cin = 32
    for t, c, n, s in [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                       (6, 160, 3, 2), (6, 320, 1, 1)]:
        for i in range(n):
            stride = s if i == 0 else 1
            hidden = cin * t
            y = _conv_bn(g, x, cin, hidden, 1, 1, 1, True) if t != 1 else x
            y = _conv_bn(g, y, hidden, hidden, 3, stride, hidden, True)
            y = _conv_bn(g, y, hidden, c, 1, 1, 1, False)
            x = g.op("Add", [x, y]) if stride == 1 and cin == c else y
            cin = c
    x = _conv_bn(g, x, cin, 1280, 1, 1, 1, True)
    x = g.op("Flatten", [g.op("GlobalAveragePool", [x])], axis=1)
    # Scaled so the logits spread over a few units: a near-uniform softmax would make every comparison pass.
    w = (g.rng.standard_normal((num_classes, 1280)) * 4.0 / np.sqrt(1280)).astype(np.float32)
    x = g.op("Gemm", [x, g.const("fc_w", w), g.const("fc_b", np.zeros(num_classes, np.float32))], transB=1)
    logits = g.op("Softmax", [x], axis=1)
    model = g.model("mobilenet_v2", [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                                   [batch, 3, resolution, resolution])],
                    [helper.make_tensor_value_info(logits, TensorProto.FLOAT, [batch, num_classes])])
    calibrate_batchnorms(model, seed)
    return model


def transformer_encoder(batch: int = 1, seq: int = 128, hidden: int = 256, heads: int = 4, layers: int = 4,
                        ffn: int = 1024, seed: int = 0) -> onnx.ModelProto:
    """A post-norm transformer encoder (BERT-style) over float embeddings ``x[batch, seq, hidden]``."""
    g = _Graph(seed)
    head = hidden // heads

    def linear(x: str, cin: int, cout: int) -> str:
        w = (g.rng.standard_normal((cin, cout)) * np.sqrt(1.0 / cin)).astype(np.float32)
        return g.op("Add", [g.op("MatMul", [x, g.const("w", w)]),
                            g.const("b", (g.rng.standard_normal(cout) * 0.02).astype(np.float32))])

    def layer_norm(x: str) -> str:
        return g.op("LayerNormalization", [x, g.const("ln_g", np.ones(hidden, np.float32)),
                                           g.const("ln_b", np.zeros(hidden, np.float32))], axis=-1, epsilon=1e-5)

    def split_heads(x: str) -> str:  # [B, S, H] -> [B, heads, S, head]
        x = g.op("Reshape", [x, g.const("shape", np.array([batch, seq, heads, head], np.int64))])
        return g.op("Transpose", [x], perm=[0, 2, 1, 3])

    x = "x"
    for _ in range(layers):
        q, k, v = (split_heads(linear(x, hidden, hidden)) for _ in range(3))
        scores = g.op("MatMul", [q, g.op("Transpose", [k], perm=[0, 1, 3, 2])])
        scores = g.op("Div", [scores, g.const("scale", np.array(np.sqrt(head), np.float32))])
        ctx = g.op("MatMul", [g.op("Softmax", [scores], axis=-1), v])
        ctx = g.op("Reshape", [g.op("Transpose", [ctx], perm=[0, 2, 1, 3]),
                               g.const("shape", np.array([batch, seq, hidden], np.int64))])
        x = layer_norm(g.op("Add", [x, linear(ctx, hidden, hidden)]))
        h = linear(x, hidden, ffn)
        # erf-GELU as exported: 0.5 * h * (1 + erf(h / sqrt(2)))
        erf = g.op("Erf", [g.op("Div", [h, g.const("sqrt2", np.array(np.sqrt(2.0), np.float32))])])
        h = g.op("Mul", [g.op("Mul", [h, g.op("Add", [erf, g.const("one", np.array(1.0, np.float32))])]),
                         g.const("half", np.array(0.5, np.float32))])
        x = layer_norm(g.op("Add", [x, linear(h, ffn, hidden)]))
    return g.model("transformer_encoder",
                   [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, seq, hidden])],
                   [helper.make_tensor_value_info(x, TensorProto.FLOAT, [batch, seq, hidden])])
