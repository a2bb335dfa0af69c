"""A structure-aware mutator: a seed model plus a few random edits that keep it *almost* valid.

Random bytes mostly die in the protobuf parser; the interesting failures are models that parse, pass some
checks and then mislead a later stage. So most edits are structural — a dim, an attribute, an input wire, a
dtype, an op type, the opset, an initializer's values or its external-data reference — and only a few flip
raw bytes of the serialized file. ``make_case(seed, index)`` is a pure function of its arguments (and of this
file and ``seeds.py``): case 137 of seed 1 is the same model on every machine, so a failure is reproduced
with ``--only 137``.

Every mutator takes a ``_Mutation`` context (the model, the rng, the case folder's extra files, extra CLI
flags) and returns a short description of what it did, or None when it does not apply to this model.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import AttributeProto, TensorProto, helper, numpy_helper

from .seeds import SEEDS

# Values that break things: zero, negatives, int32/int64 edges, sizes no machine can allocate.
INT_EDGES = (0, 1, 2, 3, -1, -2, 5, 16, 255, 2**31 - 1, 2**31, 2**32 + 1, 2**40, 2**62, 2**63 - 1, -(2**63))
FLOAT_EDGES = (0.0, -0.0, 1.0, -1.0, 0.5, 1e-7, 1e30, -1e30, math.nan, math.inf, -math.inf)
STRINGS = (b"NOTSET", b"SAME_UPPER", b"SAME_LOWER", b"VALID", b"constant", b"reflect", b"edge", b"wrap",
           b"nearest", b"linear", b"cubic", b"half_pixel", b"asymmetric", b"align_corners", b"floor",
           b"round_prefer_ceil", b"DCR", b"CRD", b"", b"\xff\xfe\x00", b"definitely-not-a-mode")
DTYPES = tuple(v for _, v in TensorProto.DataType.items()) + (99, -3)
COMMON_DTYPES = (TensorProto.FLOAT, TensorProto.INT64, TensorProto.INT32, TensorProto.FLOAT16, TensorProto.BOOL,
                 TensorProto.UINT8, TensorProto.INT8, TensorProto.DOUBLE, TensorProto.STRING)
SYMBOLS = ("N", "batch", "", "seq len", "N", "?")
# Ops dlc compiles, weighted in over the ~200 of the default domain so that swaps usually reach TVM.
COMMON_OPS = ("Relu", "Add", "Mul", "Conv", "MatMul", "Gemm", "Reshape", "Transpose", "Concat", "Split", "Slice",
              "Gather", "Pad", "Softmax", "MaxPool", "AveragePool", "ReduceMean", "ReduceSum", "Cast", "Where",
              "Expand", "Unsqueeze", "Squeeze", "Flatten", "Tile", "Resize", "ConvTranspose", "BatchNormalization",
              "LayerNormalization", "InstanceNormalization", "Einsum", "ScatterND", "GatherND", "GatherElements",
              "CumSum", "Range", "ConstantOfShape", "NonZero", "TopK", "ArgMax", "Clip", "Erf", "Sqrt", "Pow",
              "DepthToSpace", "SpaceToDepth", "LRN", "LpNormalization", "OneHot", "Trilu", "Shape", "Size",
              "Identity", "Dropout", "Sign", "Mod", "BitShift", "QuantizeLinear", "DequantizeLinear")


@dataclass
class Case:
    """One fuzz case: the model's bytes, extra files beside it, extra ``dlc compile`` flags, provenance."""

    index: int
    seed_model: str
    mutations: list[str]
    model_bytes: bytes
    files: dict[str, bytes | tuple[str, str]] = field(default_factory=dict)  # name -> bytes or ("symlink", to)
    compile_args: list[str] = field(default_factory=list)
    inspect_json: bool = False


