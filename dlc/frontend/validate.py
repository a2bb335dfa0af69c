"""Refuse, before TVM sees the model, what TVM would choke on — with one line that names the tensor or node.

TVM's importer trusts its input: a tensor whose data does not match its shape, a node whose inputs do not fit
its type constraints, a shape no machine can allocate or an element type it has no code for surface deep in
TVM as a confusing message, a C++ check failure, or a multi-terabyte allocation. ``validate_for_import``
runs cheap checks first, in this order:

1. string attributes that select a mode (``Resize.mode``, ``Pad.mode``, ``auto_pad``, ...) hold one of the
   values the ONNX spec lists — neither onnx's checker nor its shape inference looks at them, and TVM
   fails deep inside a pass on an unknown one;
2. every tensor in the model (initializers, Constant values, subgraphs) holds exactly the values its shape
   says, has a known element type dlc compiles, and fits in memory (``limits.memory_budget``), as do all
   initializers together;
3. ONNX shape and type inference in strict mode, with data propagation, on a light copy of the model (large
   initializers become typed inputs, so nothing big is copied; declared intermediate and output shapes are
   dropped, since they are only hints that dlc does not use), with the user's ``--input-shape`` applied —
   in a child process bounded in time and memory, since data propagation can be made to explode. An
   inference error of a main-graph node refuses the model; one inside a subgraph or function body does not
   (see ``_fatal``);
4. every value whose shape is now known statically — inputs, intermediates, outputs, in every subgraph —
   fits in memory and has an element type dlc compiles.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

import onnx
from onnx import TensorProto

from ..errors import ModelError
from ..signature import TensorSpec
from .limits import element_bits, human_bytes, num_elements, tensor_bytes, too_large
from .loader import LoadedModel, all_tensors
from .sandbox import run_bounded

# Element types with no TVM counterpart at all: strings, complex numbers, and codes this onnx does not know.
# (float8, int4 and friends do have one; whether an operator supports them is for TVM's importer to say.)
UNCOMPILABLE_TYPES = frozenset({TensorProto.UNDEFINED, TensorProto.STRING, TensorProto.COMPLEX64,
                                TensorProto.COMPLEX128})


def compilable(data_type: int) -> bool:
    return data_type not in UNCOMPILABLE_TYPES and element_bits(data_type) is not None


_LIGHT_ELEMENTS = 4096  # initializers larger than this cannot be shape tensors; inference sees only their type

# Where a TensorProto keeps its values when not in raw_data, and how many entries one element takes.
_TYPED_FIELD = {
    TensorProto.FLOAT: ("float_data", 1), TensorProto.DOUBLE: ("double_data", 1),
    TensorProto.INT64: ("int64_data", 1), TensorProto.UINT32: ("uint64_data", 1),
    TensorProto.UINT64: ("uint64_data", 1),
}


_AUTO_PAD = frozenset({"NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"})
# (op type, attribute) -> the values the ONNX spec allows.
ENUM_ATTRIBUTES: dict[tuple[str, str], frozenset[str]] = {
    **{(op, "auto_pad"): _AUTO_PAD for op in ("Conv", "ConvTranspose", "ConvInteger", "QLinearConv", "MaxPool",
                                              "AveragePool", "LpPool")},
    ("Pad", "mode"): frozenset({"constant", "reflect", "edge", "wrap"}),
    ("Resize", "mode"): frozenset({"nearest", "linear", "cubic"}),
    ("Resize", "coordinate_transformation_mode"): frozenset({
        "half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric",
        "tf_crop_and_resize", "tf_half_pixel_for_nn"}),
    ("Resize", "nearest_mode"): frozenset({"round_prefer_floor", "round_prefer_ceil", "floor", "ceil"}),
    ("Resize", "keep_aspect_ratio_policy"): frozenset({"stretch", "not_larger", "not_smaller"}),
    ("Upsample", "mode"): frozenset({"nearest", "linear", "bilinear"}),
    ("DepthToSpace", "mode"): frozenset({"DCR", "CRD"}),
    ("GridSample", "mode"): frozenset({"bilinear", "nearest", "bicubic", "linear", "cubic"}),
    ("GridSample", "padding_mode"): frozenset({"zeros", "border", "reflection"}),
    ("RoiAlign", "mode"): frozenset({"avg", "max"}),
    ("RoiAlign", "coordinate_transformation_mode"): frozenset({"half_pixel", "output_half_pixel"}),
    ("ScatterElements", "reduction"): frozenset({"none", "add", "mul", "max", "min"}),
    ("ScatterND", "reduction"): frozenset({"none", "add", "mul", "max", "min"}),
    ("Gelu", "approximate"): frozenset({"none", "tanh"}),
    ("BitShift", "direction"): frozenset({"LEFT", "RIGHT"}),
    **{(op, "direction"): frozenset({"forward", "reverse", "bidirectional"}) for op in ("LSTM", "GRU", "RNN")},
}


def type_name(data_type: int) -> str:
    try:
        return TensorProto.DataType.Name(data_type)
    except ValueError:
        return f"type code {data_type}"


def _stored_values(t: TensorProto) -> tuple[int, int]:
    """(values present, values the shape needs) in the unit the tensor stores them in."""
    n = num_elements(t.dims)
    if t.HasField("raw_data"):
        need = tensor_bytes(t.data_type, t.dims)
        return len(t.raw_data), (need if need is not None else -1)
    if (element_bits(t.data_type) or 8) < 8:  # 4- and 2-bit types pack several values per entry: the
        return 0, 0  # checker already compares what is stored with the shape
    field, per = _TYPED_FIELD.get(t.data_type, ("int32_data", 1))  # int32_data: the narrow integer/float types
    return len(getattr(t, field)), n * per


def check_attributes(loaded: LoadedModel) -> None:
    for g in _graphs(loaded.proto.graph):
        for i, node in enumerate(g.node):
            if node.domain not in ("", "ai.onnx"):
                continue
            for a in node.attribute:
                allowed = ENUM_ATTRIBUTES.get((node.op_type, a.name))
                if allowed is None or a.type != onnx.AttributeProto.STRING:
                    continue
                value = a.s.decode(errors="replace")
                if value not in allowed:
                    label = node.name or f"#{i} {node.op_type}"
                    raise ModelError(f"node {label!r} ({node.op_type}): {a.name} {value[:40]!r} is not one of "
                                     f"{', '.join(sorted(allowed))}", where=loaded.source)


def check_tensors(loaded: LoadedModel) -> None:
    where = loaded.source
    total = 0
    for t in all_tensors(loaded.proto):
        name = repr(t.name) if t.name else "(unnamed)"
        dims = tuple(t.dims)
        if any(d < 0 for d in dims):
            raise ModelError(f"tensor {name} has a negative dim in its shape {dims}", where=where)
        size = tensor_bytes(t.data_type, dims)
        if size is not None and (reason := too_large(size)):
            raise ModelError(f"tensor {name} of shape {dims} {reason}", where=where)
        if not compilable(t.data_type):
            raise ModelError(f"tensor {name} has element type {type_name(t.data_type)}, which dlc cannot compile",
                             where=where)
        have, need = _stored_values(t)
        if have != need:
            unit = "bytes" if t.HasField("raw_data") else "values"
            raise ModelError(f"tensor {name} of shape {dims} and type {type_name(t.data_type)} needs {need} "
                             f"{unit} of data but holds {have}", where=where)
        total += size or 0
    if reason := too_large(total):
        raise ModelError(f"the model's tensors together {reason}", where=where)


# ---- shape inference --------------------------------------------------------------------------------------
def _graphs(g: onnx.GraphProto) -> Iterator[onnx.GraphProto]:
    yield g
    for node in g.node:
        for a in node.attribute:
            if a.HasField("g"):
                yield from _graphs(a.g)
            for sub in a.graphs:
                yield from _graphs(sub)


def _light_copy(proto: onnx.ModelProto, inputs: Sequence[TensorSpec]) -> onnx.ModelProto:
    """The model without big weights and without shape hints, its inputs shaped as dlc will compile them."""
    light = onnx.ModelProto()
    light.ir_version = proto.ir_version
    light.opset_import.extend(proto.opset_import)
    light.functions.extend(proto.functions)
    g, lg = proto.graph, light.graph
    lg.name = g.name
    lg.node.extend(g.node)
    lg.input.extend(g.input)
    lg.output.extend(g.output)
    lg.sparse_initializer.extend(g.sparse_initializer)
    declared = {v.name for v in g.input}
    for t in g.initializer:
        if num_elements(t.dims) <= _LIGHT_ELEMENTS:
            lg.initializer.append(t)
        elif t.name not in declared:
            lg.input.append(onnx.helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
    specs = {s.name: s for s in inputs}
    for v in lg.input:
        if v.name in specs and v.type.HasField("tensor_type"):
            shape = v.type.tensor_type.shape
            shape.Clear()
            for d in specs[v.name].shape:
                dim = shape.dim.add()
                if isinstance(d, int):
                    dim.dim_value = d
                else:
                    dim.dim_param = d
    for v in lg.output:
        v.type.tensor_type.ClearField("shape")
    for sub in _graphs(lg):
        del sub.value_info[:]
    return light


def _fatal(message: str) -> bool:
    """Whether a strict-inference error condemns the model. Errors of a node of the main graph do (the node's
    inputs do not fit its type constraints, shapes do not broadcast, ...); errors found inside a subgraph or
    a function body, and declared-type disagreements about sequences and optionals, do not: there onnx's
    Python-side inference is stricter than onnxruntime (it refuses several of onnx's own conformance models:
    test_mvn, test_if_seq, test_split_to_sequence_*), so dlc leaves those to TVM's importer."""
    return message.count("(op_type:") <= 1 and "type case mismatch" not in message


