"""fold-layout-transforms: back-to-back layout transforms -> one transform, or none.

    layout_transform(layout_transform(x, m1), m2)  ->  x                              if m2 . m1 is identity
                                                   ->  layout_transform(x, m2 . m1)   otherwise

(e.g. NCHW8c -> NCHW -> NCHW4c becomes one NCHW8c -> NCHW4c transform: one pass over memory, not two).
Only transforms without padding values are folded; an inner transform that something else also reads stays.
"""

from __future__ import annotations

import tvm
import tvm.sym
from tvm import relax
from tvm.relax.dpl import is_op, wildcard

from . import register_pass
from .rewrite import rewrite_call


def simplified_index_map(fn, ndim: int, shape) -> tuple[tvm.tirx.IndexMap, tvm.sym.Analyzer]:
    """The index map ``fn`` over ``ndim`` fresh int64 indices, simplified with the input's extents ``shape``.

    Fresh int64 indices: ConvertLayout's maps use int32 ones, and casts between the two would hide the
    arithmetic from TVM's iterator analysis, which has to invert the result (legalization does)."""
    fresh = tvm.tirx.IndexMap.from_func(fn, ndim=ndim, index_dtype="int64")
    analyzer = tvm.sym.Analyzer()
    for var, extent in zip(fresh.initial_indices, shape):
        analyzer.bind(var, tvm.ir.Range(0, extent))
    final = [analyzer.simplify(e) for e in fresh.final_indices]
    return tvm.tirx.IndexMap(fresh.initial_indices, final, None), analyzer


def _compose(inner: tvm.tirx.IndexMap, outer: tvm.tirx.IndexMap, shape) -> tuple[tvm.tirx.IndexMap, tvm.sym.Analyzer]:
    """outer . inner, simplified with the input's extents (so (c8 * 8 + cb) // 4 becomes c8 * 2 + cb // 4)."""
    return simplified_index_map(lambda *idx: outer.map_indices(inner.map_indices(list(idx))),
                                len(inner.initial_indices), shape)


def _is_identity(m: tvm.tirx.IndexMap, analyzer) -> bool:
    return len(m.initial_indices) == len(m.final_indices) and all(
        analyzer.can_prove_equal(f, i) for f, i in zip(m.final_indices, m.initial_indices))


@register_pass("fold-layout-transforms", "layout_transform(layout_transform(x)) -> one transform, or x")
def fold_layout_transforms(target: tvm.target.Target, options=None) -> tvm.transform.Pass:
    x = wildcard()
    inner = is_op("relax.layout_transform")(x)
    pattern = is_op("relax.layout_transform")(inner)

    def rewrite(expr, matched):
        first, second = matched[inner], matched[pattern]
        if first.attrs.pad_value is not None or second.attrs.pad_value is not None:
            return expr
        shape = matched[x].ty.shape
        if shape is None:
            return expr
        composed, analyzer = _compose(first.attrs.index_map, second.attrs.index_map, shape.values)
        if _is_identity(composed, analyzer):
            return matched[x]
        try:  # legalization needs the inverse; TVM cannot always find it for a composition: keep the pair
            composed.non_surjective_inverse(list(shape.values))
        except (tvm.error.InternalError, ValueError):
            return expr
        return relax.op.layout_transform(matched[x], composed)

    @relax.transform.function_pass(opt_level=0, name="FoldLayoutTransforms")
    class Fold:
        def transform_function(self, func, mod, ctx):
            return rewrite_call(pattern, rewrite, func)

    return Fold()