@dataclass
class _Mutation:
    model: onnx.ModelProto
    rng: np.random.Generator
    files: dict[str, bytes | tuple[str, str]]
    compile_args: list[str]

    def pick(self, seq):
        return seq[int(self.rng.integers(len(seq)))] if len(seq) else None

    def chance(self, p: float) -> bool:
        return bool(self.rng.random() < p)

    def small_int(self) -> int:
        return int(self.rng.integers(-2, 6)) if self.chance(0.7) else int(self.pick(INT_EDGES))


# ---- walking a model --------------------------------------------------------------------------------------
def graphs(g: onnx.GraphProto) -> Iterator[onnx.GraphProto]:
    yield g
    for node in g.node:
        for a in node.attribute:
            if a.type == AttributeProto.GRAPH:
                yield from graphs(a.g)
            for sub in a.graphs:
                yield from graphs(sub)


def _nodes(m: onnx.ModelProto) -> list[tuple[onnx.GraphProto, onnx.NodeProto]]:
    return [(g, n) for g in graphs(m.graph) for n in g.node]


def _tensors(m: onnx.ModelProto) -> list[TensorProto]:
    out = []
    for g in graphs(m.graph):
        out.extend(g.initializer)
        for n in g.node:
            for a in n.attribute:
                if a.HasField("t"):
                    out.append(a.t)
                out.extend(a.tensors)
    return out


