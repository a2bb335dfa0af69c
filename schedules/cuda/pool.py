"""Pooling and other short reductions: max/average pooling (padding inlined), LRN's window sums, sums of a
few stacked tensors. One thread per output; the window is walked in registers.

Matches a kernel with one reduction block that is not a multiply-accumulate and whose reduction is short
(at most ``MAX_WINDOW`` elements per output). Long reductions over the innermost axes (softmax, layer norm,
global pooling) go to ``reduction.py``, which is asked first.
"""

from dlc.schedule import rule

from . import _common as C

MAX_WINDOW = 512


@rule("cuda", order=60)
def window_reduction(func, target):
    k = C.analyze(func)
    if k is None or len(k.reductions()) != 1:
        return None
    red = k.reductions()[0]
    window = C.int_extent_product([x.dom for x in red.iters if x.kind == "R"])
    if window is None or window > MAX_WINDOW or C.contraction(k, red) is not None:
        return None
    sch, block = k.sch, red.block_rv
    C.inline_producers(sch, block)  # padding, stacking: read straight from the inputs
    epilogue = C.inline_epilogue(sch, block)
    loops = sch.get_loops(block)
    spatial = [lp for lp, x in zip(loops, red.iters) if x.kind == "S"] or [sch.add_unit_loop(block)]
    reduce = [lp for lp, x in zip(loops, red.iters) if x.kind == "R"]
    sch.reorder(*spatial, *reduce)
    bx, tx = sch.split(sch.fuse(*spatial), [None, C.MAX_THREADS])
    sch.bind(bx, "blockIdx.x")
    sch.bind(tx, "threadIdx.x")
    C.accumulate_in_registers(sch, block, tx, epilogue)
    sch.decompose_reduction(block, reduce[0])
    C.bind_leftovers(sch)
    return sch
