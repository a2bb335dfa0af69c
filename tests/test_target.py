"""Target specs: what users write, what TVM gets, the key that ties records to a machine."""

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
