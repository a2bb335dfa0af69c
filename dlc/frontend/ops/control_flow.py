"""Control flow: If, Scan, Loop.

* **If** with a condition known at import time converts only the branch taken (ONNX function bodies use this
  for attribute switches); otherwise a ``relax.If`` whose branches are their own binding blocks, so only the
  branch taken runs.
* **Scan** has a static length (the scan axis of its inputs): the body is converted once per step, states
  threaded through, scan outputs stacked.
* **Loop** with a trip count known at import time and a condition that stays known unrolls the same way.
  Otherwise (a run-time trip count or a data-dependent condition) it becomes a recursive Relax function
  ``loop(i, cond, carried..., scan_acc..., captured...)`` that calls itself while ``i < M and cond`` and returns
  the carried values and the scan outputs accumulated so far: the loop runs in the VM, compiled once.
"""

from __future__ import annotations

import itertools

import numpy as np
import onnx
from tvm import relax, tirx
from tvm.relax import op as R

from ..converters import Converter, register_converter
from ..graph import Value, current
from ..proto import iter_nodes
from .common import dtype, ndim, normalize_axis, shape_of, sized, static

_UNROLL_MAX = 512  # iterations; longer static loops run as a VM loop instead
_loop_ids = itertools.count()


def _branch(bb: relax.BlockBuilder, graph: onnx.GraphProto) -> relax.SeqExpr:
    imp = current()
    bb._begin_binding_block()
    outs = imp.convert_subgraph(graph, [])
    exprs = [imp.expr(v) for v in outs]
    body = exprs[0] if len(exprs) == 1 else bb.emit(relax.Tuple(exprs))
    block = bb._end_block()
    return relax.SeqExpr([block], body)


def _scalar_bool(bb, cond: relax.Expr) -> relax.Expr:
    if dtype(cond) != "bool":
        cond = bb.emit(R.not_equal(cond, relax.const(0, dtype(cond))))
    return bb.emit(R.reshape(cond, [])) if ndim(cond) != 0 else cond


@register_converter("If")
class If(Converter):
    @classmethod
    def _impl_v1(cls, bb, inputs, attr, params):
        imp = current()
        cond = static(inputs[0])
        if cond is not None:
            taken = attr["then_branch"] if bool(cond.reshape(-1)[0]) else attr["else_branch"]
            return imp.convert_subgraph(taken, [])
        c = _scalar_bool(bb, inputs[0])
        then_seq = _branch(bb, attr["then_branch"])
        else_seq = _branch(bb, attr["else_branch"])
        out = bb.emit(relax.If(c, then_seq, else_seq))
        n = len(attr["then_branch"].output)
        items = [out] if n == 1 else [bb.emit(relax.TupleGetItem(out, i)) for i in range(n)]
        return [sized(bb, e, "if") for e in items]


# ---- Scan -----------------------------------------------------------------------------------------------------------

def _take(bb, x: relax.Expr, index: int, axis: int) -> relax.Expr:
    return bb.emit(R.squeeze(R.strided_slice(x, [axis], [index], [index + 1]), [axis]))


