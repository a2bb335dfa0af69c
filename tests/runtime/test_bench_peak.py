"""The machine's roof: the FMA kernel really is 16-lane FMAs, measurements are sane, the cache keeps the best."""

import dataclasses
import json

import pytest
import tvm

from dlc.runtime import peak as peak_module
from dlc.runtime.peak import ACCUMULATORS, MachinePeak, cache_path, machine_peak, measure
from dlc.target import host_target, vector_lanes


def test_fma_kernel_is_independent_vector_fmas():
    target = host_target()
    lanes = vector_lanes(target)
    lib = tvm.compile(tvm.IRModule({"fma_peak": peak_module._fma_kernel(1, lanes)}), target=target).mod
    asm = lib.inspect_source("asm")
    register = {16: "zmm", 8: "ymm", 4: "xmm"}[lanes]
    fmas = [ln for ln in asm.splitlines() if "vfmadd" in ln and register in ln]
    # one FMA per accumulator in the loop body, each on its own register (independent chains)
    assert len(fmas) >= ACCUMULATORS
    assert len({ln.split(",")[-1].strip() for ln in fmas}) >= ACCUMULATORS


def test_measure_quick_is_sane():
    p = measure(1, quick=True)
    assert p.threads == 1 and p.target_key.startswith("llvm-")
    # any x86 core with FMA does >= 16 FP32 FLOP/cycle at >= 1 GHz; nothing does 1000 GFLOP/s on one core
    assert 16 <= p.gflops <= 1000
    assert p.gflops == max(p.gflops_window, p.gflops_cpu_time) and p.gflops_median <= p.gflops_window
    assert set(p.bandwidth_gbs) == {"L2", "L3", "DRAM"}
    assert all(0.5 < bw < 2000 for bw in p.bandwidth_gbs.values())
    assert p.ridge_point() == pytest.approx(p.gflops / p.dram_gbs)
    json.dumps(p.to_json())


def _fake(gflops: float, window: float, dram: float, measured: str = "2099-01-01T00:00:00+00:00"):
    return MachinePeak(target_key="k", threads=1, cpu="c", gflops=max(gflops, window), gflops_window=window,
                       gflops_median=window / 2, gflops_cpu_time=gflops, bandwidth_gbs={"DRAM": dram},
                       bandwidth_median_gbs={"DRAM": dram}, stable=window >= 0.9 * gflops, measured=measured)


def test_cache_keeps_the_best_and_remeasures_unstable(tmp_path, monkeypatch):
    monkeypatch.setenv("DLC_CACHE", str(tmp_path))
    monkeypatch.setattr(peak_module, "_remeasured", set())
    results = iter([_fake(100, 40, 8.0, "2000-01-01T00:00:00+00:00"), _fake(90, 95, 12.0)])
    calls = []

    def fake_measure(threads, quick=False):
        calls.append(threads)
        return next(results)

    monkeypatch.setattr(peak_module, "measure", fake_measure)
    first = machine_peak(1)
    assert not first.stable and cache_path(1).is_file()
    monkeypatch.setattr(peak_module, "_remeasured", set())  # a new process: the old unstable entry is re-measured
    second = machine_peak(1)
    assert calls == [1, 1]
    assert second.gflops == 100 and second.gflops_window == 95 and second.bandwidth_gbs["DRAM"] == 12.0
    assert second.stable and second.measurements == 2
    assert machine_peak(1) == second and calls == [1, 1]  # stable now: served from the cache
    assert MachinePeak.from_json(json.loads(cache_path(1).read_text())) == second


def test_merged_is_symmetric():
    a, b = _fake(100, 40, 8.0), _fake(90, 95, 12.0)
    fields = lambda p: {k: v for k, v in dataclasses.asdict(p).items() if k != "measured"}  # noqa: E731
    assert fields(a.merged(b)) == fields(b.merged(a))
