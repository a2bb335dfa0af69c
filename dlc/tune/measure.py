"""Building and measuring candidates: MetaSchedule's builder and runner, set up the way dlc builds and runs.

* llvm: ``LocalBuilder`` + ``LocalRunner`` (or the RPC runner), the kernel run with as many threads as
  ``dlc run`` uses (every core of the affinity mask), so the latencies are the ones the artifact will see.
* Builds run in worker processes that live for the whole run (``Builder``).
* cuda: the builder compiles each candidate's device code with nvcc, exactly as ``dlc compile`` does
  (``dlc/build/cuda.py``), and ships the fatbin in the candidate's archive: a kernel that nvcc or ptxas
  refuses fails here, and the GPU box needs neither nvcc nor NVRTC. Measuring needs the GPU, i.e. RPC.

Every build and measurement is bounded by ``timeout`` seconds (a worker past it is killed).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
import sys
import tempfile

import tvm
from tvm import s_tir
from tvm.ir.utils import derived_object
from tvm.s_tir import meta_schedule as ms
from tvm.support.popen_pool import PopenPoolExecutor, StatusKind
from tvm.target import Target

from ..schedule.apply import untuned_schedule
from ..target import host_cpu_count, is_cuda

# How each candidate is timed: TVM's time_evaluator, median-free mean of `repeat` runs of >= min_repeat_ms.
EVALUATOR = ms.runner.EvaluatorConfig(number=1, repeat=3, min_repeat_ms=40, enable_cpu_cache_flush=False)


def measuring_threads(threads: int | None = None) -> int:
    """Threads a measured kernel uses (default: every core, what ``dlc run`` uses). Set before any worker
    starts. Tune with the thread count the model will run with: the best tiles of one thread and of all
    cores differ (a row band that splits well across cores is not the best one for one core)."""
    n = threads or host_cpu_count()
    os.environ["TVM_NUM_THREADS"] = str(n)  # the runner's popen workers inherit it
    return n


def _register_intrinsics_package() -> None:
    """Make ``tvm.s_tir.tensor_intrin`` importable without running its ``__init__`` (see below)."""
    name = "tvm.s_tir.tensor_intrin"
    if name not in sys.modules:
        spec = importlib.util.find_spec(name)
        package = importlib.util.module_from_spec(spec)
        sys.modules[name] = package
        tvm.s_tir.tensor_intrin = package


def uses_half(func: tvm.tirx.PrimFunc) -> bool:
    # In TVM 0.27 a buffer parameter is a Var whose type (a BufferType) has the dtype.
    return any(str(getattr(p.ty, "dtype", "")) in ("float16", "bfloat16") for p in func.params)


def search_space(func: tvm.tirx.PrimFunc, target: Target) -> ms.space_generator.SpaceGenerator:
    """MetaSchedule's design space for a kernel, importing only the tensorization intrinsics it can use.

    MetaSchedule imports ``tvm.s_tir.tensor_intrin`` whole (in every ``TuneContext``, and in each worker of
    its default builder); that package imports every backend's intrinsics, and its cuda part alone took 35 s
    of CPU (88 s wall) on these shared 2-core machines. So the package is registered without running its
    ``__init__`` and only what the space can use is imported: x86 for llvm; for cuda the tensor-core rules
    (and their intrinsics) only when the kernel has 16-bit floats, TVM's plain cuda rules otherwise.
    """
    _register_intrinsics_package()
    if not is_cuda(target):
        importlib.import_module("tvm.s_tir.tensor_intrin.x86")
        hand = _rule_space(func, target)
        if hand is None:
            return ms.space_generator.PostOrderApply()
        return hand
    if uses_half(func):
        importlib.import_module("tvm.s_tir.tensor_intrin.cuda")
        return ms.space_generator.PostOrderApply()  # the target's rules: tensor cores from sm_70 on
    return ms.space_generator.PostOrderApply(sch_rules="cuda", postprocs="cuda", mutator_probs="cuda")


def has_decisions(sch: s_tir.Schedule) -> bool:
    """Whether a rule's schedule is a design space: its tile sizes are sampled decisions (tunable_split)."""
    return any(inst.kind.name == "SamplePerfectTile" for inst in sch.trace.insts)


def _rule_space(func: tvm.tirx.PrimFunc, target: Target) -> ms.space_generator.ScheduleFn | None:
    """The rule that schedules this kernel at compile time, as a design space, if it has decisions to tune.

    Rules take their tile sizes through ``tunable_split`` (sampled perfect tiles whose decision is the
    heuristic's choice), so the rule's trace is a space of schedules of the same structure with other tile
    sizes. MetaSchedule searches it beside its own generic space (``PostOrderApply``): the search starts
    from schedules as good as the rule's structure rather than from scratch.
    """
    found = untuned_schedule(func, target)
    if found is None or not has_decisions(found[1]):
        return None

    def rule_schedule(sch: s_tir.Schedule) -> s_tir.Schedule:
        return untuned_schedule(sch.mod["main"], target)[1]

    return ms.space_generator.ScheduleFn(rule_schedule)


