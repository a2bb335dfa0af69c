"""`dlc run` / `dlc.load` on an artifact that is not for this process — another dlc or TVM, another CPU, a GPU
that is not here, a file cut short or with corrupt metadata — is one clean ArtifactError, before any code of
it is loaded."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import make_model
from onnx import helper

import dlc
from dlc.errors import ArtifactError
from dlc.runtime import CompiledModel, read_metadata
from dlc.runtime.artifact import FORMAT_VERSION, SECTION, _elf_section
from dlc.target import host_target, llvm_features

# CPUs whose features a machine may lack; the first one this machine cannot run is the "other" target.
OTHER_CPUS = ("diamondrapids", "graniterapids", "sapphirerapids", "znver5", "znver4", "icelake-server",
              "cooperlake", "alderlake")
IGNORED = ("tuning", "fast-", "slow-", "prefer-", "false-deps")


def _relu_model():
    return make_model([helper.make_node("Relu", ["x"], ["y"])], [("x", [2, 3])], [("y", [2, 3])])


@pytest.fixture(scope="module")
def compiled():
    return dlc.compile(_relu_model(), "llvm")


@pytest.fixture(scope="module")
def artifact(compiled, tmp_path_factory):
    return compiled.export(tmp_path_factory.mktemp("a") / "relu.so")


def _with_metadata(compiled, path, update) -> str:
    meta = json.loads(json.dumps(compiled.metadata))
    update(meta)
    return str(CompiledModel(compiled._module, meta, blob_patch=compiled._blob_patch).export(path))


@pytest.fixture
def cli_error(capfd):
    """Run `dlc ARGV` in-process; return its one line on stderr (file descriptor 2, so TVM's C++ output
    counts too) after checking that there is exactly one, exit code 2 and no traceback."""
    from dlc.cli import main

    def run(*argv) -> str:
        capfd.readouterr()
        code = main(list(argv))
        err = capfd.readouterr().err
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert code == 2, err
        assert len(lines) == 1 and lines[0].startswith("dlc: error: ") and "Traceback" not in err, err
        return lines[0]

    return run


def test_artifact_for_a_cpu_with_features_this_one_lacks(tmp_path, cli_error):
    host = llvm_features(str(host_target().attrs["mcpu"]))
    lacking = {cpu: sorted(f for f in llvm_features(cpu) - host if not f.startswith(IGNORED)) for cpu in OTHER_CPUS}
    cpu = next((c for c in OTHER_CPUS if lacking[c]), None)
    if cpu is None:
        pytest.skip("this CPU has the features of every candidate")
    path = dlc.compile(_relu_model(), f"llvm:{cpu}").export(tmp_path / "other.so")
    assert read_metadata(path)["target"]["mcpu"] == cpu
    with pytest.raises(ArtifactError, match=rf"built for CPU {cpu}; this CPU lacks {lacking[cpu][0]}"):
        dlc.load(path)
    np.save(tmp_path / "x.npy", np.ones((2, 3), np.float32))
    assert f"built for CPU {cpu}" in cli_error("run", str(path), "-i", str(tmp_path / "x.npy"))


def test_artifact_for_an_older_cpu_runs_here(tmp_path):
    """The check is about missing features, not about names: x86-64 code runs on any x86-64 CPU."""
    model = dlc.load(dlc.compile(_relu_model(), "llvm:x86-64").export(tmp_path / "old.so"))
    x = np.array([[-1, 0, 1], [2, -2, 3]], np.float32)
    np.testing.assert_array_equal(model.run({"x": x})["y"], np.maximum(x, 0))


@pytest.mark.parametrize("name", ["dlc", "tvm"])
def test_artifact_from_another_version(compiled, tmp_path, name, cli_error):
    path = _with_metadata(compiled, tmp_path / "v.so", lambda m: m["versions"].update({name: "0.0.1"}))
    with pytest.raises(ArtifactError, match=rf"built by {name} 0.0.1, this is {name} .*: recompile it"):
        dlc.load(path)
    assert f"built by {name} 0.0.1" in cli_error("run", path)


def test_artifact_for_cuda_without_a_gpu(compiled, tmp_path):
    import tvm

    if tvm.cuda(0).exist:
        pytest.skip("a GPU is visible")
    path = _with_metadata(compiled, tmp_path / "c.so",
                          lambda m: m["target"].update({"kind": "cuda", "arch": "sm_80", "key": "cuda-sm_80"}))
    with pytest.raises(ArtifactError, match="built for cuda sm_80; no CUDA GPU is visible here"):
        dlc.load(path)


def test_artifact_of_a_newer_format(compiled, tmp_path):
    path = Path(_with_metadata(compiled, tmp_path / "f.so", lambda m: None))
    data = bytearray(path.read_bytes())
    section = _elf_section(bytes(data), SECTION)
    start = bytes(data).index(section)
    old = f'"format_version": {FORMAT_VERSION}'.encode()
    new = f'"format_version": {FORMAT_VERSION + 1}'.encode()
    patched = section.replace(old, new)
    assert len(patched) == len(section) and patched != section
    data[start:start + len(section)] = patched
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="is newer than this dlc reads"):
        dlc.load(path)


@pytest.mark.parametrize("keep", [0, 16, 63, 4096, 0.5, -1])
def test_truncated_artifact(artifact, tmp_path, keep, cli_error):
    data = artifact.read_bytes()
    n = int(len(data) * keep) if isinstance(keep, float) else keep if keep >= 0 else len(data) + keep
    cut = tmp_path / "cut.so"
    cut.write_bytes(data[:n])
    with pytest.raises(ArtifactError, match="not a dlc artifact"):
        dlc.load(cut)
    assert "not a dlc artifact" in cli_error("inspect", str(cut))


def _patch_metadata(artifact, dest, new_json: bytes):
    data = bytearray(artifact.read_bytes())
    section = _elf_section(bytes(data), SECTION)
    start = bytes(data).index(section)
    assert len(new_json) <= len(section)
    data[start:start + len(section)] = new_json.ljust(len(section), b" ")
    dest.write_bytes(bytes(data))
    return dest


def test_corrupt_metadata_section(artifact, tmp_path, cli_error):
    path = _patch_metadata(artifact, tmp_path / "garbage.so", b"\xff\xfe{not json")
    with pytest.raises(ArtifactError, match="dlc metadata is corrupt"):
        dlc.load(path)
    assert "dlc metadata is corrupt" in cli_error("run", str(path))
    assert "dlc metadata is corrupt" in cli_error("inspect", str(path))


@pytest.mark.parametrize("drop, message", [("target", "no valid 'target'"), ("signature", "no valid 'signature'"),
                                           ("versions", "no valid 'versions'")])
def test_metadata_missing_what_the_runtime_needs(artifact, tmp_path, drop, message, cli_error):
    meta = read_metadata(artifact)
    del meta[drop]
    path = _patch_metadata(artifact, tmp_path / "m.so", json.dumps(meta).encode())
    with pytest.raises(ArtifactError, match=message):
        dlc.load(path)
    assert message in cli_error("inspect", str(path))


def test_metadata_with_a_bad_signature(artifact, tmp_path):
    meta = read_metadata(artifact)
    meta["signature"]["inputs"] = [{"name": "x"}]
    path = _patch_metadata(artifact, tmp_path / "s.so", json.dumps(meta).encode())
    with pytest.raises(ArtifactError, match="bad 'signature'"):
        dlc.load(path)


def test_dlc_metadata_glued_onto_another_library(artifact, tmp_path, cli_error):
    """Metadata that checks out, code that is not a TVM module: TVM refuses to load it, dlc says so."""
    (tmp_path / "lib.c").write_text("int f(void) { return 1; }\n")
    subprocess.run(["cc", "-shared", "-fPIC", str(tmp_path / "lib.c"), "-o", str(tmp_path / "plain.so")], check=True)
    (tmp_path / "meta.json").write_bytes(_elf_section(artifact.read_bytes(), SECTION))
    subprocess.run(["objcopy", "--add-section", f"{SECTION}={tmp_path / 'meta.json'}", str(tmp_path / "plain.so"),
                    str(tmp_path / "glued.so")], check=True)
    assert read_metadata(tmp_path / "glued.so")["format"] == "dlc-artifact"
    with pytest.raises(ArtifactError, match="cannot load: the library holds no TVM executable"):
        dlc.load(tmp_path / "glued.so")
    assert "holds no TVM executable" in cli_error("run", str(tmp_path / "glued.so"))


def test_an_empty_input_file_is_an_input_error(artifact, tmp_path, cli_error):
    (tmp_path / "empty.npy").write_bytes(b"")
    assert "is not a .npy array" in cli_error("run", str(artifact), "-i", str(tmp_path / "empty.npy"))


def test_the_real_process_exits_2_with_one_line(artifact, tmp_path):
    cut = tmp_path / "cut.so"
    cut.write_bytes(artifact.read_bytes()[:1000])
    proc = subprocess.run([sys.executable, "-m", "dlc", "run", str(cut)], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith("dlc: error: ") and "not a dlc artifact" in proc.stderr


def test_scalar_inputs_stay_scalars():
    """Found by `python -m dlc.fuzz --run`: np.ascontiguousarray made a 0-d feed 1-d, which the VM refused."""
    model = make_model([helper.make_node("Mul", ["x", "k"], ["y"])], [("x", [2]), ("k", [])], [("y", [2])])
    out = dlc.compile(model).run({"x": np.array([1, 2], np.float32), "k": np.array(3, np.float32)})
    np.testing.assert_array_equal(out["y"], [3, 6])
