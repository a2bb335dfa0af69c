"""Dense, matmul and batch matmul in fp32 (and any dtype without tensor cores), with fused epilogues.

Matches a contraction without a kernel window and with one row axis (``C[b, i, j] += A[b, i, k] *
B[b, k, j]`` in any operand layout: transposed weights, ``[N, K]`` or ``[K, N]``, batch axes or none).

* ``matmul_tiled``: 64x64-class block tiles, a 4x4 register tile per thread, both operands staged in
  shared memory with float4 loads where rows allow.
* ``gemv``: one row (a dense layer at batch 1, a 1x1 convolution of a 1x1 image) is memory-bound: each thread block
  takes a strip of output columns and splits the reduction across threads (TVM's cross-thread reduction),
  with the threads that read the weight matrix's contiguous axis side by side for coalesced loads.
"""

from dlc.schedule import rule

from . import _common as C

CONFIGS = [
    dict(threads=256, inner={"weight": 4, "data": 4}, thread_caps={"weight": 16, "data": 16}, k_inner=16),
    dict(threads=128, inner={"weight": 4, "data": 2}, thread_caps={"weight": 16, "data": 16}, k_inner=16),
    dict(threads=64, inner={"weight": 2, "data": 2}, thread_caps={"weight": 8, "data": 8}, k_inner=16),
    dict(threads=64, inner={"weight": 1, "data": 1}, thread_caps={"weight": 8, "data": 8}, k_inner=16),
]


def is_matmul(c: C.Contraction) -> bool:
    return not c.is_convolution() and not C.is_gemv(c)


@rule("cuda", order=30)
def matmul_tiled(func, target):
    return C.schedule_contraction(func, target, CONFIGS, is_matmul, vector=4)


@rule("cuda", order=25)
def gemv(func, target):
    k = C.analyze(func)
    if k is None or len(k.reductions()) != 1:
        return None
    c = C.contraction(k, k.reductions()[0])
    if c is None or not C.is_gemv(c):
        return None
    sch, block = k.sch, c.block.block_rv
    epilogue = C.inline_epilogue(sch, block)
    loops = sch.get_loops(block)
    spatial = sch.fuse(*[lp for lp, r in zip(loops, c.roles) if r not in ("channel", "window")])
    reduce = sch.fuse(*[lp for lp, r in zip(loops, c.roles) if r in ("channel", "window")])
    # Which axis of the weight matrix is contiguous decides which threads sit side by side (threadIdx.x).
    k_inner = bool(C.innermost_roles(k, c, 1 - c.a_index) & {"channel", "window"})
    n = C.int_extent(sch.get(spatial).extent)
    tj, tr = (C.largest_divisor(n, 4), 64) if k_inner else (C.largest_divisor(n, 32), 8)
    bx, j = sch.split(spatial, [None, tj])
    ro, r = sch.split(reduce, [None, tr])
    sch.reorder(bx, j, r, ro)
    sch.bind(bx, "blockIdx.x")
    sch.bind(j, "threadIdx.y" if k_inner else "threadIdx.x")
    sch.bind(r, "threadIdx.x" if k_inner else "threadIdx.y")
    sch.unroll(sch.split(ro, [None, 4])[1])  # four independent loads in flight per thread
    C.accumulate_in_registers(sch, block, j, epilogue)
    C.bind_leftovers(sch)
    return sch
