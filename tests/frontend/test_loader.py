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


# ---- external data: every place a tensor can live, and every field of the reference ---------------------------
W = np.arange(16 * 8 * 3 * 3, dtype=np.float32).reshape(16, 8, 3, 3)


def _make_external(t: onnx.TensorProto, location: str, offset="0", length=None) -> onnx.TensorProto:
    t.ClearField("raw_data")
    t.data_location = onnx.TensorProto.EXTERNAL
    entries = [("location", location), ("offset", offset)] + ([("length", length)] if length is not None else [])
    for k, v in entries:
        t.external_data.append(onnx.StringStringEntryProto(key=k, value=v))
    return t


def _save(folder, model) -> str:
    path = os.path.join(folder, "ext.onnx")
    with open(path, "wb") as f:
        f.write(model.SerializeToString())
    return path


def _constant_model(location: str, **kw) -> onnx.ModelProto:
    """The weight lives in a Constant node's ``value`` attribute, not in an initializer."""
    value = _make_external(numpy_helper.from_array(W, "w_const"), location, **kw)
    nodes = [helper.make_node("Constant", [], ["w"], value=value),
             helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])]
    return make_model(nodes, [("x", [1, 8, 8, 8])], [("y", [1, 16, 8, 8])], check=False)


def _subgraph_model(location: str) -> onnx.ModelProto:
    """The weight is an initializer of an If branch."""
    def branch(name):
        init = _make_external(numpy_helper.from_array(W, f"w_{name}"), location, length=str(W.nbytes))
        g = helper.make_graph([helper.make_node("Conv", ["x", f"w_{name}"], [f"y_{name}"], pads=[1, 1, 1, 1])],
                              name, [], [helper.make_tensor_value_info(f"y_{name}", onnx.TensorProto.FLOAT,
                                                                       [1, 16, 8, 8])], [init])
        return g
    nodes = [helper.make_node("If", ["c"], ["y"], then_branch=branch("then"), else_branch=branch("else"))]
    return make_model(nodes, [("c", [], "bool"), ("x", [1, 8, 8, 8])], [("y", [1, 16, 8, 8])], check=False)


def _sparse_model(location: str) -> onnx.ModelProto:
    values = _make_external(numpy_helper.from_array(np.ones(4, np.float32), "sv"), location, length="16")
    indices = numpy_helper.from_array(np.array([0, 1, 2, 3], np.int64), "si")
    sparse = helper.make_sparse_tensor(values, indices, [16])
    m = make_model([helper.make_node("Add", ["x", "s"], ["y"])], [("x", [16])], [("y", [16])], check=False)
    sparse.values.name = "s"
    m.graph.sparse_initializer.append(sparse)
    return m


def test_external_data_in_a_constant_node_loads(tmp_path):
    (tmp_path / "w.bin").write_bytes(W.tobytes())
    loaded = load_model(_save(tmp_path, _constant_model("w.bin")))
    value = loaded.proto.graph.node[0].attribute[0].t
    np.testing.assert_array_equal(numpy_helper.to_array(value), W)


@pytest.mark.parametrize("build", [_constant_model, _subgraph_model, _sparse_model], ids=["constant", "if", "sparse"])
@pytest.mark.parametrize("location", ["../secret.bin", "/etc/hostname", "link.bin"])
def test_external_data_outside_folder_is_refused_wherever_the_tensor_is(tmp_path, build, location):
    (tmp_path / "secret.bin").write_bytes(W.tobytes())
    model_dir = tmp_path / "m"
    model_dir.mkdir()
    (model_dir / "link.bin").symlink_to(tmp_path / "secret.bin")
    with pytest.raises(ModelError, match="must be a relative path inside|leaves the model's folder"):
        load_model(_save(model_dir, build(location)))


def test_external_data_in_an_if_branch_loads(tmp_path):
    (tmp_path / "w.bin").write_bytes(W.tobytes())
    loaded = load_model(_save(tmp_path, _subgraph_model("w.bin")))
    branch = loaded.proto.graph.node[0].attribute[0].g
    np.testing.assert_array_equal(numpy_helper.to_array(branch.initializer[0]), W)


def test_symlink_inside_the_folder_is_fine(tmp_path):
    (tmp_path / "real.bin").write_bytes(W.tobytes())
    (tmp_path / "w.bin").symlink_to(tmp_path / "real.bin")
    loaded = load_model(_external_model(tmp_path, "w.bin"))
    np.testing.assert_array_equal(numpy_helper.to_array(loaded.proto.graph.initializer[0]), W)


@pytest.mark.parametrize("field, value", [
    ("offset", "abc"), ("offset", "-1"), ("offset", "1e3"), ("offset", " 7"), ("offset", "0x10"), ("offset", ""),
    ("length", "many"), ("length", "-4608"), ("length", "4608.0"), ("length", "9" * 40),
])
def test_offset_and_length_must_be_plain_integers(tmp_path, field, value):
    (tmp_path / "w.bin").write_bytes(W.tobytes())
    model = onnx.load(_external_model(tmp_path, "w.bin"), load_external_data=False)
    entry = next(e for e in model.graph.initializer[0].external_data if e.key == field)
    entry.value = value
    with pytest.raises(ModelError, match=f"{field} .* is not a non-negative integer"):
        load_model(_save(tmp_path, model))