def _value_infos(m: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    return [v for g in graphs(m.graph) for v in (*g.input, *g.output, *g.value_info)]


def _value_names(g: onnx.GraphProto, before: int | None = None) -> list[str]:
    """Values of ``g``; with ``before``, only those defined before node ``before`` (keeps the graph sorted)."""
    nodes = g.node if before is None else g.node[:before]
    return [v.name for v in g.input] + [t.name for t in g.initializer] + [o for n in nodes for o in n.output]


def _some_shape(mu: _Mutation) -> list[int | str]:
    """A declared shape for a new graph output: the checker wants one; its dims are left symbolic."""
    return [f"d{i}" for i in range(int(mu.rng.integers(0, 4)))]


# ---- random building blocks -------------------------------------------------------------------------------
def _random_dim(mu: _Mutation) -> int | str:
    r = mu.rng.random()
    if r < 0.55:
        return int(mu.rng.integers(0, 9))
    if r < 0.8:
        return int(mu.pick(INT_EDGES))
    return str(mu.pick(SYMBOLS))


def _random_array(mu: _Mutation, dtype: int | None = None) -> np.ndarray:
    dtype = dtype or int(mu.pick(COMMON_DTYPES[:-1]))
    shape = tuple(int(mu.rng.integers(0, 4)) for _ in range(int(mu.rng.integers(0, 3))))
    np_dtype = helper.tensor_dtype_to_np_dtype(dtype)
    if np_dtype.kind == "f":
        return mu.rng.standard_normal(shape).astype(np_dtype)
    if np_dtype.kind == "b":
        return mu.rng.integers(0, 2, shape).astype(bool)
    if np_dtype.kind == "O":  # STRING
        return np.full(shape, b"fuzz", dtype=object)
    return mu.rng.integers(-3, 8, shape).astype(np_dtype)


def _random_attr_value(mu: _Mutation, attr_type: int, name: str) -> AttributeProto | None:
    if attr_type == AttributeProto.INT:
        return helper.make_attribute(name, mu.small_int())
    if attr_type == AttributeProto.INTS:
        return helper.make_attribute(name, [mu.small_int() for _ in range(int(mu.rng.integers(0, 5)))],
                                     attr_type=AttributeProto.INTS)
    if attr_type == AttributeProto.FLOAT:
        return helper.make_attribute(name, float(mu.pick(FLOAT_EDGES)))
    if attr_type == AttributeProto.FLOATS:
        return helper.make_attribute(name, [float(mu.pick(FLOAT_EDGES)) for _ in range(int(mu.rng.integers(0, 4)))],
                                     attr_type=AttributeProto.FLOATS)
    if attr_type == AttributeProto.STRING:
        return helper.make_attribute(name, mu.pick(STRINGS))
    if attr_type == AttributeProto.STRINGS:
        return helper.make_attribute(name, [mu.pick(STRINGS) for _ in range(int(mu.rng.integers(0, 3)))],
                                     attr_type=AttributeProto.STRINGS)
    if attr_type == AttributeProto.TENSOR:
        return helper.make_attribute(name, numpy_helper.from_array(_random_array(mu), name))
    if attr_type == AttributeProto.GRAPH:
        out = helper.make_tensor_value_info("g_out", int(mu.pick(COMMON_DTYPES)), [_random_dim(mu)])
        body = helper.make_graph([helper.make_node("Identity", [mu.pick(("x", "g_in", ""))], ["g_out"])],
                                 "fuzz_body", [], [out])
        return helper.make_attribute(name, body)
    return None


# ---- model-level mutators ---------------------------------------------------------------------------------
def m_opset(mu: _Mutation) -> str | None:
    imp = next((i for i in mu.model.opset_import if i.domain in ("", "ai.onnx")), None)
    if imp is None:
        return None
    old = imp.version
    imp.version = int(mu.rng.integers(1, 24)) if mu.chance(0.85) else int(mu.pick((0, -1, 99, 2**40)))
    return f"opset {old} -> {imp.version}"


def m_ir_version(mu: _Mutation) -> str:
    mu.model.ir_version = int(mu.pick((-1, 0, 1, 2, 3, 4, 6, 7, 9, 10, 11, 13, 100)))
    return f"ir_version -> {mu.model.ir_version}"


def m_opset_imports(mu: _Mutation) -> str:
    if mu.chance(0.5):
        domain = mu.pick(("ai.onnx.ml", "com.microsoft", "acme", "", "ai.onnx"))
        mu.model.opset_import.append(helper.make_opsetid(domain, int(mu.rng.integers(1, 20))))
        return f"add opset import {domain!r}"
    del mu.model.opset_import[:]
    return "remove every opset import"


# ---- graph structure --------------------------------------------------------------------------------------
def g_remove_node(mu: _Mutation) -> str | None:
    """Remove a node; usually bypass it (its consumers read its first input instead), else leave them dangling."""
    g, n = mu.pick(_nodes(mu.model)) or (None, None)
    if n is None:
        return None
    g.node.remove(n)
    if n.input and n.input[0] and mu.chance(0.8):
        for other in g.node:
            for k, name in enumerate(other.input):
                if name in n.output:
                    other.input[k] = n.input[0]
        for out in g.output:
            if out.name in n.output:
                out.name = n.input[0]
        return f"bypass node {n.op_type}"
    return f"remove node {n.op_type}"


def g_duplicate_node(mu: _Mutation) -> str | None:
    g, n = mu.pick(_nodes(mu.model)) or (None, None)
    if n is None:
        return None
    g.node.insert(int(mu.rng.integers(len(g.node) + 1)), n)
    return f"duplicate node {n.op_type} (two producers of {list(n.output)})"


def g_reorder_nodes(mu: _Mutation) -> str | None:
    g = mu.pick(list(graphs(mu.model.graph)))
    if len(g.node) < 2:
        return None
    order = mu.rng.permutation(len(g.node))
    nodes = [g.node[int(i)] for i in order]
    del g.node[:]
    g.node.extend(nodes)
    return "shuffle node order"


def g_rewire_input(mu: _Mutation) -> str | None:
    g, n = mu.pick([(g, n) for g, n in _nodes(mu.model) if n.input]) or (None, None)
    if n is None:
        return None
    k = int(mu.rng.integers(len(n.input)))
    names = _value_names(g, before=list(g.node).index(n)) if mu.chance(0.85) else _value_names(g)
    new = mu.pick(names) if names and mu.chance(0.85) else mu.pick(("", "dangling", n.output[0] if n.output else "z"))
    old, n.input[k] = n.input[k], new
    return f"{n.op_type} input {k}: {old!r} -> {new!r}"


def g_input_count(mu: _Mutation) -> str | None:
    g, n = mu.pick(_nodes(mu.model)) or (None, None)
    if n is None:
        return None
    if n.input and mu.chance(0.5):
        n.input.pop()
        return f"{n.op_type}: drop last input"
    extra = (mu.pick(_value_names(g, before=list(g.node).index(n))) or "") if mu.chance(0.8) else ""
    n.input.append(extra)
    return f"{n.op_type}: extra input {extra!r}"


def g_rename_output(mu: _Mutation) -> str | None:
    g, n = mu.pick([(g, n) for g, n in _nodes(mu.model) if n.output]) or (None, None)
    if n is None:
        return None
    k = int(mu.rng.integers(len(n.output)))
    new = mu.pick(_value_names(g)) if mu.chance(0.5) else mu.pick(("", "renamed", "x"))
    old, n.output[k] = n.output[k], new
    return f"{n.op_type} output {k}: {old!r} -> {new!r}"


def g_graph_outputs(mu: _Mutation) -> str | None:
    g = mu.model.graph
    if g.output and mu.chance(0.4):
        gone = g.output.pop()
        return f"remove graph output {gone.name!r}"
    name = mu.pick(_value_names(g)) or "x"
    elem = int(mu.pick(COMMON_DTYPES)) if mu.chance(0.5) else TensorProto.FLOAT
    shape = _some_shape(mu) if mu.chance(0.5) else [_random_dim(mu) for _ in range(int(mu.rng.integers(0, 4)))]
    g.output.append(helper.make_tensor_value_info(name, elem, shape))
    return f"add graph output {name!r}"


def g_initializers(mu: _Mutation) -> str | None:
    g = mu.model.graph
    r = mu.rng.random()
    if g.initializer and r < 0.35:  # a weight or a shape that is only known at run time
        t = g.initializer[int(mu.rng.integers(len(g.initializer)))]
        g.initializer.remove(t)
        if mu.chance(0.1):
            return f"remove initializer {t.name!r}"
        g.input.append(helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
        return f"initializer {t.name!r} -> graph input"
    if g.initializer and r < 0.7:  # also declare it as an input: ONNX's "overridable initializer"
        t = mu.pick(list(g.initializer))
        shape = list(t.dims) if mu.chance(0.7) else [_random_dim(mu) for _ in t.dims]
        g.input.append(helper.make_tensor_value_info(t.name, t.data_type, shape))
        return f"initializer {t.name!r} also a graph input"
    inputs = [v for v in g.input if v.name not in {t.name for t in g.initializer}]
    if not inputs:
        return None
    v = mu.pick(inputs)
    elem = v.type.tensor_type.elem_type or TensorProto.FLOAT
    try:
        arr = _random_array(mu, elem)
    except (KeyError, ValueError, TypeError):
        arr = _random_array(mu)
    g.initializer.append(numpy_helper.from_array(arr, v.name))
    return f"input {v.name!r} shadowed by an initializer of shape {arr.shape}"


def g_insert_node(mu: _Mutation) -> str | None:
    """A new node of a random op type, fed from existing values, its output wired into the graph."""
    g = mu.pick(list(graphs(mu.model.graph)))
    op = mu.pick(COMMON_OPS) if mu.chance(0.7) else mu.pick(_default_domain_ops())
    try:
        schema = onnx.defs.get_schema(op)
    except onnx.defs.SchemaError:
        return None
    # Feed the new value to an existing consumer (the node goes right before it), or expose it as an output.
    consumers = [i for i, n in enumerate(g.node) if n.input]
    feed = bool(consumers) and mu.chance(0.6)
    pos = int(mu.pick(consumers)) if feed else len(g.node)
    names = _value_names(g, before=pos)
    if not names:
        return None
    n_in = int(mu.rng.integers(schema.min_input, min(schema.max_input, schema.min_input + 2) + 1))
    inputs = [mu.pick(names) for _ in range(n_in)]
    attrs = []
    for name, a in schema.attributes.items():
        if a.required or mu.chance(0.25):
            attr = _random_attr_value(mu, int(a.type), name)
            if attr is not None:
                attrs.append(attr)
    out = f"fuzz_{len(g.node)}"
    node = helper.make_node(op, inputs, [out] + [f"{out}_{i}" for i in range(1, schema.min_output)])
    node.attribute.extend(attrs)
    if feed:
        c = g.node[pos]
        c.input[int(mu.rng.integers(len(c.input)))] = out
    else:
        g.output.append(helper.make_tensor_value_info(out, int(mu.pick(COMMON_DTYPES)), _some_shape(mu)))
    g.node.insert(pos, node)
    return f"insert {op}({', '.join(inputs)}) at {pos}"


def _default_domain_ops() -> list[str]:
    return sorted({s.name for s in onnx.defs.get_all_schemas() if s.domain == ""})


# ---- op types and attributes ------------------------------------------------------------------------------
def o_op_type(mu: _Mutation) -> str | None:
    g, n = mu.pick(_nodes(mu.model)) or (None, None)
    if n is None:
        return None
    old = n.op_type
    r = mu.rng.random()
    n.op_type = mu.pick(COMMON_OPS) if r < 0.6 else mu.pick(_default_domain_ops()) if r < 0.9 else \
        mu.pick(("", "NoSuchOp", "relu", "Conv\x00", "If", "Loop", "Scan"))
    if mu.chance(0.1):
        n.domain = mu.pick(("ai.onnx.ml", "com.microsoft", "acme"))
    return f"op {old} -> {n.op_type!r}" + (f" (domain {n.domain!r})" if n.domain else "")


def a_mutate(mu: _Mutation) -> str | None:
    g, n = mu.pick([(g, n) for g, n in _nodes(mu.model) if n.attribute]) or (None, None)
    if n is None:
        return None
    a = mu.pick(list(n.attribute))
    if a.type == AttributeProto.INT:
        a.i = mu.small_int()
        return f"{n.op_type}.{a.name} = {a.i}"
    if a.type == AttributeProto.INTS:
        vals = list(a.ints)
        r = mu.rng.random()
        if vals and r < 0.5:
            vals[int(mu.rng.integers(len(vals)))] = mu.small_int()
        elif vals and r < 0.7:
            vals.pop()
        else:
            vals.append(mu.small_int())
        del a.ints[:]
        a.ints.extend(vals)
        return f"{n.op_type}.{a.name} = {vals}"
    if a.type == AttributeProto.FLOAT:
        a.f = float(mu.pick(FLOAT_EDGES))
        return f"{n.op_type}.{a.name} = {a.f}"
    if a.type == AttributeProto.STRING:
        a.s = mu.pick(STRINGS)
        return f"{n.op_type}.{a.name} = {a.s!r}"
    if a.type == AttributeProto.TENSOR:
        return _mutate_tensor(mu, a.t)
    if a.type == AttributeProto.GRAPH:
        sub = _Mutation(onnx.ModelProto(graph=a.g), mu.rng, mu.files, mu.compile_args)
        what = mu.pick((g_remove_node, g_rewire_input, v_dim, g_graph_outputs, g_insert_node))(sub)
        a.g.CopyFrom(sub.model.graph)
        return f"{n.op_type}.{a.name}: {what}"
    return None


def a_add_remove(mu: _Mutation) -> str | None:
    g, n = mu.pick(_nodes(mu.model)) or (None, None)
    if n is None:
        return None
    r = mu.rng.random()
    if n.attribute and r < 0.3:
        a = mu.pick(list(n.attribute))
        n.attribute.remove(a)
        return f"{n.op_type}: drop attribute {a.name}"
    if n.attribute and r < 0.45:  # same name, another type
        a = mu.pick(list(n.attribute))
        new = _random_attr_value(mu, int(mu.pick((1, 2, 3, 4, 6, 7, 8))), a.name)
        n.attribute.remove(a)
        n.attribute.append(new)
        return f"{n.op_type}.{a.name}: type {a.type} -> {new.type}"
    if n.attribute and r < 0.55:
        n.attribute.append(mu.pick(list(n.attribute)))
        return f"{n.op_type}: an attribute twice"
    try:
        schema = onnx.defs.get_schema(n.op_type, domain=n.domain)
    except onnx.defs.SchemaError:
        return None
    if not schema.attributes or r > 0.9:
        new = _random_attr_value(mu, AttributeProto.INT, "fuzz_unknown")
    else:
        name, spec = mu.pick(sorted(schema.attributes.items()))
        new = _random_attr_value(mu, int(spec.type), name)
    if new is None:
        return None
    for a in list(n.attribute):
        if a.name == new.name:
            n.attribute.remove(a)
    n.attribute.append(new)
    return f"{n.op_type}: set attribute {new.name}"


# ---- declared types and shapes ----------------------------------------------------------------------------
def v_dim(mu: _Mutation) -> str | None:
    vals = [v for v in _value_infos(mu.model) if v.type.HasField("tensor_type")]
    v = mu.pick(vals)
    if v is None:
        return None
    shape = v.type.tensor_type.shape
    if not shape.dim or mu.chance(0.15):
        shape.dim.add().dim_value = int(mu.rng.integers(1, 4))
        return f"{v.name}: add a dim"
    r = mu.rng.random()
    if r < 0.1:
        shape.dim.pop()
        return f"{v.name}: drop a dim"
    if r < 0.15:
        v.type.tensor_type.ClearField("shape")
        return f"{v.name}: no shape"
    d = shape.dim[int(mu.rng.integers(len(shape.dim)))]
    new = _random_dim(mu)
    if isinstance(new, int):
        d.dim_value = new
    else:
        d.dim_param = new
    return f"{v.name}: dim -> {new!r}"


def v_elem_type(mu: _Mutation) -> str | None:
    v = mu.pick(_value_infos(mu.model))
    if v is None:
        return None
    r = mu.rng.random()
    if r < 0.85:
        v.type.tensor_type.elem_type = int(mu.pick(COMMON_DTYPES) if mu.chance(0.7) else mu.pick(DTYPES[:-2]))
        return f"{v.name}: elem_type -> {v.type.tensor_type.elem_type}"
    kind = mu.pick(("sequence_type", "optional_type", "map_type", "sparse_tensor_type"))
    if kind == "sequence_type":
        v.type.sequence_type.elem_type.tensor_type.elem_type = TensorProto.FLOAT
    elif kind == "optional_type":
        v.type.optional_type.elem_type.tensor_type.elem_type = TensorProto.FLOAT
    elif kind == "map_type":
        v.type.map_type.key_type = TensorProto.INT64
        v.type.map_type.value_type.tensor_type.elem_type = TensorProto.FLOAT
    else:
        v.type.sparse_tensor_type.elem_type = TensorProto.FLOAT
    return f"{v.name}: type -> {kind}"


# ---- tensors (initializers, Constant values) --------------------------------------------------------------
def t_mutate(mu: _Mutation) -> str | None:
    t = mu.pick(_tensors(mu.model))
    return None if t is None else _mutate_tensor(mu, t)


def t_values(mu: _Mutation) -> str | None:
    """Poison a few values; int64 tensors (shapes, axes, pads, indices) are picked three times as often."""
    tensors = _tensors(mu.model)
    weights = np.array([3.0 if t.data_type == TensorProto.INT64 else 1.0 for t in tensors])
    if not tensors:
        return None
    t = tensors[int(mu.rng.choice(len(tensors), p=weights / weights.sum()))]
    try:
        arr = numpy_helper.to_array(t).copy()
    except Exception:
        return None
    if arr.size == 0:
        return None
    flat = arr.reshape(-1)
    for _ in range(int(mu.rng.integers(1, 3))):
        k = int(mu.rng.integers(flat.size))
        if arr.dtype.kind == "f":
            with np.errstate(over="ignore"):  # 1e30 overflows float16 to inf, which is fine here
                flat[k] = mu.pick(FLOAT_EDGES)
        elif arr.dtype.kind in "iu":
            info = np.iinfo(arr.dtype)
            flat[k] = int(np.clip(mu.small_int(), info.min, info.max))
        elif arr.dtype.kind == "b":
            flat[k] = not flat[k]
    t.CopyFrom(numpy_helper.from_array(arr, t.name))
    return f"tensor {t.name!r} values -> {flat[:8].tolist()}"


def _mutate_tensor(mu: _Mutation, t: TensorProto) -> str:
    r = mu.rng.random()
    if r < 0.3 and t.dims:
        k = int(mu.rng.integers(len(t.dims)))
        t.dims[k] = int(mu.pick(INT_EDGES)) if mu.chance(0.5) else int(mu.rng.integers(0, 9))
        return f"tensor {t.name!r} dims -> {list(t.dims)}"
    if r < 0.4:
        if t.dims and mu.chance(0.5):
            t.dims.pop()
        else:
            t.dims.append(int(mu.rng.integers(1, 3)))
        return f"tensor {t.name!r} rank -> {len(t.dims)}"
    if r < 0.55:
        t.data_type = int(mu.pick(COMMON_DTYPES) if mu.chance(0.6) else mu.pick(DTYPES))
        return f"tensor {t.name!r} data_type -> {t.data_type}"
    if r < 0.7 and t.raw_data:
        t.raw_data = t.raw_data[: int(mu.rng.integers(len(t.raw_data)))]
        return f"tensor {t.name!r} raw_data truncated to {len(t.raw_data)} bytes"
    if r < 0.8:
        t.ClearField("raw_data")
        field_name = mu.pick(("float_data", "int32_data", "int64_data", "double_data", "string_data"))
        values = {"string_data": [b"x"]}.get(field_name, [1] * int(mu.rng.integers(0, 6)))
        getattr(t, field_name).extend(values)
        return f"tensor {t.name!r} data moved to {field_name} ({len(values)} values)"
    return _external(mu, t)


def _external(mu: _Mutation, t: TensorProto) -> str:
    """Move the tensor's data to a file beside the model, then maybe point the reference somewhere bad."""
    data = t.raw_data or numpy_helper.from_array(np.zeros(int(np.prod(t.dims or [1]) % 4096), np.float32)).raw_data
    blob = mu.files.get("weights.bin", b"")
    assert isinstance(blob, bytes)
    offset = len(blob)
    mu.files["weights.bin"] = blob + data
    location, off, length = "weights.bin", str(offset), str(len(data))
    r = mu.rng.random()
    if r < 0.2:
        location = mu.pick(("../weights.bin", "/etc/hostname", "sub/../../weights.bin", "missing.bin", "",
                            ".", "weights.bin\x00.txt", "w" * 5000, "link_out.bin", "link_in.bin", "C:\\w.bin"))
        mu.files["link_out.bin"] = ("symlink", "/etc/hostname")
        mu.files["link_in.bin"] = ("symlink", "weights.bin")
    elif r < 0.4:
        off = mu.pick(("-1", "abc", "1e3", " 7", "0x10", "", str(2**63), str(offset + len(data) + 1)))
    elif r < 0.6:
        length = mu.pick(("-4", "many", str(2**40), str(2**64), str(len(data) + 4), "0", str(max(len(data) - 1, 0))))
    t.ClearField("raw_data")
    for f in ("float_data", "int32_data", "int64_data", "double_data", "string_data", "uint64_data"):
        t.ClearField(f)
    del t.external_data[:]
    t.data_location = TensorProto.EXTERNAL
    entries = [("location", location), ("offset", off), ("length", length)]
    if mu.chance(0.1):
        entries.append(mu.pick((("checksum", "deadbeef"), ("basepath", "/"), ("fuzz", "1"), ("location", "x"))))
    if mu.chance(0.1):
        entries.pop(int(mu.rng.integers(len(entries))))
    for k, v in entries:
        t.external_data.append(onnx.StringStringEntryProto(key=k, value=v))
    return f"tensor {t.name!r} external: location={location[:40]!r} offset={off!r} length={length!r}"


# ---- the command line -------------------------------------------------------------------------------------
def c_input_shape(mu: _Mutation) -> str | None:
    inits = {t.name for t in mu.model.graph.initializer}
    inputs = [v for v in mu.model.graph.input if v.name not in inits]
    v = mu.pick(inputs)
    if v is None:
        return None
    rank = len(v.type.tensor_type.shape.dim)
    if mu.chance(0.15):
        rank = int(mu.rng.integers(0, 5))
    dims = []
    for d in v.type.tensor_type.shape.dim[:rank]:
        keep = d.dim_value if d.HasField("dim_value") else (d.dim_param or "N")
        dims.append(keep if mu.chance(0.6) else _random_dim(mu))
    dims += [_random_dim(mu) for _ in range(rank - len(dims))]
    text = ",".join("N" if isinstance(d, str) and not d.isidentifier() else str(d) for d in dims)
    mu.compile_args += ["--input-shape", f"{v.name}={text}"]
    return f"--input-shape {v.name}={text}"


# ---- raw bytes --------------------------------------------------------------------------------------------
def mutate_bytes(data: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    buf = bytearray(data)
    if not buf:
        return bytes(buf), "empty"
    r = rng.random()
    if r < 0.5:
        ks = rng.integers(len(buf), size=int(rng.integers(1, 9)))
        for k in ks:
            buf[int(k)] ^= 1 << int(rng.integers(8))
        return bytes(buf), f"flip {len(ks)} bits"
    if r < 0.7:
        n = int(rng.integers(len(buf)))
        return bytes(buf[:n]), f"truncate to {n} bytes"
    a = int(rng.integers(len(buf)))
    b = min(len(buf), a + int(rng.integers(1, 64)))
    if r < 0.85:
        return bytes(buf[:a] + buf[b:]), f"delete bytes {a}..{b}"
    return bytes(buf[:a] + buf[a:b] * 2 + buf[b:]), f"duplicate bytes {a}..{b}"


MUTATORS: list[tuple[Callable[[_Mutation], str | None], float]] = [
    (m_opset, 0.5), (m_ir_version, 0.25), (m_opset_imports, 0.25),
    (g_remove_node, 0.5), (g_duplicate_node, 0.2), (g_reorder_nodes, 0.1), (g_rewire_input, 1.0),
    (g_input_count, 0.6), (g_rename_output, 0.4), (g_graph_outputs, 0.5), (g_initializers, 0.6),
    (g_insert_node, 1.5),
    (o_op_type, 1.0), (a_mutate, 1.5), (a_add_remove, 1.0),
    (v_dim, 1.5), (v_elem_type, 0.8),
    (t_mutate, 1.2), (t_values, 1.5),
    (c_input_shape, 0.5),
]


def make_case(seed: int, index: int) -> Case:
    """Case ``index`` of the run seeded with ``seed``: a seed model and one to four mutations."""
    rng = np.random.default_rng([seed, index])
    seed_name = sorted(SEEDS)[int(rng.integers(len(SEEDS)))]
    model = SEEDS[seed_name]()
    if rng.random() < 0.4:  # declared intermediate shapes, as exporters write them, are mutation targets too
        model = onnx.shape_inference.infer_shapes(model)
    mu = _Mutation(model, rng, {}, [])
    funcs, weights = zip(*MUTATORS)
    p = np.array(weights) / sum(weights)
    done: list[str] = []
    want = int(rng.choice([1, 1, 1, 2, 2, 3, 4]))
    for _ in range(want * 4):
        if len(done) == want:
            break
        what = funcs[int(rng.choice(len(funcs), p=p))](mu)
        if what:
            done.append(what)
    data = model.SerializeToString()
    if rng.random() < 0.1:
        data, what = mutate_bytes(data, rng)
        done.append(f"bytes: {what}")
    return Case(index, seed_name, done, data, mu.files, mu.compile_args, inspect_json=bool(rng.random() < 0.3))
