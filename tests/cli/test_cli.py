"""The dlc command: compile/run/inspect end to end, and one clean line plus an exit code for bad input."""

import subprocess
import sys

import numpy as np
import onnx
import pytest
from helpers import conv_bn_relu_model, make_model, ort_run, rand
from onnx import helper

from dlc.cli import main


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("m") / "cbr.onnx"
    onnx.save(conv_bn_relu_model(n="N"), path)
    return path


@pytest.fixture(scope="module")
def artifact(model_path):
    out = model_path.with_suffix(".so")
    assert main(["compile", str(model_path), "-o", str(out), "--input-shape", "x=2,3,16,16", "-q"]) == 0
    return out


def test_compile_run_matches_onnxruntime(artifact, model_path, tmp_path, capsys):
    x = rand(2, 3, 16, 16)
    np.save(tmp_path / "x.npy", x)
    assert main(["run", str(artifact), "--input", f"x={tmp_path / 'x.npy'}", "-o", str(tmp_path / "out.npz")]) == 0
    printed = capsys.readouterr().out
    assert "y" in printed and "(2, 8, 16, 16)" in printed
    y = np.load(tmp_path / "out.npz")["y"]
    np.testing.assert_allclose(y, ort_run(onnx.load(model_path), {"x": x})[0], atol=1e-4)


def test_run_single_input_without_name(artifact, tmp_path):
    np.save(tmp_path / "x.npy", rand(2, 3, 16, 16))
    assert main(["run", str(artifact), "-i", str(tmp_path / "x.npy")]) == 0


def test_explain_lists_kernels(model_path, tmp_path, capsys):
    assert main(["compile", str(model_path), "-o", str(tmp_path / "m.so"), "--explain", "-q"]) == 0
    printed = capsys.readouterr().out
    assert "fused_conv2d_nchwc" in printed and "hand:conv2d_nchwc" in printed


def test_inspect_model_and_artifact(model_path, artifact, capsys):
    assert main(["inspect", str(model_path)]) == 0
    printed = capsys.readouterr().out
    for word in ("Conv", "BatchNormalization", "input", "x: float32 (N, 3, 16, 16)"):
        assert word in printed
    assert main(["inspect", str(artifact)]) == 0
    assert "dlc artifact of cbr.onnx" in capsys.readouterr().out


def test_inspect_reports_unsupported_ops(tmp_path, capsys):
    nodes = [helper.make_node("Mystery", ["x"], ["y"], name="m1", domain="acme")]
    onnx.save(make_model(nodes, [("x", [2])], [("y", [2])], domains={"acme": 1}), tmp_path / "u.onnx")
    assert main(["inspect", str(tmp_path / "u.onnx")]) == 1
    assert "unsupported Mystery: nodes m1" in capsys.readouterr().out


def test_list_passes(capsys):
    assert main(["compile", "--list-passes"]) == 0
    assert "fold-constant" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message, code", [
    (["compile", "{tmp}/nope.onnx"], "nope.onnx: no such file", 2),
    (["compile", "{model}", "--target", "tpu"], "unknown target 'tpu'", 2),
    (["compile", "{model}", "--input-shape", "x=1,a b"], "bad --input-shape", 1),
    (["compile", "{model}", "--disable-pass", "warp-drive"], "no such pass", 1),
    (["run", "{tmp}/x.npy"], "not a dlc artifact", 2),
    (["run", "{artifact}", "--input", "z={tmp}/x.npy"], "unknown input 'z'", 2),
    (["run", "{artifact}"], "missing input 'x'", 2),
    (["run", "{artifact}", "--input", "x={tmp}/bad_shape.npy"], "input 'x': shape (1, 3, 16, 16)", 2),
    (["run", "{artifact}", "--input", "x={tmp}/f64.npy"], "dtype float64, expected float32", 2),
    (["run", "{artifact}", "--input", "x={tmp}/missing.npy"], "no such file", 2),
    (["inspect", "{tmp}/x.npy"], "not an ONNX model", 2),
])
def test_bad_input_is_one_line_and_an_exit_code(argv, message, code, model_path, artifact, tmp_path, capsys):
    np.save(tmp_path / "x.npy", rand(2, 3, 16, 16))
    np.save(tmp_path / "bad_shape.npy", rand(1, 3, 16, 16))
    np.save(tmp_path / "f64.npy", rand(2, 3, 16, 16).astype(np.float64))
    argv = [a.format(tmp=tmp_path, model=model_path, artifact=artifact) for a in argv]
    assert main(argv) == code
    err = capsys.readouterr().err.strip()
    last = err.splitlines()[-1]  # earlier lines, if any, are progress ("0.0s loading model")
    assert last.startswith("dlc: error:") and message in last, err
    assert "Traceback" not in err and err.count("dlc: error:") == 1, err


def test_no_output_written_on_failure(artifact, tmp_path):
    np.save(tmp_path / "x.npy", rand(1, 3, 16, 16))
    assert main(["run", str(artifact), "-i", str(tmp_path / "x.npy"), "-o", str(tmp_path / "out.npz")]) == 2
    assert not (tmp_path / "out.npz").exists()


def test_process_exit_code_and_verbose_traceback(tmp_path):
    (tmp_path / "junk.onnx").write_bytes(b"\x00junk")
    cmd = [sys.executable, "-m", "dlc", "compile", str(tmp_path / "junk.onnx")]
    quiet = subprocess.run(cmd, capture_output=True, text=True)
    assert quiet.returncode == 2 and "Traceback" not in quiet.stderr
    assert quiet.stderr.strip().splitlines()[-1].startswith("dlc: error:")
    loud = subprocess.run(cmd + ["--verbose"], capture_output=True, text=True)
    assert loud.returncode == 2 and "Traceback" in loud.stderr