@pytest.mark.parametrize("offset, length, message", [
    ("0", str(2**40), r"asks for bytes 0..1099511627776 of a 4608-byte file"),
    ("4608", "4608", r"asks for bytes 4608..9216 of a 4608-byte file"),
    ("0", "100", r"is 100 bytes, but a tensor of shape \(16, 8, 3, 3\) and data type 1 takes 4608"),
    ("8", None, r"is 4600 bytes, but a tensor of shape"),  # no length: the rest of the file, which is short
])
def test_offset_and_length_must_fit_the_file_and_the_tensor(tmp_path, offset, length, message):
    (tmp_path / "w.bin").write_bytes(W.tobytes())
    model = onnx.load(_external_model(tmp_path, "w.bin"), load_external_data=False)
    t = model.graph.initializer[0]
    del t.external_data[:]
    _make_external(t, "w.bin", offset=offset, length=length)
    with pytest.raises(ModelError, match=message):
        load_model(_save(tmp_path, model))


def test_a_huge_declared_tensor_is_refused_before_reading(tmp_path):
    (tmp_path / "w.bin").write_bytes(W.tobytes())
    model = onnx.load(_external_model(tmp_path, "w.bin"), load_external_data=False)
    model.graph.initializer[0].dims[:] = [2**20, 2**20, 16]
    with pytest.raises(ModelError, match=r"tensor 'w' of shape \(1048576, 1048576, 16\) needs 64.0 TB, more than"):
        load_model(_save(tmp_path, model))


def test_all_external_data_together_must_fit_in_memory(tmp_path, monkeypatch):
    from dlc.frontend import limits

    (tmp_path / "w.bin").write_bytes(W.tobytes())
    monkeypatch.setattr(limits, "memory_budget", lambda: W.nbytes - 1)
    with pytest.raises(ModelError, match="needs 4.5 KB, more than this machine can allocate"):
        load_model(_external_model(tmp_path, "w.bin"))


@pytest.mark.parametrize("location", ["w.bin\x00.txt", "w" * 5000, "", "sub", "."])
def test_odd_locations_are_one_clean_error(tmp_path, location):
    (tmp_path / "w.bin").write_bytes(W.tobytes())
    (tmp_path / "sub").mkdir()
    with pytest.raises(ModelError, match="external data of tensor 'w'"):
        load_model(_external_model(tmp_path, location))


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path):
    os.mkfifo(tmp_path / "w.bin")
    with pytest.raises(ModelError, match="not a regular file"):
        load_model(_external_model(tmp_path, "w.bin"))


def test_a_location_given_twice_is_refused(tmp_path):
    (tmp_path / "w.bin").write_bytes(W.tobytes())
    model = onnx.load(_external_model(tmp_path, "w.bin"), load_external_data=False)
    model.graph.initializer[0].external_data.append(onnx.StringStringEntryProto(key="location", value="x.bin"))
    with pytest.raises(ModelError, match="gives 'location' twice"):
        load_model(_save(tmp_path, model))


def test_string_tensors_cannot_be_external(tmp_path):
    (tmp_path / "w.bin").write_bytes(b"abcd")
    model = onnx.load(_external_model(tmp_path, "w.bin"), load_external_data=False)
    model.graph.initializer[0].data_type = onnx.TensorProto.STRING
    with pytest.raises(ModelError, match="cannot be stored externally"):
        load_model(_save(tmp_path, model))


# ---- the model file itself --------------------------------------------------------------------------------
def test_a_file_larger_than_protobuf_allows_is_refused_unread(tmp_path):
    path = tmp_path / "big.onnx"
    with open(path, "wb") as f:
        f.truncate(2**31)  # sparse: no disk used, and dlc must not read it
    with pytest.raises(ModelError, match=r"file is 2.0 GB, more than a protobuf message can hold"):
        load_model(path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(conv_model(), path)
    path.chmod(0)
    with pytest.raises(ModelError, match="cannot read the file: Permission denied"):
        load_model(path)


def test_path_with_a_nul_byte(tmp_path):
    with pytest.raises(ModelError, match="no such file|cannot read the file"):
        load_model(str(tmp_path / "m\x00.onnx"))


def test_names_that_are_not_utf8_are_refused(tmp_path):
    data = conv_model().SerializeToString().replace(b"\x12\x01y", b"\x12\x01\xff")  # node output 'y' -> 0xff
    (tmp_path / "m.onnx").write_bytes(data)
    with pytest.raises(ModelError, match="is not valid UTF-8"):
        load_model(tmp_path / "m.onnx")