@derived_object
class Builder(ms.builder.PyBuilder):
    """Builds candidates in a pool of worker processes that live for the whole run.

    (TVM's ``LocalBuilder`` starts a new pool for every batch, and each new worker pays for importing TVM,
    and its ``default_build`` for all tensor intrinsics: minutes per batch here.) A worker is replaced after
    64 builds (TVM's workers leak memory) and killed when a build takes longer than ``timeout``.
    """

    def __init__(self, target: Target, timeout: float, workers: int | None = None):
        super().__init__()
        self.cuda = is_cuda(target)
        self.timeout = timeout
        self.pool = PopenPoolExecutor(max_workers=workers or host_cpu_count(), timeout=timeout,
                                      maximum_process_uses=64)

    def build(self, build_inputs: list[ms.builder.BuilderInput]) -> list[ms.builder.BuilderResult]:
        results = []
        jobs = [(self.cuda, b.mod, b.target) for b in build_inputs]
        for r in self.pool.map_with_error_catching(_build_job, jobs):
            if r.status == StatusKind.COMPLETE:
                results.append(ms.builder.BuilderResult(r.value, None))
            elif r.status == StatusKind.TIMEOUT:
                results.append(ms.builder.BuilderResult(None, f"dlc builder: timeout, killed after {self.timeout:g}s"))
            else:
                results.append(ms.builder.BuilderResult(None, f"dlc builder: {type(r.value).__name__}: {r.value}"))
        return results

    def shutdown(self) -> None:
        self.pool.shutdown(wait=False)


def make_builder(target: Target, timeout: float) -> Builder:
    return Builder(target, timeout)


def make_local_runner(timeout: float) -> ms.runner.Runner:
    return ms.runner.LocalRunner(timeout_sec=timeout, evaluator_config=EVALUATOR)


# ---- in the builder's worker processes ------------------------------------------------------------------------
def _build_job(job: tuple[bool, tvm.IRModule, Target]) -> str:
    """Build one candidate and export it as TVM's runners expect (a .tar the runner links); return its path."""
    from tvm.s_tir.transform import RemoveWeightLayoutRewriteBlock
    from tvm.support.tar import tar

    from ..build import tir_pipeline  # registers dlc's TIR pipeline in this worker process

    cuda, mod, target = job
    mod = RemoveWeightLayoutRewriteBlock(skip_tensor_rewrite=True)(mod)  # as MetaSchedule's default build
    executable = tvm.compile(mod, target=target, tir_pipeline=tir_pipeline(target))
    path = os.path.join(tempfile.mkdtemp(prefix="dlc-cand-"), "tvm_tmp_mod." + tar.output_format)
    if not cuda:
        executable.export_library(path, fcompile=tar)
        return path
    from ..build.cuda import compile_device_code, swap_cuda_code
    from ..runtime.artifact import _pack_imports

    # nvcc + ptxas here, as dlc compile does; the archive carries the fatbin, not CUDA source.
    binaries = compile_device_code(executable, target)
    executable.export_library(path, fcompile=tar,
                              fpack_imports=_pack_imports(lambda blob: swap_cuda_code(blob, binaries)))
    return path


# ---- schedules measured outside the search (the hand-written baseline, the side-by-side confirmation) --------
def measure_module(mod: tvm.IRModule, target: Target, builder: ms.builder.Builder,
                   runner: ms.runner.Runner) -> tuple[list[float] | None, str | None]:
    """(run_secs, None) or (None, error) for one scheduled workload, through the same builder and runner."""
    series, error = measure_alternately([mod], target, builder, runner, rounds=1)
    return (series[0][0] if series else None), error


def measure_alternately(mods: list[tvm.IRModule], target: Target, builder: ms.builder.Builder,
                        runner: ms.runner.Runner, rounds: int) -> tuple[list[list[list[float]]] | None, str | None]:
    """Build each scheduled workload once, then run them in turn ``rounds`` times: per module, one list of
    run_secs per round (a change of the host's state between rounds hits every module alike). Or (None,
    error) for the first build or run that fails."""
    args_info = ms.arg_info.ArgInfo.from_prim_func(mods[0]["main"])
    built = builder.build([ms.builder.BuilderInput(mod, target) for mod in mods])
    try:
        for b in built:
            if b.error_msg:
                return None, f"build failed: {b.error_msg.strip().splitlines()[-1][:300]}"
        device = "cuda" if is_cuda(target) else "cpu"
        series: list[list[list[float]]] = [[] for _ in mods]
        for _ in range(rounds):
            for b, samples in zip(built, series):
                (future,) = runner.run([ms.runner.RunnerInput(b.artifact_path, device, args_info)])
                result = future.result()
                if result.error_msg:
                    lines = [ln for ln in result.error_msg.strip().splitlines() if ln.strip()]
                    return None, f"run failed: {' | '.join(lines[:2])[:300]}"
                samples.append([secs(s) for s in result.run_secs])
        return series, None
    finally:
        for b in built:
            if b.artifact_path:
                shutil.rmtree(os.path.dirname(b.artifact_path), ignore_errors=True)


def secs(value) -> float:
    """A run time from a RunnerResult (TVM hands FloatImm nodes) as a float."""
    return float(getattr(value, "value", value))
