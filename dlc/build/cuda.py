"""CUDA device code: compiled by nvcc at ``dlc compile`` time, shipped compiled, checked by ptxas.

TVM 0.27's ``tvm.compile`` keeps CUDA *source* in the module and compiles it with NVRTC when the artifact is
loaded on the GPU box: a bad kernel would fail there, and NVRTC must be installed there. dlc instead runs
nvcc here, producing a fatbin with SASS for the target arch plus PTX of the same arch (newer GPUs JIT the
PTX), and swaps it into the serialized module tree where TVM put the source. TVM's CUDA loader takes any
format but "cuda" as a ready binary (``cuModuleLoadData``).

The serialized tree (``runtime.ModulePackImportsToTensor``) is ``u64 size`` then, per module,
``str kind, u64 n, n bytes``, and a CUDA module's bytes are ``str fmt, fmap, str code`` (strings are
``u64 length + bytes``). ``swap_cuda_code`` rewrites exactly that and checks each field on the way.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import tvm

from ..errors import CompileError
from ..target import cuda_arch


@dataclass
class KernelResources:
    """What ptxas reports for one kernel."""

    name: str
    registers: int
    shared_bytes: int
    stack_bytes: int
    spill_stores: int
    spill_loads: int

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class DeviceBinary:
    source: str  # CUDA C as TVM generated it
    fatbin: bytes
    arch: str
    kernels: list[KernelResources]

    def launch_bounds(self) -> dict[str, int]:
        """Each kernel's ``__launch_bounds__`` (the threads per block TVM bound), by kernel name."""
        return {m.group(2): int(m.group(1)) for m in _LAUNCH_BOUNDS.finditer(self.source)}


# What every arch dlc targets (sm_75 to sm_90) allows: 255 registers a thread, 1024 threads a block, and
# 48 KB of *static* shared memory a block (TVM declares shared memory statically; more would need dynamic
# shared memory and an opt-in launch attribute).
MAX_REGISTERS = 255
MAX_THREADS = 1024
MAX_STATIC_SHARED_BYTES = 48 * 1024
_LAUNCH_BOUNDS = re.compile(r"__global__ void __launch_bounds__\((\d+)\) (\w+)\(")


def resource_problems(binary: DeviceBinary) -> list[str]:
    """Everything in ptxas's report (and the launch bounds) over the architecture's limits, or a spill."""
    problems = []
    for k in binary.kernels:
        if k.registers > MAX_REGISTERS:
            problems.append(f"{k.name}: {k.registers} registers a thread (at most {MAX_REGISTERS})")
        if k.shared_bytes > MAX_STATIC_SHARED_BYTES:
            problems.append(f"{k.name}: {k.shared_bytes} bytes of shared memory (at most {MAX_STATIC_SHARED_BYTES})")
        if k.spill_stores or k.spill_loads:
            problems.append(f"{k.name}: spills {k.spill_stores} bytes to local memory, reloads {k.spill_loads}")
    for name, threads in binary.launch_bounds().items():
        if threads > MAX_THREADS:
            problems.append(f"{name}: {threads} threads a block (at most {MAX_THREADS})")
    return problems


def find_nvcc() -> str:
    nvcc = shutil.which("nvcc") or next(
        (p for p in ("/usr/local/cuda/bin/nvcc", "/opt/cuda/bin/nvcc") if os.path.exists(p)), None)
    if nvcc is None:
        raise CompileError("nvcc not found: install the CUDA toolkit (12 or newer) or put nvcc on PATH")
    return nvcc


_PTXAS_ENTRY = re.compile(r"Compiling entry function '([^']+)' for '(sm_\d+\w*)'")
_PTXAS_FRAME = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
_PTXAS_USED = re.compile(r"Used (\d+) registers")  # the line may also list barriers, stack size, smem, cmem
_PTXAS_SMEM = re.compile(r"(\d+) bytes smem")


def parse_ptxas(report: str) -> list[KernelResources]:
    """Per-kernel resources from ``nvcc -Xptxas -v`` output."""
    kernels: list[KernelResources] = []
    for line in report.splitlines():
        if m := _PTXAS_ENTRY.search(line):
            kernels.append(KernelResources(m.group(1), 0, 0, 0, 0, 0))
        elif kernels and (m := _PTXAS_FRAME.search(line)):
            k = kernels[-1]
            k.stack_bytes, k.spill_stores, k.spill_loads = map(int, m.groups())
        elif kernels and (m := _PTXAS_USED.search(line)):
            kernels[-1].registers = int(m.group(1))
            smem = _PTXAS_SMEM.search(line)
            kernels[-1].shared_bytes = int(smem.group(1)) if smem else 0
    return kernels