@register_converter("Scan")
class Scan(Converter):
    @classmethod
    def _impl_v8(cls, bb, inputs, attr, params):
        # opset 8: a leading batch axis on every input, the sequence on axis 1, optional sequence_lens first.
        seq_lens, rest = inputs[0], list(inputs[1:])
        if seq_lens is not None:
            raise ValueError("Scan-8 with sequence_lens is not supported")
        m = int(attr["num_scan_inputs"])
        n = len(rest) - m
        batch = shape_of(rest[0])[0] if rest else None
        if not isinstance(batch, int):
            raise ValueError("Scan-8 needs a static batch size")
        per_batch = []
        for b in range(batch):
            sl = [_take(bb, v, b, 0) for v in rest]
            per_batch.append(cls._scan(bb, sl[:n], sl[n:], attr, [0] * m, list(attr.get("directions", [0] * m)),
                                       None, None))
        k = len(per_batch[0])
        return [bb.emit(R.stack([pb[i] for pb in per_batch], axis=0)) for i in range(k)]

    @classmethod
    def _impl_v9(cls, bb, inputs, attr, params):
        m = int(attr["num_scan_inputs"])
        n = len(inputs) - m
        axes = list(attr.get("scan_input_axes", [0] * m))
        dirs = list(attr.get("scan_input_directions", [0] * m))
        return cls._scan(bb, list(inputs[:n]), list(inputs[n:]), attr, axes, dirs,
                         attr.get("scan_output_axes"), attr.get("scan_output_directions"))

    @classmethod
    def _scan(cls, bb, states, scans, attr, in_axes, in_dirs, out_axes, out_dirs):
        imp = current()
        body = attr["body"]
        in_axes = [normalize_axis(a, ndim(s)) for a, s in zip(in_axes, scans)]
        lengths = {shape_of(s)[a] for s, a in zip(scans, in_axes)}
        if len(lengths) != 1 or not isinstance(next(iter(lengths)), int):
            raise ValueError(f"Scan needs one static sequence length, got {lengths}")
        length = lengths.pop()
        state_vals = [imp.value_of(s) or Value(s) for s in states]
        steps: list[list[Value]] = []
        for t in range(length):
            slices = [Value(_take(bb, s, length - 1 - t if d else t, a)) for s, a, d in zip(scans, in_axes, in_dirs)]
            outs = imp.convert_subgraph(body, state_vals + slices)
            state_vals = outs[:len(states)]
            steps.append(outs[len(states):])
        k = len(body.output) - len(states)
        out_axes = list(out_axes) if out_axes else [0] * k
        out_dirs = list(out_dirs) if out_dirs else [0] * k
        results = [imp.expr(v) for v in state_vals]
        for j in range(k):
            items = [imp.expr(steps[t][j]) for t in range(length)]
            if out_dirs[j]:
                items = items[::-1]
            rank = ndim(items[0]) + 1 if items else 1
            results.append(bb.emit(R.stack(items, axis=normalize_axis(out_axes[j], rank))))
        return results


# ---- Loop -----------------------------------------------------------------------------------------------------------

def _free_names(graph: onnx.GraphProto) -> list[str]:
    """Names a (sub)graph reads from enclosing scopes, in first-use order."""
    defined = {v.name for v in graph.input} | {t.name for t in graph.initializer}
    for node in iter_nodes(graph):
        defined.update(o for o in node.output if o)
        for a in node.attribute:
            for g in ([a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs)):
                defined.update(v.name for v in g.input)
                defined.update(t.name for t in g.initializer)
    seen: list[str] = []
    for node in iter_nodes(graph):
        for i in node.input:
            if i and i not in defined and i not in seen:
                seen.append(i)
    for o in graph.output:
        if o.name not in defined and o.name not in seen:
            seen.append(o.name)
    return seen


