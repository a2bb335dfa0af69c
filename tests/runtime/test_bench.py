"""dlc bench: statistics, side-by-side timing against onnxruntime, machine state, and a clear error without it."""

import json
import sys

import numpy as np
import onnx
import pytest
from helpers import conv_model, rand

import dlc
from dlc.cli import main
from dlc.errors import DlcError
from dlc.runtime.bench import MachineMonitor, Stats, bench, describe_state, onnxruntime_session, random_feeds


@pytest.fixture(scope="module")
def onnx_model():
    return conv_model(c=8, k=16, hw=16)


@pytest.fixture(scope="module")
def compiled(onnx_model):
    return dlc.compile(onnx_model, "llvm")


@pytest.fixture(scope="module")
def files(onnx_model, tmp_path_factory):
    """conv.onnx and the artifact compiled from it, side by side (so bench finds the ONNX model itself)."""
    d = tmp_path_factory.mktemp("bench")
    onnx.save(onnx_model, d / "conv.onnx")
    dlc.compile(d / "conv.onnx").export(d / "conv.so")
    return d


def test_stats_are_order_statistics():
    s = Stats.of([5.0, 1.0, 3.0, 2.0, 4.0])
    assert (s.n, s.min, s.median, s.mean) == (5, 1.0, 3.0, 3.0)
    assert s.p10 == pytest.approx(1.4) and s.p90 == pytest.approx(4.6)
    with pytest.raises(ValueError):
        Stats.of([])


def test_random_feeds_follow_the_signature(compiled):
    feeds = random_feeds(compiled.inputs)
    assert list(feeds) == ["x"] and feeds["x"].shape == (1, 8, 16, 16) and feeds["x"].dtype == np.float32
    compiled.check_feeds(feeds)


def test_bench_against_onnxruntime_interleaved(compiled, onnx_model, peak_cache):
    x = rand(1, 8, 16, 16)
    r = bench(compiled, {"x": x}, repeat=6, warmup=1, threads=1, compare=onnx_model)
    assert r.threads == 1 and r.repeat == 6
    assert len(r.samples_ms["dlc"]) == len(r.samples_ms["onnxruntime"]) == 6
    for stats in (r.dlc, r.onnxruntime):
        assert 0 < stats.min <= stats.median <= stats.p90
    assert r.ratio == pytest.approx(r.dlc.median / r.onnxruntime.median)
    assert r.paired_ratio.n == 6 and r.paired_ratio.min > 0
    assert r.max_abs_diff < 1e-4  # same numbers as onnxruntime
    # FLOP: 2 * K * C * 3 * 3 * H * W for the conv, plus the bias and ReLU epilogue
    conv = 2 * 16 * 8 * 9 * 16 * 16 / 1e9
    assert conv <= r.gflop <= conv * 1.05
    assert r.peak_gflops == 100.0  # the stand-in peak for one thread
    assert r.percent_of_peak() == pytest.approx(100 * r.gflops() / 100.0)
    assert r.machine["threads"] == 1 and r.machine["versions"]["tvm"] and r.machine["cpu"]
    assert {"loadavg", "other_processes_cores", "busiest_other_processes"} <= set(r.state)
    json.dumps(r.to_json())  # all of it is JSON


def test_machine_monitor_sees_this_process_work():
    mon = MachineMonitor().start()
    t = 0.0
    a = np.random.default_rng(0).standard_normal((300, 300))
    for _ in range(60):
        t += float((a @ a).sum())
    state = mon.stop()
    assert state["seconds"] > 0 and len(state["loadavg"]) == 3
    assert state["this_process_cores"] > 0
    assert "load" in describe_state(state)


def test_compare_without_onnxruntime_is_a_clear_error(monkeypatch, compiled, onnx_model, files, capsys, peak_cache):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # "import onnxruntime" now raises ImportError
    with pytest.raises(DlcError, match=r"--compare onnxruntime needs the onnxruntime package.*pip install"):
        onnxruntime_session(onnx_model, 1)
    code = main(["bench", str(files / "conv.so"), "--compare", "onnxruntime", "--repeat", "2", "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and err == [err[0]] and "needs the onnxruntime package" in err[0]
    # without --compare, no onnxruntime is needed at all
    assert main(["bench", str(files / "conv.so"), "--repeat", "2", "--warmup", "0", "-q"]) == 0


def test_cli_bench_artifact_with_onnx_beside_it(files, tmp_path, capsys, peak_cache):
    out = tmp_path / "bench.json"
    assert main(["bench", str(files / "conv.so"), "--compare", "onnxruntime", "--repeat", "4", "--warmup", "1",
                 "--threads", "1", "--json", str(out), "-q"]) == 0
    printed = capsys.readouterr().out
    assert "dlc / onnxruntime =" in printed and "machine:" in printed
    data = json.loads(out.read_text())
    assert data["threads"] == 1 and data["ratio"] > 0 and data["onnxruntime"]["n"] == 4
    assert set(data["samples_ms"]) == {"dlc", "onnxruntime"}


def test_cli_bench_errors(files, tmp_path, capsys):
    lonely = tmp_path / "lonely.so"
    lonely.write_bytes((files / "conv.so").read_bytes())
    assert main(["bench", str(lonely), "--compare", "onnxruntime"]) == 1
    assert "add --onnx MODEL.onnx" in capsys.readouterr().err
    assert main(["bench", str(files / "conv.so"), "--input-shape", "x=1,8,16,16"]) == 1
    assert "already compiled" in capsys.readouterr().err
    assert main(["bench", str(lonely), "--compare", "onnxruntime", "--onnx", str(tmp_path / "nope.onnx")]) == 2
    assert "nope.onnx: no such ONNX file" in capsys.readouterr().err


def test_bench_uses_the_thread_count_the_model_was_loaded_with(files):
    model = dlc.load(files / "conv.so", num_threads=1)
    assert bench(model, repeat=2, warmup=0, peak=False).threads == 1
    assert bench(model, repeat=2, warmup=0, threads=2, peak=False).threads == 2
