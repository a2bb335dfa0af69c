"""ONNX functions: the model's own (``model.functions``, inlined before import) and ONNX's function bodies for
ops dlc has no converter for (expanded node by node while importing).

Many ONNX ops are *defined* as functions of other ops (``Swish``, ``Celu``, ``NegativeLogLikelihoodLoss``,
``SoftmaxCrossEntropyLoss``, ``Attention``, ``RMSNormalization``, window functions, ...). ``expand_node``
instantiates the body for one node, with the node's attributes (schema defaults filled in) and, for
context-dependent bodies, the exact types of its inputs as the importer knows them; internal names get a
unique prefix. The importer converts the body's nodes with the opsets the body imports, folding the shape
arithmetic the bodies are full of.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import onnx
import onnx.inliner
from onnx import AttributeProto, FunctionProto, NodeProto

from .converters import normalize_domain

_expansions = itertools.count()


def inline_local_functions(proto: onnx.ModelProto) -> onnx.ModelProto:
    return onnx.inliner.inline_local_functions(proto) if proto.functions else proto


def _with_defaults(node: NodeProto, schema: onnx.defs.OpSchema) -> NodeProto:
    """The node with its schema's default attributes spelled out (a body refers to them by name)."""
    out = NodeProto()
    out.CopyFrom(node)
    have = {a.name for a in node.attribute}
    for name, a in schema.attributes.items():
        if name not in have and a.default_value is not None and a.default_value.type:
            out.attribute.append(a.default_value)
    return out


def function_body(node: NodeProto, opset: int, input_types: list[onnx.TypeProto]
                  ) -> tuple[FunctionProto, NodeProto] | None:
    """ONNX's body for this node at this opset, and the node with its default attributes spelled out (None if
    the op is not a function or the body cannot be built for this configuration)."""
    domain = normalize_domain(node.domain)
    try:
        schema = onnx.defs.get_schema(node.op_type, opset, domain)
    except onnx.defs.SchemaError:
        return None
    full = _with_defaults(node, schema)
    plain = [v for v in schema.function_opset_versions if v <= opset]
    ctx = [v for v in schema.context_dependent_function_opset_versions if v <= opset]
    try:
        if plain and (not ctx or max(plain) >= max(ctx)):
            return FunctionProto.FromString(schema.get_function_with_opset_version(max(plain))), full
        if ctx:
            data = schema.get_context_dependent_function_with_opset_version(
                max(ctx), full.SerializeToString(), [t.SerializeToString() for t in input_types])
            return FunctionProto.FromString(data), full
    except Exception:  # the schema cannot build a body for this configuration
        return None
    return None


def expand_node(node: NodeProto, body: FunctionProto) -> tuple[list[NodeProto], dict[str, int]]:
    """The body's nodes wired to the node's inputs/outputs, internal names made unique; and the body's opsets."""
    prefix = f"__{node.op_type}{next(_expansions)}__"
    io = {}
    for i, name in enumerate(body.input):
        io[name] = node.input[i] if i < len(node.input) else ""
    for i, name in enumerate(body.output):
        if i < len(node.output) and node.output[i]:
            io[name] = node.output[i]
    attrs = {a.name: a for a in node.attribute}

    def rename(name: str) -> str:
        if name in io:
            return io[name]
        return "" if name == "" else prefix + name

    nodes = [_rewire(n, rename, attrs, prefix) for n in body.node]
    return nodes, {normalize_domain(o.domain): int(o.version) for o in body.opset_import}


def _rewire(node: NodeProto, rename: Callable[[str], str], attrs: dict[str, AttributeProto], prefix: str
            ) -> NodeProto:
    out = NodeProto()
    out.CopyFrom(node)
    del out.input[:]
    del out.output[:]
    del out.attribute[:]
    out.input.extend(rename(n) for n in node.input)
    out.output.extend(rename(n) for n in node.output)
    for a in node.attribute:
        if a.ref_attr_name:
            if a.ref_attr_name in attrs:
                new = AttributeProto()
                new.CopyFrom(attrs[a.ref_attr_name])
                new.name = a.name
                out.attribute.append(new)
            continue
        new = AttributeProto()
        new.CopyFrom(a)
        if a.type == AttributeProto.GRAPH:
            _rewire_graph(new.g, rename, attrs, prefix)
        elif a.type == AttributeProto.GRAPHS:
            for g in new.graphs:
                _rewire_graph(g, rename, attrs, prefix)
        out.attribute.append(new)
    return out


def _rewire_graph(g: onnx.GraphProto, rename, attrs, prefix) -> None:
    local = {}
    for v in [*g.input, *g.output]:
        local[v.name] = v.name = prefix + v.name
    for t in g.initializer:
        local[t.name] = t.name = prefix + t.name

    def sub_rename(name: str) -> str:
        return local.get(name) or rename(name)

    nodes = [_rewire(n, sub_rename, attrs, prefix) for n in g.node]
    del g.node[:]
    g.node.extend(nodes)
