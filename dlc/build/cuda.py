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


def find_nvcc() -> str:
    nvcc = shutil.which("nvcc") or next(
        (p for p in ("/usr/local/cuda/bin/nvcc", "/opt/cuda/bin/nvcc") if os.path.exists(p)), None)
    if nvcc is None:
        raise CompileError("nvcc not found: install the CUDA toolkit (12 or newer) or put nvcc on PATH")
    return nvcc


_PTXAS_ENTRY = re.compile(r"Compiling entry function '([^']+)' for '(sm_\d+\w*)'")
_PTXAS_FRAME = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
_PTXAS_USED = re.compile(r"Used (\d+) registers(?:, used \d+ barriers)?(?:, (\d+) bytes smem)?")


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
            kernels[-1].shared_bytes = int(m.group(2) or 0)
    return kernels


def nvcc_compile(source: str, arch: str) -> DeviceBinary:
    """CUDA C -> fatbin (SASS for ``arch`` + PTX for newer GPUs), with ptxas's resource report."""
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
