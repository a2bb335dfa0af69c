"""``onnx.backend.base.Backend`` over dlc's public API: ``prepare`` is ``dlc.compile``, ``run`` is
``CompiledModel.run``. Nothing here reaches into dlc's internals, so the conformance numbers are the numbers a
user of ``dlc.compile`` gets.

    from dlc.onnx_backend import DlcBackend
    rep = DlcBackend.prepare(model)            # compiles for this CPU
    outputs = rep.run([x, y])                  # positional, in graph-input order (initializers excluded)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import onnx
from onnx import helper
from onnx.backend.base import Backend, BackendRep, namedtupledict

import dlc


class DlcBackendRep(BackendRep):
    """A compiled model that runs positional or named inputs and returns outputs in ONNX order."""

    def __init__(self, model: dlc.CompiledModel):
        self.model = model
        self.input_names = [t.name for t in model.inputs]
        self.output_names = [t.name for t in model.outputs]

    def run(self, inputs: Any, **kwargs: Any) -> tuple[Any, ...]:
        if isinstance(inputs, Mapping):
            feeds = dict(inputs)
        else:
            if isinstance(inputs, np.ndarray):
                inputs = [inputs]
            inputs = list(inputs)
            if len(inputs) != len(self.input_names):
                raise dlc.InputError(f"got {len(inputs)} inputs, the model takes {len(self.input_names)}: "
                                     f"{self.input_names}")
            feeds = dict(zip(self.input_names, inputs))
        outputs = self.model.run(feeds)
        return namedtupledict("Outputs", self.output_names)(*[outputs[n] for n in self.output_names])


class DlcBackend(Backend):
    """dlc as an ONNX backend: ahead-of-time compilation for the host CPU (``device="CPU"``)."""

    target = "llvm"

    @classmethod
    def prepare(cls, model: onnx.ModelProto, device: str = "CPU", **kwargs: Any) -> DlcBackendRep:
        if not cls.supports_device(device):
            raise dlc.TargetError(f"dlc's ONNX backend runs on CPU; device {device!r} is not supported here")
        return DlcBackendRep(dlc.compile(model, target=cls.target, **kwargs))

    @classmethod
    def run_model(cls, model: onnx.ModelProto, inputs: Any, device: str = "CPU", **kwargs: Any):
        return cls.prepare(model, device, **kwargs).run(inputs)

    @classmethod
    def run_node(cls, node: onnx.NodeProto, inputs: Sequence[np.ndarray], device: str = "CPU",
                 outputs_info: Sequence[tuple[Any, tuple]] | None = None, **kwargs: Any):
        """One node on concrete inputs: wrapped in a one-node model whose input shapes are the inputs'."""
        names = [n for n in node.input if n]
        arrays = [np.asarray(a) for a in inputs]
        graph_inputs = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
                        for n, a in zip(names, arrays)]
        if outputs_info:
            graph_outputs = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(np.dtype(dt)), shape)
                             for n, (dt, shape) in zip(node.output, outputs_info)]
        else:
            graph_outputs = [helper.make_empty_tensor_value_info(n) for n in node.output]
        graph = helper.make_graph([node], "run_node", graph_inputs, graph_outputs)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", kwargs.pop("opset", 17))])
        model = onnx.shape_inference.infer_shapes(model)
        del model.graph.output[:]
        model.graph.output.extend(v for v in model.graph.value_info if v.name in node.output)
        return cls.prepare(model, device, **kwargs).run(arrays)

    @classmethod
    def supports_device(cls, device: str) -> bool:
        return device.upper().split(":")[0] == "CPU"


prepare = DlcBackend.prepare
run_model = DlcBackend.run_model
run_node = DlcBackend.run_node
supports_device = DlcBackend.supports_device
