"""cuda builds: nvcc compiles the device code at dlc-compile time and the artifact ships the fatbin."""

import struct

import pytest
from helpers import conv_bn_relu_model

import dlc
from dlc.build.cuda import parse_ptxas
from dlc.errors import CompileError

FATBIN_MAGIC = struct.pack("<I", 0xBA55ED50)


@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_artifact_ships_nvcc_fatbin_not_source(arch, tmp_path):
    model = dlc.compile(conv_bn_relu_model(), f"cuda:{arch}")
    cuda = model.metadata["cuda"]
    assert cuda["arch"] == arch and cuda["fatbin_bytes"] > 1000
    assert cuda["kernels"] and all(k["registers"] > 0 for k in cuda["kernels"])
    data = model.export(tmp_path / "m.so").read_bytes()
    assert FATBIN_MAGIC in data
    assert struct.pack("<Q", 6) + b"fatbin" in data  # the module's format field, as TVM's CUDA loader reads it
    assert b'extern "C" __global__' not in data  # no CUDA source left to JIT on the GPU box
    meta = dlc.runtime.read_metadata(tmp_path / "m.so")
    assert meta["target"]["key"] == f"cuda-{arch}"


def test_loading_cuda_artifact_without_gpu_says_so(tmp_path):
    path = dlc.compile(conv_bn_relu_model(), "cuda").export(tmp_path / "m.so")
    with pytest.raises(dlc.ArtifactError, match="no CUDA GPU is visible here"):
        dlc.load(path)


def test_nvcc_missing_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    monkeypatch.setattr("dlc.build.cuda.os.path.exists", lambda p: False)
    with pytest.raises(CompileError, match="nvcc not found"):
        dlc.compile(conv_bn_relu_model(), "cuda")


def test_parse_ptxas_report():
    report = """ptxas info    : 0 bytes gmem
ptxas info    : Compiling entry function 'k0' for 'sm_80'
ptxas info    : Function properties for k0
    8 bytes stack frame, 4 bytes spill stores, 4 bytes spill loads
ptxas info    : Used 72 registers, used 1 barriers, 6912 bytes smem, 380 bytes cmem[0]
ptxas info    : Compiling entry function 'k1' for 'sm_80'
ptxas info    : Function properties for k1
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 10 registers, 368 bytes cmem[0]
"""
    k0, k1 = parse_ptxas(report)
    assert (k0.name, k0.registers, k0.shared_bytes, k0.stack_bytes, k0.spill_stores, k0.spill_loads) == \
        ("k0", 72, 6912, 8, 4, 4)
    assert (k1.name, k1.registers, k1.shared_bytes, k1.spill_stores) == ("k1", 10, 0, 0)
