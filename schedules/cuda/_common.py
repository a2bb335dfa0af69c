"""What the cuda rules share: kernel analysis, the roles of a contraction's axes, tile plans, and the
multi-level tiling that conv2d, depthwise conv and matmul all use.

Vocabulary. A *contraction* is a reduction block ``C[...] += A[...] * B[...]`` (conv, matmul, dense, batch
matmul, in any layout). Its axes get roles from where their variables appear, never from names:

    batch    spatial, in A, B and C       matmul batch; a conv's output channel when groups > 1
    data     spatial, in A and C          conv n/y/x, matmul rows
    weight   spatial, in B and C          conv output channels, matmul columns
    window   reduction, in an index of A next to a data axis (``y * s + ry``): a conv's kernel window
    channel  reduction, any other        conv input channels, matmul k

Every rule here is deterministic: the same PrimFunc and target give the same schedule (tuning relies on it).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import math
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import tvm
import tvm_ffi
from tvm import s_tir, tirx
from tvm.s_tir.dlight.analysis import SBlockInfo, get_root_block, normalize_prim_func
from tvm.target import Target

# Launch shape limits that keep ptxas within 255 registers a thread without spilling: TVM emits
# __launch_bounds__(threads), and 65536 registers / 256 threads = 256 a thread.
MAX_THREADS = 256
# Below this many thread blocks a plan is considered to leave SMs idle (an A100 has 108, an H100 132).
MIN_BLOCKS = 128
UNROLL_STEPS = 256  # more unrolls a conv's whole k-chunk x window: 700-line kernels, and ptxas starts to spill


@dataclass
class Kernel:
    sch: s_tir.Schedule
    blocks: list[SBlockInfo]

    def reductions(self) -> list[SBlockInfo]:
        return [b for b in self.blocks if b.is_reduction()]

    def get(self, info: SBlockInfo) -> s_tir.SBlock:
        return self.sch.get(info.block_rv)


def analyze(func: tirx.PrimFunc) -> Kernel | None:
    """The kernel's blocks in normal form (one loop per block iterator), or None if TVM cannot tell."""
    sch = s_tir.Schedule(func)
    blocks = normalize_prim_func(sch)
    if blocks is None or any("O" in b.dom_kind() for b in blocks):
        return None
    return Kernel(sch, blocks)


def max_shared_bytes(target: Target) -> int:
    return int(target.attrs.get("max_shared_memory_per_block", 49152))


def int_extent(x) -> int | None:
    return int(x) if isinstance(x, (int, tirx.IntImm)) else None


def int_extent_product(extents) -> int | None:
    """Product of the extents, or None if any of them is symbolic."""
    values = [int_extent(e) for e in extents]
    return None if None in values else math.prod(values)


def same_extents(a, b) -> bool:
    return len(a) == len(b) and all(tvm_ffi.structural_equal(x, y) for x, y in zip(a, b))


def largest_divisor(n: int | None, cap: int) -> int:
    """Largest divisor of ``n`` not above ``cap`` (1 for a symbolic ``n``)."""
    if n is None:
        return 1
    return max(d for d in range(1, max(1, min(n, cap)) + 1) if n % d == 0)


