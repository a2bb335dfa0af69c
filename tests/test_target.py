"""Target specs: what users write, what TVM gets, the key that ties records to a machine."""

import subprocess
import sys

import pytest

from dlc.errors import TargetError
from dlc.target import host_target, resolve_target, target_key, vector_lanes


def test_host_llvm_is_detected():
    t = resolve_target("llvm")
    assert t.kind.name == "llvm" and str(t.attrs["mcpu"]) == str(host_target().attrs["mcpu"])
    assert int(t.attrs["num-cores"]) >= 1


def test_cuda_default_and_explicit_arch():
    assert str(resolve_target("cuda").attrs["arch"]) == "sm_80"
    t = resolve_target("cuda:sm_90")
    assert str(t.attrs["arch"]) == "sm_90" and target_key(t) == "cuda-sm_90"
    assert t.host is not None and t.host.kind.name == "llvm"


def test_json_dict_target():
    t = resolve_target('{"kind": "llvm", "mcpu": "znver4"}')
    assert str(t.attrs["mcpu"]) == "znver4"
    assert vector_lanes(t) == 16


def test_key_separates_cpus():
    a, b = resolve_target("llvm:skylake-avx512"), resolve_target("llvm:haswell")
    assert target_key(a) != target_key(b)
    assert target_key(a).startswith("llvm-skylake-avx512-") and vector_lanes(b) == 8


@pytest.mark.parametrize("spec, message", [
    ("gpu", "unknown target 'gpu'"),
    ("llvm:pentium9", "unknown LLVM CPU 'pentium9'"),
    ("cuda:sm_61", "bad CUDA arch 'sm_61'"),
    ("cuda:ampere", "bad CUDA arch 'ampere'"),
    ('{"kind": "llvm"', "bad target JSON"),
    ('{"kind": "rocm"}', "dlc compiles for kind 'llvm' or 'cuda'"),
    ("", "bad target"),
])
def test_bad_targets(spec, message):
    with pytest.raises(TargetError, match=message):
        resolve_target(spec)


def test_core_count_survives_a_one_thread_pool():
    # TVM's pool set to one thread pins the calling thread to one core; the process still has all of its cores
    # (the default thread count, the target's num-cores). A fresh process: this one's pool is configured.
    code = ("import os, dlc; from dlc.target import host_cpu_count, resolve_target; n = len(os.sched_getaffinity(0)); "
            "dlc.runtime.set_num_threads(1); "
            "print(n, host_cpu_count(), int(resolve_target('llvm:znver4').attrs['num-cores']))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert len(set(out)) == 1, out
