"""dlc profile: every kernel call timed in place, the per-kernel table, the roofline PNG, the Chrome trace."""

import json

import numpy as np
import onnx
import pytest
from helpers import make_model, rand
from onnx import helper

import dlc
from dlc.cli import main
from dlc.runtime.profile import count_kernel_calls, op_of, profile

C, HW = 16, 16


def two_convs_model():
    """conv(3x3) -> relu -> conv(3x3, same shapes, other weights) -> relu -> 1x1 conv: one kernel runs twice."""
    w = lambda s, k=3: rand(C, C, k, k, seed=s, scale=(2.0 / (C * k * k)) ** 0.5)  # noqa: E731
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"], pads=[1] * 4, kernel_shape=[3, 3]),
             helper.make_node("Relu", ["a"], ["b"]),
             helper.make_node("Conv", ["b", "w2"], ["c"], pads=[1] * 4, kernel_shape=[3, 3]),
             helper.make_node("Relu", ["c"], ["d"]),
             helper.make_node("Conv", ["d", "w3"], ["y"], kernel_shape=[1, 1])]
    return make_model(nodes, [("x", [1, C, HW, HW])], [("y", [1, C, HW, HW])],
                      [("w1", w(1)), ("w2", w(2)), ("w3", w(3, 1))])


@pytest.fixture(scope="module")
def compiled():
    return dlc.compile(two_convs_model(), "llvm")


@pytest.fixture(scope="module")
def prof(compiled, make_peak):
    return profile(compiled, {"x": rand(1, C, HW, HW)}, repeat=3, min_repeat_ms=1, timeline_runs=2, threads=1,
                   peak=make_peak(1))


def test_op_names_from_kernel_names():
    assert op_of("fused_conv2d10_add6_relu6") == "conv2d_add_relu"
    assert op_of("max_pool2d1") == "max_pool2d"
    assert op_of("fused_conv2d_subtract_divide_multiply_add_relu") == "conv2d_subtract_divide_multiply_add_relu"
    assert op_of("softmax") == "softmax"


def test_every_kernel_call_is_timed(compiled, prof):
    counts = {meta["name"]: n for meta, n in count_kernel_calls(compiled, {"x": rand(1, C, HW, HW)})}
    assert sum(counts.values()) == len(prof.calls) >= 3
    assert {k.name: k.calls for k in prof.kernels} == counts
    assert 2 in counts.values()  # the two identical 3x3 convs share one kernel
    known = {k["name"]: k for k in compiled.kernels}
    for k in prof.kernels:
        assert k.origin == known[k.name]["origin"] and k.gflop == known[k.name]["gflop"]
    assert sum(k.percent for k in prof.kernels) == pytest.approx(100)
    assert [k.us for k in prof.kernels] == sorted((k.us for k in prof.kernels), reverse=True)
    assert prof.outputs_unchanged


def test_kernel_numbers_are_consistent(prof):
    conv3 = next(k for k in prof.kernels if k.calls == 2)
    flop = 2 * C * C * 9 * HW * HW  # one 3x3 conv, without the ReLU epilogue
    assert flop / 1e9 <= conv3.gflop <= flop / 1e9 * 1.02
    # data, weights, output: in whatever layout the passes chose (NCHW, or blocked NCHW[x]c)
    assert [int(np.prod(s)) for s in conv3.shapes] == [C * HW * HW, C * C * 9, C * HW * HW]
    assert conv3.bytes == 4 * (2 * C * HW * HW + C * C * 9)  # input, weights, output
    assert conv3.gflops == pytest.approx(conv3.gflop * 2 / (conv3.us / 1e6))
    assert conv3.percent_of_peak == pytest.approx(100 * conv3.gflops / 100.0)  # stand-in: 100 GFLOP/s
    assert conv3.intensity == pytest.approx(conv3.gflop * 1e9 / conv3.bytes)
    for c in prof.calls:
        assert len(c.samples_us) == 3 and all(t > 0 for t in c.samples_us)
        assert len(c.in_run_us) == 2
    assert prof.kernel_ms <= prof.end_to_end_ms.median * 5  # loose: kernels in place vs whole runs


def test_table_rows(prof):
    rows = prof.table()
    assert list(rows[0]) == ["kernel", "op", "shapes", "calls", "us", "%", "GFLOP/s", "% peak", "GB/s", "schedule"]
    assert [r["kernel"] for r in rows] == [k.name for k in prof.kernels]
    assert len(prof.table(top=1)) == 1


def test_chrome_trace_structure(prof, tmp_path):
    path = prof.write_trace(tmp_path / "trace.json")
    trace = json.loads(path.read_text())
    events = trace["traceEvents"]
    complete = [e for e in events if e["ph"] == "X"]
    for e in complete:
        assert {"ph", "ts", "dur", "name", "cat", "pid", "tid", "args"} <= set(e)
        assert isinstance(e["ts"], (int, float)) and e["dur"] >= 0 and isinstance(e["args"], dict)
    runs = [e for e in complete if e["cat"] == "Session"]
    nodes = [e for e in complete if e["cat"] == "Node"]
    assert len(runs) == 2 and [e["name"] for e in runs] == ["model_run"] * 2
    assert len(nodes) == 2 * len(prof.calls)
    kernel_names = {k.name for k in prof.kernels}
    assert {e["name"] for e in nodes} == kernel_names
    for run in runs:  # each kernel event sits inside its run, in order
        inside = [e for e in nodes if run["ts"] <= e["ts"] and e["ts"] + e["dur"] <= run["ts"] + run["dur"] + 1e-3]
        assert [e["name"] for e in inside] == [c.kernel for c in prof.calls]
        assert [e["ts"] for e in inside] == sorted(e["ts"] for e in inside)
    assert all({"op_name", "schedule", "shapes"} <= set(e["args"]) for e in nodes)
    assert trace["otherData"]["threads"] == 1


def test_roofline_png(prof, tmp_path):
    path = prof.plot_roofline(tmp_path / "roof.png")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000


def test_cli_profile_writes_png_trace_json(tmp_path, capsys, peak_cache):
    model = tmp_path / "convs.onnx"
    onnx.save(two_convs_model(), model)
    png, trace, js = tmp_path / "r.png", tmp_path / "t.json", tmp_path / "p.json"
    assert main(["profile", str(model), "--target", "llvm", "--repeat", "2", "--threads", "1", "--png", str(png),
                 "--trace", str(trace), "--json", str(js), "-q"]) == 0
    printed = capsys.readouterr().out
    assert "sorted by time" in printed and "% peak" in printed and "end to end" in printed
    assert png.stat().st_size > 20_000
    assert json.loads(trace.read_text())["traceEvents"]
    data = json.loads(js.read_text())
    assert data["threads"] == 1 and data["peak"]["gflops"] == 100.0
    assert all(np.isfinite(k["us"]) for k in data["kernels"])


def test_min_statistic(compiled):
    p = profile(compiled, {"x": rand(1, C, HW, HW)}, repeat=3, min_repeat_ms=1, timeline_runs=1, threads=1,
                peak=False, stat="min")
    assert p.stat == "min" and all(k.percent_of_peak is None for k in p.kernels)
    by_kernel = {}
    for c in p.calls:
        by_kernel[c.kernel] = by_kernel.get(c.kernel, 0.0) + min(c.samples_us)
    assert {k.name: k.us for k in p.kernels} == pytest.approx(by_kernel)
    with pytest.raises(ValueError, match="stat must be one of"):
        profile(compiled, stat="mean")
