"""Inline ONNX functions before import: the model's own (``model.functions``), and ONNX's function bodies for
ops dlc has no converter for.

Many ONNX ops are *defined* as functions of other ops (``Swish``, ``Celu``, ``NegativeLogLikelihoodLoss``,
``SoftmaxCrossEntropyLoss``, ``Attention``, ``RMSNormalization``, window functions, ...). For those, onnx's
inliner replaces each node with its body (context-dependent bodies included), which the importer then converts
op by op, folding the shape arithmetic the bodies are full of.
"""

from __future__ import annotations

import onnx
import onnx.inliner

from .converters import find_converter, has_function_body, normalize_domain
from .proto import iter_nodes, opset_imports


def _missing_with_body(proto: onnx.ModelProto) -> set[tuple[str, str]]:
    opsets = opset_imports(proto)
    out = set()
    for node in iter_nodes(proto.graph):
        domain = normalize_domain(node.domain)
        if find_converter(node.op_type, domain) is None and has_function_body(node.op_type, domain,
                                                                                opsets.get(domain, 1)):
            out.add((node.domain, node.op_type))
    return out


def inline_functions(proto: onnx.ModelProto) -> onnx.ModelProto:
    """The model with local functions and the bodies of converter-less ONNX ops inlined (a copy if changed)."""
    if proto.functions:
        proto = onnx.inliner.inline_local_functions(proto)
    for _ in range(8):  # a body may use another op that is itself a function
        ids = _missing_with_body(proto)
        if not ids:
            break
        try:
            proto = onnx.inliner.inline_selected_functions(proto, sorted(ids), inline_schema_functions=True)
        except Exception:  # the inliner refused: the importer reports these ops as unsupported
            break
    return proto
