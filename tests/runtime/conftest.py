"""Fixtures for the runtime tests: a stand-in machine peak, so bench/profile tests need not measure one."""

import json

import pytest

from dlc.runtime.peak import MachinePeak, cache_path
from dlc.target import host_cpu_count


def stand_in_peak(threads: int) -> MachinePeak:
    return MachinePeak(target_key="test", threads=threads, cpu="test CPU", gflops=100.0 * threads,
                       gflops_window=100.0 * threads, gflops_median=90.0 * threads,
                       gflops_cpu_time=100.0 * threads, bandwidth_gbs={"L2": 100.0, "L3": 40.0, "DRAM": 10.0},
                       bandwidth_median_gbs={"L2": 90.0, "L3": 35.0, "DRAM": 9.0}, stable=True,
                       measured="2099-01-01T00:00:00+00:00")


@pytest.fixture(scope="session")
def make_peak():
    """``make_peak(threads)``: a stand-in MachinePeak of 100 GFLOP/s per thread."""
    return stand_in_peak


@pytest.fixture
def peak_cache(tmp_path, monkeypatch):
    """DLC_CACHE in a temp dir holding a stable stand-in peak (100 GFLOP/s per thread) for 1..cores threads."""
    monkeypatch.setenv("DLC_CACHE", str(tmp_path / "cache"))
    for threads in range(1, host_cpu_count() + 1):
        path = cache_path(threads)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(stand_in_peak(threads).to_json()))
    return tmp_path / "cache"
