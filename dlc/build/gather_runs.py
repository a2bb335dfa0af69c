"""TIR lowering pass: vector gathers and scatters over runs of adjacent elements -> whole-run loads and stores.

A channel shuffle in a blocked layout (ShuffleNet: NCHW16c -> reshape to groups -> transpose -> NCHW8c) makes
each output vector take its lanes from several places: lanes 0-3 from one group, 4-7 from the next, ...
TVM's vectorizer emits that as a gather, which LLVM scalarizes: per lane an index extracted from a vector, a
sign extension and a scalar load. Yet the lanes are runs of adjacent elements at constant distances from each
other. This pass rewrites such a load

    B[index]                      # index a vector expression, lane i at base + offset[i], offsets constant
into
    Shuffle([B[Ramp(base + start_0, 1, len_0)], B[Ramp(base + start_1, 1, len_1)], ...], lane order)

-- one vector load per run and one LLVM shufflevector. A store scattering runs (a conv epilogue writing the
NCHW2c layout a grouped conv reads: pairs of lanes 1568 floats apart) becomes one store per run of the
lanes it takes from the value (``B[Ramp(base + start, 1, len)] = Shuffle([value], lanes of the run)``).

Either applies only when every lane's offset from lane 0
simplifies to a distinct constant and every run has at least 2 elements (single elements gain nothing, and a
scalar inside ``Shuffle`` is not something TVM's LLVM codegen concatenates correctly). Only the lanes' own
elements are read, so no access goes out of bounds.

It runs after TVM's whole TIR pipeline (after CSE: let-bound vector indices are looked through), as part
of the ``dlc-llvm`` TIR pipeline (``dlc.build.tir_pipeline``).
"""

from __future__ import annotations

import tvm
import tvm_ffi
from tvm import tirx
from tvm.tirx import expr as E

_BINARY = (E.Add, E.Sub, E.Mul, E.FloorDiv, E.FloorMod, E.Div, E.Mod, E.Min, E.Max)


class _NotLaneWise(Exception):
    pass


def _lane(e, i: int, lets: dict):
    """The scalar expression of lane ``i`` of the vector expression ``e``."""
    if isinstance(e, E.Ramp):
        return e.base + e.stride * i
    if isinstance(e, E.Broadcast):
        return e.value
    if isinstance(e, _BINARY):
        return type(e)(_lane(e.a, i, lets), _lane(e.b, i, lets))
    if isinstance(e, E.Cast):
        return E.Cast(str(e.ty.dtype).split("x")[0], _lane(e.value, i, lets))
    if isinstance(e, E.Var):
        if e in lets:
            return _lane(lets[e], i, lets)
        if e.ty.dtype.lanes == 1:
            return e
    if isinstance(e, E.IntImm):
        return e
    raise _NotLaneWise(type(e).__name__)


def _runs(offsets: list[int]) -> list[tuple[int, int]]:
    """(start, length) of the maximal runs of consecutive values among the sorted offsets."""
    runs: list[list[int]] = []
    for o in sorted(offsets):
        if runs and o == runs[-1][0] + runs[-1][1]:
            runs[-1][1] += 1
        else:
            runs.append([o, 1])
    return [(s, n) for s, n in runs]


def _lane_runs(indices, lanes: int, lets: dict, analyzer):
    """(base, offsets, runs) of a one-dimensional vector index of ``lanes`` lanes, or None (see module doc)."""
    if lanes <= 1 or len(indices) != 1 or isinstance(indices[0], E.Ramp):
        return None  # scalar, or already a (strided) vector access that TVM's codegen knows
    try:
        exprs = [_lane(indices[0], i, lets) for i in range(lanes)]
    except _NotLaneWise:
        return None
    offsets = []
    for e in exprs:
        d = analyzer.simplify(e - exprs[0])
        if not isinstance(d, E.IntImm):
            return None
        offsets.append(int(d.value))
    runs = _runs(offsets)
    if len(set(offsets)) != lanes or min(n for _, n in runs) < 2:
        return None
    return analyzer.simplify(exprs[0]), offsets, runs


def _rewrite_load(load, lets: dict, analyzer):
    found = _lane_runs(load.indices, load.ty.dtype.lanes, lets, analyzer)
    if found is None:
        return None
    base, offsets, runs = found
    vectors, position = [], {}
    for start, length in runs:
        position.update({start + k: len(position) + k for k in range(length)})
        vectors.append(tirx.BufferLoad(load.source, [E.Ramp(analyzer.simplify(base + start), 1, length)]))
    return E.Shuffle(vectors, [position[o] for o in offsets])


def _rewrite_store(store, lets: dict, analyzer):
    found = _lane_runs(store.indices, store.value.ty.dtype.lanes, lets, analyzer)
    if found is None:
        return None
    base, offsets, runs = found
    lane_of = {o: i for i, o in enumerate(offsets)}
    value = tirx.Var("scattered", store.value.ty.dtype)  # computed once, then stored run by run
    return tirx.SeqStmt([tirx.LetStmt(value, store.value)] + [
        tirx.BufferStore(store.buffer, E.Shuffle([value], [lane_of[start + k] for k in range(length)]),
                         [E.Ramp(analyzer.simplify(base + start), 1, length)])
        for start, length in runs])


def gather_runs(func: tirx.PrimFunc) -> tirx.PrimFunc:
    """``func`` with every qualifying gather load and scatter store rewritten (see the module docstring)."""
    lets: dict = {}

    def remember(binding):
        lets[binding.var] = binding.value
        return binding

    tvm_ffi.structural_map(func.body, [((tirx.LetStmt, tirx.Let), remember)])
    analyzer = tvm.sym.Analyzer()
    changed = []

    def applying(rewrite):
        def callback(node):
            new = rewrite(node, lets, analyzer)
            if new is None:
                return node
            changed.append(new)
            return new
        return callback

    body = tvm_ffi.structural_map(func.body, [(tvm.ir.expr.TensorLoad, applying(_rewrite_load)),
                                              (tirx.BufferStore, applying(_rewrite_store))])
    return func.with_body(body) if changed else func


@tirx.transform.prim_func_pass(opt_level=0, name="dlc.GatherRuns")
def GatherRuns(func, mod, ctx):  # noqa: N802 -- TVM's naming for passes
    return gather_runs(func)
