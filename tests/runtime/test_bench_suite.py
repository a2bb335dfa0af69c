"""benchmarks/run.py: the suite end to end on a small model, and its report (JSON, markdown, chart)."""

import importlib.util
import json
from pathlib import Path

import onnx
import pytest
from helpers import conv_model

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def suite():
    spec = importlib.util.spec_from_file_location("benchmarks_run", ROOT / "benchmarks" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_conv_kind(suite):
    assert suite.conv_kind([[1, 64, 56, 56], [64, 64, 3, 3], [1, 64, 56, 56]]) == "3x3 s1"
    assert suite.conv_kind([[1, 256, 56, 56], [512, 256, 1, 1], [1, 512, 1, 1], [1, 512, 28, 28]]) == "1x1 s2"
    assert suite.conv_kind([[1, 64]]) == "?"
    assert suite.geomean([2.0, 8.0]) == pytest.approx(4.0) and suite.geomean([]) is None


def test_suite_end_to_end_on_a_small_model(suite, tmp_path, peak_cache):
    model = tmp_path / "small_conv.onnx"
    onnx.save(conv_model(c=16, k=32, hw=16), model)
    out = tmp_path / "results" / "run"
    code = suite.main(["--models", str(model), "--layers", str(model), "--threads", "1", "--repeat", "4",
                       "--warmup", "1", "--min-repeat", "3", "--out", str(out), "--target", "llvm"])
    assert code == 0
    report = json.loads((out / "results.json").read_text())
    (row,) = report["models"]
    assert row["model"] == "small_conv" and row["schedule_origins"]
    b = row["bench"]
    assert b["threads"] == 1 and 3 <= b["repeat"] <= 4 and b["ratio"] > 0 and b["max_abs_diff"] < 1e-4
    assert report["geomean"]["all"] == pytest.approx(b["ratio"]) and report["geomean"]["cnns"] is None
    assert report["peak"]["gflops"] == 100.0 and report["options"]["target"] == "llvm"
    assert {"loadavg", "other_processes_cores"} <= set(report["state"])
    layers = report["layers"]["layers"]
    assert len(layers) == 1 and layers[0]["kind"] == "3x3 s1" and layers[0]["gflops"] > 0
    md = (out / "results.md").read_text()
    assert "| small_conv |" in md and "Geomean dlc / onnxruntime" in md and "| 3x3 s1 |" in md
    for png in ("ratios.png", "roofline_small_conv.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    assert json.loads((out / "trace_small_conv.json").read_text())["traceEvents"]
    assert (tmp_path / "results" / "artifacts" / "small_conv.so").is_file()


@pytest.mark.slow
def test_suite_on_squeezenet(suite, tmp_path):
    out = tmp_path / "run"
    assert suite.main(["--models", "squeezenet", "--layers", "squeezenet", "--repeat", "5", "--budget", "60",
                       "--out", str(out)]) == 0
    report = json.loads((out / "results.json").read_text())
    assert report["models"][0]["bench"]["max_abs_diff"] < 1e-3