def dtype_bytes(dtype) -> int:
    return max(1, tvm.runtime.DataType(str(dtype)).bits // 8)


def index_vars(expr) -> set:
    return set(tirx.analysis.undefined_vars(expr))


def _strip_cast(e):
    while isinstance(e, tirx.Cast):
        e = e.value
    return e


# ---- contractions ---------------------------------------------------------------------------------------
@dataclass
class Contraction:
    """A multiply-accumulate block and the role of each of its axes (see the module docstring)."""

    block: SBlockInfo
    roles: list[str]  # one per block iterator, in loop order
    extents: list[int | None]
    a_index: int  # position of A (the data operand) in the block's reads
    in_dtype: str
    out_dtype: str
    weight_constant_dims: int = 0  # dims of B indexed by a constant: a 1x1 conv's kernel window

    def is_convolution(self) -> bool:
        """A kernel window, or the unit window a 1x1 convolution's weight still has (``W[f, c, 0, 0]``)."""
        return bool(self.axes("window")) or self.weight_constant_dims >= 2

    def axes(self, *roles: str) -> list[int]:
        return [i for i, r in enumerate(self.roles) if r in roles]

    def extent(self, *roles: str) -> int | None:
        """Product of the extents of the axes with these roles (None if any is symbolic)."""
        out = 1
        for i in self.axes(*roles):
            if self.extents[i] is None:
                return None
            out *= self.extents[i]
        return out


def contraction(k: Kernel, info: SBlockInfo) -> Contraction | None:
    """``info`` as a contraction ``C += A * B`` with roles, or None if it is not one."""
    block = k.get(info)
    if len(block.reads) != 2 or len(block.writes) != 1 or not isinstance(block.body, tirx.BufferStore) \
            or len(block.iter_vars) != len(info.iters):
        return None
    value = block.body.value
    if not isinstance(value, tirx.Add):
        return None
    acc, prod = value.a, _strip_cast(value.b)
    if not (isinstance(acc, tvm.ir.TensorLoad) and acc.source.same_as(block.body.buffer)):
        return None
    if not isinstance(prod, tirx.Mul):
        return None
    loads = [_strip_cast(prod.a), _strip_cast(prod.b)]
    if not all(isinstance(x, tvm.ir.TensorLoad) for x in loads):
        return None
    reads = [r.source for r in block.reads]
    if not all(any(x.source.same_as(r) for r in reads) for x in loads) or loads[0].source.same_as(loads[1].source):
        return None
    c_vars = set().union(*(index_vars(i) for i in block.body.indices))
    var_sets = [set().union(*(index_vars(i) for i in x.indices)) for x in loads]
    # A (the data) is the operand whose index holds the kernel window, if there is one.
    iters = [iv.var for iv in block.iter_vars]
    kinds = info.dom_kind()
    best = None
    for a in (0, 1):
        b = 1 - a
        roles = []
        for v, kind in zip(iters, kinds):
            in_a, in_b, in_c = v in var_sets[a], v in var_sets[b], v in c_vars
            if kind == "S":
                role = ("batch" if in_a and in_b else "data" if in_a else "weight" if in_b else None) if in_c else None
            else:
                role = "reduce" if in_a and in_b else None
            if role is None:
                return None
            roles.append(role)
        data_vars = {v for v, r in zip(iters, roles) if r == "data"}
        for i, (v, r) in enumerate(zip(iters, roles)):
            if r == "reduce":
                window = any(v in index_vars(e) and index_vars(e) & data_vars for e in loads[a].indices)
                roles[i] = "window" if window else "channel"
        score = (roles.count("window"), a == 0)  # else the first factor is the data, as legalized ops write it
        if best is None or score > best[0]:
            best = (score, a, roles)
    _, a, roles = best
    a_index = next(i for i, r in enumerate(reads) if r.same_as(loads[a].source))
    constant_dims = sum(isinstance(i, tirx.IntImm) for i in loads[1 - a].indices)
    return Contraction(info, roles, [int_extent(x.dom) for x in info.iters], a_index,
                       str(loads[a].source.dtype), str(block.body.buffer.dtype), constant_dims)


def innermost_roles(k: Kernel, c: Contraction, read_index: int) -> set[str]:
    """Roles of the axes in the innermost (contiguous) index of one operand."""
    block = k.get(c.block)
    last = block.reads[read_index].region[-1].min
    used = index_vars(last)
    return {r for iv, r in zip(block.iter_vars, c.roles) if iv.var in used}


# ---- tile plans ----------------------------------------------------------------------------------------
@dataclass
class Plan:
    """Per loop: (blocks, threads, inner) for a spatial loop, (outer, 1, inner) for a reduction loop."""

    factors: list[tuple[int | None, int, int]]

    @property
    def threads(self) -> int:
        return math.prod(t for _, t, _ in self.factors)

    def blocks(self, c: Contraction) -> int:
        return math.prod((b or 1) for (b, _, _), r in zip(self.factors, c.roles) if r in ("batch", "data", "weight"))


def plan_contraction(c: Contraction, *, threads: int, inner: dict[str, int], thread_caps: dict[str, int],
                     k_inner: int, window_outer: int = 0) -> Plan:
    """Exact-divisor tiles (no predicates): ``inner`` and ``thread_caps`` per role bound the register tile
    and the threads on the innermost axis of each role; the channel axes are cut into ``k_inner`` chunks;
    the first ``window_outer`` window axes are walked one step at a time (large kernels, e.g. 7x7, 11x11)."""
    n = len(c.roles)
    inner_f = [1] * n
    thread_f = [1] * n
    for role, cap in inner.items():  # the register tile sits on the innermost axis of a role
        axes = [i for i in c.axes(role) if (c.extents[i] or 1) > 1]
        if axes:
            inner_f[axes[-1]] = largest_divisor(c.extents[axes[-1]], cap)
    budget = threads
    # Threads: the output's innermost axis first (coalesced stores), then weights, data, batch, inner to outer.
    spatial = c.axes("batch", "data", "weight")
    order = spatial[-1:] + [i for role in ("weight", "data", "batch") for i in reversed(c.axes(role))
                            if i != spatial[-1]]
    for i in order:
        if c.extents[i] is None:
            continue
        cap = min(budget, thread_caps.get(c.roles[i], budget))
        thread_f[i] = largest_divisor(c.extents[i] // inner_f[i], cap)
        budget //= thread_f[i]
    factors = []
    channel = [i for i in c.axes("channel") if c.extents[i] is not None]
    chunked = max(channel, key=lambda i: c.extents[i], default=None)
    for i, (role, ext) in enumerate(zip(c.roles, c.extents)):
        if role == "window":
            outer = ext is None or c.axes("window").index(i) < window_outer
            factors.append((None if ext is None else ext, 1, 1) if outer else (1, 1, ext))
        elif role == "channel":
            k = largest_divisor(ext, k_inner) if i == chunked else 1
            factors.append((None if ext is None else ext // k, 1, k))
        else:
            factors.append((None if ext is None else ext // (thread_f[i] * inner_f[i]), thread_f[i], inner_f[i]))
    return Plan(factors)


def choose_plan(c: Contraction, configs: list[dict]) -> Plan:
    """The first config whose plan fills the GPU (MIN_BLOCKS thread blocks), else the last one."""
    plan = None
    for cfg in configs:
        plan = plan_contraction(c, **cfg)
        if plan.blocks(c) >= MIN_BLOCKS:
            break
    return plan


# ---- the multi-level tiling ------------------------------------------------------------------------------
def _consumers_after(sch: s_tir.Schedule, block) -> list:
    """Blocks reading ``block``'s output, directly or through others, in program order."""
    seen, todo, out = set(), [block], []
    while todo:
        for c in sch.get_consumers(todo.pop()):
            key = sch.get(c).name_hint
            if key not in seen:
                seen.add(key)
                out.append(c)
                todo.append(c)
    order = {sch.get(b).name_hint: i for i, b in enumerate(sch.get_child_blocks(get_root_block(sch)))}
    return sorted(out, key=lambda b: order.get(sch.get(b).name_hint, 0))


def inline_epilogue(sch: s_tir.Schedule, block) -> list:
    """Inline every elementwise consumer of ``block`` that is not an output; return those left (outputs)."""
    changed = True
    while changed:
        changed = False
        for c in _consumers_after(sch, block):
            try:
                sch.compute_inline(c)
                changed = True
                break
            except s_tir.ScheduleError:
                continue
    return _consumers_after(sch, block)


def inline_producers(sch: s_tir.Schedule, block) -> None:
    """Inline every injective producer of ``block`` (padding, reshapes, reindex copies) into it."""
    changed = True
    while changed:
        changed = False
        for p in sch.get_producers(block):
            try:
                sch.compute_inline(p)
                changed = True
                break
            except s_tir.ScheduleError:
                continue


def accumulate_in_registers(sch: s_tir.Schedule, block, loop, epilogue: list) -> None:
    """The reduction accumulates in registers; its epilogue (or a write-back) runs per thread at ``loop``."""
    if epilogue:
        sch.set_scope(block, 0, "local")
        for e in epilogue:
            sch.reverse_compute_at(e, loop, preserve_unit_loops=True)
    else:
        write = sch.cache_write(block, 0, "local")
        sch.reverse_compute_at(write, loop, preserve_unit_loops=True)


def cooperative_fetch(sch: s_tir.Schedule, cache, loop, threads: int, vector: int) -> int:
    """Load a shared-memory tile with every thread of the block; returns the tile's element count.

    The copy is vectorized only when it is a plain aligned copy: no padding condition inlined into it, the
    tile's and the source row's innermost extents divisible by ``vector``, and no partial last round.
    """
    sch.compute_at(cache, loop, preserve_unit_loops=True)
    inline_producers(sch, cache)
    loops = sch.get_loops(cache)
    depth = next(i for i, lp in enumerate(loops) if sch.get(lp).same_as(sch.get(loop))) + 1
    extents = [int_extent(sch.get(lp).extent) or 1 for lp in loops[depth:]]
    size = math.prod(extents)
    value = sch.get(cache).body.value
    plain = isinstance(value, tvm.ir.TensorLoad) and (int_extent(value.source.shape[-1]) or 1) % vector == 0
    fused = sch.fuse(*loops[depth:])
    if vector > 1 and plain and extents[-1] % vector == 0 and size % (threads * vector) == 0:
        _, tx, vec = sch.split(fused, [None, threads, vector])
        sch.vectorize(vec)
    else:
        _, tx = sch.split(fused, [None, threads])
    sch.bind(tx, "threadIdx.x")
    return size


def tile_contraction(k: Kernel, c: Contraction, plan: Plan, target: Target, *, vector: int = 4,
                     shared_budget: int | None = None) -> s_tir.Schedule | None:
    """Block / thread / register tiling of a contraction with both operands staged in shared memory.

    Loop order ``blocks, threads, k_outer, k_inner+window, register tile`` (MetaSchedule's SSRRS without
    virtual threads); the epilogue runs per thread on the register tile; producers of A and B (padding,
    layout copies) are inlined into the shared-memory loads. Returns None if the tiles do not fit in
    ``shared_budget`` bytes (default: half the block's shared memory, for two blocks per SM).
    """
    sch = k.sch
    block = c.block.block_rv
    epilogue = inline_epilogue(sch, block)
    loops = sch.get_loops(block)
    level = {"b": [], "v": [], "t": [], "ro": [], "ri": []}
    for loop, role, (nb, nt, ni) in zip(loops, c.roles, plan.factors):
        if role in ("window", "channel"):
            lo, li = sch.split(loop, [nb, ni])
            level["ro"].append(lo)
            level["ri"].append(li)
        else:
            # The register tile is a virtual-thread loop: a thread's outputs are strided by the thread
            # count, so neighbouring threads read neighbouring shared-memory words and store neighbouring
            # outputs, while each virtual thread keeps its own (compact) registers.
            lb, lv, lt = sch.split(loop, [nb, ni, nt])
            level["b"].append(lb)
            level["v"].append(lv)
            level["t"].append(lt)
    sch.reorder(*level["b"], *level["v"], *level["t"], *level["ro"], *level["ri"])
    bx = sch.fuse(*level["b"])
    vx = sch.fuse(*level["v"])
    tx = sch.fuse(*level["t"])
    sch.bind(bx, "blockIdx.x")
    sch.bind(vx, "vthread.x")
    sch.bind(tx, "threadIdx.x")
    accumulate_in_registers(sch, block, tx, epilogue)
    k_outer = level["ro"][-1] if level["ro"] else tx
    elem = dtype_bytes(c.in_dtype)
    shared = 0
    for index in (0, 1):
        cache = sch.cache_read(block, index, "shared")
        shared += cooperative_fetch(sch, cache, k_outer, plan.threads, vector) * elem
    if shared > (shared_budget or max_shared_bytes(target) // 2):
        return None
    sch.annotate(bx, "pragma_auto_unroll_max_step", UNROLL_STEPS)
    sch.annotate(bx, "pragma_unroll_explicit", 1)
    if level["ro"]:
        sch.decompose_reduction(block, level["ro"][0])
    return sch


def schedule_contraction(func: tirx.PrimFunc, target: Target, configs: list[dict],
                         accept: Callable[[Contraction], bool], **tile_options) -> s_tir.Schedule | None:
    """The whole recipe for a kernel with one contraction that ``accept`` takes: plan, tile, bind the rest.

    If the tiles do not fit in shared memory, the reduction chunk is halved (twice), then the kernel
    window is walked row by row, then point by point.
    """
    for shrink, window_outer in ((1, 0), (2, 0), (4, 0), (4, 1), (4, 2)):
        k = analyze(func)
        if k is None or len(k.reductions()) != 1:
            return None
        c = contraction(k, k.reductions()[0])
        if c is None or not accept(c):
            return None
        plan = choose_plan(c, [{**cfg, "k_inner": max(1, cfg["k_inner"] // shrink), "window_outer": window_outer}
                               for cfg in configs])
        sch = tile_contraction(k, c, plan, target, **tile_options)
        if sch is not None:
            bind_leftovers(sch)
            return sch
    return None


def is_gemv(c: Contraction) -> bool:
    """One output row (a dense layer at batch 1, or a 1x1 convolution of a 1x1 image): memory-bound."""
    return not c.axes("window") and c.extent("data") == 1 and c.extent("batch") == 1 \
        and c.extent("weight") is not None


def is_depthwise(c: Contraction) -> bool:
    """One input channel per output channel: no channel reduction, the output channel indexes all three."""
    return bool(c.axes("window")) and (c.extent("channel") or 2) == 1 and (c.extent("weight") or 2) == 1 \
        and (c.extent("batch") or 2) > 1


# ---- tensor-core intrinsics -------------------------------------------------------------------------------
@contextlib.contextmanager
def _cheap_inspect_stack(full_frames: int = 3) -> Iterator[None]:
    """``inspect.stack()`` that reads source context for the innermost frames only.

    TVMScript's ``@T.prim_func`` calls ``inspect.stack()`` for every function it parses and only looks at
    the caller's frames; the full version resolves a module and reads source for every frame of the stack,
    which makes importing TVM's ~500 CUDA intrinsics take minutes instead of seconds on a busy machine.
    """
    real = inspect.stack

    def stack(context: int = 1):
        frame, out = sys._getframe(1), []
        while frame is not None:
            code = frame.f_code
            out.append(inspect.FrameInfo(frame, *inspect.getframeinfo(frame, context)) if len(out) < full_frames
                       else inspect.FrameInfo(frame, code.co_filename, frame.f_lineno, code.co_name, None, None))
            frame = frame.f_back
        return out

    inspect.stack = stack
    try:
        yield
    finally:
        inspect.stack = real


@functools.cache
def import_tensor_intrinsics() -> None:
    """Import (and so register) TVM's tensor intrinsics, ~500 TVMScript functions, in seconds, not minutes.

    MetaSchedule's ``TuneContext`` imports them too: call this first wherever one is made.
    """
    with _cheap_inspect_stack():
        import tvm.s_tir.tensor_intrin  # noqa: F401


def wmma_intrinsics() -> Callable[..., dict[str, str]]:
    """TVM's ``get_wmma_intrin_group`` (the intrinsics registered on first use)."""
    import_tensor_intrinsics()
    from tvm.s_tir.tensor_intrin.cuda import get_wmma_intrin_group

    return get_wmma_intrin_group


# ---- simple shapes ---------------------------------------------------------------------------------------
def bind_spatial(sch: s_tir.Schedule, block, threads: int = MAX_THREADS, vector: int = 1) -> None:
    """One thread per output element (``vector`` consecutive elements with vector loads/stores)."""
    loops = sch.get_loops(block)
    if not loops:
        loops = [sch.add_unit_loop(block)]
    fused = sch.fuse(*loops)
    ext = int_extent(sch.get(fused).extent)
    if vector > 1 and ext is not None and ext % vector == 0:
        fused, vec = sch.split(fused, [None, vector])
        ext //= vector
    else:
        vec = None
    t = threads if ext is None else min(threads, max(1, ext))
    bx, tx = sch.split(fused, [None, t])
    sch.bind(bx, "blockIdx.x")
    sch.bind(tx, "threadIdx.x")
    if vec is not None:
        sch.vectorize(vec)


def vector_width(sch: s_tir.Schedule, block, lanes: int = 4) -> int:
    """``lanes`` if the block's innermost axis can move as aligned vectors, else 1.

    Every access must either ignore the innermost iterator or index its buffer's innermost dimension
    with exactly that iterator, in buffers whose rows are a multiple of ``lanes`` long; otherwise a
    vector access could straddle an unaligned address (a concat offset, a slice) or gather.
    """
    stmt = sch.get(block)
    if not stmt.iter_vars or not isinstance(stmt.body, tirx.BufferStore):
        return 1
    inner = stmt.iter_vars[-1]
    if (int_extent(inner.dom.extent) or 1) % lanes or tvm.runtime.DataType(str(stmt.body.buffer.dtype)).bits > 32:
        return 1
    accesses = [(stmt.body.buffer, stmt.body.indices)]
    tvm_ffi.structural_walk(stmt.body.value, [(tvm.ir.TensorLoad, lambda x: accesses.append((x.source, x.indices)))],
                            order="pre")
    for buffer, indices in accesses:
        uses = [inner.var in index_vars(i) for i in indices]
        if not any(uses):
            continue
        if any(uses[:-1]) or not indices[-1].same_as(inner.var) or (int_extent(buffer.shape[-1]) or 1) % lanes:
            return 1
    return lanes


def bind_leftovers(sch: s_tir.Schedule) -> None:
    """Give every block not yet under a thread binding one thread per element (e.g. a dropout mask)."""
    for block in sch.get_child_blocks(get_root_block(sch)):
        loops = sch.get_loops(block)
        if any(sch.get(lp).thread_binding is not None for lp in loops):
            continue
        if any(iv.iter_type != tirx.IterVar.DataPar for iv in sch.get(block).iter_vars):
            continue
        bind_spatial(sch, block)
