"""Running a compiled model: checked feeds, outputs keyed by ONNX name, artifacts that round-trip."""

import numpy as np
import pytest
from helpers import conv_bn_relu_model, make_model, ort_run, rand
from onnx import helper

import dlc
from dlc.errors import ArtifactError, InputError
from dlc.runtime import read_metadata


@pytest.fixture(scope="module")
def compiled():
    return dlc.compile(conv_bn_relu_model(n="N"), "llvm")


def test_matches_onnxruntime_at_two_batch_sizes(compiled):
    model = conv_bn_relu_model(n="N")
    for n in (1, 3):
        x = rand(n, 3, 16, 16, seed=n)
        y = compiled.run({"x": x})["y"]
        np.testing.assert_allclose(y, ort_run(model, {"x": x})[0], atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize("feeds, message", [
    ({"x": rand(1, 3, 16, 16), "z": rand(1)}, r"unknown input 'z'; the model's inputs are \['x'\]"),
    ({}, r"missing input 'x' \(float32 \(N, 3, 16, 16\)\)"),
    ({"x": rand(1, 3, 15, 16)}, r"input 'x': shape \(1, 3, 15, 16\), expected \(N, 3, 16, 16\)"),
    ({"x": rand(1, 3, 16)}, r"input 'x': shape \(1, 3, 16\), expected"),
    ({"x": rand(1, 3, 16, 16).astype(np.float64)}, r"input 'x': dtype float64, expected float32"),
])
def test_bad_feeds(compiled, feeds, message):
    with pytest.raises(InputError, match=message):
        compiled.run(feeds)


def test_symbolic_dims_must_agree_across_inputs():
    nodes = [helper.make_node("Add", ["a", "b"], ["y"])]
    model = make_model(nodes, [("a", ["N", 4]), ("b", ["N", 4])], [("y", ["N", 4])])
    m = dlc.compile(model)
    np.testing.assert_allclose(m.run({"a": rand(2, 4), "b": rand(2, 4, seed=1)})["y"], rand(2, 4) + rand(2, 4, seed=1))
    with pytest.raises(InputError, match="with N=2"):
        m.run({"a": rand(2, 4), "b": rand(3, 4)})


def test_multiple_outputs_keep_onnx_order_and_names():
    nodes = [helper.make_node("Relu", ["x"], ["second"]), helper.make_node("Neg", ["x"], ["first"])]
    model = make_model(nodes, [("x", [2, 3])], [("first", [2, 3]), ("second", [2, 3])])
    x = rand(2, 3)
    out = dlc.compile(model).run({"x": x})
    assert list(out) == ["first", "second"]
    np.testing.assert_array_equal(out["first"], -x)
    np.testing.assert_array_equal(out["second"], np.maximum(x, 0))


def test_export_load_roundtrip(compiled, tmp_path):
    path = compiled.export(tmp_path / "m.so")
    meta = read_metadata(path)
    assert meta["signature"]["inputs"] == [{"name": "x", "shape": ["N", 3, 16, 16], "dtype": "float32"}]
    assert meta["target"]["kind"] == "llvm" and meta["versions"]["tvm"] == "0.27.0.post1"
    assert meta["kernels"] and all(k["origin"] != "none" for k in meta["kernels"])
    loaded = dlc.load(path, num_threads=1)
    x = rand(2, 3, 16, 16)
    np.testing.assert_array_equal(loaded.run({"x": x})["y"], compiled.run({"x": x})["y"])
    assert loaded.num_threads == 1


def test_export_writes_nothing_on_failure(compiled, tmp_path):
    with pytest.raises(ArtifactError, match="must be a .so"):
        compiled.export(tmp_path / "m.tar")
    assert list(tmp_path.iterdir()) == []


def test_not_an_artifact(tmp_path):
    (tmp_path / "x.so").write_bytes(b"not an elf at all")
    with pytest.raises(ArtifactError, match="not a dlc artifact"):
        dlc.load(tmp_path / "x.so")
    with pytest.raises(ArtifactError, match="no such file"):
        dlc.load(tmp_path / "missing.so")


def test_plain_shared_library_is_not_an_artifact(tmp_path):
    import subprocess

    (tmp_path / "lib.c").write_text("int f(void) { return 1; }\n")
    subprocess.run(["cc", "-shared", "-fPIC", str(tmp_path / "lib.c"), "-o", str(tmp_path / "lib.so")], check=True)
    with pytest.raises(ArtifactError, match="without dlc metadata"):
        dlc.load(tmp_path / "lib.so")


def test_artifact_from_another_version(compiled, tmp_path, monkeypatch):
    path = compiled.export(tmp_path / "m.so")
    monkeypatch.setitem(dlc.version.versions(), "tvm", "0.99.0")
    with pytest.raises(ArtifactError, match="built by tvm 0.27.0.post1, this is tvm 0.99.0: recompile it"):
        dlc.load(path)