def nvcc_compile(source: str, arch: str) -> DeviceBinary:
    """CUDA C -> fatbin (SASS for ``arch`` + PTX for newer GPUs), with ptxas's resource report.

    Given only ``__launch_bounds__(threads)``, ptxas sometimes caps registers to fit as many blocks per SM
    as it can, and spills (seen at 96 and 112 threads: 32 registers, 12 bytes spilled). Kernels that
    spill are compiled again with ``__launch_bounds__(threads, 1)``, which lifts that cap for them alone;
    the others keep ptxas's choice, which favours occupancy.
    """
    binary = _nvcc(source, arch)
    spilled = {k.name for k in binary.kernels if k.spill_stores or k.spill_loads}
    if not spilled:
        return binary
    relaxed = _LAUNCH_BOUNDS.sub(lambda m: m.group(0).replace(f"({m.group(1)})", f"({m.group(1)}, 1)")
                                 if m.group(2) in spilled else m.group(0), source)
    retry = _nvcc(relaxed, arch)
    return DeviceBinary(source, retry.fatbin, arch, retry.kernels)  # the source TVM's module holds, for the swap


def _nvcc(source: str, arch: str) -> DeviceBinary:
    num = arch[len("sm_"):]
    with tempfile.TemporaryDirectory(prefix="dlc-nvcc-") as tmp:
        src, out = Path(tmp) / "kernels.cu", Path(tmp) / "kernels.fatbin"
        src.write_text(source)
        cmd = [find_nvcc(), "--fatbin", "-O3", "-std=c++17",
               "-gencode", f"arch=compute_{num},code=sm_{num}",
               "-gencode", f"arch=compute_{num},code=compute_{num}",
               # TVM's kernels use half/bfloat16 operators and constexpr helpers (as TVM's own nvcc call).
               "-U__CUDA_NO_HALF_OPERATORS__", "-U__CUDA_NO_HALF_CONVERSIONS__",
               "-U__CUDA_NO_BFLOAT16_OPERATORS__", "-U__CUDA_NO_BFLOAT16_CONVERSIONS__",
               "--expt-relaxed-constexpr", "-Xptxas", "-v", "-o", str(out), str(src)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            errors = [ln for ln in proc.stderr.splitlines() if "error" in ln.lower()] or proc.stderr.splitlines()
            raise CompileError(f"nvcc failed for {arch}: {errors[0].strip() if errors else 'no output'}")
        return DeviceBinary(source, out.read_bytes(), arch, parse_ptxas(proc.stderr))


def cuda_sources(executable: tvm.runtime.Executable) -> list[str]:
    """The CUDA C of every cuda module in the executable's module tree."""
    found, stack = [], [executable.mod]
    while stack:
        m = stack.pop()
        if m.kind == "cuda":
            found.append(m.inspect_source("cuda"))
        stack.extend(m.imports)
    return found


def compile_device_code(executable: tvm.runtime.Executable, target: tvm.target.Target) -> list[DeviceBinary]:
    arch = cuda_arch(target)
    binaries = [nvcc_compile(src, arch) for src in cuda_sources(executable)]
    if not binaries:
        raise CompileError("the cuda build produced no device code: some kernel was left unscheduled")
    return binaries


def _str(b: bytes) -> bytes:
    return struct.pack("<Q", len(b)) + b


def swap_cuda_code(blob: bytes, binaries: list[DeviceBinary]) -> bytes:
    """Replace each CUDA module's (fmt "cuda", source) by (fmt "fatbin", the nvcc binary) in a packed tree."""
    if len(blob) < 8 or struct.unpack_from("<Q", blob)[0] != len(blob) - 8:
        raise CompileError("unexpected layout of TVM's packed module tree (size header)")
    for binary in binaries:
        kind, fmt_src, code_src = _str(b"cuda"), _str(b"cuda"), _str(binary.source.encode())
        hits = []
        start = 8
        while (i := blob.find(kind, start)) != -1:
            start = i + 1
            pos = i + len(kind)
            if pos + 8 > len(blob):
                continue
            (n,) = struct.unpack_from("<Q", blob, pos)
            payload = blob[pos + 8:pos + 8 + n]
            if len(payload) == n and payload.startswith(fmt_src) and payload.endswith(code_src):
                hits.append((pos, n, payload))
        if len(hits) != 1:
            raise CompileError(f"cannot place the nvcc binary: found {len(hits)} matching CUDA modules, expected 1")
        pos, n, payload = hits[0]
        fmap = payload[len(fmt_src):n - len(code_src)]
        new_payload = _str(b"fatbin") + fmap + _str(binary.fatbin)
        blob = blob[:pos] + struct.pack("<Q", len(new_payload)) + new_payload + blob[pos + 8 + n:]
    return struct.pack("<Q", len(blob) - 8) + blob[8:]
