"""Bad model files are refused with one line that names the file and the problem."""

import os

import numpy as np
import onnx
import pytest
from helpers import conv_model, make_model
from onnx import helper, numpy_helper

from dlc.errors import ModelError
from dlc.frontend import load_model


def test_missing_file(tmp_path):
    with pytest.raises(ModelError, match=r"missing\.onnx: no such file"):
        load_model(tmp_path / "missing.onnx")


def test_directory(tmp_path):
    with pytest.raises(ModelError, match="not a regular file"):
        load_model(tmp_path)


def test_empty_file(tmp_path):
    (tmp_path / "e.onnx").write_bytes(b"")
    with pytest.raises(ModelError, match="file is empty"):
        load_model(tmp_path / "e.onnx")


@pytest.mark.parametrize("payload", [b"hello, world\n" * 10, bytes(range(256)) * 4, b"\x08\x07"])
def test_garbage(tmp_path, payload):
    (tmp_path / "g.onnx").write_bytes(payload)
    with pytest.raises(ModelError, match="not an ONNX model"):
        load_model(tmp_path / "g.onnx")


def test_truncated(tmp_path):
    data = conv_model().SerializeToString()
    (tmp_path / "t.onnx").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match=r"t\.onnx: not an ONNX model"):
        load_model(tmp_path / "t.onnx")


def test_checker_failure_names_the_node(tmp_path):
    model = conv_model()
    model.graph.node[0].input[1] = "no_such_weight"  # a dangling input
    onnx.save(model, tmp_path / "bad.onnx")
    with pytest.raises(ModelError, match="ONNX checker") as e:
        load_model(tmp_path / "bad.onnx")
    assert "\n" not in str(e.value)


def test_opset_too_new(tmp_path):
    model = conv_model()
    model.opset_import[0].version = 99
    onnx.save(model, tmp_path / "new.onnx")
    with pytest.raises(ModelError, match="opset 99 is not supported"):
        load_model(tmp_path / "new.onnx")


def _external_model(folder, location: str) -> str:
    w = np.ones((16, 8, 3, 3), np.float32)
    t = numpy_helper.from_array(w, "w")
    t.ClearField("raw_data")
    t.data_location = onnx.TensorProto.EXTERNAL
    for k, v in (("location", location), ("offset", "0"), ("length", str(w.nbytes))):
        t.external_data.append(onnx.StringStringEntryProto(key=k, value=v))
    m = make_model([helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])],
                   [("x", [1, 8, 8, 8])], [("y", [1, 16, 8, 8])], check=False)
    m.graph.initializer.append(t)
    path = os.path.join(folder, "ext.onnx")
    with open(path, "wb") as f:
        f.write(m.SerializeToString())
    return path


def test_external_data_inside_folder_loads(tmp_path):
    (tmp_path / "w.bin").write_bytes(np.ones((16, 8, 3, 3), np.float32).tobytes())
    loaded = load_model(_external_model(tmp_path, "w.bin"))
    w = numpy_helper.to_array(loaded.proto.graph.initializer[0])
    assert w.shape == (16, 8, 3, 3) and float(w.sum()) == w.size


@pytest.mark.parametrize("location", ["../secret.bin", "/etc/passwd", "sub/../../secret.bin"])
def test_external_data_outside_folder_is_refused(tmp_path, location):
    (tmp_path / "secret.bin").write_bytes(b"\0" * 4608)
    model_dir = tmp_path / "m"
    model_dir.mkdir()
    with pytest.raises(ModelError, match="external data of tensor 'w'"):
        load_model(_external_model(model_dir, location))


def test_external_data_symlink_out_is_refused(tmp_path):
    (tmp_path / "secret.bin").write_bytes(b"\0" * 4608)
    model_dir = tmp_path / "m"
    model_dir.mkdir()
    (model_dir / "w.bin").symlink_to(tmp_path / "secret.bin")
    with pytest.raises(ModelError, match="leaves the model's folder"):
        load_model(_external_model(model_dir, "w.bin"))


def test_external_data_too_short(tmp_path):
    (tmp_path / "w.bin").write_bytes(b"\0" * 100)
    with pytest.raises(ModelError, match="asks for bytes 0..4608 of a 100-byte file"):
        load_model(_external_model(tmp_path, "w.bin"))


def test_modelproto_with_external_data_needs_a_path(tmp_path):
    (tmp_path / "w.bin").write_bytes(b"\0" * 4608)
    proto = onnx.load(_external_model(tmp_path, "w.bin"), load_external_data=False)
    with pytest.raises(ModelError, match="pass the .onnx path"):
        load_model(proto)
