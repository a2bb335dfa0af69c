"""Static checks of whole models compiled for cuda (no GPU needed): every kernel through nvcc for sm_80 and
sm_90, hand-written schedules for every conv/dense/matmul, ptxas's resource report within the arch's
limits, and launch bounds that agree with the threads the schedule bound.

The default run takes ResNet-50 and the two benchmark models for sm_80; ``-m slow`` adds the rest of the
light zoo and sm_90 (eleven models, two archs).
"""

import pytest
from cuda_kernels import HEAVY, build_model, threads_per_kernel

from dlc.build.cuda import MAX_REGISTERS, MAX_STATIC_SHARED_BYTES, MAX_THREADS, parse_ptxas, resource_problems
from dlc.models import BUILT, LIGHT_MODELS

DEFAULT = {("resnet50", "sm_80"), ("mobilenet_v2", "sm_80"), ("transformer_encoder", "sm_80")}
MATRIX = [pytest.param(name, arch, marks=() if (name, arch) in DEFAULT else pytest.mark.slow, id=f"{name}-{arch}")
          for arch in ("sm_80", "sm_90") for name in (*LIGHT_MODELS, *BUILT)]


def _is_heavy(report) -> bool:
    return any(word in report.blocks for word in HEAVY)


@pytest.mark.parametrize("name,arch", MATRIX)
def test_every_kernel_compiles_with_a_schedule(name, arch):
    b = build_model(name, arch)
    assert b.binaries and all(x.arch == arch and x.fatbin for x in b.binaries)
    assert all(k.origin != "none" and not k.rejected for k in b.kernels), \
        [(k.name, k.origin, k.rejected) for k in b.kernels if k.origin == "none" or k.rejected]
    heavy = [k for k in b.kernels if _is_heavy(k)]
    assert heavy, "a model without conv/matmul kernels tests nothing here"
    left_to_fallback = [k.name for k in heavy if not k.origin.startswith("hand:")]
    assert not left_to_fallback, f"conv/dense/matmul kernels without a hand-written schedule: {left_to_fallback}"


@pytest.mark.parametrize("name,arch", MATRIX)
def test_ptxas_resources_within_arch_limits(name, arch):
    b = build_model(name, arch)
    kernels = [k for x in b.binaries for k in x.kernels]
    assert len(kernels) >= len(b.kernels)  # every PrimFunc launches at least one kernel
    for k in kernels:
        assert 0 < k.registers <= MAX_REGISTERS, k
        assert k.shared_bytes <= MAX_STATIC_SHARED_BYTES, k
    heavy = [k for k in kernels if _is_heavy(b.report(k.name))]
    assert heavy
    assert not [p for x in b.binaries for p in resource_problems(x) if p.split(":")[0] in {k.name for k in heavy}]
    # The shared-memory tiles are really there (a schedule that lost them would still compile).
    assert any(k.shared_bytes > 0 for k in heavy)


@pytest.mark.parametrize("name,arch", MATRIX)
def test_launch_bounds_match_thread_bindings(name, arch):
    b = build_model(name, arch)
    bounds = {k: v for x in b.binaries for k, v in x.launch_bounds().items()}
    bound_in_schedule = threads_per_kernel(b.mod)
    assert bounds == bound_in_schedule
    assert all(32 <= t <= MAX_THREADS for t in bounds.values() if t != 1), bounds  # whole warps, mostly


def test_resource_problems_flag_spills_registers_and_shared_memory():
    report = """ptxas info    : Compiling entry function 'k0' for 'sm_80'
ptxas info    : Function properties for k0
    8 bytes stack frame, 8 bytes spill stores, 8 bytes spill loads
ptxas info    : Used 56 registers, used 1 barriers, 8 bytes cumulative stack size, 13696 bytes smem, 384 bytes cmem[0]
ptxas info    : Compiling entry function 'k1' for 'sm_80'
ptxas info    : Function properties for k1
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 255 registers, 65536 bytes smem, 368 bytes cmem[0]
"""
    from dlc.build.cuda import DeviceBinary

    k0, k1 = parse_ptxas(report)
    assert (k0.registers, k0.shared_bytes, k0.spill_stores) == (56, 13696, 8)  # smem after "stack size"
    source = 'extern "C" __global__ void __launch_bounds__(2048) k1(float* x) {}'
    problems = resource_problems(DeviceBinary(source, b"", "sm_80", [k0, k1]))
    assert any(p.startswith("k0: spills 8 bytes") for p in problems)
    assert any(p.startswith("k1: 65536 bytes of shared memory") for p in problems)
    assert any(p.startswith("k1: 2048 threads") for p in problems)
    assert not any("registers" in p for p in problems)  # 255 is allowed