def _inference_message(text: str) -> str:
    first = (text.strip().splitlines() or ["error"])[0]
    first = re.sub(r"\[(ShapeInferenceError|TypeInferenceError|ValidationError)\]\s*", "", first)
    return first.replace("Inference error(s): ", "").strip()


INFERENCE_SECONDS = 120  # a light model infers in well under a second; this only bounds a runaway
INFERENCE_MEMORY = 512 << 20  # above what the inference of a light model needs


def infer_shapes(loaded: LoadedModel, inputs: Sequence[TensorSpec]) -> onnx.ModelProto:
    """The light copy with every shape ONNX can infer, or ModelError naming the node that does not type-check.

    Runs in a bounded child process (``sandbox.py``): first plain inference, whose result is checked here
    even if the second step fails (so a 2^40-element ``Range`` is named as such), then inference with data
    propagation, which computes shape tensors' values and so can be made to explode.
    """
    light = _light_copy(loaded.proto, inputs)
    check_values(light, loaded.source, inputs_only=True)  # a clearer message than inference's type errors

    def work(emit) -> None:
        for data_prop in (False, True):
            try:
                inferred = onnx.shape_inference.infer_shapes(light, check_type=True, strict_mode=True,
                                                             data_prop=data_prop)
            except onnx.shape_inference.InferenceError as e:
                if _fatal(str(e)):
                    raise
                inferred = onnx.shape_inference.infer_shapes(light, data_prop=data_prop)  # what can be inferred
            emit(inferred.SerializeToString())

    results, failure = run_bounded(work, seconds=INFERENCE_SECONDS, extra_memory=INFERENCE_MEMORY)
    inferred = []
    for data in results:
        model = onnx.ModelProto()
        model.ParseFromString(data)
        check_values(model, loaded.source)
        inferred.append(model)
    if failure is None:
        return inferred[-1]
    what = "shape inference" + (" with data propagation" if inferred else "")
    if failure.kind == "error":
        raise ModelError(f"shape inference: {_inference_message(failure.detail)}", where=loaded.source)
    if failure.kind in ("memory", "timeout"):
        spent = f"more than {human_bytes(INFERENCE_MEMORY)}" if failure.kind == "memory" \
            else f"more than {INFERENCE_SECONDS}s"
        raise ModelError(f"{what} took {spent}: a computed shape in this model is absurdly large "
                         "(a Range, Tile, Expand or ConstantOfShape of a shape tensor?)", where=loaded.source)
    raise ModelError(f"{what} crashed ({failure.detail}) on this model", where=loaded.source)


