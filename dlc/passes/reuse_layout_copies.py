"""reuse-layout-copies: elementwise readers of a tensor that also has a layout-transformed copy read the copy.

    y = layout_transform(x, m)              y = layout_transform(x, m)
    z = add(w, x)                   ->      z = add(w, layout_transform(y, m^-1))

when every other reader of ``x`` is elementwise and comes after ``y``. The transform is then ``x``'s only
reader, so fusion puts it into the kernel that computes ``x``, which writes the blocked copy directly instead
of ``x`` and a second pass over memory to block it; each inverse fuses into its elementwise reader as a
gather. ShuffleNet: the sum that feeds a grouped conv (through NCHW -> NCHW4c) is also the next unit's
residual; each of those 16 transforms was a kernel of its own (0.6 ms of 8.4).
"""

from __future__ import annotations

import tvm
from tvm import relax

from . import register_pass
from .fold_layout_transforms import simplified_index_map

ELEMENTWISE = {"relax.add", "relax.subtract", "relax.multiply", "relax.divide", "relax.maximum", "relax.minimum",
               "relax.nn.relu", "relax.clip", "relax.sigmoid", "relax.tanh"}


def _op(value) -> str | None:
    return value.op.name if isinstance(value, relax.Call) and isinstance(value.op, tvm.ir.Op) else None


def _readers(block: relax.DataflowBlock) -> dict[relax.Var, list[tuple[int, relax.Expr]]]:
    """Each variable -> (binding position, value) of every binding that reads it."""
    readers: dict[relax.Var, list[tuple[int, relax.Expr]]] = {}
    for pos, binding in enumerate(block.bindings):
        for var in relax.analysis.free_vars(binding.value):
            readers.setdefault(var, []).append((pos, binding.value))
    return readers


def _inverse(transform: relax.Call, shape) -> tvm.tirx.IndexMap | None:
    """The inverse of a bijective transform of a tensor of ``shape``, in the form legalization can lower."""
    if transform.attrs.pad_value is not None or shape is None:
        return None
    try:  # a bijection only: a transform that pads has no inverse to read through
        inverse = transform.attrs.index_map.inverse(list(shape.values))
        copy_shape = transform.attrs.index_map.map_shape(list(shape.values))
        simplified, _ = simplified_index_map(lambda *idx: inverse.map_indices(list(idx)),
                                             len(inverse.initial_indices), copy_shape)
        simplified.non_surjective_inverse(list(copy_shape))  # what legalization will ask of it
        return simplified
    except (tvm.error.InternalError, ValueError, tvm.error.TVMError):
        return None


def _plan(block: relax.DataflowBlock) -> dict[relax.Var, tuple[relax.Var, tvm.tirx.IndexMap]]:
    """x -> (its transformed copy y, the inverse map) for the tensors this pass rewrites."""
    bound = {b.var: (pos, b.value) for pos, b in enumerate(block.bindings) if isinstance(b, relax.VarBinding)}
    plan = {}
    for x, reads in _readers(block).items():
        if not isinstance(x, relax.DataflowVar) or x not in bound or _op(bound[x][1]) is None:
            continue  # a parameter, a block output (read after the block too), or not computed by an op
        transforms = [(pos, v) for pos, v in reads if _op(v) == "relax.layout_transform" and v.args[0].same_as(x)]
        others = [(pos, v) for pos, v in reads if pos not in {p for p, _ in transforms}]
        if len(transforms) != 1 or not others:
            continue
        (pos_y, transform), = transforms
        if any(_op(v) not in ELEMENTWISE or pos < pos_y for pos, v in others):
            continue
        inverse = _inverse(transform, x.ty.shape)
        if inverse is not None:
            plan[x] = (block.bindings[pos_y].var, inverse)
    return plan


def rewrite_block(block: relax.DataflowBlock, bb: relax.BlockBuilder) -> relax.DataflowBlock:
    plan = _plan(block)
    if not plan:
        return block
    copies: dict[relax.Var, relax.Var] = {}  # x -> its inverse-transformed copy, bound before its first reader
    bindings = []
    for binding in block.bindings:
        value = binding.value
        if _op(value) in ELEMENTWISE and any(isinstance(a, relax.Var) and a in plan for a in value.args):
            args = []
            for a in value.args:
                if isinstance(a, relax.Var) and a in plan:
                    if a not in copies:
                        y, inverse = plan[a]
                        back = bb.normalize(relax.op.layout_transform(y, inverse))
                        copies[a] = relax.DataflowVar(f"{a.name}_from_copy", back.ty)
                        bindings.append(relax.VarBinding(copies[a], back))
                    a = copies[a]
                args.append(a)
            value = bb.normalize(relax.Call(value.op, args, value.attrs, value.ty_args))
            binding = relax.VarBinding(binding.var, value)
        bindings.append(binding)
    return relax.DataflowBlock(bindings)


@register_pass("reuse-layout-copies", "elementwise readers of x read layout_transform(x)'s copy back, so x's "
               "producer writes the copy directly")
def reuse_layout_copies(target: tvm.target.Target, options=None) -> tvm.transform.Pass:
    @relax.transform.function_pass(opt_level=0, name="ReuseLayoutCopies")
    class Reuse:
        def transform_function(self, func, mod, ctx):
            if not isinstance(func.body, relax.SeqExpr):
                return func
            bb = relax.BlockBuilder()
            blocks = [rewrite_block(b, bb) if isinstance(b, relax.DataflowBlock) else b for b in func.body.blocks]
            if all(new.same_as(old) for new, old in zip(blocks, func.body.blocks)):
                return func
            return relax.Function(func.params, relax.SeqExpr(blocks, func.body.body), func.ret_ty,
                                  func.is_pure, func.attrs, func.span)

    return Reuse()
