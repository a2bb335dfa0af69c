"""Targets: what the user writes, what TVM gets, and the key that ties records to a machine.

User-facing forms (``--target``):

* ``llvm``              the host CPU, detected (mcpu, features, cores)
* ``llvm:<mcpu>``       another x86 CPU, e.g. ``llvm:skylake-avx512``
* ``cuda``              NVIDIA GPU, default arch ``sm_80`` (PTX is shipped too, so newer GPUs load it)
* ``cuda:sm_90``        a given arch
* ``{"kind": ...}``     a TVM JSON target dict, for experts

``target_key`` is the single function that the schedule registry, the tuning database and the artifact
metadata use to decide whether two targets are "the same machine".
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re

import tvm

from .errors import TargetError

DEFAULT_CUDA_ARCH = "sm_80"
_CUDA_ARCH = re.compile(r"^sm_(\d{2,3})[af]?$")
# nvcc 13 dropped everything before Turing.
MIN_CUDA_SM = 75


def _affinity_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


# Counted once, at import: TVM's thread pool, set to fewer threads than cores, pins the calling thread to those
# cores (``runtime.config_threadpool``), and the calling thread's mask is what sched_getaffinity reads after.
_HOST_CPU_COUNT = _affinity_count()


def host_cpu_count() -> int:
    """Cores this process may run on (its affinity mask when dlc was imported, not the machine's total)."""
    return _HOST_CPU_COUNT


@functools.cache
def host_cpu_name() -> str:
    """The CPU's marketing name, for reports (``/proc/cpuinfo`` model name)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def _llvm_target(mcpu: str) -> tvm.target.Target:
    if not tvm.target.codegen.llvm_is_valid_cpu(mcpu, "x86_64-unknown-linux-gnu"):
        raise TargetError(f"unknown LLVM CPU {mcpu!r} (e.g. llvm:skylake-avx512, llvm:znver4)")
    return tvm.target.Target({"kind": "llvm", "mcpu": mcpu, "num-cores": host_cpu_count()})


def _cuda_target(arch: str) -> tvm.target.Target:
    m = _CUDA_ARCH.match(arch)
    if not m or int(m.group(1)) < MIN_CUDA_SM:
        raise TargetError(f"bad CUDA arch {arch!r}: expected sm_{MIN_CUDA_SM} or newer, e.g. cuda:sm_80, cuda:sm_90")
    return tvm.target.Target(
        {
            "kind": "cuda",
            "arch": arch,
            # What every arch since Volta offers; MetaSchedule and dlight read these.
            "max_threads_per_block": 1024,
            "max_shared_memory_per_block": 49152,
            "thread_warp_size": 32,
            "host": target_json(host_target()),
        }
    )


@functools.cache
def host_target() -> tvm.target.Target:
    return _llvm_target(tvm.target.codegen.llvm_get_system_cpu())


def resolve_target(spec: str | dict | tvm.target.Target) -> tvm.target.Target:
    """Turn a user's target spec into a TVM Target, or raise TargetError naming what is wrong."""
    if isinstance(spec, tvm.target.Target):
        return spec
    if isinstance(spec, dict):
        return _from_dict(spec)
    if not isinstance(spec, str) or not spec.strip():
        raise TargetError(f"bad target {spec!r}: expected llvm, llvm:<cpu>, cuda, cuda:sm_XX or a JSON dict")
    spec = spec.strip()
    if spec.startswith("{"):
        try:
            return _from_dict(json.loads(spec))
        except json.JSONDecodeError as e:
            raise TargetError(f"bad target JSON: {e.msg} at column {e.colno}") from None
    kind, _, arg = spec.partition(":")
    if kind == "llvm":
        return _llvm_target(arg) if arg else host_target()
    if kind == "cuda":
        return _cuda_target(arg or DEFAULT_CUDA_ARCH)
    raise TargetError(f"unknown target {spec!r}: expected llvm, llvm:<cpu>, cuda, cuda:sm_XX or a JSON dict")


def _from_dict(d: dict) -> tvm.target.Target:
    if not isinstance(d, dict) or d.get("kind") not in ("llvm", "cuda"):
        raise TargetError(f"bad target dict {d!r}: dlc compiles for kind 'llvm' or 'cuda'")
    try:
        if d["kind"] == "cuda" and "host" not in d:
            d = {**d, "host": target_json(host_target())}
        return tvm.target.Target(d)
    except Exception as e:  # TVM raises ValueError/TypeError/TVMError with long messages
        raise TargetError(f"bad target dict: {str(e).splitlines()[0]}") from None


def target_json(target: tvm.target.Target) -> dict:
    """The target as a plain JSON-able dict (what ``Target(dict)`` takes back)."""
    return json.loads(str(target))


def is_cuda(target: tvm.target.Target) -> bool:
    return target.kind.name == "cuda"


def cuda_arch(target: tvm.target.Target) -> str:
    return str(target.attrs.get("arch", DEFAULT_CUDA_ARCH))


def vector_lanes(target: tvm.target.Target, dtype_bits: int = 32) -> int:
    """SIMD lanes for a dtype on an llvm target: 16 fp32 lanes with AVX-512, 8 with AVX2, else 4."""
    features = llvm_features(str(target.attrs.get("mcpu", "")))
    width = 512 if "avx512f" in features else 256 if "avx2" in features else 128
    return width // dtype_bits


@functools.cache
def llvm_features(mcpu: str) -> frozenset[str]:
    if not mcpu:
        return frozenset()
    t = tvm.target.Target({"kind": "llvm", "mcpu": mcpu})
    return frozenset(str(k) for k in tvm.target.codegen.llvm_get_cpu_features(t))


def target_key(target: tvm.target.Target) -> str:
    """A short, stable name for "this kind of machine": the same key means records may be shared.

    llvm: ``llvm-<mcpu>-<digest of the CPU features>``; cuda: ``cuda-<arch>``.
    """
    if is_cuda(target):
        return f"cuda-{cuda_arch(target)}"
    mcpu = str(target.attrs.get("mcpu", "generic"))
    digest = hashlib.sha1(",".join(sorted(llvm_features(mcpu))).encode()).hexdigest()[:8]
    return f"llvm-{mcpu}-{digest}"


def describe(target: tvm.target.Target) -> dict:
    """What the artifact metadata records about a target."""
    info = {"spec": target_json(target), "key": target_key(target), "kind": target.kind.name}
    if is_cuda(target):
        info["arch"] = cuda_arch(target)
    else:
        info["mcpu"] = str(target.attrs.get("mcpu", ""))
        info["cpu"] = host_cpu_name()
        info["vector_lanes_fp32"] = vector_lanes(target)
    return info
