"""`dlc inspect`: what a model is, in numbers, and what of it dlc cannot import — without compiling."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import onnx

from ..signature import TensorSpec
from .importer import _declared_shape, _elem_dtype, graph_inputs, iter_nodes, unsupported_ops
from .limits import num_elements, tensor_bytes
from .loader import LoadedModel


@dataclass
class ModelSummary:
    source: str
    ir_version: int
    producer: str
    opsets: dict[str, int]
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    op_counts: dict[str, int]
    num_nodes: int
    num_params: int
    param_bytes: int
    unsupported: dict[str, list[str]] = field(default_factory=dict)

    def to_json(self) -> dict:
        d = dict(self.__dict__)
        d["inputs"] = [t.to_json() for t in self.inputs]
        d["outputs"] = [t.to_json() for t in self.outputs]
        return d


def _spec(v: onnx.ValueInfoProto, where: str) -> TensorSpec:
    shape = _declared_shape(v)
    return TensorSpec(v.name, shape if shape is not None else ("?",), _elem_dtype(v, where))


def summarize(loaded: LoadedModel) -> ModelSummary:
    proto = loaded.proto
    nodes = list(iter_nodes(proto.graph))
    # Counted from the declared dims, not by decoding the data: inspect describes broken models too.
    params = list(proto.graph.initializer)
    return ModelSummary(
        source=loaded.source,
        ir_version=proto.ir_version,
        producer=f"{proto.producer_name} {proto.producer_version}".strip(),
        opsets={imp.domain or "ai.onnx": imp.version for imp in proto.opset_import},
        inputs=[_spec(v, loaded.source) for v in graph_inputs(proto)],
        outputs=[_spec(v, loaded.source) for v in proto.graph.output],
        op_counts=dict(Counter(n.op_type for n in nodes).most_common()),
        num_nodes=len(nodes),
        num_params=sum(num_elements(t.dims) for t in params),
        param_bytes=sum(tensor_bytes(t.data_type, t.dims) or 0 for t in params),
        unsupported=unsupported_ops(proto),
    )