def _static_dims(v: onnx.ValueInfoProto) -> tuple[int, ...] | None:
    tt = v.type.tensor_type
    if not tt.HasField("shape"):
        return None
    dims = []
    for d in tt.shape.dim:
        if not d.HasField("dim_value") or d.dim_value < 0:
            return None
        dims.append(d.dim_value)
    return tuple(dims)


def check_values(model: onnx.ModelProto, where: str, *, inputs_only: bool = False) -> None:
    for g in _graphs(model.graph):
        for v in (g.input if inputs_only else (*g.input, *g.value_info, *g.output)):
            if not v.type.HasField("tensor_type"):
                continue  # sequences, optionals: the importer decides
            elem = v.type.tensor_type.elem_type
            if elem and not compilable(elem):
                raise ModelError(f"value {v.name!r} has element type {type_name(elem)}, which dlc cannot compile",
                                 where=where)
            shape = v.type.tensor_type.shape
            # Only in the main graph: in a subgraph onnx's inference may write -1 for "unknown".
            if g is model.graph and v not in g.input and any(d.HasField("dim_value") and d.dim_value < 0
                                                             for d in shape.dim):
                dims = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in shape.dim)
                raise ModelError(f"value {v.name!r} would have shape {dims}: its producer's attributes or inputs "
                                 "do not fit together", where=where)
            dims = _static_dims(v)
            size = tensor_bytes(elem, dims) if dims is not None and elem else None
            if size is not None and (reason := too_large(size)):
                raise ModelError(f"value {v.name!r} of shape {dims} {reason}", where=where)


def validate_for_import(loaded: LoadedModel, inputs: Sequence[TensorSpec]) -> onnx.ModelProto:
    """All of the above. Returns the light copy with its inferred value types (the importer reads node output
    dtypes from it) if TVM may have the model."""
    check_attributes(loaded)
    check_tensors(loaded)
    inferred = infer_shapes(loaded, inputs)
    check_values(inferred, loaded.source)
    return inferred
