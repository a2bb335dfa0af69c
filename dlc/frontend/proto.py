"""Small questions about an ONNX ModelProto: its nodes (subgraphs included), opsets, real inputs."""

from __future__ import annotations

from collections.abc import Iterator

import onnx

from .converters import normalize_domain


def iter_nodes(graph: onnx.GraphProto) -> Iterator[onnx.NodeProto]:
    """Every node of a graph, including those inside If/Loop/Scan bodies."""
    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from iter_nodes(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for g in attr.graphs:
                    yield from iter_nodes(g)


def opset_imports(proto: onnx.ModelProto) -> dict[str, int]:
    """domain ("" for ONNX's own) -> imported version; a model without a default import means opset 1."""
    out = {normalize_domain(imp.domain): int(imp.version) for imp in proto.opset_import}
    out.setdefault("", 1)
    return out


def graph_inputs(proto: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    """The graph's real inputs: those not backed by an initializer."""
    inits = {t.name for t in proto.graph.initializer}
    return [v for v in proto.graph.input if v.name not in inits]


def node_label(node: onnx.NodeProto, index: int | None = None) -> str:
    return node.name or (f"#{index} {node.op_type}" if index is not None else f"<unnamed {node.op_type}>")
