"""How much memory one tensor may take, and what a tensor of a given type and shape would take.

A model file is a few bytes of protobuf that may *declare* a tensor of 2^40 elements. dlc checks every size
it can know before anything is allocated (initializers, external data, statically shaped values after shape
inference) against ``memory_budget()``: the physical memory of this machine, or less if the process is
confined (``ulimit -v``, a cgroup's ``memory.max``). A tensor larger than that cannot exist here, at compile
time (constant folding materializes it) or at run time on a machine like this one.
"""

from __future__ import annotations

import functools
import math
import os
import resource
from collections.abc import Iterable

import numpy as np
import onnx
from onnx import TensorProto

PROTOBUF_LIMIT = 2**31 - 1  # a protobuf message (an .onnx file without external data) cannot be larger

# Bits per element of the ONNX types that have a fixed width (STRING and UNDEFINED do not).
_SUB_BYTE = {TensorProto.INT4: 4, TensorProto.UINT4: 4, TensorProto.FLOAT4E2M1: 4}
for _name in ("INT2", "UINT2"):
    if hasattr(TensorProto, _name):
        _SUB_BYTE[getattr(TensorProto, _name)] = 2
for _name in ("FLOAT6E2M3", "FLOAT6E3M2"):
    if hasattr(TensorProto, _name):
        _SUB_BYTE[getattr(TensorProto, _name)] = 6


def element_bits(data_type: int) -> int | None:
    """Bits per element of an ONNX tensor type; None for STRING, UNDEFINED and unknown codes."""
    if data_type in _SUB_BYTE:
        return _SUB_BYTE[data_type]
    if data_type in (TensorProto.STRING, TensorProto.UNDEFINED):
        return None
    try:
        return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(data_type)).itemsize * 8
    except (KeyError, TypeError, ValueError):
        return None


def num_elements(dims: Iterable[int]) -> int:
    return math.prod(int(d) for d in dims)  # Python ints: no overflow, however absurd the dims


def tensor_bytes(data_type: int, dims: Iterable[int]) -> int | None:
    bits = element_bits(data_type)
    return None if bits is None else (num_elements(dims) * bits + 7) // 8


def _cgroup_limit() -> int | None:
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as f:
                text = f.read().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 2**60:  # cgroup v1 says "no limit" with a huge number
            return int(text)
    return None


@functools.cache
def memory_budget() -> int:
    """Bytes this process could at most allocate: physical memory, the address-space rlimit, the cgroup."""
    limits = []
    try:
        limits.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        pass
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        limits.append(soft)
    cgroup = _cgroup_limit()
    if cgroup:
        limits.append(cgroup)
    return min(limits) if limits else 2**63


def human_bytes(n: int) -> str:
    if n >= 2**70:  # beyond exabytes a float would overflow long before anyone cares about the digits
        return f"2^{n.bit_length() - 1} bytes"
    for unit, size in (("EB", 2**60), ("PB", 2**50), ("TB", 2**40), ("GB", 2**30), ("MB", 2**20), ("KB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"


def too_large(n_bytes: int) -> str | None:
    """Why ``n_bytes`` cannot be allocated here, or None if it can."""
    budget = memory_budget()
    if n_bytes > budget:
        return f"needs {human_bytes(n_bytes)}, more than this machine can allocate ({human_bytes(budget)})"
    return None