@register_converter("Loop")
class Loop(Converter):
    @classmethod
    def _impl_v1(cls, bb, inputs, attr, params):
        body = attr["body"]
        trip, cond = inputs[0], inputs[1]
        carried = list(inputs[2:])
        n_carried = len(carried)
        k_scan = len(body.output) - 1 - n_carried
        trip_k = static(trip)
        cond_k = static(cond)
        if trip_k is not None and (cond is None or cond_k is not None) and int(trip_k.reshape(-1)[0]) <= _UNROLL_MAX:
            unrolled = cls._unroll(bb, body, int(trip_k.reshape(-1)[0]),
                                   True if cond is None else bool(cond_k.reshape(-1)[0]), carried, k_scan)
            if unrolled is not None:
                return unrolled
        return cls._recursive(bb, body, trip, cond, carried, k_scan)

    @classmethod
    def _unroll(cls, bb, body, trip: int, cond: bool, carried, k_scan):
        """Unrolled while the condition stays known; None when it becomes data-dependent."""
        imp = current()
        vals = [imp.value_of(c) or Value(c) for c in carried]
        scans: list[list[Value]] = [[] for _ in range(k_scan)]
        i = 0
        while i < trip and cond:
            it = Value(None, np.array(i, dtype="int64"), "int64")
            cv = Value(None, np.array(cond), "bool")
            outs = imp.convert_subgraph(body, [it, cv, *vals])
            c_next = outs[0].static
            if c_next is None:
                return None
            cond = bool(c_next.reshape(-1)[0])
            vals = outs[1:1 + len(carried)]
            for j in range(k_scan):
                scans[j].append(outs[1 + len(carried) + j])
            i += 1
        results = [imp.expr(v) for v in vals]
        for j in range(k_scan):
            if not scans[j]:
                raise ValueError("Loop ran zero iterations: the shape of its scan outputs is unknown")
            results.append(bb.emit(R.stack([imp.expr(v) for v in scans[j]], axis=0)))
        return results

    @classmethod
    def _recursive(cls, bb, body, trip, cond, carried, k_scan):
        imp = current()
        loop_id = next(_loop_ids)
        i64, boolt = relax.TensorType((), "int64"), relax.TensorType((), "bool")
        free = _free_names(body)
        outer = {n: imp.lookup(n) for n in free}
        captured = [n for n in free if outer[n].static is None]
        cap_e = [imp.expr(outer[n]) for n in captured]
        carried_e = [imp.expr(imp.value_of(c) or Value(c)) for c in carried]
        trip_k = static(trip) if trip is not None else None
        m_e = None if trip is None or trip_k is not None else _scalar_i64(bb, trip)
        cond_e = _scalar_bool(bb, cond) if cond is not None else relax.const(True, "bool")

        def sym_type(e: relax.Expr, tag: str, keep_static: bool) -> relax.TensorType:
            dims = shape_of(e)
            if dims is None:
                raise ValueError("Loop values need a known rank and shape")
            return relax.TensorType([d if (keep_static and isinstance(d, int)) else tirx.Var(f"{tag}{j}", "int64")
                                     for j, d in enumerate(dims)], dtype(e))

        def params(tag: str, keep_static: bool):
            p_i, p_c = relax.Var("i", i64), relax.Var("cond", boolt)
            p_carried = [relax.Var(f"v{j}", sym_type(e, f"{tag}v{j}_", keep_static))
                         for j, e in enumerate(carried_e)]
            p_cap = [relax.Var(f"cap{j}", sym_type(e, f"{tag}k{j}_", True)) for j, e in enumerate(cap_e)]
            p_m = [relax.Var("M", i64)] if m_e is not None else []
            return p_i, p_c, p_carried, p_cap, p_m

        def convert_body(fbb, p_i, p_c, p_carried, p_cap):
            with imp.scope() as sc:
                for n in free:
                    sc[n] = Value(None, outer[n].static, outer[n].dtype) if outer[n].static is not None else None
                for n, p in zip(captured, p_cap):
                    sc[n] = Value(p, None, outer[n].dtype)
                return imp.convert_subgraph(body, [Value(p_i), Value(p_c), *[Value(p) for p in p_carried]])

        # Everything is emitted with the importer's own BlockBuilder, in binding blocks of their own, so the
        # kernels the body needs land in the same module; the blocks become the loop function's body.
        # 1. scratch conversions of the body: do the carried values keep their static shapes, and what are the
        #    element types of the scan outputs?
        keep_static, elem = True, []
        for attempt in (True, False):
            p_i, p_c, p_carried, p_cap, p_m = params(f"s{loop_id}{int(attempt)}", attempt)
            bb._begin_binding_block()
            try:
                outs = convert_body(bb, p_i, p_c, p_carried, p_cap)
                new_vals = [imp.expr(v) for v in outs[1:1 + len(carried)]]
                stable = all(shape_of(v) == shape_of(p) or _declared(body.output[1 + j]) == shape_of(p)
                             for j, (v, p) in enumerate(zip(new_vals, p_carried)))
                elem = [(shape_of(e) if _static(shape_of(e)) else _declared(body.output[1 + len(carried) + j]),
                         dtype(e)) for j, e in enumerate(imp.expr(v) for v in outs[1 + len(carried):])]
            finally:
                bb._end_block()  # discarded: dead code
            if stable or not attempt:
                keep_static = attempt
                break
        for dims, _ in elem:
            if dims is None or not all(isinstance(d, int) for d in dims):
                raise ValueError("a Loop with a run-time trip count needs static scan-output shapes")
        # 2. the loop function, declared first so that it can call itself
        p_i, p_c, p_carried, p_cap, p_m = params(f"l{loop_id}", keep_static)
        p_acc = [relax.Var(f"acc{j}", relax.TensorType([tirx.Var(f"l{loop_id}n{j}", "int64"), *dims], dt))
                 for j, (dims, dt) in enumerate(elem)]
        all_params = [p_i, p_c, *p_carried, *p_acc, *p_cap, *p_m]
        ret_ty = relax.TupleType([relax.TensorType(ndim=p.ty.ndim, dtype=p.ty.dtype) for p in [*p_carried, *p_acc]])
        placeholder = relax.Function(all_params, relax.SeqExpr([], relax.Tuple([*p_carried, *p_acc])), ret_ty)
        gv = bb.add_func(placeholder, f"onnx_loop_{loop_id}")
        bb._begin_binding_block()
        go = p_c
        if m_e is not None:
            go = bb.emit(R.logical_and(go, R.less(p_i, p_m[0])))
        elif trip_k is not None:
            go = bb.emit(R.logical_and(go, R.less(p_i, relax.const(int(trip_k.reshape(-1)[0]), "int64"))))
        bb._begin_binding_block()
        outs = convert_body(bb, p_i, p_c, p_carried, p_cap)
        new_cond = _scalar_bool(bb, imp.expr(outs[0]))
        new_vals = [_as_type(bb, imp.expr(v), p.ty) for v, p in zip(outs[1:1 + len(carried)], p_carried)]
        scans = [_as_type(bb, imp.expr(v), relax.TensorType(dims, dt))
                 for v, (dims, dt) in zip(outs[1 + len(carried):], elem)]
        new_accs = [bb.emit(R.concat([a, bb.emit(R.expand_dims(sv, 0))], axis=0)) for a, sv in zip(p_acc, scans)]
        nxt = bb.emit(relax.Call(gv, [bb.emit(R.add(p_i, relax.const(1, "int64"))), new_cond, *new_vals, *new_accs,
                                      *p_cap, *p_m]))
        then_block = bb._end_block()
        bb._begin_binding_block()
        done = bb.emit(relax.Tuple([*p_carried, *p_acc]))
        else_block = bb._end_block()
        res = bb.emit(relax.If(go, relax.SeqExpr([then_block], nxt), relax.SeqExpr([else_block], done)))
        head = bb._end_block()
        bb.update_func(gv, relax.Function(all_params, relax.SeqExpr([head], res), ret_ty).with_attr(
            "global_symbol", gv.name_hint))
        accs0 = [bb.emit(R.zeros(relax.ShapeExpr([0, *dims]), dt)) for dims, dt in elem]
        res = bb.emit(relax.Call(gv, [relax.const(0, "int64"), cond_e, *carried_e, *accs0, *cap_e,
                                      *([m_e] if m_e is not None else [])]))
        return [sized(bb, bb.emit(relax.TupleGetItem(res, j)), "loop") for j in range(len(carried) + k_scan)]


def _static(dims) -> bool:
    return dims is not None and all(isinstance(d, int) for d in dims)


def _declared(vi: onnx.ValueInfoProto) -> list[int] | None:
    """The static shape a (body) graph declares for a value, if it declares one."""
    tt = vi.type.tensor_type
    if not tt.HasField("shape") or not all(d.HasField("dim_value") for d in tt.shape.dim):
        return None
    return [int(d.dim_value) for d in tt.shape.dim]


def _as_type(bb, e: relax.Expr, ty: relax.TensorType) -> relax.Expr:
    """e match-cast to ty when Relax cannot prove they agree (checked at run time)."""
    if shape_of(e) is not None and isinstance(ty.shape, relax.ShapeExpr) and shape_of(e) == shape_of(
            bb.normalize(relax.Var("t", ty))):
        return e
    return bb.match_cast(e, ty)


def _scalar_i64(bb, e: relax.Expr) -> relax.Expr:
    if dtype(e) != "int64":
        e = bb.emit(R.astype(e, "int64"))
    return bb.emit(R.reshape(e, [])) if ndim(e) != 0 else e
